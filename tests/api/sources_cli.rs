//! `idbridge sources …` and `idbridge sync source …` as an admin runs them, for what does not
//! need a particular IdP: naming, validation of each kind's settings, and SCIM sources that
//! cannot be polled. Each connector's own CLI runs are in its `source_<kind>` tests.

use crate::helpers::{binary, one_error_line, stdout};

#[test]
fn an_unconfigured_source_is_named_with_the_polled_ones() {
    let out = binary()
        .args(["sources", "check", "nope"])
        .env("IDBRIDGE_SOURCES__HR__KIND", "csv")
        .env("IDBRIDGE_SOURCES__HR__PATH", "/nonexistent.csv")
        .env("IDBRIDGE_SOURCES__ENTRA__KIND", "scim")
        .output()
        .unwrap();
    let line = one_error_line(&out, 2);
    assert!(
        line.contains("source `nope` is not configured; polled sources: hr"),
        "{line}"
    );
}

#[test]
fn a_scim_source_is_pushed_to_and_cannot_be_synced() {
    let out = binary()
        .args(["sync", "source", "entra"])
        .env("IDBRIDGE_SOURCES__ENTRA__KIND", "scim")
        .output()
        .unwrap();
    let line = one_error_line(&out, 2);
    assert!(
        line.contains("source `entra` is a SCIM source") && line.contains("nothing to poll"),
        "{line}"
    );
}

#[test]
fn each_kind_names_the_settings_it_is_missing() {
    let out = binary()
        .args(["check-config"])
        .env("IDBRIDGE_SOURCES__OKTA__KIND", "okta")
        .env(
            "IDBRIDGE_SOURCES__OKTA__BASE_URL",
            "https://user:pw@acme.okta.com",
        )
        .env("IDBRIDGE_SOURCES__AAD__KIND", "entra")
        .env("IDBRIDGE_SOURCES__AAD__TENANT_ID", "contoso")
        .env("IDBRIDGE_SOURCES__GW__KIND", "google")
        .env("IDBRIDGE_SOURCES__DIR__KIND", "ldap")
        .env("IDBRIDGE_SOURCES__DIR__BASE_URL", "https://dc1.example.com")
        .env("IDBRIDGE_SOURCES__DIR__FLAVOUR", "novell")
        .env("IDBRIDGE_SOURCES__HR__KIND", "csv")
        .env("IDBRIDGE_SOURCES__HR__RATE_LIMIT_SHARE", "1.5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "sources.okta.token: required for Okta (an SSWS API token, or client_id and private_key)",
        "sources.okta.base_url: must not carry credentials",
        "sources.aad.client_id: required for Entra ID",
        "sources.aad.client_secret: required for Entra ID",
        "sources.gw.service_account_key: required for Google Workspace",
        "sources.gw.admin_subject: required for Google Workspace",
        "sources.dir.base_dn: required for LDAP",
        "sources.dir.flavour: `novell` is not `ad` or `openldap`",
        "sources.dir.base_url: `https://dc1.example.com` is not an absolute ldap/ldaps URL",
        "sources.hr.path: required for a CSV source",
        "sources.hr.rate_limit_share: must be above 0 and at most 1",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    assert!(
        !err.contains("pw@"),
        "a credential in the URL was echoed:\n{err}"
    );
}

#[test]
fn sources_list_shows_each_source_with_its_kind_and_address() {
    let out = binary()
        .args(["sources", "list"])
        .env("IDBRIDGE_SOURCES__OKTA__KIND", "okta")
        .env("IDBRIDGE_SOURCES__OKTA__BASE_URL", "https://acme.okta.com")
        .env("IDBRIDGE_SOURCES__OKTA__TOKEN", "x")
        .env("IDBRIDGE_SOURCES__ENTRA__KIND", "scim")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "entra\tscim\t-\nokta\tokta\thttps://acme.okta.com\n"
    );
}
