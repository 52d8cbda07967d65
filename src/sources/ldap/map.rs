//! Directory entries as idbridge records, per flavour: Active Directory (`objectGUID`,
//! `sAMAccountName`, `userAccountControl`, FILETIME `lastLogonTimestamp`/`accountExpires`/
//! `lockoutTime`, `memberOf`) and OpenLDAP (`entryUUID`, `uid`, ppolicy
//! `pwdAccountLockedTime`, `pwdLastSuccess`/lastbind `authTimestamp`, `memberOf` and group
//! searches). Raw statuses are spelled as the keys of [`crate::sources::status::LDAP`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::decode::{self, Entry, FileTime};
use crate::domain::SourceKind;
use crate::sources::{SourceError, SourceGroup, SourceIdentity, status};

/// Which directory server idbridge is reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    ActiveDirectory,
    OpenLdap,
}

/// The `supportedCapabilities` OID a rootDSE carries on Active Directory.
pub const AD_CAPABILITY: &str = "1.2.840.113556.1.4.800";

/// ppolicy's "locked by an administrator until unlocked" value of `pwdAccountLockedTime`.
pub const ADMIN_LOCK: &str = "000001010000Z";

/// AD `userAccountControl` ACCOUNTDISABLE bit.
const UAC_DISABLED: u64 = 0x2;

impl Flavour {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::ActiveDirectory => "ad",
            Flavour::OpenLdap => "openldap",
        }
    }

    /// The default filter that selects people.
    pub fn default_user_filter(self) -> &'static str {
        match self {
            Flavour::ActiveDirectory => "(&(objectCategory=person)(objectClass=user))",
            Flavour::OpenLdap => "(objectClass=inetOrgPerson)",
        }
    }

    /// The default filter that selects groups.
    pub fn default_group_filter(self) -> &'static str {
        match self {
            Flavour::ActiveDirectory => "(objectClass=group)",
            Flavour::OpenLdap => {
                "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
            }
        }
    }

    /// The immutable id attribute.
    pub fn id_attr(self) -> &'static str {
        match self {
            Flavour::ActiveDirectory => "objectGUID",
            Flavour::OpenLdap => "entryUUID",
        }
    }

    /// The attribute that says when an entry last changed (for incremental listing).
    pub fn modified_attr(self) -> &'static str {
        match self {
            Flavour::ActiveDirectory => "whenChanged",
            Flavour::OpenLdap => "modifyTimestamp",
        }
    }

    /// The login attributes, preferred first.
    pub fn login_attrs(self) -> &'static [&'static str] {
        match self {
            Flavour::ActiveDirectory => &["sAMAccountName", "userPrincipalName"],
            Flavour::OpenLdap => &["uid", "mail", "cn"],
        }
    }

    /// Every attribute read for a person, plus the configured custom ones.
    pub fn person_attrs(self, custom: &[String]) -> Vec<String> {
        let base: &[&str] = match self {
            Flavour::ActiveDirectory => &[
                "objectGUID",
                "sAMAccountName",
                "userPrincipalName",
                "mail",
                "givenName",
                "sn",
                "displayName",
                "whenCreated",
                "whenChanged",
                "userAccountControl",
                "lastLogonTimestamp",
                "accountExpires",
                "lockoutTime",
                "memberOf",
            ],
            Flavour::OpenLdap => &[
                "entryUUID",
                "uid",
                "mail",
                "cn",
                "givenName",
                "sn",
                "displayName",
                "createTimestamp",
                "modifyTimestamp",
                "pwdAccountLockedTime",
                "pwdLastSuccess",
                "authTimestamp",
                "memberOf",
            ],
        };
        let mut out: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
        for c in custom {
            if !out.iter().any(|a| a.eq_ignore_ascii_case(c)) {
                out.push(c.clone());
            }
        }
        out
    }
}

/// Group memberships found by a group search (OpenLDAP without the memberof overlay):
/// member DN (normalised) or `uid:<login>` (posixGroup `memberUid`) → group external ids.
pub type Memberships = HashMap<String, Vec<String>>;

/// The key under which a posixGroup `memberUid` is kept in [`Memberships`] and id maps.
pub fn uid_key(login: &str) -> String {
    format!("uid:{}", login.to_lowercase())
}

/// The external id of `entry` (canonical GUID for AD, `entryUUID` for OpenLDAP).
pub fn external_id(entry: &Entry, flavour: Flavour) -> Result<String, SourceError> {
    let id = match flavour {
        Flavour::ActiveDirectory => entry.first_bytes("objectGUID").and_then(decode::guid),
        Flavour::OpenLdap => entry.first("entryUUID").map(|s| s.to_lowercase()),
    };
    id.ok_or_else(|| SourceError::InvalidRecord {
        detail: format!(
            "{} has no usable {} (is the bind DN allowed to read it?)",
            entry.dn,
            flavour.id_attr()
        ),
    })
}

/// The login of `entry`, from the first login attribute it carries.
pub fn login(entry: &Entry, flavour: Flavour) -> Option<String> {
    flavour.login_attrs().iter().find_map(|a| entry.first(a))
}

/// AD status from `userAccountControl`, `accountExpires` and `lockoutTime`: disabled wins,
/// then expired, then locked (still Active).
pub fn ad_status(entry: &Entry, now: DateTime<Utc>) -> &'static str {
    let uac = entry
        .first("userAccountControl")
        .and_then(|v| v.parse::<i64>().ok())
        .map(|v| v as u64);
    if uac.is_some_and(|v| v & UAC_DISABLED != 0) {
        return "disabled";
    }
    if let Some(raw) = entry.first("accountExpires")
        && let FileTime::At(t) = decode::filetime(&raw)
        && t <= now
    {
        return "expired";
    }
    if let Some(raw) = entry.first("lockoutTime")
        && matches!(decode::filetime(&raw), FileTime::At(_))
    {
        return "locked";
    }
    "enabled"
}

/// OpenLDAP ppolicy status: `pwdAccountLockedTime` of `000001010000Z` is a permanent lock
/// by an administrator (disabled); any other value is a lockout (still Active).
pub fn openldap_status(entry: &Entry) -> &'static str {
    match entry.first("pwdAccountLockedTime") {
        Some(v) if v == ADMIN_LOCK => "disabled",
        Some(_) => "locked",
        None => "enabled",
    }
}

/// When `entry` last changed.
pub fn modified_at(entry: &Entry, flavour: Flavour) -> Option<DateTime<Utc>> {
    entry
        .first(flavour.modified_attr())
        .and_then(|v| decode::generalized_time(&v))
}

/// `entry` as a [`SourceIdentity`]. `memberships` adds groups found by a group search.
pub fn identity(
    entry: &Entry,
    flavour: Flavour,
    now: DateTime<Utc>,
    custom: &[String],
    memberships: &Memberships,
) -> Result<SourceIdentity, SourceError> {
    let id = external_id(entry, flavour)?;
    let login = login(entry, flavour).ok_or_else(|| SourceError::InvalidRecord {
        detail: format!(
            "{} has none of the login attributes {}",
            entry.dn,
            flavour.login_attrs().join(", ")
        ),
    })?;
    let raw = match flavour {
        Flavour::ActiveDirectory => ad_status(entry, now),
        Flavour::OpenLdap => openldap_status(entry),
    };
    let mut p = SourceIdentity::new(
        id,
        login.clone(),
        status::normalise(SourceKind::Ldap, raw),
        raw,
    );
    p.emails = entry.all("mail");
    p.given_name = entry.first("givenName");
    p.family_name = entry.first("sn");
    p.display_name = entry.first("displayName").or_else(|| match flavour {
        Flavour::OpenLdap => entry.first("cn"),
        Flavour::ActiveDirectory => None,
    });
    p.updated_at = modified_at(entry, flavour);
    match flavour {
        Flavour::ActiveDirectory => {
            p.created_at = entry
                .first("whenCreated")
                .and_then(|v| decode::generalized_time(&v));
            p.last_login_at = match entry
                .first("lastLogonTimestamp")
                .map(|v| decode::filetime(&v))
            {
                Some(FileTime::At(t)) => Some(t),
                _ => None,
            };
            if let Some(uac) = entry.first("userAccountControl") {
                p.attributes.insert("userAccountControl".into(), uac);
            }
        }
        Flavour::OpenLdap => {
            p.created_at = entry
                .first("createTimestamp")
                .and_then(|v| decode::generalized_time(&v));
            p.last_login_at = ["pwdLastSuccess", "authTimestamp"]
                .iter()
                .filter_map(|a| entry.first(a))
                .filter_map(|v| decode::generalized_time(&v))
                .max();
            if let Some(lock) = entry.first("pwdAccountLockedTime") {
                p.attributes.insert("pwdAccountLockedTime".into(), lock);
            }
        }
    }
    for c in custom {
        if let Some(v) = entry.first(c) {
            p.attributes.insert(c.clone(), v);
        }
    }
    let mut groups: Vec<String> = entry
        .all("memberOf")
        .iter()
        .map(|dn| decode::normalise_dn(dn))
        .collect();
    let dn = decode::normalise_dn(&entry.dn);
    for key in [dn, uid_key(&login)] {
        if let Some(gs) = memberships.get(&key) {
            groups.extend(gs.iter().cloned());
        }
    }
    groups.sort();
    groups.dedup();
    p.groups = groups;
    Ok(p)
}

/// `entry` as a [`SourceGroup`] (external id: the normalised DN). Members are resolved to
/// people's external ids through `ids` (normalised DN or `uid:<login>` → external id);
/// members that are not people under the base DN (nested groups, service objects) are left
/// out and counted in the second value.
pub fn group(entry: &Entry, ids: &HashMap<String, String>) -> (SourceGroup, usize) {
    let id = decode::normalise_dn(&entry.dn);
    let name = entry
        .first("cn")
        .unwrap_or_else(|| decode::rdn_value(&entry.dn));
    let mut members = Vec::new();
    let mut unresolved = 0;
    let dns = entry
        .all("member")
        .into_iter()
        .chain(entry.all("uniqueMember"));
    for dn in dns {
        // groupOfUniqueNames values may carry `#'0101'B` uid suffixes.
        let dn = dn.split('#').next().unwrap_or_default();
        match ids.get(&decode::normalise_dn(dn)) {
            Some(m) => members.push(m.clone()),
            None => unresolved += 1,
        }
    }
    for uid in entry.all("memberUid") {
        match ids.get(&uid_key(&uid)) {
            Some(m) => members.push(m.clone()),
            None => unresolved += 1,
        }
    }
    members.sort();
    members.dedup();
    (
        SourceGroup {
            external_id: id,
            name,
            members,
        },
        unresolved,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IdentityStatus;
    use chrono::TimeZone;

    fn entry(dn: &str, attrs: &[(&str, &[u8])]) -> Entry {
        let mut e = Entry {
            dn: dn.into(),
            ..Entry::default()
        };
        for (k, v) in attrs {
            e.attrs
                .entry(k.to_ascii_lowercase())
                .or_default()
                .push(v.to_vec());
        }
        e
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn ad_disabled_bit_wins_over_expiry_and_lockout() {
        let e = entry(
            "cn=x",
            &[
                ("userAccountControl", b"514"),
                ("accountExpires", b"1"),
                ("lockoutTime", b"133497504000000000"),
            ],
        );
        assert_eq!(ad_status(&e, now()), "disabled");
    }

    #[test]
    fn ad_expiry_in_the_past_is_expired_and_never_values_are_not() {
        let past = decode::to_filetime(now() - chrono::Duration::days(1));
        let e = entry(
            "cn=x",
            &[
                ("userAccountControl", b"512"),
                ("accountExpires", past.as_bytes()),
            ],
        );
        assert_eq!(ad_status(&e, now()), "expired");
        for never in [&b"0"[..], b"9223372036854775807", b"garbage"] {
            let e = entry(
                "cn=x",
                &[("userAccountControl", b"512"), ("accountExpires", never)],
            );
            assert_eq!(ad_status(&e, now()), "enabled");
        }
    }

    #[test]
    fn ad_lockout_is_locked_and_still_active() {
        let e = entry(
            "cn=x",
            &[
                ("userAccountControl", b"512"),
                ("lockoutTime", b"133497504000000000"),
            ],
        );
        assert_eq!(ad_status(&e, now()), "locked");
        assert_eq!(
            status::normalise(SourceKind::Ldap, "locked"),
            IdentityStatus::Active
        );
        let e = entry(
            "cn=x",
            &[("userAccountControl", b"512"), ("lockoutTime", b"0")],
        );
        assert_eq!(ad_status(&e, now()), "enabled");
    }

    #[test]
    fn an_ad_entry_without_a_sixteen_byte_guid_is_an_invalid_record() {
        let e = entry(
            "cn=x",
            &[("objectGUID", b"short"), ("sAMAccountName", b"x")],
        );
        let err = identity(
            &e,
            Flavour::ActiveDirectory,
            now(),
            &[],
            &Memberships::new(),
        );
        assert!(matches!(err, Err(SourceError::InvalidRecord { .. })));
    }

    #[test]
    fn ppolicy_admin_lock_is_disabled_and_other_locks_are_locked() {
        let e = entry("uid=a", &[("pwdAccountLockedTime", ADMIN_LOCK.as_bytes())]);
        assert_eq!(openldap_status(&e), "disabled");
        let e = entry("uid=a", &[("pwdAccountLockedTime", b"20250101000000Z")]);
        assert_eq!(openldap_status(&e), "locked");
        assert_eq!(openldap_status(&entry("uid=a", &[])), "enabled");
    }

    #[test]
    fn groups_resolve_member_dns_and_member_uids_and_count_the_rest() {
        let mut ids = HashMap::new();
        ids.insert("uid=a,ou=people,dc=x".to_owned(), "id-a".to_owned());
        ids.insert(uid_key("b"), "id-b".to_owned());
        let e = entry(
            "cn=Staff,ou=groups,dc=x",
            &[
                ("cn", b"Staff"),
                ("member", b"UID=a, ou=People,dc=x"),
                ("member", b"cn=nested,ou=groups,dc=x"),
                ("memberUid", b"B"),
            ],
        );
        let (g, unresolved) = group(&e, &ids);
        assert_eq!(g.external_id, "cn=staff,ou=groups,dc=x");
        assert_eq!(g.name, "Staff");
        assert_eq!(g.members, vec!["id-a".to_owned(), "id-b".to_owned()]);
        assert_eq!(unresolved, 1);
    }
}
