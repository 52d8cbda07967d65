//! Linking: which identities belong to which Confluence account.
//!
//! [`match_accounts`] is pure: per account and per source it keeps a stored link when there
//! is one (ids are immutable, emails and usernames are reused), otherwise tries the
//! configured keys in order, and the first key that finds exactly one identity of the source
//! wins. Two identities of one source on a key, or one identity matching two accounts of a
//! target on the same key, make the accounts conflicts, which are never linked or acted on.
//! Keys compare trimmed, NFKC-normalised and lower-cased ([`normalise_match_key`]).
//! [`refresh_links`] loads every identity, account and link, matches, and stores new links.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Deref;

use unicode_normalization::UnicodeNormalization;

use crate::config::{Config, LinkKey, LinkingConfig};
use crate::domain::{AccountId, IdentityId, LinkMethod, LinkState, TargetId};
use crate::store::{AccountLinks, Store, StoreError};

pub use crate::store::{LinkAccount, LinkIdentity};

/// How a value compares when matching: trimmed, Unicode-normalised (NFKC, so fullwidth
/// letters and composed/decomposed accents agree) and lower-cased (`ẞ` → `ß`).
pub fn normalise_match_key(value: &str) -> String {
    let t = value.trim();
    if t.is_ascii() {
        return t.to_ascii_lowercase();
    }
    let lower = t.nfkc().collect::<String>().to_lowercase();
    // Lower-casing may decompose (`İ` → `i̇`); normalise once more.
    let n: String = lower.nfkc().collect();
    n.trim().to_owned()
}

/// What linking decided for every account it was given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkOutcome {
    /// Every account's link state; `Linked` lists one identity per source, highest
    /// precedence first.
    pub states: HashMap<AccountId, LinkState>,
    /// Links found by key matching now, to be stored (never for a conflicted account).
    pub new_links: Vec<(IdentityId, AccountId, LinkMethod)>,
    /// Conflicted accounts with the reason, by account id.
    pub conflicts: Vec<(AccountId, String)>,
}

impl LinkOutcome {
    /// An account's link state (`Unlinked` for an account linking was not given).
    pub fn state(&self, account: AccountId) -> LinkState {
        self.states
            .get(&account)
            .cloned()
            .unwrap_or(LinkState::Unlinked)
    }
}

impl AccountLinks for LinkOutcome {
    fn link_state(&self, account: AccountId) -> Option<&LinkState> {
        self.states.get(&account)
    }
}

/// What [`refresh_links`] did; dereferences to the [`LinkOutcome`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkReport {
    pub outcome: LinkOutcome,
    pub accounts: usize,
    pub linked: usize,
    pub unlinked: usize,
    pub conflicted: usize,
    /// Stored links that were kept.
    pub kept: usize,
    /// Links stored by this refresh.
    pub added: u64,
}

impl Deref for LinkReport {
    type Target = LinkOutcome;

    fn deref(&self) -> &LinkOutcome {
        &self.outcome
    }
}

impl AccountLinks for LinkReport {
    fn link_state(&self, account: AccountId) -> Option<&LinkState> {
        self.outcome.states.get(&account)
    }
}

/// How strong a match is: a stored link beats every key; earlier keys beat later ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    Stored,
    Key(usize),
}

/// One identity chosen for an account from one source.
#[derive(Clone, Copy, Debug)]
struct Pick {
    identity: usize,
    method: LinkMethod,
    strength: Strength,
}

fn method_of(key: LinkKey) -> LinkMethod {
    match key {
        LinkKey::ImmutableId => LinkMethod::ImmutableId,
        LinkKey::Email => LinkMethod::Email,
        LinkKey::Username => LinkMethod::Username,
    }
}

fn key_name(key: LinkKey) -> &'static str {
    method_of(key).as_str()
}

/// The part before the last `@`, when there is one.
fn local_part(value: &str) -> Option<&str> {
    value.rsplit_once('@').map(|(local, _)| local)
}

/// The effective source order: `precedence` names first (those in play), then the rest of
/// `sources` by name.
fn effective_order(precedence: &[String], sources: &[String]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for p in precedence {
        if sources.contains(p) && !order.contains(p) {
            order.push(p.clone());
        }
    }
    let mut rest: Vec<&String> = sources.iter().filter(|s| !order.contains(s)).collect();
    rest.sort();
    rest.dedup();
    order.extend(rest.into_iter().cloned());
    order
}

/// Lists at most five external ids, for conflict reasons.
fn some_ids(ids: &[&str]) -> String {
    let mut shown: Vec<&str> = ids.iter().take(5).copied().collect();
    shown.sort_unstable();
    let mut s = shown.join(", ");
    if ids.len() > 5 {
        s.push_str(&format!(", … ({} in all)", ids.len()));
    }
    s
}

/// Matches every account to at most one identity per source.
///
/// `source_order` names the sources in play (identities of other sources are ignored);
/// `cfg.precedence` orders them, the rest follow by name. `existing` are the stored links:
/// one whose identity and account are both given wins for its source over key matching.
pub fn match_accounts(
    identities: &[LinkIdentity],
    accounts: &[LinkAccount],
    existing: &[(IdentityId, AccountId, LinkMethod)],
    cfg: &LinkingConfig,
    source_order: &[String],
) -> LinkOutcome {
    let order = effective_order(&cfg.precedence, source_order);
    let rank: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();

    // Identities in play, with their rank, and indexes by each key.
    let mut in_play: Vec<(&LinkIdentity, usize)> = Vec::with_capacity(identities.len());
    let mut by_identity: HashMap<IdentityId, usize> = HashMap::with_capacity(identities.len());
    let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
    let mut by_email: HashMap<String, Vec<usize>> = HashMap::new();
    let mut by_username: HashMap<String, Vec<usize>> = HashMap::new();
    for ident in identities {
        let Some(&r) = rank.get(ident.source.as_str()) else {
            continue;
        };
        let i = in_play.len();
        in_play.push((ident, r));
        by_identity.insert(ident.id, i);
        let id = normalise_match_key(&ident.external_id);
        if !id.is_empty() {
            by_id.entry(id).or_default().push(i);
        }
        if let Some(e) = ident.email.as_deref().map(normalise_match_key)
            && !e.is_empty()
        {
            by_email.entry(e).or_default().push(i);
        }
        let mut names: Vec<String> = vec![normalise_match_key(&ident.user_name)];
        if let Some(l) = local_part(&ident.user_name) {
            names.push(normalise_match_key(l));
        }
        if let Some(l) = ident.email.as_deref().and_then(local_part) {
            names.push(normalise_match_key(l));
        }
        names.sort();
        names.dedup();
        for n in names.into_iter().filter(|n| !n.is_empty()) {
            by_username.entry(n).or_default().push(i);
        }
    }

    let account_index: HashMap<AccountId, usize> = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id, i))
        .collect();

    // Stored links whose identity (in play) and account both exist.
    let mut stored: HashMap<usize, Vec<(usize, LinkMethod)>> = HashMap::new();
    let mut stored_in_target: HashSet<(usize, TargetId)> = HashSet::new();
    for (identity, account, method) in existing {
        let (Some(&i), Some(&a)) = (by_identity.get(identity), account_index.get(account)) else {
            continue;
        };
        let list = stored.entry(a).or_default();
        if !list.iter().any(|(x, _)| *x == i) {
            list.push((i, *method));
        }
        stored_in_target.insert((i, accounts[a].target_id));
    }

    let empty: Vec<usize> = Vec::new();
    let lookup = |map: &HashMap<String, Vec<usize>>, value: &str| -> Vec<usize> {
        let k = normalise_match_key(value);
        if k.is_empty() {
            return Vec::new();
        }
        map.get(&k).unwrap_or(&empty).clone()
    };

    // Per account: the pick of each source (by rank) and its conflicts.
    let mut picks: Vec<BTreeMap<usize, Pick>> = vec![BTreeMap::new(); accounts.len()];
    let mut conflicts: Vec<Vec<String>> = vec![Vec::new(); accounts.len()];
    for (a, account) in accounts.iter().enumerate() {
        let mut decided: HashSet<usize> = HashSet::new();
        if let Some(list) = stored.get(&a) {
            let mut per_source: BTreeMap<usize, Vec<(usize, LinkMethod)>> = BTreeMap::new();
            for &(i, m) in list {
                per_source.entry(in_play[i].1).or_default().push((i, m));
            }
            for (src, links) in per_source {
                decided.insert(src);
                if let [(i, method)] = links[..] {
                    picks[a].insert(
                        src,
                        Pick {
                            identity: i,
                            method,
                            strength: Strength::Stored,
                        },
                    );
                } else {
                    let ids: Vec<&str> = links
                        .iter()
                        .map(|(i, _)| in_play[*i].0.external_id.as_str())
                        .collect();
                    conflicts[a].push(format!(
                        "stored links to {} identities of {}: {}",
                        links.len(),
                        order[src],
                        some_ids(&ids)
                    ));
                }
            }
        }
        for (k, key) in cfg.keys.iter().enumerate() {
            let mut candidates = match key {
                LinkKey::ImmutableId => {
                    let mut c = lookup(&by_id, &account.key);
                    if let Some(x) = &account.external_id {
                        c.extend(lookup(&by_id, x));
                    }
                    c
                }
                LinkKey::Email => account
                    .email
                    .as_deref()
                    .map(|e| lookup(&by_email, e))
                    .unwrap_or_default(),
                LinkKey::Username => lookup(&by_username, &account.username),
            };
            candidates.sort_unstable();
            candidates.dedup();
            let mut per_source: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for i in candidates {
                per_source.entry(in_play[i].1).or_default().push(i);
            }
            for (src, ids) in per_source {
                if !decided.insert(src) {
                    continue;
                }
                if let [i] = ids[..] {
                    picks[a].insert(
                        src,
                        Pick {
                            identity: i,
                            method: method_of(*key),
                            strength: Strength::Key(k),
                        },
                    );
                } else {
                    let ext: Vec<&str> = ids
                        .iter()
                        .map(|i| in_play[*i].0.external_id.as_str())
                        .collect();
                    conflicts[a].push(format!(
                        "ambiguous {}: {} identities of {} match ({})",
                        key_name(*key),
                        ids.len(),
                        order[src],
                        some_ids(&ext)
                    ));
                }
            }
        }
    }

    // Many-to-one: an identity newly matched to several accounts of one target.
    let mut claims: HashMap<(usize, TargetId), Vec<(usize, Strength)>> = HashMap::new();
    for (a, account) in accounts.iter().enumerate() {
        for pick in picks[a].values() {
            if pick.strength != Strength::Stored {
                claims
                    .entry((pick.identity, account.target_id))
                    .or_default()
                    .push((a, pick.strength));
            }
        }
    }
    for ((i, target), claimants) in claims {
        let (ident, src) = in_play[i];
        let drop = |picks: &mut Vec<BTreeMap<usize, Pick>>, a: usize| {
            picks[a].remove(&src);
        };
        if stored_in_target.contains(&(i, target)) {
            // The identity is already linked to another account of this target.
            for (a, _) in claimants {
                drop(&mut picks, a);
            }
            continue;
        }
        let Some(best) = claimants.iter().map(|(_, s)| *s).min() else {
            continue;
        };
        let at_best: Vec<usize> = claimants
            .iter()
            .filter(|(_, s)| *s == best)
            .map(|(a, _)| *a)
            .collect();
        for &(a, s) in &claimants {
            if s != best {
                drop(&mut picks, a);
            }
        }
        if at_best.len() > 1 {
            let key = match best {
                Strength::Key(k) => cfg.keys.get(k).map_or("key", |k| key_name(*k)),
                Strength::Stored => "stored link",
            };
            let mut names: Vec<&str> = at_best
                .iter()
                .map(|a| accounts[*a].username.as_str())
                .collect();
            names.sort_unstable();
            for &a in &at_best {
                drop(&mut picks, a);
                conflicts[a].push(format!(
                    "{} identity {} ({}) matches {} accounts of the target on {key}: {}",
                    order[src],
                    ident.external_id,
                    ident.user_name,
                    at_best.len(),
                    names.join(", ")
                ));
            }
        }
    }

    let mut outcome = LinkOutcome::default();
    for (a, account) in accounts.iter().enumerate() {
        let state = if !conflicts[a].is_empty() {
            let mut reasons = std::mem::take(&mut conflicts[a]);
            reasons.sort();
            reasons.dedup();
            let reason = reasons.join("; ");
            outcome.conflicts.push((account.id, reason.clone()));
            LinkState::Conflict { reason }
        } else if picks[a].is_empty() {
            LinkState::Unlinked
        } else {
            for pick in picks[a].values() {
                if pick.strength != Strength::Stored {
                    outcome
                        .new_links
                        .push((in_play[pick.identity].0.id, account.id, pick.method));
                }
            }
            LinkState::Linked {
                methods: picks[a]
                    .values()
                    .map(|p| (in_play[p.identity].0.id, p.method))
                    .collect(),
            }
        };
        outcome.states.insert(account.id, state);
    }
    outcome.conflicts.sort_by_key(|(a, _)| *a);
    outcome
}

/// Loads every identity, account and stored link, matches them with the configured keys
/// and precedence over the configured sources, and stores the new links.
#[tracing::instrument(skip_all)]
pub async fn refresh_links(store: &Store, config: &Config) -> Result<LinkReport, StoreError> {
    let (identities, accounts, existing) = tokio::try_join!(
        store.link_identities(),
        store.link_accounts(),
        store.all_links()
    )?;
    let sources: Vec<String> = config.sources.keys().cloned().collect();
    let outcome = match_accounts(&identities, &accounts, &existing, &config.linking, &sources);
    let added = store.insert_links(&outcome.new_links).await?;
    let mut report = LinkReport {
        accounts: accounts.len(),
        added,
        ..LinkReport::default()
    };
    for state in outcome.states.values() {
        match state {
            LinkState::Linked { methods } => {
                report.linked += 1;
                report.kept += methods.len();
            }
            LinkState::Unlinked => report.unlinked += 1,
            LinkState::Conflict { .. } => report.conflicted += 1,
        }
    }
    report.kept = report.kept.saturating_sub(outcome.new_links.len());
    for (account, reason) in outcome.conflicts.iter().take(20) {
        tracing::warn!(account.id = %account, reason = %reason, "link conflict: not acted on");
    }
    tracing::info!(
        accounts = report.accounts,
        linked = report.linked,
        unlinked = report.unlinked,
        conflicts = report.conflicted,
        added = report.added,
        "links refreshed"
    );
    report.outcome = outcome;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn ident(n: u128, source: &str, ext: &str, user: &str, email: Option<&str>) -> LinkIdentity {
        LinkIdentity {
            id: IdentityId(Uuid::from_u128(n)),
            source: source.into(),
            external_id: ext.into(),
            user_name: user.into(),
            email: email.map(str::to_owned),
            deleted: false,
        }
    }

    fn acct(n: u128, key: &str, username: &str, email: Option<&str>) -> LinkAccount {
        LinkAccount {
            id: AccountId(Uuid::from_u128(1000 + n)),
            target_id: TargetId(Uuid::from_u128(99)),
            key: key.into(),
            external_id: None,
            username: username.into(),
            email: email.map(str::to_owned),
        }
    }

    fn sources(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn run(
        ids: &[LinkIdentity],
        accts: &[LinkAccount],
        existing: &[(IdentityId, AccountId, LinkMethod)],
    ) -> LinkOutcome {
        match_accounts(
            ids,
            accts,
            existing,
            &LinkingConfig::default(),
            &sources(&["google", "okta"]),
        )
    }

    fn linked(o: &LinkOutcome, a: &LinkAccount) -> Vec<(IdentityId, LinkMethod)> {
        match o.state(a.id) {
            LinkState::Linked { methods } => methods,
            other => panic!("expected linked, got {other:?}"),
        }
    }

    fn conflict(o: &LinkOutcome, a: &LinkAccount) -> String {
        match o.state(a.id) {
            LinkState::Conflict { reason } => reason,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn match_keys_ignore_case_surrounding_space_and_unicode_form() {
        assert_eq!(normalise_match_key("  Ada@Example.COM "), "ada@example.com");
        assert_eq!(normalise_match_key("ẞ"), normalise_match_key("ß"));
        assert_eq!(
            normalise_match_key("Jos\u{e9}"),
            normalise_match_key("JOSE\u{301}")
        );
        assert_eq!(normalise_match_key("ＡＤＡ"), "ada");
        assert_ne!(normalise_match_key("ada"), normalise_match_key("adb"));
    }

    #[test]
    fn an_immutable_id_match_wins_over_email_and_username_matches_of_the_same_source() {
        let ids = [
            ident(1, "okta", "00u1", "bob", Some("bob@x.org")),
            ident(2, "okta", "00u2", "other", Some("carol@x.org")),
            ident(3, "okta", "00u3", "carol", None),
        ];
        let a = acct(1, "00U2", "carol", Some("carol@x.org"));
        let o = run(&ids, std::slice::from_ref(&a), &[]);
        assert_eq!(
            linked(&o, &a),
            vec![(IdentityId(Uuid::from_u128(2)), LinkMethod::ImmutableId)]
        );
        assert_eq!(
            o.new_links,
            vec![(
                IdentityId(Uuid::from_u128(2)),
                a.id,
                LinkMethod::ImmutableId
            )]
        );
    }

    #[test]
    fn an_email_match_wins_over_a_username_match() {
        let ids = [
            ident(1, "okta", "00u1", "carol", Some("c.other@x.org")),
            ident(2, "okta", "00u2", "carol.d", Some("carol@x.org")),
        ];
        let a = acct(1, "key1", "carol", Some("CAROL@x.org"));
        let o = run(&ids, std::slice::from_ref(&a), &[]);
        assert_eq!(
            linked(&o, &a),
            vec![(IdentityId(Uuid::from_u128(2)), LinkMethod::Email)]
        );
    }

    #[test]
    fn the_configured_key_order_decides_which_key_is_tried_first() {
        let ids = [
            ident(1, "okta", "key1", "x", None),
            ident(2, "okta", "00u2", "y", Some("carol@x.org")),
        ];
        let a = acct(1, "key1", "carol", Some("carol@x.org"));
        let cfg = LinkingConfig {
            keys: vec![LinkKey::Email, LinkKey::ImmutableId],
            precedence: vec![],
        };
        let o = match_accounts(
            &ids,
            std::slice::from_ref(&a),
            &[],
            &cfg,
            &sources(&["okta"]),
        );
        assert_eq!(
            linked(&o, &a),
            vec![(IdentityId(Uuid::from_u128(2)), LinkMethod::Email)]
        );
    }

    #[test]
    fn a_key_left_out_of_the_configuration_is_not_tried() {
        let ids = [ident(1, "okta", "00u1", "carol", None)];
        let a = acct(1, "key1", "carol", None);
        let cfg = LinkingConfig {
            keys: vec![LinkKey::ImmutableId, LinkKey::Email],
            precedence: vec![],
        };
        let o = match_accounts(
            &ids,
            std::slice::from_ref(&a),
            &[],
            &cfg,
            &sources(&["okta"]),
        );
        assert_eq!(o.state(a.id), LinkState::Unlinked);
    }

    #[test]
    fn the_accounts_external_id_attribute_matches_an_immutable_id() {
        let ids = [ident(1, "okta", "00u1", "someone", None)];
        let mut a = acct(1, "557058:abc", "carol", None);
        a.external_id = Some("00u1".into());
        let o = run(&ids, std::slice::from_ref(&a), &[]);
        assert_eq!(
            linked(&o, &a),
            vec![(IdentityId(Uuid::from_u128(1)), LinkMethod::ImmutableId)]
        );
    }

    #[test]
    fn a_username_matches_the_local_part_of_a_upn_or_of_an_email() {
        let ids = [
            ident(1, "okta", "00u1", "carol@corp.example", None),
            ident(2, "google", "g2", "whatever", Some("dave@x.org")),
        ];
        let carol = acct(1, "k1", "Carol", None);
        let dave = acct(2, "k2", "dave", None);
        let o = run(&ids, &[carol.clone(), dave.clone()], &[]);
        assert_eq!(
            linked(&o, &carol),
            vec![(IdentityId(Uuid::from_u128(1)), LinkMethod::Username)]
        );
        assert_eq!(
            linked(&o, &dave),
            vec![(IdentityId(Uuid::from_u128(2)), LinkMethod::Username)]
        );
    }

    #[test]
    fn two_identities_of_one_source_on_a_key_make_the_account_a_conflict_naming_key_and_ids() {
        let ids = [
            ident(1, "okta", "00u1", "bob1", Some("bob@x.org")),
            ident(2, "okta", "00u2", "bob2", Some("BOB@x.org")),
        ];
        let a = acct(1, "k1", "bob", Some("bob@x.org"));
        let o = run(&ids, std::slice::from_ref(&a), &[]);
        let reason = conflict(&o, &a);
        assert!(reason.contains("email"), "{reason}");
        assert!(
            reason.contains("00u1") && reason.contains("00u2"),
            "{reason}"
        );
        assert!(o.new_links.is_empty());
        assert_eq!(o.conflicts.len(), 1);
    }

    #[test]
    fn an_ambiguous_key_is_not_settled_by_a_weaker_key() {
        let ids = [
            ident(1, "okta", "00u1", "bob", Some("bob@x.org")),
            ident(2, "okta", "00u2", "robert", Some("bob@x.org")),
        ];
        let a = acct(1, "k1", "bob", Some("bob@x.org"));
        let o = run(&ids, std::slice::from_ref(&a), &[]);
        assert!(matches!(o.state(a.id), LinkState::Conflict { .. }));
    }

    #[test]
    fn an_ambiguity_in_one_source_makes_the_whole_account_a_conflict_and_stores_nothing() {
        let ids = [
            ident(1, "okta", "00u1", "bob", Some("bob@x.org")),
            ident(2, "google", "g1", "bob", Some("bob@x.org")),
            ident(3, "google", "g2", "bobby", Some("bob@x.org")),
        ];
        let a = acct(1, "k1", "bob", Some("bob@x.org"));
        let o = run(&ids, std::slice::from_ref(&a), &[]);
        let reason = conflict(&o, &a);
        assert!(reason.contains("google"), "{reason}");
        assert!(o.new_links.is_empty());
    }

    #[test]
    fn one_identity_matching_two_accounts_of_a_target_on_one_key_makes_both_conflicts() {
        let ids = [ident(1, "okta", "00u1", "bob", Some("bob@x.org"))];
        let a = acct(1, "k1", "bob", Some("bob@x.org"));
        let b = acct(2, "k2", "bob-admin", Some("bob@x.org"));
        let o = run(&ids, &[a.clone(), b.clone()], &[]);
        assert!(conflict(&o, &a).contains("2 accounts"));
        assert!(conflict(&o, &b).contains("bob-admin"));
        assert!(o.new_links.is_empty());
    }

    #[test]
    fn one_identity_matching_two_accounts_on_keys_of_different_strength_links_the_stronger() {
        let ids = [ident(1, "okta", "00u1", "bob", Some("bob@x.org"))];
        let strong = acct(1, "00u1", "robert", None);
        let weak = acct(2, "k2", "bob2", Some("bob@x.org"));
        let o = run(&ids, &[strong.clone(), weak.clone()], &[]);
        assert_eq!(
            linked(&o, &strong),
            vec![(IdentityId(Uuid::from_u128(1)), LinkMethod::ImmutableId)]
        );
        assert_eq!(o.state(weak.id), LinkState::Unlinked);
    }

    #[test]
    fn one_identity_may_link_to_one_account_in_each_of_two_targets() {
        let ids = [ident(1, "okta", "00u1", "bob", Some("bob@x.org"))];
        let a = acct(1, "k1", "bob", Some("bob@x.org"));
        let mut b = acct(2, "k2", "bob", Some("bob@x.org"));
        b.target_id = TargetId(Uuid::from_u128(98));
        let o = run(&ids, &[a.clone(), b.clone()], &[]);
        assert_eq!(linked(&o, &a).len(), 1);
        assert_eq!(linked(&o, &b).len(), 1);
        assert_eq!(o.new_links.len(), 2);
    }

    #[test]
    fn identities_of_several_sources_link_to_one_account_in_precedence_order() {
        let ids = [
            ident(1, "google", "g1", "carol@x.org", Some("carol@x.org")),
            ident(2, "okta", "00u1", "carol@x.org", Some("carol@x.org")),
            ident(3, "ldap", "uid=carol", "carol", None),
        ];
        let a = acct(1, "k1", "carol", Some("carol@x.org"));
        let cfg = LinkingConfig {
            precedence: vec!["okta".into()],
            ..LinkingConfig::default()
        };
        let o = match_accounts(
            &ids,
            std::slice::from_ref(&a),
            &[],
            &cfg,
            &sources(&["okta", "google", "ldap"]),
        );
        assert_eq!(
            linked(&o, &a),
            vec![
                (IdentityId(Uuid::from_u128(2)), LinkMethod::Email),
                (IdentityId(Uuid::from_u128(1)), LinkMethod::Email),
                (IdentityId(Uuid::from_u128(3)), LinkMethod::Username),
            ]
        );
    }

    #[test]
    fn identities_of_sources_not_in_play_are_not_linked() {
        let ids = [ident(1, "retired", "r1", "carol", Some("carol@x.org"))];
        let a = acct(1, "k1", "carol", Some("carol@x.org"));
        let o = run(&ids, std::slice::from_ref(&a), &[]);
        assert_eq!(o.state(a.id), LinkState::Unlinked);
    }

    #[test]
    fn a_stored_manual_link_wins_over_key_matching_and_is_not_stored_again() {
        let ids = [
            ident(1, "okta", "00u1", "carol", Some("carol.new@x.org")),
            ident(2, "okta", "00u2", "carol2", Some("carol@x.org")),
        ];
        let a = acct(1, "k1", "carol", Some("carol@x.org"));
        let existing = [(IdentityId(Uuid::from_u128(1)), a.id, LinkMethod::Manual)];
        let o = run(&ids, std::slice::from_ref(&a), &existing);
        assert_eq!(
            linked(&o, &a),
            vec![(IdentityId(Uuid::from_u128(1)), LinkMethod::Manual)]
        );
        assert!(o.new_links.is_empty());
    }

    #[test]
    fn a_stored_link_keeps_its_identity_from_matching_another_account_of_the_target() {
        let ids = [ident(1, "okta", "00u1", "carol", Some("carol@x.org"))];
        let a = acct(1, "k1", "carol", Some("old@x.org"));
        let b = acct(2, "k2", "carol-new", Some("carol@x.org"));
        let existing = [(IdentityId(Uuid::from_u128(1)), a.id, LinkMethod::Email)];
        let o = run(&ids, &[a.clone(), b.clone()], &existing);
        assert_eq!(linked(&o, &a).len(), 1);
        assert_eq!(o.state(b.id), LinkState::Unlinked);
        assert!(o.new_links.is_empty());
    }

    #[test]
    fn a_stored_link_to_a_deleted_identity_is_kept() {
        let mut leaver = ident(1, "okta", "00u1", "carol", Some("carol@x.org"));
        leaver.deleted = true;
        let a = acct(1, "k1", "carol", None);
        let existing = [(leaver.id, a.id, LinkMethod::Email)];
        let o = run(
            std::slice::from_ref(&leaver),
            std::slice::from_ref(&a),
            &existing,
        );
        assert_eq!(linked(&o, &a), vec![(leaver.id, LinkMethod::Email)]);
    }

    #[test]
    fn a_stored_link_to_an_identity_that_no_longer_exists_is_ignored() {
        let ids = [ident(2, "okta", "00u2", "carol", None)];
        let a = acct(1, "k1", "carol", None);
        let existing = [(IdentityId(Uuid::from_u128(1)), a.id, LinkMethod::Email)];
        let o = run(&ids, std::slice::from_ref(&a), &existing);
        assert_eq!(
            linked(&o, &a),
            vec![(IdentityId(Uuid::from_u128(2)), LinkMethod::Username)]
        );
    }

    #[test]
    fn capital_sharp_s_matches_small_sharp_s() {
        let ids = [ident(1, "okta", "00u1", "x", Some("strauß@x.org"))];
        let a = acct(1, "k1", "y", Some("STRAUẞ@X.ORG"));
        let o = run(&ids, std::slice::from_ref(&a), &[]);
        assert_eq!(linked(&o, &a)[0].1, LinkMethod::Email);
    }

    #[test]
    fn a_decomposed_e_acute_matches_a_composed_one() {
        let ids = [ident(1, "okta", "00u1", "ren\u{e9}", None)];
        let a = acct(1, "k1", "RENE\u{301}", None);
        let o = run(&ids, std::slice::from_ref(&a), &[]);
        assert_eq!(linked(&o, &a)[0].1, LinkMethod::Username);
    }

    #[test]
    fn fullwidth_letters_match_their_ascii_forms() {
        let ids = [ident(1, "okta", "00u1", "ｃａｒｏｌ", None)];
        let a = acct(1, "k1", "Carol", None);
        let o = run(&ids, std::slice::from_ref(&a), &[]);
        assert_eq!(linked(&o, &a)[0].1, LinkMethod::Username);
    }

    #[test]
    fn an_account_nothing_matches_is_unlinked() {
        let ids = [ident(1, "okta", "00u1", "carol", Some("carol@x.org"))];
        let a = acct(1, "k1", "dave", Some("dave@x.org"));
        let o = run(&ids, std::slice::from_ref(&a), &[]);
        assert_eq!(o.state(a.id), LinkState::Unlinked);
        assert!(o.new_links.is_empty());
    }
}
