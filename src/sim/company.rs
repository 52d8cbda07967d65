//! A seeded company for `idbridge demo` and its benchmark: a few thousand people with the mix a
//! real organisation has (leavers, long-inactive staff, people who never logged in, returners,
//! administrators, service accounts, a contractor domain), and the code that puts the same
//! people into the Okta and Confluence Data Center simulators.
//!
//! The same seed and size give the same people, so the demo's figures are repeatable.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::sim::common::SimRng;
use crate::sim::confluence_dc::DcSim;
use crate::sim::okta::OktaSim;

/// The group that grants a Confluence licence in the seeded company.
pub const LICENCE_GROUP: &str = "confluence-users";
/// Confluence administrators: protected, never touched by a rule.
pub const ADMIN_GROUP: &str = "confluence-administrators";
/// Accounts that are not people (bots, integrations); the example rules spare them.
pub const SERVICE_GROUP: &str = "service-accounts";
/// The staff email domain.
pub const STAFF_DOMAIN: &str = "example.com";
/// The contractors' email domain.
pub const CONTRACTOR_DOMAIN: &str = "contractor.example.net";

/// What a person is in the story the demo tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Employed and signing in.
    Active,
    /// Deprovisioned in Okta: left the company.
    Leaver,
    /// Suspended in Okta (on leave); not a leaver.
    Suspended,
    /// Active in Okta but no sign-in for more than 90 days.
    LongInactive,
    /// Created more than 30 days ago and never signed in.
    NeverLoggedIn,
    /// Long inactive now; signs in again during the demo.
    Returner,
    /// A Confluence administrator (one of them has left: still protected).
    Admin,
    /// A bot or integration account, only in Confluence.
    ServiceAccount,
    /// On the contractor domain, signing in.
    Contractor,
    /// On the contractor domain, no sign-in for 31 to 89 days.
    IdleContractor,
}

impl Role {
    /// A short label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Role::Active => "active staff",
            Role::Leaver => "leavers (deprovisioned in Okta)",
            Role::Suspended => "suspended in Okta",
            Role::LongInactive => "inactive for more than 90 days",
            Role::NeverLoggedIn => "never logged in",
            Role::Returner => "returners (inactive, will sign in again)",
            Role::Admin => "Confluence administrators",
            Role::ServiceAccount => "service accounts (Confluence only)",
            Role::Contractor => "contractors",
            Role::IdleContractor => "contractors idle 31-89 days",
        }
    }
}

/// One person of the company. Department groups are named `team-…` so that none of them
/// nests into the simulator's built-in licence group (`engineering` does).
#[derive(Clone, Debug)]
pub struct Member {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub department: &'static str,
    pub role: Role,
    /// Confluence groups.
    pub groups: Vec<&'static str>,
    /// Okta status (`ACTIVE`, `DEPROVISIONED`, …); `None`: not in Okta.
    pub okta_status: Option<&'static str>,
    pub created: DateTime<Utc>,
    /// The latest successful sign-in (Okta and Confluence alike), if any.
    pub last_login: Option<DateTime<Utc>>,
}

/// The company's shape.
#[derive(Clone, Debug)]
pub struct CompanyOptions {
    /// How many people (at least 20: the fixed cast needs 13).
    pub people: usize,
    pub seed: u64,
}

impl Default for CompanyOptions {
    fn default() -> Self {
        Self {
            people: 3_000,
            seed: 2026,
        }
    }
}

/// Where each member landed in the simulators.
#[derive(Debug, Default)]
pub struct Seeded {
    /// Confluence user key by username.
    pub keys: BTreeMap<String, String>,
    /// Okta user id by username (members in Okta only).
    pub okta_ids: BTreeMap<String, String>,
}

const FIRST: &[&str] = &[
    "amelia", "ben", "chloe", "daniel", "elena", "farid", "grace", "hugo", "ines", "jonas", "kira",
    "liam", "maya", "noah", "olga", "pablo", "quinn", "rosa", "samir", "tara", "umar", "vera",
    "wen", "xavier", "yara", "zoe",
];
const LAST: &[&str] = &[
    "adams", "becker", "costa", "dubois", "evans", "fischer", "garcia", "hansen", "ito", "jensen",
    "kowalski", "larsen", "moreau", "novak", "okafor", "petrov", "quispe", "rossi", "silva",
    "tanaka", "ueda", "varga", "weber", "xu", "young", "zimmer",
];
const DEPARTMENTS: &[(&str, &str)] = &[
    ("Engineering", "team-engineering"),
    ("Sales", "team-sales"),
    ("Marketing", "team-marketing"),
    ("Finance", "team-finance"),
    ("Support", "team-support"),
];

/// The company as of `now`.
pub fn generate(opts: &CompanyOptions, now: DateTime<Utc>) -> Vec<Member> {
    let mut rng = SimRng::new(opts.seed);
    let people = opts.people.max(20);
    let days = |rng: &mut SimRng, lo: i64, hi: i64| -> DateTime<Utc> {
        let span = u64::try_from(hi - lo).unwrap_or(0);
        let d = lo + i64::try_from(rng.below(span + 1)).unwrap_or(0);
        let minutes = i64::try_from(rng.below(24 * 60)).unwrap_or(0);
        now - Duration::days(d) - Duration::minutes(minutes)
    };
    let mut out = Vec::with_capacity(people);
    for i in 0..people {
        let role = match i {
            0..=3 => Role::Admin,
            4..=9 => Role::ServiceAccount,
            10..=12 => Role::Returner,
            _ => {
                let roll = rng.below(1000);
                match roll {
                    0..=24 => Role::Leaver,
                    25..=34 => Role::Suspended,
                    35..=84 => Role::LongInactive,
                    85..=104 => Role::NeverLoggedIn,
                    105..=174 => Role::Contractor,
                    175..=204 => Role::IdleContractor,
                    _ => Role::Active,
                }
            }
        };
        let first = FIRST[(i + usize::try_from(rng.below(7)).unwrap_or(0)) % FIRST.len()];
        let last =
            LAST[(i / FIRST.len() + usize::try_from(rng.below(5)).unwrap_or(0)) % LAST.len()];
        let (department, dept_group) = DEPARTMENTS[usize::try_from(rng.below(5)).unwrap_or(0)];
        let (username, domain) = match role {
            Role::ServiceAccount => (
                format!("svc-{}-{i}", dept_group.trim_start_matches("team-")),
                STAFF_DOMAIN,
            ),
            Role::Contractor | Role::IdleContractor => {
                (format!("{first}.{last}.{i}"), CONTRACTOR_DOMAIN)
            }
            _ => (format!("{first}.{last}.{i}"), STAFF_DOMAIN),
        };
        let mut groups = vec![LICENCE_GROUP, dept_group];
        let created = days(&mut rng, 400, 2_000);
        let (okta_status, created, last_login) = match role {
            Role::Active | Role::Contractor => {
                (Some("ACTIVE"), created, Some(days(&mut rng, 0, 30)))
            }
            Role::Leaver => (Some("DEPROVISIONED"), created, Some(days(&mut rng, 10, 60))),
            Role::Suspended => (Some("SUSPENDED"), created, Some(days(&mut rng, 20, 80))),
            Role::LongInactive => (Some("ACTIVE"), created, Some(days(&mut rng, 120, 380))),
            Role::Returner => (Some("ACTIVE"), created, Some(days(&mut rng, 150, 250))),
            Role::IdleContractor => (Some("ACTIVE"), created, Some(days(&mut rng, 31, 89))),
            Role::NeverLoggedIn => (Some("ACTIVE"), days(&mut rng, 45, 300), None),
            Role::ServiceAccount => (None, created, Some(days(&mut rng, 100, 500))),
            Role::Admin => {
                groups.push(ADMIN_GROUP);
                // The last administrator has left: protected all the same.
                let status = if i == 3 { "DEPROVISIONED" } else { "ACTIVE" };
                (Some(status), created, Some(days(&mut rng, 0, 20)))
            }
        };
        if role == Role::ServiceAccount {
            groups.push(SERVICE_GROUP);
        }
        out.push(Member {
            email: format!("{username}@{domain}"),
            username,
            first_name: capitalise(first),
            last_name: capitalise(last),
            department,
            role,
            groups,
            okta_status,
            created,
            last_login,
        });
    }
    out
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// How many members each role has, in role order.
pub fn census(members: &[Member]) -> BTreeMap<Role, usize> {
    let mut out = BTreeMap::new();
    for m in members {
        *out.entry(m.role).or_insert(0) += 1;
    }
    out
}

/// Puts `members` into both simulators: every member into Confluence, members with an Okta
/// status into Okta (with their department as a custom attribute).
pub fn seed(members: &[Member], dc: &DcSim, okta: &OktaSim) -> Result<Seeded, String> {
    let mut seeded = Seeded::default();
    let mut groups: Vec<&str> = members.iter().flat_map(|m| m.groups.clone()).collect();
    groups.sort_unstable();
    groups.dedup();
    for g in groups {
        if !dc.has_group(g) {
            dc.add_group(g)?;
        }
    }
    for m in members {
        let key = dc.add_user(&m.username, &m.email, &m.groups, m.created, m.last_login)?;
        seeded.keys.insert(m.username.clone(), key);
        if let Some(status) = m.okta_status {
            let id = okta.add_user(&m.email, &m.first_name, &m.last_name);
            okta.update_user(&id, |u| {
                u.status = status.to_owned();
                u.created = m.created;
                u.last_login = m.last_login;
                u.extra.insert("department".into(), m.department.to_owned());
            });
            seeded.okta_ids.insert(m.username.clone(), id);
        }
    }
    Ok(seeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_same_seed_gives_the_same_company_and_every_username_is_unique() {
        let opts = CompanyOptions::default();
        let a = generate(&opts, now());
        let b = generate(&opts, now());
        assert_eq!(a.len(), 3_000);
        let names = |m: &[Member]| m.iter().map(|m| m.username.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b));
        let mut unique = names(&a);
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), a.len());
    }

    #[test]
    fn the_company_has_every_role_the_demo_needs_in_plausible_shares() {
        let members = generate(&CompanyOptions::default(), now());
        let census = census(&members);
        assert_eq!(census[&Role::Admin], 4);
        assert_eq!(census[&Role::ServiceAccount], 6);
        assert_eq!(census[&Role::Returner], 3);
        for (role, lo, hi) in [
            (Role::Leaver, 40, 110),
            (Role::LongInactive, 100, 200),
            (Role::NeverLoggedIn, 30, 90),
            (Role::Contractor, 150, 270),
            (Role::IdleContractor, 50, 130),
            (Role::Suspended, 10, 60),
        ] {
            let n = census[&role];
            assert!((lo..=hi).contains(&n), "{role:?}: {n}");
        }
        for m in &members {
            let inactive_days = m.last_login.map(|t| (now() - t).num_days());
            match m.role {
                Role::LongInactive | Role::Returner => assert!(inactive_days > Some(90)),
                Role::Active | Role::Contractor => assert!(inactive_days <= Some(31)),
                Role::NeverLoggedIn => {
                    assert_eq!(m.last_login, None);
                    assert!((now() - m.created).num_days() > 30);
                }
                Role::IdleContractor => {
                    assert!(m.email.ends_with(CONTRACTOR_DOMAIN));
                    assert!((Some(31)..=Some(90)).contains(&inactive_days));
                }
                _ => {}
            }
            assert!(m.groups.contains(&LICENCE_GROUP));
        }
    }
}
