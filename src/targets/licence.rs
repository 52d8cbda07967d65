//! Licence counting from an inventory, the way Confluence counts: an account holds a
//! licence when it is active and "can use" is granted to it directly or through any group,
//! nested groups included; each account counts once however many paths grant it.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use super::{LicenceUsage, RemoteAccount};
use crate::domain::normalise_key;

/// What decides who holds a licence.
#[derive(Clone, Debug)]
pub struct LicenceRules<'a> {
    /// Groups that grant "can use" (or administer), by name.
    pub licence_groups: &'a [String],
    /// Parent group name → names of groups nested in it.
    pub nested: &'a BTreeMap<String, Vec<String>>,
    /// Account keys granted "can use" directly rather than through a group.
    pub direct_grants: &'a BTreeSet<String>,
}

/// Every group whose members hold a licence: the licence groups and every group nested in
/// them, at any depth (cycles tolerated). Names are compared case-insensitively.
pub fn granting_groups(rules: &LicenceRules<'_>) -> HashSet<String> {
    let children: BTreeMap<String, Vec<String>> = rules
        .nested
        .iter()
        .map(|(p, cs)| {
            (
                normalise_key(p),
                cs.iter().map(|c| normalise_key(c)).collect(),
            )
        })
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<String> = rules
        .licence_groups
        .iter()
        .map(|g| normalise_key(g))
        .collect();
    while let Some(g) = queue.pop_front() {
        if !seen.insert(g.clone()) {
            continue;
        }
        if let Some(cs) = children.get(&g) {
            queue.extend(cs.iter().filter(|c| !seen.contains(*c)).cloned());
        }
    }
    seen
}

/// Whether `account` holds a licence under `granting` (from [`granting_groups`]).
pub fn holds_licence(
    account: &RemoteAccount,
    granting: &HashSet<String>,
    direct_grants: &BTreeSet<String>,
) -> bool {
    if !account.active {
        return false;
    }
    if direct_grants.contains(&account.key) {
        return true;
    }
    account
        .groups
        .iter()
        .flatten()
        .any(|g| granting.contains(&normalise_key(g)))
}

/// Licence usage added up one account at a time, so an inventory can be counted while it
/// streams. Each account key counts once.
#[derive(Debug)]
pub struct UsageTally {
    usage: LicenceUsage,
    counted: HashSet<String>,
    last_login_known: bool,
}

impl UsageTally {
    /// An empty tally. `max_users` and `reported_in_use` come from the instance's own
    /// counters where it has them; `tier` from configuration (else `max_users`).
    pub fn new(
        max_users: Option<u64>,
        reported_in_use: Option<u64>,
        tier: Option<u64>,
        basis: &str,
    ) -> Self {
        Self {
            usage: LicenceUsage {
                max_users,
                tier: tier.or(max_users),
                reported_in_use,
                basis: basis.to_owned(),
                last_login_known: true,
                ..LicenceUsage::default()
            },
            counted: HashSet::new(),
            last_login_known: true,
        }
    }

    /// Says whether last-login times are known at all; when they are not, nobody is
    /// counted as "never logged in" (an unknown time is not a missing login).
    pub fn last_login_known(mut self, known: bool) -> Self {
        self.last_login_known = known;
        self.usage.last_login_known = known;
        self
    }

    /// Counts `account`, which holds a licence when `licensed` (and it is active).
    pub fn add(&mut self, account: &RemoteAccount, licensed: bool) {
        if !self.counted.insert(account.key.clone()) {
            return;
        }
        let out = &mut self.usage;
        let dir = out
            .per_directory
            .entry(
                account
                    .directory
                    .clone()
                    .unwrap_or_else(|| "(directory not reported)".into()),
            )
            .or_default();
        if account.active {
            out.active += 1;
            dir.active += 1;
        } else {
            out.deactivated += 1;
            dir.deactivated += 1;
        }
        if licensed && account.active {
            out.licensed += 1;
            dir.licensed += 1;
            if self.last_login_known && account.last_login_at.is_none() {
                out.never_logged_in += 1;
                dir.never_logged_in += 1;
            }
        }
    }

    /// The figures so far.
    pub fn finish(self) -> LicenceUsage {
        self.usage
    }
}

/// Licence usage of a whole inventory (see [`UsageTally`]). An account's own `licensed`
/// flag wins over the rules when the target reports one.
pub fn usage(
    accounts: &[RemoteAccount],
    rules: &LicenceRules<'_>,
    max_users: Option<u64>,
    reported_in_use: Option<u64>,
    tier: Option<u64>,
    basis: &str,
) -> LicenceUsage {
    let granting = granting_groups(rules);
    let mut tally = UsageTally::new(max_users, reported_in_use, tier, basis);
    for a in accounts {
        let licensed = a
            .licensed
            .unwrap_or_else(|| holds_licence(a, &granting, rules.direct_grants));
        tally.add(a, licensed);
    }
    tally.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(key: &str, active: bool, groups: &[&str]) -> RemoteAccount {
        RemoteAccount {
            key: key.into(),
            username: key.into(),
            active,
            directory: Some("Internal".into()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            ..RemoteAccount::default()
        }
    }

    #[test]
    fn nested_groups_grant_and_each_account_counts_once() {
        let licence = vec!["confluence-users".to_string()];
        let mut nested = BTreeMap::new();
        nested.insert("Confluence-Users".to_string(), vec!["staff".to_string()]);
        nested.insert("staff".to_string(), vec!["contractors".to_string()]);
        nested.insert("contractors".to_string(), vec!["staff".to_string()]); // a cycle
        let grants = BTreeSet::new();
        let rules = LicenceRules {
            licence_groups: &licence,
            nested: &nested,
            direct_grants: &grants,
        };
        let accounts = vec![
            account("a", true, &["confluence-users", "staff"]),
            account("b", true, &["CONTRACTORS"]),
            account("c", true, &["marketing"]),
            account("d", false, &["confluence-users"]),
            account("a", true, &["confluence-users"]), // listed twice
        ];
        let u = usage(&accounts, &rules, Some(10), None, None, "test");
        assert_eq!(u.licensed, 2);
        assert_eq!(u.active, 3);
        assert_eq!(u.deactivated, 1);
        assert_eq!(u.never_logged_in, 2);
        assert_eq!(u.tier, Some(10));
        assert_eq!(u.per_directory["Internal"].licensed, 2);
    }

    #[test]
    fn nobody_counts_as_never_logged_in_when_last_logins_are_unknown() {
        let mut tally = UsageTally::new(None, None, None, "test").last_login_known(false);
        tally.add(&account("a", true, &[]), true);
        let u = tally.finish();
        assert_eq!((u.licensed, u.never_logged_in), (1, 0));
    }

    #[test]
    fn direct_grants_license_accounts_outside_any_group() {
        let licence: Vec<String> = vec![];
        let nested = BTreeMap::new();
        let grants: BTreeSet<String> = ["x".to_string()].into();
        let rules = LicenceRules {
            licence_groups: &licence,
            nested: &nested,
            direct_grants: &grants,
        };
        let u = usage(
            &[account("x", true, &[])],
            &rules,
            None,
            None,
            Some(500),
            "test",
        );
        assert_eq!(u.licensed, 1);
        assert_eq!(u.tier, Some(500));
    }
}
