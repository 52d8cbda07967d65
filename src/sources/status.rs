//! Status normalisation: one table per IdP mapping every raw status it can send to Active,
//! Staged, Suspended, Deprovisioned, Deleted or Unknown. Lock-type statuses (`LOCKED_OUT`,
//! `PASSWORD_EXPIRED`, `RECOVERY`, an LDAP password lock) are Active: a locked-out employee has
//! not left. A raw status missing from a table is Unknown, and Unknown is never a leaver.
//!
//! Connectors spell their raw status as the keys below (e.g. Google `suspended:ADMIN`, AD
//! `disabled`) so that one table per IdP covers every case, and the raw value is kept beside
//! the normalised one for display and audit.

use crate::domain::{IdentityStatus, SourceKind};

use IdentityStatus::{Active, Deleted, Deprovisioned, Staged, Suspended};

/// Okta `User.status` (spec enum `UserStatus`, plus the transitional `ACTIVATING`).
pub const OKTA: &[(&str, IdentityStatus)] = &[
    ("ACTIVE", Active),
    ("RECOVERY", Active),
    ("PASSWORD_EXPIRED", Active),
    ("LOCKED_OUT", Active),
    ("STAGED", Staged),
    ("PROVISIONED", Staged),
    ("ACTIVATING", Staged),
    ("SUSPENDED", Suspended),
    ("DEPROVISIONED", Deprovisioned),
    ("DELETED", Deleted),
];

/// Entra ID: `accountEnabled`, and soft-deleted users from `deletedItems`.
pub const ENTRA: &[(&str, IdentityStatus)] = &[
    ("accountEnabled=true", Active),
    ("accountEnabled=false", Deprovisioned),
    ("deleted", Deleted),
];

/// Google Workspace: `suspended` with its `suspensionReason`, `archived`, and deleted users
/// listed with `showDeleted=true`.
pub const GOOGLE: &[(&str, IdentityStatus)] = &[
    ("active", Active),
    ("suspended:ADMIN", Suspended),
    ("suspended:WEB_LOGIN_REQUIRED", Suspended),
    ("suspended:UNDER13", Suspended),
    ("suspended:ABUSE", Suspended),
    ("suspended", Suspended),
    ("archived", Deprovisioned),
    ("deleted", Deleted),
];

/// LDAP / Active Directory, as the LDAP connector spells it: AD `userAccountControl`
/// disabled bit and `accountExpires`; OpenLDAP ppolicy locks.
pub const LDAP: &[(&str, IdentityStatus)] = &[
    ("enabled", Active),
    ("locked", Active),
    ("password_expired", Active),
    ("disabled", Deprovisioned),
    ("expired", Deprovisioned),
    ("deleted", Deleted),
];

/// CSV imports: the `status` column, case-insensitive.
pub const CSV: &[(&str, IdentityStatus)] = &[
    ("active", Active),
    ("enabled", Active),
    ("locked", Active),
    ("staged", Staged),
    ("suspended", Suspended),
    ("deprovisioned", Deprovisioned),
    ("disabled", Deprovisioned),
    ("inactive", Deprovisioned),
    ("deleted", Deleted),
];

/// The table for `kind` (SCIM statuses are decided by the SCIM layer and have none).
pub fn table(kind: SourceKind) -> &'static [(&'static str, IdentityStatus)] {
    match kind {
        SourceKind::Okta => OKTA,
        SourceKind::Entra => ENTRA,
        SourceKind::Google => GOOGLE,
        SourceKind::Ldap => LDAP,
        SourceKind::Csv => CSV,
        SourceKind::Scim => &[],
    }
}

/// The normalised status for `raw` from a source of `kind`; Unknown when the table has no
/// entry. CSV values are matched case-insensitively, every other table exactly (Okta's enum
/// is upper case by contract; a lower-case `active` from Okta is not something it sends).
pub fn normalise(kind: SourceKind, raw: &str) -> IdentityStatus {
    let raw = raw.trim();
    table(kind)
        .iter()
        .find(|(k, _)| {
            if kind == SourceKind::Csv {
                k.eq_ignore_ascii_case(raw)
            } else {
                *k == raw
            }
        })
        .map_or(IdentityStatus::Unknown, |(_, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_type_okta_statuses_are_active_and_never_leavers() {
        for raw in ["LOCKED_OUT", "PASSWORD_EXPIRED", "RECOVERY"] {
            let s = normalise(SourceKind::Okta, raw);
            assert_eq!(s, Active, "{raw}");
            assert!(!s.is_leaver(true), "{raw}");
        }
    }

    #[test]
    fn every_okta_spec_status_has_an_entry() {
        // The `UserStatus` enum of Okta's management spec, plus the transitional ACTIVATING.
        for raw in [
            "ACTIVE",
            "DEPROVISIONED",
            "LOCKED_OUT",
            "PASSWORD_EXPIRED",
            "PROVISIONED",
            "RECOVERY",
            "STAGED",
            "SUSPENDED",
            "ACTIVATING",
        ] {
            assert_ne!(
                normalise(SourceKind::Okta, raw),
                IdentityStatus::Unknown,
                "{raw}"
            );
        }
    }

    #[test]
    fn an_unmapped_status_is_unknown_and_never_a_leaver() {
        for kind in SourceKind::ALL {
            let s = normalise(*kind, "SDK_UNKNOWN");
            assert_eq!(s, IdentityStatus::Unknown, "{kind}");
            assert!(!s.is_leaver(true));
        }
        assert_eq!(
            normalise(SourceKind::Okta, "active"),
            IdentityStatus::Unknown
        );
    }

    #[test]
    fn deprovisioned_and_deleted_are_leavers_and_suspended_only_by_setting() {
        assert!(normalise(SourceKind::Okta, "DEPROVISIONED").is_leaver(false));
        assert!(normalise(SourceKind::Entra, "accountEnabled=false").is_leaver(false));
        assert!(normalise(SourceKind::Google, "archived").is_leaver(false));
        assert!(normalise(SourceKind::Google, "deleted").is_leaver(false));
        let suspended = normalise(SourceKind::Google, "suspended:ADMIN");
        assert!(!suspended.is_leaver(false));
        assert!(suspended.is_leaver(true));
    }

    #[test]
    fn csv_statuses_match_case_insensitively() {
        assert_eq!(normalise(SourceKind::Csv, " Disabled "), Deprovisioned);
        assert_eq!(normalise(SourceKind::Csv, "ACTIVE"), Active);
        assert_eq!(normalise(SourceKind::Csv, "gone?"), IdentityStatus::Unknown);
    }
}
