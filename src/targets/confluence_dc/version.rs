//! Confluence Data Center versions and what each can do: version parsing (`9.3.2`,
//! `8.5.4-rc1`, `7.13`) and the capability table built from the version, the legacy Remote
//! API's availability, a configured Crowd server and a configured last-login database.

use std::fmt;

use super::super::{Capabilities, Capability, LastLoginSource, Support};

/// A Confluence version, compared numerically (`10.2` > `9.3` > `8.10` > `8.4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses `9.3.2`, `8.5.4-rc1`, `10.2.0-m12`, `7.13` or `9`; `None` when the text does
    /// not start with a number.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        let mut parts = [0u32; 3];
        let mut seen = 0usize;
        for (i, piece) in text.split('.').take(3).enumerate() {
            let digits: String = piece.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() {
                break;
            }
            parts[i] = digits.parse().ok()?;
            seen = i + 1;
            if digits.len() != piece.len() {
                break; // a qualifier such as `-rc1` ends the numeric part
            }
        }
        (seen > 0).then(|| Self::new(parts[0], parts[1], parts[2]))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Versions that change what the REST API offers.
pub const V8_2: Version = Version::new(8, 2, 0);
pub const V8_4: Version = Version::new(8, 4, 0);
pub const V9_0: Version = Version::new(9, 0, 0);
pub const V9_3: Version = Version::new(9, 3, 0);
pub const V10_2: Version = Version::new(10, 2, 0);

/// How idbridge talks to the legacy Remote API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `POST /rpc/json-rpc/confluenceservice-v2/<method>`, Basic auth, no token.
    JsonRpc,
    /// `POST /rpc/xmlrpc`, `confluence2.login` then `confluence2.<method>(token, …)`.
    XmlRpc,
}

impl Transport {
    /// The name used in capability reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::JsonRpc => "JSON-RPC",
            Transport::XmlRpc => "XML-RPC",
        }
    }
}

/// Whether the legacy Remote API can be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteApi {
    /// `remote_api = "off"`.
    Off,
    /// Allowed, but the instance does not offer it; says why.
    Unavailable(String),
    /// Usable through this transport.
    Enabled(Transport),
}

/// Whether a configured Crowd server can rename users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Crowd {
    /// No `crowd` section.
    NotConfigured,
    /// Configured and answering; `directory` is the Confluence directory it backs, if named.
    Ready { directory: Option<String> },
    /// Configured but not usable (wrong application credentials, unreachable); says why.
    Unavailable(String),
}

/// Everything the capability table depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    pub version: Version,
    pub remote_api: RemoteApi,
    pub crowd: Crowd,
    /// Whether `last_login_database` is configured.
    pub last_login_database: bool,
}

/// The capability table for one instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub capabilities: Capabilities,
    pub last_login: LastLoginSource,
    pub notes: Vec<String>,
}

/// Why a Remote API fallback is not there, for `Unsupported` reasons.
fn remote_why(remote: &RemoteApi) -> String {
    match remote {
        RemoteApi::Off => "the Remote API fallback is switched off (remote_api = \"off\")".into(),
        RemoteApi::Unavailable(why) => format!("the Remote API is not available: {why}"),
        RemoteApi::Enabled(_) => String::new(),
    }
}

/// What the instance can do, capability by capability.
pub fn capability_table(f: &Features) -> Table {
    let v = f.version;
    let mut caps = Capabilities::default();
    let mut notes = Vec::new();
    let remote = match &f.remote_api {
        RemoteApi::Enabled(t) => Some(*t),
        _ => None,
    };
    let via_remote = |method: &str| -> Option<Support> {
        remote.map(|t| Support::via(format!("Remote API {method} ({})", t.as_str())))
    };

    caps.set(
        Capability::ListAccounts,
        if v >= V8_4 {
            Support::via("REST GET /rest/api/user/list")
        } else if let Some(t) = remote {
            Support::via(format!(
                "Remote API getActiveUsers ({}), partial fallback: usernames from the Remote API, \
                 each account then read by REST; deactivated accounts may be missing \
                 (GET /rest/api/user/list needs Confluence 8.4+)",
                t.as_str()
            ))
        } else {
            Support::not("needs Confluence 8.4+ (GET /rest/api/user/list)")
        },
    );
    caps.set(
        Capability::GetAccount,
        Support::via("REST GET /rest/api/user?key={userKey}&expand=status"),
    );
    caps.set(
        Capability::ListGroups,
        Support::via("REST GET /rest/api/group"),
    );
    caps.set(
        Capability::GroupMembers,
        Support::via("REST GET /rest/api/group/{group}/member"),
    );
    caps.set(
        Capability::NestedGroups,
        if v >= V9_0 {
            Support::via("REST GET /rest/api/group/{group}/groupmember")
        } else {
            Support::not("needs Confluence 9.x (GET /rest/api/group/{group}/groupmember)")
        },
    );
    caps.set(
        Capability::LicenceUsage,
        if v >= V9_3 {
            Support::via(
                "REST global permissions GET /rest/api/permissions (9.3+) and licence counters \
                 /rest/license/1.0/license/{maxUsers,userCount}",
            )
        } else {
            Support::via(
                "configured licence groups (no global-permission REST before 9.3) and licence \
                 counters /rest/license/1.0/license/{maxUsers,userCount}",
            )
        },
    );

    let last_login = if v >= V10_2 {
        caps.set(
            Capability::LastLogin,
            Support::via("REST GET /rest/api/admin/users/list/active?expand=lastLogin (10.2+)"),
        );
        LastLoginSource::Rest
    } else if f.last_login_database {
        caps.set(
            Capability::LastLogin,
            Support::via("Confluence database, read-only (last_login_database)"),
        );
        LastLoginSource::Database
    } else {
        caps.set(
            Capability::LastLogin,
            Support::not(
                "no last-login REST before Confluence 10.2 and no last_login_database \
                 configured; idbridge relies on the identity providers' sign-in data",
            ),
        );
        LastLoginSource::IdentityProviders
    };

    let gated = |cap_rest: &str, method: &str| -> Support {
        if v >= V8_2 {
            Support::via(cap_rest)
        } else if let Some(s) = via_remote(method) {
            s
        } else {
            Support::not(format!(
                "needs Confluence 8.2+ ({cap_rest}), and {}",
                remote_why(&f.remote_api)
            ))
        }
    };
    caps.set(
        Capability::Disable,
        gated(
            "REST PUT /rest/api/admin/user/{user}/disable",
            "deactivateUser",
        ),
    );
    caps.set(
        Capability::Enable,
        gated(
            "REST PUT /rest/api/admin/user/{user}/enable",
            "reactivateUser",
        ),
    );
    caps.set(
        Capability::AddToGroup,
        gated(
            "REST PUT /rest/api/user/{user}/group/{group}",
            "addUserToGroup",
        ),
    );
    caps.set(
        Capability::RemoveFromGroup,
        gated(
            "REST DELETE /rest/api/user/{user}/group/{group}",
            "removeUserFromGroup",
        ),
    );

    let crowd_via = match &f.crowd {
        Crowd::Ready { directory } => Some(match directory {
            Some(d) => format!(
                "Crowd REST POST /rest/usermanagement/1/user/rename for users Crowd holds \
                 (directory `{d}`)"
            ),
            None => "Crowd REST POST /rest/usermanagement/1/user/rename for users Crowd holds"
                .to_owned(),
        }),
        _ => None,
    };
    let rename = match (crowd_via, remote) {
        (Some(c), Some(t)) => Support::via(format!(
            "{c}; other users through the Remote API renameUser ({})",
            t.as_str()
        )),
        (Some(c), None) => Support::via(c),
        (None, Some(t)) => Support::via(format!("Remote API renameUser ({})", t.as_str())),
        (None, None) => {
            let mut why =
                "no REST rename in Confluence DC; enable the Remote API or configure Crowd"
                    .to_owned();
            if let RemoteApi::Unavailable(r) = &f.remote_api {
                why.push_str(&format!(" (Remote API: {r})"));
            }
            if let Crowd::Unavailable(r) = &f.crowd {
                why.push_str(&format!(" (Crowd: {r})"));
            }
            Support::not(why)
        }
    };
    caps.set(Capability::Rename, rename);
    caps.set(
        Capability::ChangeDirectory,
        Support::not(
            "Confluence DC has no API to move an account to another user directory; \
             create the account in the other directory instead",
        ),
    );
    caps.set(
        Capability::Delete,
        if v >= V8_2 {
            Support::via("REST DELETE /rest/api/admin/user/{user} (asynchronous long task)")
        } else {
            Support::not("needs Confluence 8.2+ (DELETE /rest/api/admin/user/{user})")
        },
    );
    caps.set(
        Capability::CreateAccount,
        if v >= V8_4 {
            Support::via("REST POST /rest/api/admin/user")
        } else {
            Support::not("needs Confluence 8.4+ (POST /rest/api/admin/user)")
        },
    );
    caps.set(
        Capability::UpdateProfile,
        if v >= V9_0 {
            Support::via("REST PUT /rest/api/admin/user/{user}")
        } else {
            Support::not("needs Confluence 9.x (PUT /rest/api/admin/user/{user})")
        },
    );

    match &f.remote_api {
        RemoteApi::Off => {}
        RemoteApi::Unavailable(why) => notes.push(format!("Remote API unavailable: {why}")),
        RemoteApi::Enabled(t) => notes.push(format!(
            "legacy Remote API enabled ({}); used where REST lacks a call",
            t.as_str()
        )),
    }
    if let Crowd::Unavailable(why) = &f.crowd {
        notes.push(format!("Crowd unavailable: {why}"));
    }
    if v < V8_2 && remote.is_none() {
        notes.push(format!(
            "Confluence {v} has no REST deactivation or membership changes (8.2+); {}",
            remote_why(&f.remote_api)
        ));
    }
    Table {
        capabilities: caps,
        last_login,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn features(version: &str) -> Features {
        Features {
            version: v(version),
            remote_api: RemoteApi::Off,
            crowd: Crowd::NotConfigured,
            last_login_database: false,
        }
    }

    fn via(t: &Table, cap: Capability) -> String {
        match t.capabilities.get(cap) {
            Support::Supported { via } => via,
            Support::Unsupported { why } => panic!("{cap} unsupported: {why}"),
        }
    }

    fn why(t: &Table, cap: Capability) -> String {
        match t.capabilities.get(cap) {
            Support::Unsupported { why } => why,
            Support::Supported { via } => panic!("{cap} supported via {via}"),
        }
    }

    #[test]
    fn versions_parse_with_qualifiers_and_compare_numerically() {
        assert_eq!(Version::parse("9.3.2"), Some(Version::new(9, 3, 2)));
        assert_eq!(Version::parse("8.5.4-rc1"), Some(Version::new(8, 5, 4)));
        assert_eq!(Version::parse("10.2.0-m12"), Some(Version::new(10, 2, 0)));
        assert_eq!(Version::parse(" 7.13 "), Some(Version::new(7, 13, 0)));
        assert_eq!(Version::parse("9"), Some(Version::new(9, 0, 0)));
        assert_eq!(Version::parse("v8.4"), Some(Version::new(8, 4, 0)));
        assert_eq!(
            Version::parse("8.10-SNAPSHOT"),
            Some(Version::new(8, 10, 0))
        );
        assert_eq!(Version::parse(""), None);
        assert_eq!(Version::parse("latest"), None);
        assert_eq!(Version::parse("99999999999.1"), None);
        assert!(v("8.10") > v("8.4"));
        assert!(v("10.2") > v("9.3.2"));
        assert!(v("8.1.9") < V8_2);
        assert_eq!(v("8.2").to_string(), "8.2.0");
    }

    #[test]
    fn confluence_7_13_without_the_remote_api_can_only_read_and_count() {
        let t = capability_table(&features("7.13.20"));
        assert_eq!(
            t.capabilities.get(Capability::ListAccounts),
            Support::not("needs Confluence 8.4+ (GET /rest/api/user/list)")
        );
        assert!(via(&t, Capability::GetAccount).contains("/rest/api/user?key="));
        assert!(via(&t, Capability::ListGroups).contains("/rest/api/group"));
        assert!(via(&t, Capability::GroupMembers).contains("/member"));
        assert!(why(&t, Capability::NestedGroups).contains("9.x"));
        assert!(via(&t, Capability::LicenceUsage).contains("configured licence groups"));
        for cap in [
            Capability::Disable,
            Capability::Enable,
            Capability::AddToGroup,
            Capability::RemoveFromGroup,
        ] {
            let w = why(&t, cap);
            assert!(w.contains("needs Confluence 8.2+"), "{cap}: {w}");
            assert!(w.contains("remote_api = \"off\""), "{cap}: {w}");
        }
        assert_eq!(
            why(&t, Capability::Rename),
            "no REST rename in Confluence DC; enable the Remote API or configure Crowd"
        );
        assert!(why(&t, Capability::ChangeDirectory).contains("no API"));
        assert!(why(&t, Capability::Delete).contains("8.2+"));
        assert!(why(&t, Capability::CreateAccount).contains("8.4+"));
        assert!(why(&t, Capability::UpdateProfile).contains("9.x"));
        assert_eq!(t.last_login, LastLoginSource::IdentityProviders);
        assert!(why(&t, Capability::LastLogin).contains("10.2"));
    }

    #[test]
    fn confluence_7_13_with_the_remote_api_falls_back_to_it_and_says_listing_is_partial() {
        let mut f = features("7.13");
        f.remote_api = RemoteApi::Enabled(Transport::JsonRpc);
        let t = capability_table(&f);
        let list = via(&t, Capability::ListAccounts);
        assert!(
            list.starts_with("Remote API getActiveUsers (JSON-RPC), partial"),
            "{list}"
        );
        assert_eq!(
            via(&t, Capability::Disable),
            "Remote API deactivateUser (JSON-RPC)"
        );
        assert_eq!(
            via(&t, Capability::Enable),
            "Remote API reactivateUser (JSON-RPC)"
        );
        assert_eq!(
            via(&t, Capability::AddToGroup),
            "Remote API addUserToGroup (JSON-RPC)"
        );
        assert_eq!(
            via(&t, Capability::RemoveFromGroup),
            "Remote API removeUserFromGroup (JSON-RPC)"
        );
        assert_eq!(
            via(&t, Capability::Rename),
            "Remote API renameUser (JSON-RPC)"
        );
        // No Remote API fallback for these.
        assert!(why(&t, Capability::Delete).contains("8.2+"));
        assert!(why(&t, Capability::CreateAccount).contains("8.4+"));
    }

    #[test]
    fn confluence_8_1_with_an_unavailable_remote_api_names_why_in_each_gap() {
        let mut f = features("8.1.4");
        f.remote_api = RemoteApi::Unavailable("the instance answered 403".into());
        let t = capability_table(&f);
        let w = why(&t, Capability::Disable);
        assert!(w.contains("8.2+") && w.contains("answered 403"), "{w}");
        let r = why(&t, Capability::Rename);
        assert!(
            r.starts_with("no REST rename in Confluence DC") && r.contains("answered 403"),
            "{r}"
        );
        assert!(t.notes.iter().any(|n| n.contains("answered 403")));
    }

    #[test]
    fn confluence_8_2_adds_rest_deactivation_membership_and_delete_but_not_listing() {
        let t = capability_table(&features("8.2.0"));
        assert_eq!(
            via(&t, Capability::Disable),
            "REST PUT /rest/api/admin/user/{user}/disable"
        );
        assert_eq!(
            via(&t, Capability::Enable),
            "REST PUT /rest/api/admin/user/{user}/enable"
        );
        assert_eq!(
            via(&t, Capability::AddToGroup),
            "REST PUT /rest/api/user/{user}/group/{group}"
        );
        assert_eq!(
            via(&t, Capability::RemoveFromGroup),
            "REST DELETE /rest/api/user/{user}/group/{group}"
        );
        assert!(via(&t, Capability::Delete).contains("asynchronous"));
        assert!(why(&t, Capability::ListAccounts).contains("8.4+"));
        assert!(why(&t, Capability::CreateAccount).contains("8.4+"));
    }

    #[test]
    fn confluence_8_4_lists_all_users_and_creates_accounts() {
        let t = capability_table(&features("8.4.5"));
        assert_eq!(
            via(&t, Capability::ListAccounts),
            "REST GET /rest/api/user/list"
        );
        assert_eq!(
            via(&t, Capability::CreateAccount),
            "REST POST /rest/api/admin/user"
        );
        assert!(why(&t, Capability::NestedGroups).contains("9.x"));
        assert!(why(&t, Capability::UpdateProfile).contains("9.x"));
    }

    #[test]
    fn confluence_9_3_reads_licence_groups_from_global_permissions_and_nests_groups() {
        let t = capability_table(&features("9.3.2"));
        assert!(via(&t, Capability::LicenceUsage).contains("/rest/api/permissions"));
        assert!(via(&t, Capability::NestedGroups).contains("groupmember"));
        assert!(via(&t, Capability::UpdateProfile).contains("PUT /rest/api/admin/user"));
        assert_eq!(t.last_login, LastLoginSource::IdentityProviders);
    }

    #[test]
    fn last_login_comes_from_rest_on_10_2_else_the_database_when_configured() {
        let t = capability_table(&features("10.2.1"));
        assert_eq!(t.last_login, LastLoginSource::Rest);
        assert!(via(&t, Capability::LastLogin).contains("expand=lastLogin"));
        let mut f = features("9.3");
        f.last_login_database = true;
        let t = capability_table(&f);
        assert_eq!(t.last_login, LastLoginSource::Database);
        assert!(via(&t, Capability::LastLogin).contains("last_login_database"));
        // REST wins over the database on 10.2+.
        let mut f = features("10.2");
        f.last_login_database = true;
        assert_eq!(capability_table(&f).last_login, LastLoginSource::Rest);
    }

    #[test]
    fn rename_goes_through_crowd_when_configured_and_names_the_directory() {
        let mut f = features("9.3");
        f.crowd = Crowd::Ready {
            directory: Some("Crowd Server".into()),
        };
        let t = capability_table(&f);
        let r = via(&t, Capability::Rename);
        assert!(
            r.starts_with("Crowd REST POST /rest/usermanagement/1/user/rename"),
            "{r}"
        );
        assert!(r.contains("`Crowd Server`"), "{r}");
        assert!(!r.contains("Remote API"), "{r}");

        f.remote_api = RemoteApi::Enabled(Transport::XmlRpc);
        let r = via(&capability_table(&f), Capability::Rename);
        assert!(
            r.contains("Crowd REST") && r.contains("renameUser (XML-RPC)"),
            "{r}"
        );

        f.remote_api = RemoteApi::Off;
        f.crowd = Crowd::Unavailable("Crowd rejected the application credentials (401)".into());
        let r = why(&capability_table(&f), Capability::Rename);
        assert!(r.contains("configure Crowd") && r.contains("401"), "{r}");
    }

    #[test]
    fn change_directory_is_unsupported_on_every_version() {
        for version in ["7.13", "8.1", "8.2", "8.4", "9.3", "10.2"] {
            let mut f = features(version);
            f.remote_api = RemoteApi::Enabled(Transport::JsonRpc);
            f.crowd = Crowd::Ready { directory: None };
            let t = capability_table(&f);
            assert!(
                !t.capabilities
                    .get(Capability::ChangeDirectory)
                    .is_supported(),
                "{version}"
            );
            // Every capability has an explicit entry, never the generic default.
            for (cap, s) in t.capabilities.iter() {
                if let Support::Unsupported { why } = s {
                    assert_ne!(why, "not offered by this connector", "{cap} on {version}");
                }
            }
        }
    }
}
