//! The LDAP connector against a real OpenLDAP slapd (see `slapd.rs`): paged listing of 1,500+
//! people as a size-limited reader, ppolicy locks, group memberships of every kind, AD
//! attributes (test-only schema), incremental listing, StartTLS and LDAPS with the test CA,
//! stale cursors, bad credentials and `check()`.

use std::collections::{BTreeMap, HashSet};

use chrono::{TimeZone, Utc};
use idbridge::config::{Secret, SourceConfig};
use idbridge::domain::{IdentityStatus, SourceKind};
use idbridge::sources::ldap::LdapSource;
use idbridge::sources::{Change, Source, SourceError, SourceGroup, SourceIdentity};

use crate::slapd::{self, READER_DN, READER_PW, Slapd, fixtures, uuid};

const BULK: usize = 1500;

fn directory() -> String {
    slapd::directory(BULK)
}

fn openldap_config(url: &str) -> SourceConfig {
    slapd::openldap_config(url)
}

fn ad_config(url: &str) -> SourceConfig {
    slapd::ad_config(url)
}

async fn all_people(src: &LdapSource) -> (Vec<SourceIdentity>, usize, Option<String>) {
    let mut cursor: Option<String> = None;
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let page = src
            .list_identities(cursor.as_deref())
            .await
            .expect("a page of people");
        pages += 1;
        assert!(page.items.len() <= 100, "a page holds at most page_size");
        out.extend(page.items);
        match page.next {
            Some(n) => {
                assert_ne!(cursor.as_deref(), Some(n.as_str()), "the cursor moves");
                cursor = Some(n);
            }
            None => return (out, pages, page.checkpoint),
        }
        assert!(pages < 1000, "runaway listing");
    }
}

async fn all_groups(src: &LdapSource) -> Vec<SourceGroup> {
    let mut cursor: Option<String> = None;
    let mut out = Vec::new();
    loop {
        let page = src.list_groups(cursor.as_deref()).await.expect("groups");
        out.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
}

fn by_login(people: &[SourceIdentity]) -> BTreeMap<&str, &SourceIdentity> {
    people.iter().map(|p| (p.login.as_str(), p)).collect()
}

#[tokio::test]
async fn openldap_people_are_listed_in_pages_past_the_servers_size_limit_with_ppolicy_statuses_and_every_kind_of_group()
 {
    let Some(slapd) = Slapd::start(&directory()) else {
        return;
    };
    // Without paging the reader sees only the server's size limit: paging is what reads all.
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&slapd.ldap_url).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(READER_DN, READER_PW).await.unwrap();
    let plain = ldap
        .search(
            "dc=example,dc=org",
            ldap3::Scope::Subtree,
            "(objectClass=inetOrgPerson)",
            vec!["1.1"],
        )
        .await
        .unwrap();
    assert_eq!(
        (plain.0.len(), plain.1.rc),
        (500, 4),
        "sizeLimitExceeded at 500"
    );
    let _ = ldap.unbind().await;

    let src = LdapSource::from_config("dir", &openldap_config(&slapd.ldap_url)).unwrap();
    let (people, pages, checkpoint) = all_people(&src).await;

    assert_eq!(
        people.len(),
        BULK + 5,
        "everyone, past the reader's size limit of 500"
    );
    assert!(pages >= 16, "{pages} pages of 100");
    let ids: HashSet<_> = people.iter().map(|p| p.external_id.as_str()).collect();
    assert_eq!(ids.len(), people.len(), "no one twice");
    assert!(
        checkpoint.is_some(),
        "the terminal page carries a checkpoint"
    );

    let p = by_login(&people);
    let alice = p["alice"];
    assert_eq!(alice.external_id, uuid(900_001));
    assert_eq!(alice.raw_status, "disabled", "admin lock 000001010000Z");
    assert_eq!(alice.status, IdentityStatus::Deprovisioned);
    let bob = p["bob"];
    assert_eq!(bob.raw_status, "locked");
    assert_eq!(
        bob.status,
        IdentityStatus::Active,
        "a lockout is not a leaver"
    );
    assert_eq!(p["dave"].raw_status, "enabled");

    let carol = p["carol"];
    assert_eq!(carol.emails, vec!["carol@example.org".to_owned()]);
    assert_eq!(carol.given_name.as_deref(), Some("carol"));
    assert_eq!(carol.family_name.as_deref(), Some("Person"));
    assert_eq!(carol.display_name.as_deref(), Some("Carol C."));
    assert_eq!(
        carol.created_at,
        Some(Utc.with_ymd_and_hms(2020, 1, 2, 3, 4, 5).unwrap())
    );
    assert_eq!(
        carol.last_login_at,
        Some(Utc.with_ymd_and_hms(2025, 10, 1, 12, 0, 0).unwrap()),
        "lastbind authTimestamp"
    );
    assert_eq!(p["dave"].last_login_at, None, "never logged in");
    assert_eq!(
        carol.attributes.get("employeeNumber").map(String::as_str),
        Some("E-42")
    );
    assert_eq!(
        carol.groups,
        vec![
            "cn=devs,ou=groups,dc=example,dc=org".to_owned(),
            "cn=eng,ou=groups,dc=example,dc=org".to_owned(),
            "cn=staff,ou=groups,dc=example,dc=org".to_owned(),
        ],
        "groupOfNames (case-insensitive DN), groupOfUniqueNames and posixGroup memberUid"
    );
    assert_eq!(
        p["erin"].groups,
        vec!["cn=overlay,ou=groups,dc=example,dc=org".to_owned()],
        "memberOf as the memberof overlay writes it"
    );
    assert_eq!(
        p["user0000"].groups,
        vec!["cn=staff,ou=groups,dc=example,dc=org".to_owned()]
    );
    assert!(p["user1499"].groups.is_empty());
    assert_eq!(
        p["user1499"].display_name.as_deref(),
        Some("user1499 Person"),
        "cn"
    );
}

#[tokio::test]
async fn groups_are_listed_with_members_resolved_to_peoples_external_ids() {
    let Some(slapd) = Slapd::start(&directory()) else {
        return;
    };
    let mut cfg = openldap_config(&slapd.ldap_url);
    cfg.page_size = Some(2);
    let src = LdapSource::from_config("dir", &cfg).unwrap();
    let groups = all_groups(&src).await;
    let g: BTreeMap<&str, &SourceGroup> = groups.iter().map(|g| (g.name.as_str(), g)).collect();
    assert_eq!(g.len(), 3, "{groups:?}");
    let staff = g["Staff"];
    assert_eq!(staff.external_id, "cn=staff,ou=groups,dc=example,dc=org");
    assert_eq!(
        staff.members.len(),
        202,
        "alice, carol and 200 users; the nested group is left out"
    );
    assert!(staff.members.contains(&uuid(900_001)));
    assert!(staff.members.contains(&uuid(900_003)));
    assert_eq!(g["Eng"].members, vec![uuid(900_003)]);
    let mut devs = g["devs"].members.clone();
    devs.sort();
    assert_eq!(
        devs,
        vec![uuid(900_003), uuid(900_004)],
        "memberUid → uid → entryUUID"
    );
}

#[tokio::test]
async fn ad_attributes_map_to_guid_filetime_and_account_control_statuses() {
    let Some(slapd) = Slapd::start(&directory()) else {
        return;
    };
    let src = LdapSource::from_config("ad", &ad_config(&slapd.ldap_url)).unwrap();
    let (people, _, _) = all_people(&src).await;
    assert_eq!(
        people.len(),
        5,
        "the default AD filter (objectCategory=person)(objectClass=user)"
    );
    let p = by_login(&people);

    let ann = p["ann"];
    // GUID bytes 01 02 03 .. 10 (i*1+1): first three fields byte-swapped.
    assert_eq!(ann.external_id, "04030201-0605-0807-090a-0b0c0d0e0f10");
    assert_eq!(ann.raw_status, "enabled");
    assert_eq!(ann.status, IdentityStatus::Active);
    assert_eq!(
        ann.last_login_at,
        Some(Utc.with_ymd_and_hms(2025, 11, 2, 8, 30, 0).unwrap())
    );
    assert_eq!(
        ann.created_at,
        Some(Utc.with_ymd_and_hms(2019, 7, 4, 10, 11, 12).unwrap())
    );
    assert_eq!(ann.emails, vec!["ann@corp.example".to_owned()]);
    assert_eq!(
        ann.attributes.get("userAccountControl").map(String::as_str),
        Some("512")
    );
    assert_eq!(
        ann.groups,
        vec!["cn=finance,ou=groups,dc=corp,dc=example".to_owned()]
    );

    let ben = p["ben"];
    assert_eq!(ben.raw_status, "disabled", "UAC 514 has the 0x2 bit");
    assert_eq!(ben.status, IdentityStatus::Deprovisioned);
    assert_eq!(ben.last_login_at, None, "FILETIME 0 = never");
    assert_eq!(
        ben.attributes.get("userAccountControl").map(String::as_str),
        Some("514")
    );

    assert_eq!(p["cat"].raw_status, "expired", "accountExpires in the past");
    assert_eq!(p["cat"].status, IdentityStatus::Deprovisioned);
    assert_eq!(
        p["dan"].raw_status, "locked",
        "lockoutTime > 0, expiry in 2099"
    );
    assert_eq!(p["dan"].status, IdentityStatus::Active);
    assert_eq!(
        p["eve"].raw_status, "enabled",
        "UAC 66048 = normal + never-expiring password"
    );
    assert_eq!(
        p["eve"].last_login_at, None,
        "a garbage FILETIME is no login"
    );

    let groups = all_groups(&src).await;
    assert_eq!(groups.len(), 1);
    let mut members = groups[0].members.clone();
    members.sort();
    assert_eq!(
        members,
        vec![ann.external_id.clone(), ben.external_id.clone()]
    );
}

#[tokio::test]
async fn changes_since_a_checkpoint_are_the_people_modified_after_it() {
    let Some(slapd) = Slapd::start(&directory()) else {
        return;
    };
    let src = LdapSource::from_config("dir", &openldap_config(&slapd.ldap_url)).unwrap();
    let (_, _, checkpoint) = all_people(&src).await;
    let checkpoint = checkpoint.expect("checkpoint");
    slapd.modify(
        "dn: uid=user0042,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mail\nmail: renamed@example.org\n",
    );
    let page = src.list_changes(&checkpoint, None).await.expect("changes");
    assert!(page.next.is_none());
    assert!(page.checkpoint.is_some());
    let changed: Vec<_> = page
        .items
        .iter()
        .map(|c| match c {
            Change::Upsert(p) => (p.login.clone(), p.emails.clone()),
            Change::Removed { external_id, .. } => panic!("unexpected removal of {external_id}"),
        })
        .collect();
    assert_eq!(
        changed,
        vec![(
            "user0042".to_owned(),
            vec!["renamed@example.org".to_owned()]
        )]
    );
    let err = src.list_changes("not-a-time", None).await.unwrap_err();
    assert!(
        matches!(err, SourceError::CheckpointExpired { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_stale_or_foreign_cursor_fails_clearly_and_a_new_listing_replaces_the_old_one() {
    let Some(slapd) = Slapd::start(&directory()) else {
        return;
    };
    let src = LdapSource::from_config("dir", &openldap_config(&slapd.ldap_url)).unwrap();
    let first = src.list_identities(None).await.unwrap();
    let old = first.next.expect("more pages");
    for bogus in ["", "garbage", "1.AAAA", "999.abc", "x.y"] {
        let err = src.list_identities(Some(bogus)).await.unwrap_err();
        assert!(
            matches!(err, SourceError::NotFound { .. }),
            "{bogus}: {err}"
        );
    }
    // A bogus cursor does not disturb the listing in progress.
    let second = src.list_identities(Some(&old)).await.expect("second page");
    let next = second.next.expect("more pages");
    // Re-using a cursor already consumed fails: the cookie has moved on.
    let err = src.list_identities(Some(&old)).await.unwrap_err();
    assert!(err.to_string().contains("start the listing again"), "{err}");
    // A listing started afresh makes the previous one's cursors stale.
    src.list_identities(None).await.unwrap();
    let err = src.list_identities(Some(&next)).await.unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
    // Cursors are per listing kind.
    let err = src.list_groups(Some(&next)).await.unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn starttls_and_ldaps_verify_the_server_against_the_configured_ca() {
    let Some(slapd) = Slapd::start(&directory()) else {
        return;
    };
    let ca = fixtures().join("ca.pem").display().to_string();
    let other = fixtures().join("other-ca.pem").display().to_string();

    let mut starttls = openldap_config(&slapd.ldap_url);
    starttls.starttls = true;
    starttls.ca_file = Some(ca.clone());
    let src = LdapSource::from_config("tls", &starttls).unwrap();
    let page = src.list_identities(None).await.expect("StartTLS listing");
    assert_eq!(page.items.len(), 100);

    let mut ldaps = openldap_config(&slapd.ldaps_url);
    ldaps.ca_file = Some(ca);
    let src = LdapSource::from_config("tls", &ldaps).unwrap();
    let check = src.check().await.expect("LDAPS check");
    assert_eq!(check.people, Some((BULK + 5) as u64));

    for cfg in [
        {
            let mut c = starttls.clone();
            c.ca_file = Some(other.clone());
            c
        },
        {
            let mut c = ldaps.clone();
            c.ca_file = Some(other.clone());
            c
        },
    ] {
        let src = LdapSource::from_config("tls", &cfg).unwrap();
        let err = src.list_identities(None).await.unwrap_err();
        assert!(
            matches!(err, SourceError::Transport { .. }),
            "an untrusted server certificate is refused: {err}"
        );
    }
}

#[tokio::test]
async fn a_wrong_password_is_unauthorized_and_a_missing_base_dn_is_not_found() {
    let Some(slapd) = Slapd::start(&directory()) else {
        return;
    };
    let mut cfg = openldap_config(&slapd.ldap_url);
    cfg.bind_password = Some(Secret::new("wrong"));
    let src = LdapSource::from_config("dir", &cfg).unwrap();
    let err = src.list_identities(None).await.unwrap_err();
    assert!(matches!(err, SourceError::Unauthorized { .. }), "{err}");
    assert!(
        !err.to_string().contains("wrong"),
        "the password is never echoed"
    );

    let mut cfg = openldap_config(&slapd.ldap_url);
    cfg.base_dn = Some("ou=nowhere,dc=example,dc=org".into());
    let src = LdapSource::from_config("dir", &cfg).unwrap();
    let err = src.check().await.unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn check_reports_people_flavour_and_where_last_login_comes_from() {
    let Some(slapd) = Slapd::start(&directory()) else {
        return;
    };
    let mut cfg = openldap_config(&slapd.ldap_url);
    cfg.flavour = None; // detected from the rootDSE: slapd is not AD
    let check = LdapSource::from_config("dir", &cfg)
        .unwrap()
        .check()
        .await
        .unwrap();
    assert_eq!(check.principal, READER_DN);
    assert_eq!(check.people, Some((BULK + 5) as u64));
    assert!(
        check.notes.iter().any(|n| n == "flavour: openldap"),
        "{:?}",
        check.notes
    );
    assert!(
        check.last_login.contains("authTimestamp"),
        "{}",
        check.last_login
    );

    let check = LdapSource::from_config("ad", &ad_config(&slapd.ldap_url))
        .unwrap()
        .check()
        .await
        .unwrap();
    assert_eq!(check.people, Some(5));
    assert!(
        check.last_login.contains("lastLogonTimestamp"),
        "{}",
        check.last_login
    );
}

#[tokio::test]
async fn sign_ins_are_unsupported_and_say_that_the_last_login_attribute_is_used() {
    let mut cfg = SourceConfig::new(SourceKind::Ldap);
    cfg.base_url = Some("ldap://127.0.0.1:1".into());
    cfg.base_dn = Some("dc=example,dc=org".into());
    let src = LdapSource::from_config("dir", &cfg).unwrap();
    let err = src.sign_ins(None, None).await.unwrap_err();
    assert!(matches!(err, SourceError::Unsupported { .. }));
    assert!(err.to_string().contains("lastLogonTimestamp"), "{err}");
}

#[test]
fn bad_configuration_is_refused_before_any_connection() {
    let mut cfg = SourceConfig::new(SourceKind::Ldap);
    cfg.base_url = Some("ldap://127.0.0.1:1".into());
    cfg.base_dn = Some("dc=example,dc=org".into());
    cfg.user_filter = Some("(objectClass=person".into());
    assert!(matches!(
        LdapSource::from_config("dir", &cfg),
        Err(SourceError::Config(_))
    ));
    cfg.user_filter = None;
    cfg.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(matches!(
        LdapSource::from_config("dir", &cfg),
        Err(SourceError::Config(_))
    ));
    cfg.ca_file = None;
    cfg.base_url = Some("ldaps://127.0.0.1:1".into());
    cfg.starttls = true;
    assert!(matches!(
        LdapSource::from_config("dir", &cfg),
        Err(SourceError::Config(_))
    ));
}

#[tokio::test]
async fn a_real_bind_moves_the_last_login_through_the_lastbind_overlay() {
    let Some(slapd) = Slapd::start(&directory()) else {
        return;
    };
    let before = Utc::now() - chrono::Duration::seconds(5);
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&slapd.ldap_url).await.unwrap();
    ldap3::drive!(conn);
    let r = ldap
        .simple_bind("uid=dave,ou=people,dc=example,dc=org", "wrong")
        .await
        .unwrap();
    assert_eq!(r.rc, 49, "dave has no password: no bind, no login");
    let r = ldap
        .simple_bind("uid=carol,ou=people,dc=example,dc=org", "carol-secret")
        .await
        .unwrap();
    assert_eq!(r.rc, 0);
    let _ = ldap.unbind().await;

    let src = LdapSource::from_config("dir", &openldap_config(&slapd.ldap_url)).unwrap();
    let (people, _, _) = all_people(&src).await;
    let p = by_login(&people);
    let carol = p["carol"]
        .last_login_at
        .expect("carol's bind is her last login");
    assert!(carol >= before, "{carol} is the bind just made");
    assert_eq!(p["dave"].last_login_at, None);
}

/// Scale check, run by hand: `cargo nextest run --test api --run-ignored only
/// source_ldap::a_hundred_thousand` (prints how long the load and the listing took).
#[tokio::test]
#[ignore = "slow: loads 100,000 people into slapd"]
async fn a_hundred_thousand_people_are_listed_in_pages_of_five_hundred() {
    let started = std::time::Instant::now();
    let Some(slapd) = Slapd::start(&slapd::directory(100_000)) else {
        return;
    };
    let loaded = started.elapsed();
    let mut cfg = openldap_config(&slapd.ldap_url);
    cfg.page_size = Some(500);
    let src = LdapSource::from_config("dir", &cfg).unwrap();
    let started = std::time::Instant::now();
    let mut cursor: Option<String> = None;
    let mut count = 0;
    loop {
        let page = src.list_identities(cursor.as_deref()).await.unwrap();
        count += page.items.len();
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    eprintln!(
        "slapd load: {loaded:?}; listing {count} people: {:?}",
        started.elapsed()
    );
    assert_eq!(count, 100_005);
}
