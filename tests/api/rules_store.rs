//! Rules in the store, on both backends: configured rules are mirrored (added, changed,
//! removed with the file), store rules cannot shadow configured ones, and every change is in
//! the audit log.

use std::sync::Arc;

use idbridge::clock::ManualClock;
use idbridge::domain::{ActionSpec, Criterion, Exemptions, Rule, RuleMode};
use idbridge::store::{RuleOrigin, Store, StoreError};

use crate::helpers::{Backend, TestDb, on_both_backends, start_time};

fn rule(name: &str, days: u32) -> Rule {
    Rule {
        name: name.into(),
        enabled: true,
        mode: RuleMode::DryRun,
        priority: 100,
        targets: Vec::new(),
        criteria: vec![Criterion::InactiveDays { days }],
        exempt: Exemptions::default(),
        actions: vec![ActionSpec::RemoveLicenceGroups],
        allow_delete: false,
        schedule: None,
    }
}

on_both_backends!(configured_rules_are_mirrored_and_every_change_is_audited);

async fn configured_rules_are_mirrored_and_every_change_is_audited(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let store = Store::connect(&db.config(), Arc::new(ManualClock::new(start_time())))
        .await
        .unwrap();
    store.migrate().await.unwrap();

    store
        .mirror_config_rules(&[rule("inactive", 90), rule("leavers", 1)], "config")
        .await
        .unwrap();
    let names = |rules: Vec<idbridge::store::StoredRule>| -> Vec<(String, RuleOrigin)> {
        rules.into_iter().map(|r| (r.rule.name, r.origin)).collect()
    };
    assert_eq!(
        names(store.stored_rules().await.unwrap()),
        [
            ("inactive".to_owned(), RuleOrigin::Config),
            ("leavers".to_owned(), RuleOrigin::Config)
        ]
    );

    // Mirroring the same file again changes nothing and audits nothing.
    let before = store.audit_entries(0, 1000).await.unwrap().len();
    store
        .mirror_config_rules(&[rule("inactive", 90), rule("leavers", 1)], "config")
        .await
        .unwrap();
    assert_eq!(store.audit_entries(0, 1000).await.unwrap().len(), before);

    // The file changes: one rule edited, one gone.
    store
        .mirror_config_rules(&[rule("inactive", 120)], "config")
        .await
        .unwrap();
    let stored = store.stored_rules().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].rule.criteria,
        [Criterion::InactiveDays { days: 120 }]
    );
    let actions: Vec<String> = store
        .audit_entries(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["rule.create", "rule.create", "rule.update", "rule.delete"]
    );

    // A store rule cannot take a configured rule's name.
    let clash = store
        .put_rule(&rule("inactive", 7), RuleOrigin::Store, "ops")
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    assert!(
        store
            .put_rule(&rule("contractors", 30), RuleOrigin::Store, "ops")
            .await
            .unwrap()
    );
    // Mirroring the file leaves store rules alone.
    store
        .mirror_config_rules(&[rule("inactive", 120)], "config")
        .await
        .unwrap();
    assert_eq!(store.stored_rules().await.unwrap().len(), 2);
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}
