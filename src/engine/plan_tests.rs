//! Tests of the planner: one per criterion, rung and protection, explanations, and
//! properties over generated people and rules (protection, incomplete snapshots, fixpoint
//! after applying, reversible renames, order independence).

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use proptest::prelude::*;

use super::*;
use crate::domain::{
    Exemptions, IdentityStatus, RuleMode, SourceKind, SourceState, TargetId, TargetState,
};
use crate::engine::activity::tests::{at, identity, link, person};

fn now() -> DateTime<Utc> {
    at(2026, 11, 1) + Duration::hours(12)
}

fn rule(name: &str, criteria: Vec<Criterion>, actions: Vec<ActionSpec>) -> Rule {
    Rule {
        name: name.into(),
        enabled: true,
        mode: RuleMode::Enforce,
        priority: 100,
        targets: Vec::new(),
        criteria,
        exempt: Exemptions::default(),
        actions,
        allow_delete: false,
        schedule: None,
    }
}

fn wiki() -> TargetState {
    TargetState {
        name: "wiki".into(),
        id: TargetId(uuid::Uuid::nil()),
        complete: true,
        incomplete_reason: None,
        licence_groups: vec!["confluence-users".into()],
        cannot_rename: None,
        cannot_change_directory: None,
        cannot_delete: None,
    }
}

fn okta_state(complete: bool) -> SourceState {
    SourceState {
        name: "okta".into(),
        kind: SourceKind::Okta,
        complete,
        incomplete_reason: (!complete).then(|| "repeated cursor".into()),
        observed_since: Some(at(2024, 1, 1)),
    }
}

#[derive(Debug)]
struct Fx {
    people: Vec<PersonView>,
    rules: Vec<Rule>,
    sources: Vec<SourceState>,
    targets: Vec<TargetState>,
    settings: PlanSettings,
    now: DateTime<Utc>,
}

impl Fx {
    fn new(people: Vec<PersonView>, rules: Vec<Rule>) -> Self {
        Self {
            people,
            rules,
            sources: vec![okta_state(true)],
            targets: vec![wiki()],
            settings: PlanSettings::default(),
            now: now(),
        }
    }

    fn input(&self) -> PlanInput<'_> {
        PlanInput {
            people: &self.people,
            rules: &self.rules,
            sources: &self.sources,
            targets: &self.targets,
            settings: &self.settings,
            now: self.now,
        }
    }

    fn plan(&self) -> Plan {
        plan(&self.input())
    }

    fn explain(&self, user: &str) -> Vec<Explanation> {
        explain(&self.input(), user)
    }

    /// (username, kind) of every planned action.
    fn actions(&self) -> Vec<(String, ActionKind)> {
        self.plan()
            .actions
            .into_iter()
            .map(|a| (a.username, a.kind))
            .collect()
    }

    fn selected(&self) -> Vec<String> {
        let mut v: Vec<String> = self.actions().into_iter().map(|(u, _)| u).collect();
        v.dedup();
        v
    }
}

fn leaver(user: &str) -> PersonView {
    let mut p = person(user);
    let mut i = identity("okta", user);
    i.status = IdentityStatus::Deprovisioned;
    i.raw_status = Some("DEPROVISIONED".into());
    i.status_changed_at = at(2026, 10, 1);
    link(&mut p, i);
    p
}

fn status_rule(actions: Vec<ActionSpec>) -> Rule {
    rule(
        "leavers",
        vec![Criterion::Status {
            any_of: vec![LeaverSignal::Deprovisioned],
        }],
        actions,
    )
}

fn deactivate() -> ActionKind {
    ActionKind::Deactivate
}

// ---- criteria ---------------------------------------------------------------------------

#[test]
fn a_deprovisioned_identity_from_a_complete_snapshot_is_deactivated_with_the_status_as_reason() {
    let fx = Fx::new(
        vec![leaver("ann"), person("bob")],
        vec![status_rule(vec![ActionSpec::Deactivate])],
    );
    let plan = fx.plan();
    assert_eq!(plan.actions.len(), 1);
    let a = &plan.actions[0];
    assert_eq!((a.username.as_str(), &a.kind), ("ann", &deactivate()));
    assert_eq!(a.reason.rule, "leavers");
    assert_eq!(
        a.reason.because,
        ["status deprovisioned in okta (DEPROVISIONED, since 2026-10-01)"]
    );
    assert_eq!(a.identity_id, Some(fx.people[0].identities[0].id));
}

#[test]
fn a_status_read_in_an_incomplete_snapshot_gets_a_notice_but_no_removal() {
    let mut p = leaver("ann");
    p.identities[0].from_complete_snapshot = false;
    let mut fx = Fx::new(
        vec![p],
        vec![status_rule(vec![
            ActionSpec::Notify { grace_days: 0 },
            ActionSpec::Deactivate,
        ])],
    );
    fx.sources = vec![okta_state(false)];
    assert_eq!(fx.actions(), [("ann".into(), ActionKind::Notify)]);
    fx.people[0]
        .notified
        .insert("leavers".into(), at(2026, 10, 1));
    assert!(fx.actions().is_empty());
    let e = fx.explain("ann");
    assert!(
        e[0].rules[0].held_back.iter().any(|h| h
            .contains("status from source okta, whose latest snapshot is incomplete: no removals")),
        "{:?}",
        e[0].rules[0]
    );
    assert!(
        fx.plan()
            .notes
            .iter()
            .any(|n| n.starts_with("source okta snapshot incomplete")),
        "{:?}",
        fx.plan().notes
    );
}

#[test]
fn scim_inactive_means_a_scim_identity_that_is_no_longer_active() {
    let mut scim = person("ann");
    let mut i = identity("hr-scim", "ann");
    i.source_kind = SourceKind::Scim;
    i.status = IdentityStatus::Deprovisioned;
    link(&mut scim, i);
    let okta_leaver = leaver("bob");
    let mut scim_active = person("cy");
    let mut i = identity("hr-scim", "cy");
    i.source_kind = SourceKind::Scim;
    link(&mut scim_active, i);
    let fx = Fx::new(
        vec![scim, okta_leaver, scim_active],
        vec![rule(
            "scim",
            vec![Criterion::Status {
                any_of: vec![LeaverSignal::ScimInactive],
            }],
            vec![ActionSpec::Deactivate],
        )],
    );
    assert_eq!(fx.selected(), ["ann"]);
}

#[test]
fn suspended_and_deleted_signals_match_only_their_own_status() {
    let mut s = person("sue");
    let mut i = identity("okta", "sue");
    i.status = IdentityStatus::Suspended;
    link(&mut s, i);
    let mut d = person("dan");
    let mut i = identity("okta", "dan");
    i.status = IdentityStatus::Deleted;
    link(&mut d, i);
    let mut fx = Fx::new(
        vec![s, d, leaver("lee")],
        vec![rule(
            "r",
            vec![Criterion::Status {
                any_of: vec![LeaverSignal::Suspended],
            }],
            vec![ActionSpec::Deactivate],
        )],
    );
    assert_eq!(fx.selected(), ["sue"]);
    fx.rules[0].criteria = vec![Criterion::Status {
        any_of: vec![LeaverSignal::Deleted],
    }];
    assert_eq!(fx.selected(), ["dan"]);
}

#[test]
fn an_unlinked_person_never_matches_a_status_criterion() {
    let mut p = leaver("ann");
    p.link = LinkState::Unlinked;
    let fx = Fx::new(vec![p], vec![status_rule(vec![ActionSpec::Deactivate])]);
    assert!(fx.actions().is_empty());
}

#[test]
fn inactive_days_counts_from_the_later_of_creation_and_last_activity_and_names_its_source() {
    let mut old = person("ann");
    old.account.created_at = Some(at(2020, 1, 1));
    let mut i = identity("okta", "ann");
    i.last_login_at = Some(at(2026, 6, 22));
    link(&mut old, i);
    let mut new = person("bob");
    new.account.created_at = Some(at(2026, 10, 1));
    let fx = Fx::new(
        vec![old, new],
        vec![rule(
            "idle",
            vec![Criterion::InactiveDays { days: 90 }],
            vec![ActionSpec::RemoveLicenceGroups],
        )],
    );
    let plan = fx.plan();
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(plan.actions[0].username, "ann");
    assert_eq!(
        plan.actions[0].reason.because,
        ["inactive 132 days ≥ 90 (last activity 2026-06-22 from okta)"]
    );
}

#[test]
fn no_inactivity_criterion_holds_before_the_observation_floor_and_explain_says_so() {
    let mut p = person("ann");
    p.account.created_at = Some(at(2020, 1, 1));
    p.account.first_seen_at = now() - Duration::days(10);
    let fx = Fx::new(
        vec![p],
        vec![
            rule(
                "idle",
                vec![Criterion::InactiveDays { days: 90 }],
                vec![ActionSpec::Deactivate],
            ),
            rule(
                "never",
                vec![Criterion::NeverLoggedIn { days: 30 }],
                vec![ActionSpec::Deactivate],
            ),
        ],
    );
    assert!(fx.actions().is_empty());
    let e = fx.explain("ANN");
    let (why, held) = &e[0].rules[0].criteria[0];
    assert!(!held);
    assert!(
        why.starts_with("observed only 10 days < observation floor 30 days"),
        "{why}"
    );
}

#[test]
fn never_logged_in_needs_no_activity_and_a_known_creation_old_enough() {
    let mut never_old = person("ann");
    never_old.account.created_at = Some(at(2026, 1, 1));
    let mut never_new = person("bob");
    never_new.account.created_at = Some(at(2026, 10, 20));
    let never_unknown = person("cy");
    let mut google_sentinel = person("dee");
    google_sentinel.account.created_at = Some(at(2025, 1, 1));
    let mut g = identity("google", "dee");
    g.last_login_at = Some(at(1970, 1, 1));
    link(&mut google_sentinel, g);
    let mut active = person("eve");
    active.account.created_at = Some(at(2025, 1, 1));
    active.account.last_login_at = Some(at(2025, 2, 1));
    let fx = Fx::new(
        vec![never_old, never_new, never_unknown, google_sentinel, active],
        vec![rule(
            "never",
            vec![Criterion::NeverLoggedIn { days: 30 }],
            vec![ActionSpec::Deactivate],
        )],
    );
    assert_eq!(fx.selected(), ["ann", "dee"]);
}

#[test]
fn logged_in_once_sums_sign_in_events_across_identities() {
    let mut once = person("ann");
    let mut i = identity("okta", "ann");
    i.sign_in_events = 1;
    link(&mut once, i);
    link(&mut once, identity("google", "ann"));
    let mut twice = person("bob");
    let mut i = identity("okta", "bob");
    i.sign_in_events = 1;
    link(&mut twice, i);
    let mut g = identity("google", "bob");
    g.sign_in_events = 1;
    link(&mut twice, g);
    let fx = Fx::new(
        vec![once, twice],
        vec![rule(
            "once",
            vec![Criterion::LoggedInOnce],
            vec![ActionSpec::Deactivate],
        )],
    );
    assert_eq!(fx.selected(), ["ann"]);
}

#[test]
fn member_of_any_all_and_none_compare_names_case_insensitively_over_account_and_idp_groups() {
    let mut a = person("ann");
    a.account.groups = vec!["Contractors".into()];
    let mut i = identity("okta", "ann");
    i.groups = vec!["EMEA".into()];
    link(&mut a, i);
    let mut b = person("bob");
    b.account.groups = vec!["contractors".into()];
    let c = person("cy");
    let mk = |how| {
        Fx::new(
            vec![a.clone(), b.clone(), c.clone()],
            vec![rule(
                "g",
                vec![Criterion::MemberOf {
                    groups: vec!["CONTRACTORS".into(), "emea".into()],
                    how,
                }],
                vec![ActionSpec::Deactivate],
            )],
        )
    };
    assert_eq!(mk(GroupMatch::Any).selected(), ["ann", "bob"]);
    assert_eq!(mk(GroupMatch::All).selected(), ["ann"]);
    assert_eq!(mk(GroupMatch::None).selected(), ["cy"]);
}

#[test]
fn directory_matches_the_accounts_user_directory() {
    let mut a = person("ann");
    a.account.directory = Some("Corp LDAP".into());
    let fx = Fx::new(
        vec![a, person("bob")],
        vec![rule(
            "d",
            vec![Criterion::Directory {
                any_of: vec!["corp ldap".into()],
            }],
            vec![ActionSpec::Deactivate],
        )],
    );
    assert_eq!(fx.selected(), ["ann"]);
}

#[test]
fn email_domain_and_its_negation_never_hold_without_an_email() {
    let mut ext = person("ann");
    ext.account.email = Some("ann@Contractor.example".into());
    let staff = person("bob");
    let mut none = person("cy");
    none.account.email = None;
    let mut from_idp = person("dee");
    from_idp.account.email = None;
    let mut i = identity("okta", "dee");
    i.email = Some("dee@contractor.example".into());
    link(&mut from_idp, i);
    let mk = |negate| {
        Fx::new(
            vec![ext.clone(), staff.clone(), none.clone(), from_idp.clone()],
            vec![rule(
                "ext",
                vec![Criterion::EmailDomain {
                    domains: vec!["contractor.example".into()],
                    negate,
                }],
                vec![ActionSpec::Deactivate],
            )],
        )
    };
    assert_eq!(mk(false).selected(), ["ann", "dee"]);
    assert_eq!(mk(true).selected(), ["bob"]);
}

#[test]
fn created_before_and_after_compare_the_earliest_creation_and_never_hold_when_unknown() {
    let mut old = person("ann");
    old.account.created_at = Some(at(2024, 6, 1));
    let mut i = identity("okta", "ann");
    i.created_at = Some(at(2019, 1, 1));
    link(&mut old, i);
    let mut new = person("bob");
    new.account.created_at = Some(at(2025, 6, 1));
    let unknown = person("cy");
    let mk = |c| {
        Fx::new(
            vec![old.clone(), new.clone(), unknown.clone()],
            vec![rule("c", vec![c], vec![ActionSpec::Deactivate])],
        )
    };
    assert_eq!(
        mk(Criterion::CreatedBefore { at: at(2020, 1, 1) }).selected(),
        ["ann"]
    );
    assert_eq!(
        mk(Criterion::CreatedAfter { at: at(2020, 1, 1) }).selected(),
        ["bob"]
    );
}

#[test]
fn an_attribute_matches_a_string_or_an_array_of_strings_case_insensitively() {
    let mut a = person("ann");
    let mut i = identity("okta", "ann");
    i.attributes = serde_json::json!({ "department": "SALES" });
    link(&mut a, i);
    let mut b = person("bob");
    let mut i = identity("okta", "bob");
    i.attributes = serde_json::json!({ "Department": ["Ops", "sales"] });
    link(&mut b, i);
    let mut c = person("cy");
    let mut i = identity("okta", "cy");
    i.attributes = serde_json::json!({ "department": "Engineering" });
    link(&mut c, i);
    let fx = Fx::new(
        vec![a, b, c],
        vec![rule(
            "a",
            vec![Criterion::Attribute {
                name: "department".into(),
                any_of: vec!["Sales".into()],
            }],
            vec![ActionSpec::Deactivate],
        )],
    );
    assert_eq!(fx.selected(), ["ann", "bob"]);
}

#[test]
fn a_list_matches_username_or_email_case_insensitively() {
    let fx = Fx::new(
        vec![person("ann"), person("bob"), person("cy")],
        vec![rule(
            "l",
            vec![Criterion::Listed {
                names: vec!["ANN".into(), "Bob@Example.com".into()],
            }],
            vec![ActionSpec::Deactivate],
        )],
    );
    assert_eq!(fx.selected(), ["ann", "bob"]);
}

#[test]
fn absent_syncs_holds_only_when_every_polled_source_is_complete() {
    let mut gone = person("ann");
    gone.absent_syncs = 3;
    let mut once = person("bob");
    once.absent_syncs = 1;
    let mut fx = Fx::new(
        vec![gone, once],
        vec![rule(
            "absent",
            vec![Criterion::AbsentSyncs { syncs: 3 }],
            vec![ActionSpec::Deactivate],
        )],
    );
    assert_eq!(fx.selected(), ["ann"]);
    fx.sources.push(SourceState {
        name: "google".into(),
        kind: SourceKind::Google,
        complete: false,
        incomplete_reason: Some("count implausible".into()),
        observed_since: None,
    });
    assert!(fx.actions().is_empty());
    assert!(
        fx.plan()
            .notes
            .iter()
            .any(|n| n.starts_with("absent_syncs holds for nobody"))
    );
    fx.sources.clear();
    assert!(
        fx.actions().is_empty(),
        "no polled source: nobody is absent"
    );
}

// ---- ladder -----------------------------------------------------------------------------

#[test]
fn remove_licence_groups_removes_only_the_targets_licence_groups() {
    let mut p = leaver("ann");
    p.account.groups = vec!["Confluence-Users".into(), "team-a".into()];
    let fx = Fx::new(
        vec![p],
        vec![status_rule(vec![ActionSpec::RemoveLicenceGroups])],
    );
    assert_eq!(
        fx.actions(),
        [(
            "ann".into(),
            ActionKind::RemoveFromGroup {
                group: "Confluence-Users".into(),
                licence: true
            }
        )]
    );
}

#[test]
fn every_rung_is_skipped_when_its_post_state_already_holds() {
    let mut p = leaver("ann");
    p.account.active = false;
    p.account.groups = vec!["former-staff".into()];
    p.account.username = "ann_inactive_20260101".into();
    p.account.directory = Some("Disabled".into());
    let fx = Fx::new(
        vec![p],
        vec![status_rule(vec![
            ActionSpec::RemoveLicenceGroups,
            ActionSpec::Deactivate,
            ActionSpec::Rename,
            ActionSpec::RemoveGroups {
                groups: GroupSelection::All,
            },
            ActionSpec::AddGroups {
                groups: vec!["Former-Staff".into()],
            },
            ActionSpec::ChangeDirectory {
                directory: "disabled".into(),
            },
        ])],
    );
    assert!(fx.actions().is_empty(), "{:?}", fx.actions());
    let held = &fx.explain("ann_inactive_20260101")[0].rules[0].held_back;
    assert!(
        held.iter().any(|h| h == "deactivate: already inactive"),
        "{held:?}"
    );
    assert!(
        held.iter()
            .any(|h| h.contains("already carries an _inactive_ suffix")),
        "{held:?}"
    );
}

#[test]
fn the_full_ladder_expands_in_rung_order() {
    let mut p = leaver("ann");
    p.account.groups = vec!["confluence-users".into(), "team-a".into()];
    let mut r = status_rule(vec![
        ActionSpec::RemoveLicenceGroups,
        ActionSpec::Deactivate,
        ActionSpec::Rename,
        ActionSpec::RemoveGroups {
            groups: GroupSelection::All,
        },
        ActionSpec::AddGroups {
            groups: vec!["former-staff".into()],
        },
        ActionSpec::ChangeDirectory {
            directory: "Disabled".into(),
        },
        ActionSpec::Delete,
    ]);
    r.allow_delete = true;
    let fx = Fx::new(vec![p], vec![r]);
    let kinds: Vec<ActionKind> = fx.actions().into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        kinds,
        [
            ActionKind::RemoveFromGroup {
                group: "confluence-users".into(),
                licence: true
            },
            ActionKind::Deactivate,
            ActionKind::Rename {
                from: "ann".into(),
                to: "ann_inactive_20261101".into()
            },
            ActionKind::RemoveFromGroup {
                group: "team-a".into(),
                licence: false
            },
            ActionKind::AddToGroup {
                group: "former-staff".into()
            },
            ActionKind::ChangeDirectory {
                from: Some("Confluence Internal Directory".into()),
                to: "Disabled".into()
            },
            ActionKind::Delete,
        ]
    );
}

#[test]
fn remove_groups_named_removes_only_those_the_account_holds_and_never_what_the_rule_adds() {
    let mut p = leaver("ann");
    p.account.groups = vec!["Team-A".into(), "team-b".into(), "former-staff".into()];
    let fx = Fx::new(
        vec![p],
        vec![status_rule(vec![
            ActionSpec::RemoveGroups {
                groups: GroupSelection::Named(vec![
                    "team-a".into(),
                    "team-c".into(),
                    "former-staff".into(),
                ]),
            },
            ActionSpec::AddGroups {
                groups: vec!["former-staff".into()],
            },
        ])],
    );
    assert_eq!(
        fx.actions(),
        [(
            "ann".into(),
            ActionKind::RemoveFromGroup {
                group: "Team-A".into(),
                licence: false
            }
        )]
    );
}

#[test]
fn delete_is_planned_only_when_the_rule_allows_it_and_the_target_supports_it() {
    let mut fx = Fx::new(
        vec![leaver("ann")],
        vec![status_rule(vec![ActionSpec::Delete])],
    );
    assert!(fx.actions().is_empty());
    fx.rules[0].allow_delete = true;
    assert_eq!(fx.actions(), [("ann".into(), ActionKind::Delete)]);
    fx.targets[0].cannot_delete = Some("Cloud deletes through the organisation".into());
    assert!(fx.actions().is_empty());
}

#[test]
fn change_directory_is_skipped_with_a_reason_where_the_target_cannot() {
    let mut fx = Fx::new(
        vec![leaver("ann")],
        vec![status_rule(vec![
            ActionSpec::ChangeDirectory {
                directory: "Disabled".into(),
            },
            ActionSpec::Deactivate,
        ])],
    );
    fx.targets[0].cannot_change_directory = Some("Cloud has no directories".into());
    assert_eq!(fx.actions(), [("ann".into(), deactivate())]);
    let held = &fx.explain("ann")[0].rules[0].held_back;
    assert!(
        held.iter().any(|h| h.contains("Cloud has no directories")),
        "{held:?}"
    );
}

#[test]
fn notify_comes_first_then_the_grace_period_then_the_later_rungs() {
    let mut fx = Fx::new(
        vec![leaver("ann")],
        vec![status_rule(vec![
            ActionSpec::Notify { grace_days: 14 },
            ActionSpec::Deactivate,
        ])],
    );
    assert_eq!(fx.actions(), [("ann".into(), ActionKind::Notify)]);
    fx.people[0]
        .notified
        .insert("leavers".into(), now() - Duration::days(3));
    assert!(fx.actions().is_empty());
    let held = &fx.explain("ann")[0].rules[0].held_back;
    assert!(
        held.iter()
            .any(|h| h.contains("grace period until 2026-11-12")),
        "{held:?}"
    );
    fx.people[0]
        .notified
        .insert("leavers".into(), now() - Duration::days(14));
    assert_eq!(fx.actions(), [("ann".into(), deactivate())]);
}

#[test]
fn no_notice_is_sent_when_nothing_after_it_is_left_to_do() {
    let mut p = leaver("ann");
    p.account.active = false;
    let fx = Fx::new(
        vec![p],
        vec![status_rule(vec![
            ActionSpec::Notify { grace_days: 14 },
            ActionSpec::Deactivate,
        ])],
    );
    assert!(fx.actions().is_empty());
}

#[test]
fn rename_uses_the_date_in_the_configured_timezone() {
    let mut fx = Fx::new(
        vec![leaver("ann")],
        vec![status_rule(vec![ActionSpec::Rename])],
    );
    fx.now = at(2026, 11, 1) + Duration::hours(23);
    assert_eq!(
        fx.actions()[0].1,
        ActionKind::Rename {
            from: "ann".into(),
            to: "ann_inactive_20261101".into()
        }
    );
    fx.settings.timezone = chrono_tz::Asia::Tokyo;
    assert_eq!(
        fx.actions()[0].1,
        ActionKind::Rename {
            from: "ann".into(),
            to: "ann_inactive_20261102".into()
        }
    );
}

#[test]
fn rename_takes_a_deterministic_suffix_when_the_name_is_taken_even_by_this_plan() {
    let mut taken = person("ANN_inactive_20261101");
    taken.account.managed = false;
    let mut upper = leaver("Ann");
    upper.account.key = "key-Ann-2".into();
    let fx = Fx::new(
        vec![leaver("ann"), taken, upper],
        vec![status_rule(vec![ActionSpec::Rename])],
    );
    let renames: Vec<String> = fx
        .actions()
        .into_iter()
        .filter_map(|(_, k)| match k {
            ActionKind::Rename { to, .. } => Some(to),
            _ => None,
        })
        .collect();
    assert_eq!(
        renames,
        ["Ann_inactive_20261101_2", "ann_inactive_20261101_3"]
    );
}

#[test]
fn rename_is_skipped_with_the_reason_where_the_target_cannot_rename() {
    let mut fx = Fx::new(
        vec![leaver("ann")],
        vec![status_rule(vec![
            ActionSpec::Rename,
            ActionSpec::Deactivate,
        ])],
    );
    fx.targets[0].cannot_rename = Some("Confluence 7.x renames break mentions".into());
    assert_eq!(fx.actions(), [("ann".into(), deactivate())]);
    let held = &fx.explain("ann")[0].rules[0].held_back;
    assert!(
        held.iter().any(|h| h.contains("renames break mentions")),
        "{held:?}"
    );
}

#[test]
fn inactive_names_invert_and_reject_what_is_not_a_suffix() {
    let d = NaiveDate::from_ymd_opt(2026, 3, 7).expect("date");
    let taken = HashSet::new();
    assert_eq!(inactive_name("bob", d, &taken), "bob_inactive_20260307");
    assert_eq!(original_name("bob_inactive_20260307"), Some("bob"));
    assert_eq!(original_name("bob_inactive_20260307_2"), Some("bob"));
    assert_eq!(
        original_name("a_inactive_b_inactive_20260307_12"),
        Some("a_inactive_b")
    );
    for not in [
        "bob",
        "_inactive_20260307",
        "bob_inactive_2026037",
        "bob_inactive_20261307",
        "bob_inactive_20260307_1",
        "bob_inactive_20260307_02",
        "bob_inactive_20260307_x",
    ] {
        assert_eq!(original_name(not), None, "{not}");
    }
}

// ---- rules, protections, order ------------------------------------------------------------

#[test]
fn a_person_selected_by_several_rules_gets_only_the_first_rules_actions() {
    let mut a = leaver("ann");
    a.account.created_at = Some(at(2020, 1, 1));
    let mut first = rule(
        "b-leavers",
        vec![Criterion::Status {
            any_of: vec![LeaverSignal::Deprovisioned],
        }],
        vec![ActionSpec::Deactivate],
    );
    first.priority = 10;
    let second = rule(
        "a-idle",
        vec![Criterion::InactiveDays { days: 90 }],
        vec![ActionSpec::RemoveLicenceGroups],
    );
    let fx = Fx::new(vec![a], vec![second, first]);
    assert_eq!(fx.actions(), [("ann".into(), deactivate())]);
    let e = fx.explain("ann");
    assert_eq!(e[0].rules[0].rule, "b-leavers");
    assert_eq!(e[0].rules[1].held_back, ["shadowed by rule b-leavers"]);
    assert!(e[0].rules[1].selected);
}

#[test]
fn protected_people_get_no_action_and_explain_says_why() {
    let mut admin = leaver("admin");
    admin.account.admin = true;
    let mut unmanaged = leaver("crowd");
    unmanaged.account.managed = false;
    unmanaged.account.unmanaged_reason = Some("read-only LDAP directory".into());
    let mut conflict = leaver("dup");
    conflict.link = LinkState::Conflict {
        reason: "two Okta users share dup@example.com".into(),
    };
    let mut pending = leaver("busy");
    pending.pending_actions = true;
    let mut changed = leaver("done");
    changed.changed_since_inventory = true;
    let exempt_user = leaver("ceo");
    let mut exempt_group = leaver("vip");
    exempt_group.identities[0].groups = vec!["Board".into()];
    let mut r = status_rule(vec![ActionSpec::Deactivate]);
    r.exempt = Exemptions {
        users: vec!["CEO@example.com".into()],
        groups: vec!["board".into()],
    };
    let fx = Fx::new(
        vec![
            admin,
            unmanaged,
            conflict,
            pending,
            changed,
            exempt_user,
            exempt_group,
            leaver("zed"),
        ],
        vec![r],
    );
    let plan = fx.plan();
    assert_eq!(fx.selected(), ["zed"]);
    assert_eq!(plan.managed_population, 6);
    assert_eq!(
        plan.conflicts,
        ["wiki/dup: two Okta users share dup@example.com"]
    );
    for (user, why) in [
        ("admin", "Confluence administrator"),
        ("crowd", "read-only LDAP directory"),
        ("dup", "link conflict"),
        ("busy", "earlier run is still working"),
        ("done", "until the next inventory reads it"),
        ("ceo", "exempt user ceo@example.com"),
        ("vip", "exempt group Board"),
    ] {
        let e = fx.explain(user);
        assert!(
            e[0].rules[0].held_back.iter().any(|h| h.contains(why)),
            "{user}: {:?}",
            e[0].rules[0]
        );
        assert!(e[0].rules[0].actions.is_empty());
    }
}

#[test]
fn an_exempt_person_falls_to_the_next_rule() {
    let mut first = status_rule(vec![ActionSpec::Deactivate]);
    first.priority = 1;
    first.exempt.users = vec!["ann".into()];
    let second = rule(
        "backstop",
        vec![Criterion::Listed {
            names: vec!["ann".into()],
        }],
        vec![ActionSpec::RemoveLicenceGroups],
    );
    let fx = Fx::new(vec![leaver("ann")], vec![first, second]);
    assert_eq!(fx.plan().actions[0].reason.rule, "backstop");
}

#[test]
fn disabled_rules_and_rules_for_other_targets_plan_nothing() {
    let mut off = status_rule(vec![ActionSpec::Deactivate]);
    off.enabled = false;
    let mut elsewhere = status_rule(vec![ActionSpec::Deactivate]);
    elsewhere.name = "elsewhere".into();
    elsewhere.targets = vec!["other".into()];
    let fx = Fx::new(vec![leaver("ann")], vec![off, elsewhere]);
    assert!(fx.actions().is_empty());
    let e = fx.explain("ann");
    assert_eq!(e[0].rules.len(), 2);
    assert!(e[0].rules.iter().any(|v| v.held_back == ["rule disabled"]));
    assert!(
        e[0].rules
            .iter()
            .any(|v| v.held_back == ["rule applies to targets other only"])
    );
}

#[test]
fn an_incomplete_target_inventory_yields_no_removals_and_one_note() {
    let mut fx = Fx::new(
        vec![leaver("ann"), leaver("bob")],
        vec![status_rule(vec![
            ActionSpec::Deactivate,
            ActionSpec::AddGroups {
                groups: vec!["former".into()],
            },
        ])],
    );
    fx.targets[0].complete = false;
    fx.targets[0].incomplete_reason = Some("page repeated".into());
    let plan = fx.plan();
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(
        plan.notes,
        ["target wiki inventory incomplete (page repeated): no removals on it"]
    );
}

#[test]
fn plan_order_is_target_then_username_ignoring_case_then_key() {
    let mut b = leaver("Bob");
    b.account.target = "alpha".into();
    let mut alpha = wiki();
    alpha.name = "alpha".into();
    let mut fx = Fx::new(
        vec![leaver("cy"), leaver("Ann"), b, leaver("bob")],
        vec![status_rule(vec![ActionSpec::Deactivate])],
    );
    fx.targets.push(alpha);
    assert_eq!(fx.selected(), ["Bob", "Ann", "bob", "cy"]);
}

#[test]
fn explain_finds_every_account_by_email_ignoring_case_and_states_the_facts() {
    let mut other = leaver("ann2");
    other.account.email = Some("ann@example.com".into());
    other.account.target = "other".into();
    let fx = Fx::new(
        vec![leaver("ann"), other, person("bob")],
        vec![status_rule(vec![ActionSpec::Deactivate])],
    );
    let e = fx.explain("ANN@example.com");
    assert_eq!(e.len(), 2);
    assert_eq!(e[1].target, "wiki");
    assert!(e[1].facts[0].starts_with("linked to okta ext-ann (deprovisioned)"));
    assert_eq!(e[1].rules[0].actions, [deactivate()]);
    assert!(
        e[0].rules[0]
            .held_back
            .iter()
            .any(|h| h.contains("target other has no inventory: no removals")),
        "{:?}",
        e[0]
    );
}

#[test]
fn planning_is_deterministic() {
    let people: Vec<PersonView> = (0..50).map(|i| leaver(&format!("u{}", i % 7))).collect();
    let fx = Fx::new(
        people,
        vec![status_rule(vec![
            ActionSpec::Rename,
            ActionSpec::Deactivate,
        ])],
    );
    assert_eq!(fx.plan(), fx.plan());
}

// ---- properties -------------------------------------------------------------------------

/// Applies a plan's actions to the views (what a perfect executor would leave behind).
fn apply(people: &mut Vec<PersonView>, plan: &Plan, now: DateTime<Utc>) {
    for a in &plan.actions {
        let Some(p) = people.iter_mut().find(|p| p.account.id == a.account_id) else {
            continue;
        };
        match &a.kind {
            ActionKind::Notify => {
                p.notified.insert(a.reason.rule.clone(), now);
            }
            ActionKind::RemoveFromGroup { group, .. } => p.account.groups.retain(|g| g != group),
            ActionKind::Deactivate => p.account.active = false,
            ActionKind::Rename { to, .. } => p.account.username = to.clone(),
            ActionKind::AddToGroup { group } => p.account.groups.push(group.clone()),
            ActionKind::ChangeDirectory { to, .. } => p.account.directory = Some(to.clone()),
            ActionKind::Delete | ActionKind::Reactivate => {}
        }
    }
    let deleted: HashSet<_> = plan
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::Delete)
        .map(|a| a.account_id)
        .collect();
    people.retain(|p| !deleted.contains(&p.account.id));
}

fn arb_person() -> impl Strategy<Value = PersonView> {
    (
        (0u8..6, any::<bool>(), any::<bool>(), any::<bool>(), 0u8..5),
        (any::<bool>(), any::<bool>(), any::<bool>(), 0u8..4),
        (
            proptest::option::of(0i64..900),
            proptest::option::of(0i64..900),
            0u32..4,
            0u32..3,
        ),
        (
            proptest::sample::subsequence(
                vec!["confluence-users", "Team-A", "contractors", "board"],
                0..4,
            ),
            0u8..3,
        ),
    )
        .prop_map(
            |(
                (name, active, admin, managed, status),
                (linked, complete, conflict, link_kind),
                (created_ago, login_ago, events, absent),
                (groups, dir),
            )| {
                let user =
                    ["ann", "Bob", "cy", "dee_inactive_20260101", "Eve", "fay"][name as usize];
                let mut p = person(user);
                p.account.active = active;
                p.account.admin = admin;
                p.account.managed = managed;
                p.account.groups = groups.into_iter().map(String::from).collect();
                p.account.directory = Some(["Internal", "Disabled", "LDAP"][dir as usize].into());
                p.account.created_at = created_ago.map(|d| now() - Duration::days(d));
                p.absent_syncs = absent;
                if linked {
                    let mut i = identity(if link_kind == 0 { "hr-scim" } else { "okta" }, user);
                    if link_kind == 0 {
                        i.source_kind = SourceKind::Scim;
                    }
                    i.status = [
                        IdentityStatus::Active,
                        IdentityStatus::Deprovisioned,
                        IdentityStatus::Suspended,
                        IdentityStatus::Deleted,
                        IdentityStatus::Unknown,
                    ][status as usize];
                    i.from_complete_snapshot = complete;
                    i.last_login_at = login_ago.map(|d| now() - Duration::days(d));
                    i.sign_in_events = events;
                    link(&mut p, i);
                }
                if conflict {
                    p.link = LinkState::Conflict {
                        reason: "ambiguous".into(),
                    };
                }
                p
            },
        )
}

fn arb_rule(index: usize) -> impl Strategy<Value = Rule> {
    let criterion = prop_oneof![
        Just(Criterion::Status {
            any_of: vec![LeaverSignal::Deprovisioned, LeaverSignal::Deleted]
        }),
        Just(Criterion::Status {
            any_of: vec![LeaverSignal::ScimInactive, LeaverSignal::Suspended]
        }),
        (1u32..400).prop_map(|days| Criterion::InactiveDays { days }),
        (0u32..400).prop_map(|days| Criterion::NeverLoggedIn { days }),
        Just(Criterion::LoggedInOnce),
        Just(Criterion::MemberOf {
            groups: vec!["CONTRACTORS".into(), "team-a".into()],
            how: GroupMatch::Any
        }),
        Just(Criterion::MemberOf {
            groups: vec!["board".into()],
            how: GroupMatch::None
        }),
        Just(Criterion::AbsentSyncs { syncs: 2 }),
        Just(Criterion::EmailDomain {
            domains: vec!["example.com".into()],
            negate: false
        }),
    ];
    let action = prop_oneof![
        (0u32..2).prop_map(|grace_days| ActionSpec::Notify { grace_days }),
        Just(ActionSpec::RemoveLicenceGroups),
        Just(ActionSpec::Deactivate),
        Just(ActionSpec::Rename),
        Just(ActionSpec::RemoveGroups {
            groups: GroupSelection::All
        }),
        Just(ActionSpec::RemoveGroups {
            groups: GroupSelection::Named(vec!["team-a".into()])
        }),
        Just(ActionSpec::AddGroups {
            // Not a group any criterion names: a rule adding what another rule selects on
            // and removes would cycle by design of those rules.
            groups: vec!["Former-Staff".into()]
        }),
        Just(ActionSpec::ChangeDirectory {
            directory: "disabled".into()
        }),
        Just(ActionSpec::Delete),
    ];
    (
        proptest::collection::vec(criterion, 1..3),
        proptest::collection::vec(action, 1..5),
        -2i32..3,
        any::<bool>(),
    )
        .prop_map(move |(criteria, mut actions, priority, allow_delete)| {
            // Each kind of rung once per rule, as the configuration enforces.
            let mut seen = HashSet::new();
            actions.retain(|a| seen.insert(std::mem::discriminant(a)));
            let mut r = rule(&format!("r{index}"), criteria, actions);
            r.priority = priority;
            r.allow_delete = allow_delete;
            r
        })
}

fn arb_world() -> impl Strategy<Value = Fx> {
    (
        proptest::collection::vec(arb_person(), 0..12),
        arb_rule(0),
        arb_rule(1),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(mut people, r0, r1, (target_complete, okta_complete, can_rename))| {
                for (n, p) in people.iter_mut().enumerate() {
                    p.account.key = format!("key-{n}");
                }
                let mut fx = Fx::new(people, vec![r0, r1]);
                fx.targets[0].complete = target_complete;
                fx.sources = vec![okta_state(okta_complete)];
                if !can_rename {
                    fx.targets[0].cannot_rename = Some("no".into());
                }
                fx
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn protected_unmanaged_and_conflicting_people_never_get_an_action(fx in arb_world()) {
        let plan = fx.plan();
        for a in &plan.actions {
            let p = fx.people.iter().find(|p| p.account.id == a.account_id).expect("person");
            prop_assert!(p.account.managed && !p.account.admin);
            let conflict = matches!(p.link, LinkState::Conflict { .. });
            prop_assert!(!conflict);
            prop_assert!(!p.pending_actions && !p.changed_since_inventory);
        }
    }

    #[test]
    fn an_incomplete_snapshot_yields_no_removals_from_it(fx in arb_world()) {
        let plan = fx.plan();
        for a in plan.actions.iter().filter(|a| is_removal(&a.kind)) {
            prop_assert!(fx.targets[0].complete, "removal on an incomplete target: {a:?}");
            let p = fx.people.iter().find(|p| p.account.id == a.account_id).expect("person");
            let rule = fx.rules.iter().find(|r| r.name == a.reason.rule).expect("rule");
            let has_status = rule.criteria.iter().any(|c| matches!(c, Criterion::Status { .. }));
            if has_status {
                prop_assert!(
                    p.identities.iter().any(|i| i.from_complete_snapshot),
                    "removal from an untrusted status: {a:?}"
                );
            }
        }
    }

    #[test]
    fn applying_a_plan_and_planning_again_reaches_a_fixpoint_within_the_ladder(mut fx in arb_world()) {
        for r in &mut fx.rules {
            for a in &mut r.actions {
                if let ActionSpec::Notify { grace_days } = a {
                    *grace_days = 0;
                }
            }
        }
        let steps = fx.rules.iter().map(|r| r.actions.len()).max().unwrap_or(0) + 1;
        let mut applied = Vec::new();
        for _ in 0..steps {
            let plan = fx.plan();
            applied.extend(plan.actions.iter().map(|a| (a.account_id, a.kind.clone())));
            apply(&mut fx.people, &plan, fx.now);
        }
        let last = fx.plan();
        prop_assert!(last.actions.is_empty(), "still planning {:?}", last.actions);
        let mut seen = HashSet::new();
        for (id, kind) in &applied {
            let key = (id, kind.budget(), match kind {
                ActionKind::RemoveFromGroup { group, .. } | ActionKind::AddToGroup { group } => group.to_lowercase(),
                _ => String::new(),
            });
            prop_assert!(seen.insert(key), "{kind:?} planned twice for one account");
        }
    }

    #[test]
    fn a_rename_is_reversible_and_never_doubles_a_suffix(
        user in "[a-zA-Z][a-zA-Z0-9._-]{0,20}",
        days in 0i64..20000,
        taken_n in 0usize..4,
    ) {
        let date = NaiveDate::from_ymd_opt(1990, 1, 1).expect("date") + Duration::days(days);
        let base = format!("{user}_inactive_{}", date.format("%Y%m%d")).to_lowercase();
        let mut taken: HashSet<String> = HashSet::new();
        if taken_n > 0 {
            taken.insert(base.clone());
            for n in 2..=taken_n + 1 {
                taken.insert(format!("{base}_{n}"));
            }
        }
        let renamed = inactive_name(&user, date, &taken);
        prop_assert!(!taken.contains(&renamed.to_lowercase()));
        if original_name(&user).is_none() {
            prop_assert_eq!(original_name(&renamed), Some(user.as_str()));
        }
        let mut p = leaver(&renamed);
        p.account.username = renamed.clone();
        let fx = Fx::new(vec![p], vec![status_rule(vec![ActionSpec::Rename])]);
        prop_assert!(fx.actions().is_empty(), "renamed twice");
    }

    #[test]
    fn the_plan_does_not_depend_on_input_order(fx in arb_world(), seed in any::<u64>()) {
        let before = fx.plan();
        let mut shuffled = Fx::new(fx.people.clone(), fx.rules.iter().rev().cloned().collect());
        shuffled.targets = fx.targets.clone();
        shuffled.sources = fx.sources.clone();
        let n = shuffled.people.len();
        if n > 1 {
            let mut s = seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.people.swap(i, (s >> 33) as usize % (i + 1));
            }
        }
        prop_assert_eq!(before, shuffled.plan());
    }
}

#[test]
fn settings_come_from_the_planner_section() {
    let mut c = PlannerConfig {
        timezone: "Europe/Berlin".into(),
        ..PlannerConfig::default()
    };
    assert_eq!(
        PlanSettings::from_config(&c).map(|s| s.timezone),
        Ok(chrono_tz::Europe::Berlin)
    );
    c.timezone = "Mars/Olympus".into();
    assert!(PlanSettings::from_config(&c).is_err());
}
