//! Filters run as SQL must select exactly what the in-memory evaluator selects: random users,
//! random filters, both backends.

use std::collections::BTreeSet;
use std::sync::Arc;

use idbridge::clock::ManualClock;
use idbridge::domain::SourceKind;
use idbridge::scim::ast::{AttrPath, CompValue, CompareOp, Filter};
use idbridge::scim::eval;
use idbridge::scim::resource::{self, Meta};
use idbridge::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA, USER_TYPE};
use idbridge::store::{ScimKind, ScimQuery, Store};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestDb, on_both_backends, start_time};

const WORDS: &[&str] = &[
    "Ada", "ada", "Grace", "HOPPER", "lin", "Linus", "Émile", "émile", "zed",
];
const TYPES: &[&str] = &["work", "home", "other"];

fn path(name: &str, sub: Option<&str>) -> AttrPath {
    AttrPath {
        urn: None,
        name: name.into(),
        sub: sub.map(str::to_owned),
    }
}

fn ext(name: &str, sub: Option<&str>) -> AttrPath {
    AttrPath {
        urn: Some(ENTERPRISE_USER_SCHEMA.into()),
        name: name.into(),
        sub: sub.map(str::to_owned),
    }
}

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS).prop_map(str::to_owned)
}

fn user_doc() -> impl Strategy<Value = Value> {
    (
        (word(), word(), prop::option::of(word()), any::<bool>()),
        prop::collection::vec((prop::sample::select(TYPES), word(), any::<bool>()), 0..3),
        (prop::option::of(word()), prop::option::of(word()), prop::option::of(word())),
    )
        .prop_map(|((given, family, title, active), emails, (ext_id, dept, manager))| {
            let mut doc = json!({
                "schemas": [USER_SCHEMA],
                "name": {"givenName": given, "familyName": family},
                "displayName": format!("{given} {family}"),
                "active": active,
            });
            if let Some(t) = title {
                doc["title"] = Value::from(t);
            }
            if let Some(e) = ext_id {
                doc["externalId"] = Value::from(e);
            }
            let emails: Vec<Value> = emails
                .into_iter()
                .map(|(t, w, primary)| json!({"type": t, "value": format!("{w}@Example.org"), "primary": primary}))
                .collect();
            if !emails.is_empty() {
                doc["emails"] = Value::Array(emails);
            }
            let mut enterprise = serde_json::Map::new();
            if let Some(d) = dept {
                enterprise.insert("department".into(), Value::from(d));
            }
            if let Some(m) = manager {
                enterprise.insert("manager".into(), json!({"value": m}));
            }
            if !enterprise.is_empty() {
                doc[ENTERPRISE_USER_SCHEMA] = Value::Object(enterprise);
                doc["schemas"] = json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]);
            }
            doc
        })
}

fn string_op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ])
}

fn literal() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        word().prop_map(CompValue::String),
        word().prop_map(|w| CompValue::String(w[..w.len().min(2)].to_owned())),
        word().prop_map(|w| CompValue::String(format!("{w}@example.ORG"))),
        Just(CompValue::Number(7.into())),
    ]
}

fn leaf() -> impl Strategy<Value = Filter> {
    let string_paths = prop::sample::select(vec![
        path("userName", None),
        path("displayName", None),
        path("title", None),
        path("externalId", None),
        path("name", Some("givenName")),
        path("name", Some("familyName")),
        path("emails", None),
        path("emails", Some("value")),
        path("emails", Some("type")),
        ext("department", None),
        ext("manager", Some("value")),
        ext("manager", None),
    ]);
    prop_oneof![
        4 => (string_paths.clone(), string_op(), literal()).prop_map(|(p, op, v)| Filter::Compare(p, op, v)),
        1 => string_paths.clone().prop_map(Filter::Present),
        1 => prop::sample::select(vec![path("name", None), path("emails", None), ext("manager", None)])
            .prop_map(Filter::Present),
        1 => (prop::sample::select(vec![CompareOp::Eq, CompareOp::Ne]), any::<bool>(), any::<bool>()).prop_map(
            |(op, b, as_text)| {
                let v = if as_text { CompValue::String(if b { "True".into() } else { "false".into() }) } else { CompValue::Bool(b) };
                Filter::Compare(path("active", None), op, v)
            }
        ),
        1 => (prop::sample::select(vec![CompareOp::Eq, CompareOp::Ne]), string_paths).prop_map(|(op, p)| Filter::Compare(p, op, CompValue::Null)),
        1 => prop::sample::select(vec![CompareOp::Gt, CompareOp::Le, CompareOp::Eq]).prop_map(|op| {
            Filter::Compare(path("meta", Some("created")), op, CompValue::String("2026-03-01T09:00:00.5Z".into()))
        }),
        1 => prop::sample::select(vec![ENTERPRISE_USER_SCHEMA, USER_SCHEMA, "urn:other"]).prop_map(|s| {
            Filter::Compare(path("schemas", None), CompareOp::Eq, CompValue::String(s.into()))
        }),
    ]
}

fn element_leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        (
            prop::sample::select(TYPES),
            prop::sample::select(vec![CompareOp::Eq, CompareOp::Ne])
        )
            .prop_map(|(t, op)| {
                Filter::Compare(path("type", None), op, CompValue::String(t.to_uppercase()))
            }),
        (string_op(), literal()).prop_map(|(op, v)| Filter::Compare(path("value", None), op, v)),
        Just(Filter::Compare(
            path("primary", None),
            CompareOp::Eq,
            CompValue::Bool(true)
        )),
        Just(Filter::Present(path("primary", None))),
    ]
}

fn element_filter() -> impl Strategy<Value = Filter> {
    element_leaf().prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

fn filter() -> impl Strategy<Value = Filter> {
    let base = prop_oneof![
        4 => leaf(),
        1 => element_filter().prop_map(|f| Filter::ValuePath(path("emails", None), Box::new(f))),
    ];
    base.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

on_both_backends!(filters_select_the_same_users_in_sql_as_in_memory);

async fn filters_select_the_same_users_in_sql_as_in_memory(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let clock = Arc::new(ManualClock::new(start_time()));
    let store = Store::connect(&db.config(), clock.clone()).await.unwrap();
    store.migrate().await.unwrap();

    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    let cases = prop::collection::vec(user_doc(), 5..25);
    let filters = prop::collection::vec(filter(), 25);
    let mut case_no = 0;
    let (mut checked, mut discriminating) = (0usize, 0usize);
    let strategy = (cases, filters);
    let mut value_tree_cases = Vec::new();
    for _ in 0..12 {
        let tree = strategy.new_tree(&mut runner).unwrap();
        value_tree_cases.push(tree.current());
    }
    for (users, filters) in value_tree_cases {
        case_no += 1;
        let source = store
            .ensure_source(&format!("prop-{case_no}"), SourceKind::Scim)
            .await
            .unwrap();
        let mut rendered = Vec::new();
        for (i, mut doc) in users.into_iter().enumerate() {
            doc["userName"] = Value::from(format!("{}-{i}", WORDS[i % WORDS.len()]));
            let doc = resource::normalize(&USER_TYPE, &doc, resource::Mode::Create).unwrap();
            clock.advance(chrono::Duration::milliseconds(250));
            let rec = match store
                .scim_create(ScimKind::User, source.id, doc, "test")
                .await
            {
                Ok(r) => r,
                // Random externalIds may collide; a refused duplicate is not part of this test.
                Err(idbridge::store::StoreError::Conflict(_)) => continue,
                Err(e) => panic!("{e}"),
            };
            let meta = Meta {
                resource_type: "User",
                created: rec.created_at,
                last_modified: rec.updated_at,
                location: String::new(),
                version: String::new(),
            };
            rendered.push((
                rec.id,
                resource::render(&rec.id.to_string(), &rec.document, &meta),
            ));
        }
        for f in &filters {
            if eval::validate(&USER_TYPE, f).is_err() {
                continue;
            }
            let expected: BTreeSet<Uuid> = rendered
                .iter()
                .filter(|(_, doc)| eval::matches(&USER_TYPE, f, doc).unwrap())
                .map(|(id, _)| *id)
                .collect();
            let query = ScimQuery {
                filter: Some(f),
                sort: None,
                offset: 0,
                limit: 1000,
                with_members: false,
                with_groups: false,
            };
            let (total, records) = store
                .scim_list(ScimKind::User, source.id, &query)
                .await
                .unwrap_or_else(|e| panic!("SQL failed for {f:?}: {e}"));
            let got: BTreeSet<Uuid> = records.iter().map(|r| r.id).collect();
            assert_eq!(got, expected, "filter {f:#?}\nusers: {rendered:#?}");
            assert_eq!(usize::try_from(total).unwrap(), expected.len());
            checked += 1;
            if !expected.is_empty() && expected.len() < rendered.len() {
                discriminating += 1;
            }
        }
    }
    // The comparison means something only if many filters select some users but not all.
    assert!(checked >= 150, "only {checked} valid filters were compared");
    assert!(
        discriminating * 4 >= checked,
        "{discriminating} of {checked} filters discriminated"
    );
    store.close().await;
}
