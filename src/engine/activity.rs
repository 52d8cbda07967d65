//! A person's activity as the planner reads it (pure): the latest successful sign-in seen
//! anywhere (IdP last login, the IdP's sign-in log for the Confluence app, Confluence's own
//! last login), the earliest known creation, how long idbridge has watched the account, and
//! the inactivity those give (`now − max(created, last activity)`, invariant §4.6).
//! Sentinels (Google's 1970-01-01, anything before 1990) and times too far in the future
//! count as "never".

use std::fmt;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::domain::{LinkState, PersonView};

/// Times before this are sentinels ("never"), not activity.
pub fn earliest_plausible() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1990, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How far in the future a time may lie (clock skew) before it is ignored.
pub const FUTURE_SKEW: Duration = Duration::hours(24);

/// Where an activity time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin<'a> {
    /// The IdP's last successful login, from the named source.
    IdpLogin(&'a str),
    /// The IdP's sign-in log for the Confluence app, from the named source.
    SignInLog(&'a str),
    /// Confluence's own last login.
    Confluence,
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::IdpLogin(s) => f.write_str(s),
            Origin::SignInLog(s) => write!(f, "{s} sign-in log"),
            Origin::Confluence => f.write_str("confluence"),
        }
    }
}

/// A time and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen<'a> {
    pub at: DateTime<Utc>,
    pub from: Origin<'a>,
}

/// Whether `t` is a real time: not a sentinel, not beyond `now` plus the allowed skew.
pub fn plausible(t: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    t >= earliest_plausible() && t <= now + FUTURE_SKEW
}

/// The identities whose data counts: only linked ones.
fn linked(p: &PersonView) -> &[crate::domain::IdentityView] {
    match p.link {
        LinkState::Linked { .. } => &p.identities,
        LinkState::Unlinked | LinkState::Conflict { .. } => &[],
    }
}

/// The latest successful sign-in seen anywhere, if any; sentinels and far-future times
/// are ignored.
pub fn last_activity(p: &PersonView, now: DateTime<Utc>) -> Option<Seen<'_>> {
    fn take<'p>(
        best: &mut Option<Seen<'p>>,
        at: Option<DateTime<Utc>>,
        from: Origin<'p>,
        now: DateTime<Utc>,
    ) {
        if let Some(at) = at.filter(|t| plausible(*t, now))
            && best.is_none_or(|b| at > b.at)
        {
            *best = Some(Seen { at, from });
        }
    }
    let mut best: Option<Seen<'_>> = None;
    take(&mut best, p.account.last_login_at, Origin::Confluence, now);
    for i in linked(p) {
        take(&mut best, i.last_login_at, Origin::IdpLogin(&i.source), now);
        take(
            &mut best,
            i.last_sign_in_event_at,
            Origin::SignInLog(&i.source),
            now,
        );
    }
    best
}

/// The earliest known creation (account or linked identity), if any.
pub fn created_at(p: &PersonView, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    std::iter::once(p.account.created_at)
        .chain(linked(p).iter().map(|i| i.created_at))
        .flatten()
        .filter(|t| plausible(*t, now))
        .min()
}

/// Since when idbridge has watched the account.
pub fn observed_since(p: &PersonView) -> DateTime<Utc> {
    p.account.first_seen_at
}

/// Whole days from `since` to `now` (0 when `since` is later).
pub fn days_between(since: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - since).num_days().max(0)
}

/// The moment inactivity counts from: the later of the last activity and the creation;
/// with neither known, when idbridge first saw the account; never before the last regrant.
pub fn inactive_since(p: &PersonView, now: DateTime<Utc>) -> DateTime<Utc> {
    let activity = last_activity(p, now).map(|s| s.at);
    let since = match (activity, created_at(p, now)) {
        (Some(a), Some(c)) => a.max(c),
        (Some(a), None) => a,
        (None, Some(c)) => c,
        (None, None) => observed_since(p),
    };
    // A licence given back starts the count again.
    match p.regranted_at.filter(|t| plausible(*t, now)) {
        Some(r) => since.max(r),
        None => since,
    }
}

/// Days without activity: `now − max(created, last activity)`.
pub fn inactive_days(p: &PersonView, now: DateTime<Utc>) -> i64 {
    days_between(inactive_since(p, now), now)
}

/// Whether idbridge has watched the account at least `floor_days`; inactivity criteria
/// never hold before.
pub fn observed_long_enough(p: &PersonView, now: DateTime<Utc>, floor_days: u32) -> bool {
    days_between(observed_since(p), now) >= i64::from(floor_days)
}

/// Known successful sign-ins (the sum over linked identities).
pub fn sign_in_events(p: &PersonView) -> u64 {
    linked(p).iter().map(|i| u64::from(i.sign_in_events)).sum()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::{
        AccountId, AccountView, IdentityId, IdentityStatus, IdentityView, LinkMethod, SourceKind,
        TargetId,
    };

    pub(crate) fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .single()
            .expect("valid date")
    }

    pub(crate) fn identity(source: &str, user: &str) -> IdentityView {
        IdentityView {
            id: IdentityId::new(),
            source: source.into(),
            source_kind: SourceKind::Okta,
            external_id: format!("ext-{user}"),
            user_name: user.into(),
            email: Some(format!("{user}@example.com")),
            status: IdentityStatus::Active,
            raw_status: None,
            suspended_is_leaver: false,
            from_complete_snapshot: true,
            created_at: None,
            last_login_at: None,
            last_sign_in_event_at: None,
            sign_in_events: 0,
            groups: Vec::new(),
            attributes: serde_json::Value::Null,
            status_changed_at: at(2025, 1, 1),
            first_seen_at: at(2025, 1, 1),
        }
    }

    pub(crate) fn person(user: &str) -> PersonView {
        PersonView {
            account: AccountView {
                id: AccountId::new(),
                target_id: TargetId(uuid::Uuid::nil()),
                target: "wiki".into(),
                key: format!("key-{user}"),
                username: user.into(),
                email: Some(format!("{user}@example.com")),
                display_name: None,
                active: true,
                directory: Some("Confluence Internal Directory".into()),
                groups: vec!["confluence-users".into()],
                licensed: true,
                admin: false,
                managed: true,
                unmanaged_reason: None,
                created_at: None,
                last_login_at: None,
                first_seen_at: at(2024, 1, 1),
            },
            identities: Vec::new(),
            link: LinkState::Unlinked,
            absent_syncs: 0,
            notified: BTreeMap::new(),
            pending_actions: false,
            changed_since_inventory: false,
            regranted_at: None,
        }
    }

    pub(crate) fn link(p: &mut PersonView, i: IdentityView) {
        let methods = match &mut p.link {
            LinkState::Linked { methods } => methods,
            _ => {
                p.link = LinkState::Linked {
                    methods: Vec::new(),
                };
                let LinkState::Linked { methods } = &mut p.link else {
                    unreachable!("just set")
                };
                methods
            }
        };
        methods.push((i.id, LinkMethod::Email));
        p.identities.push(i);
    }

    #[test]
    fn last_activity_is_the_latest_of_idp_login_sign_in_log_and_confluence() {
        let now = at(2026, 11, 1);
        let mut p = person("ann");
        p.account.last_login_at = Some(at(2026, 3, 1));
        let mut okta = identity("okta", "ann");
        okta.last_login_at = Some(at(2026, 5, 1));
        okta.last_sign_in_event_at = Some(at(2026, 7, 12));
        link(&mut p, okta);
        let seen = last_activity(&p, now).expect("activity");
        assert_eq!(seen.at, at(2026, 7, 12));
        assert_eq!(seen.from.to_string(), "okta sign-in log");
    }

    #[test]
    fn inactivity_counts_from_the_last_regrant_when_that_is_later() {
        let now = at(2026, 11, 1);
        let mut p = person("ann");
        p.account.last_login_at = Some(at(2026, 3, 1));
        let before = inactive_days(&p, now);
        p.regranted_at = Some(at(2026, 10, 22));
        assert_eq!(inactive_days(&p, now), 10);
        assert!(before > 200, "{before}");
        // An older regrant changes nothing.
        p.regranted_at = Some(at(2026, 1, 1));
        assert_eq!(inactive_days(&p, now), before);
    }

    #[test]
    fn google_epoch_sentinel_and_far_future_times_count_as_never() {
        let now = at(2026, 11, 1);
        let mut p = person("bob");
        p.account.last_login_at = Some(at(2027, 6, 1));
        let mut g = identity("google", "bob");
        g.last_login_at = Some(at(1970, 1, 1));
        link(&mut p, g);
        assert_eq!(last_activity(&p, now), None);
        p.account.last_login_at = Some(now + Duration::hours(2));
        assert!(last_activity(&p, now).is_some(), "small skew is tolerated");
    }

    #[test]
    fn identities_of_an_unlinked_person_do_not_count() {
        let now = at(2026, 11, 1);
        let mut p = person("cy");
        let mut i = identity("okta", "cy");
        i.last_login_at = Some(at(2026, 10, 1));
        p.identities.push(i);
        assert_eq!(last_activity(&p, now), None);
    }

    #[test]
    fn inactivity_counts_from_the_later_of_creation_and_last_activity() {
        let now = at(2026, 11, 1);
        let mut p = person("dee");
        p.account.created_at = Some(at(2026, 10, 1));
        p.account.last_login_at = Some(at(2025, 1, 1));
        assert_eq!(inactive_days(&p, now), 31);
        p.account.created_at = Some(at(2020, 1, 1));
        assert_eq!(inactive_days(&p, now), (now - at(2025, 1, 1)).num_days());
    }

    #[test]
    fn creation_is_the_earliest_known_and_unknown_falls_back_to_first_seen() {
        let now = at(2026, 11, 1);
        let mut p = person("eve");
        assert_eq!(created_at(&p, now), None);
        assert_eq!(inactive_since(&p, now), p.account.first_seen_at);
        p.account.created_at = Some(at(2024, 6, 1));
        let mut i = identity("okta", "eve");
        i.created_at = Some(at(2023, 6, 1));
        link(&mut p, i);
        assert_eq!(created_at(&p, now), Some(at(2023, 6, 1)));
    }

    #[test]
    fn a_later_login_never_makes_a_person_more_inactive() {
        let now = at(2026, 11, 1);
        let mut p = person("fay");
        p.account.created_at = Some(at(2022, 1, 1));
        let mut last = i64::MAX;
        for month in 1..=10 {
            p.account.last_login_at = Some(at(2026, month, 1));
            let days = inactive_days(&p, now);
            assert!(days <= last, "month {month}: {days} > {last}");
            last = days;
        }
    }

    #[test]
    fn the_observation_floor_counts_from_first_seen() {
        let now = at(2026, 11, 1);
        let mut p = person("gus");
        p.account.first_seen_at = at(2026, 10, 20);
        assert!(!observed_long_enough(&p, now, 30));
        p.account.first_seen_at = at(2026, 10, 1);
        assert!(observed_long_enough(&p, now, 30));
    }
}
