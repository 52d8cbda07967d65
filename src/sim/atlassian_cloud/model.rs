//! The simulated organization's state: directories, users, groups, seats, and the seeded
//! population that fills them. Users and groups live in vectors in a fixed order (listing
//! order) with id indexes beside them, so a page of a 100,000-user listing is a slice walk.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::sim::common::SimRng;

/// Whether an Atlassian account can be used at all (account-wide, user-management API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Active,
    Inactive,
    Closed,
}

impl AccountStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Inactive => "inactive",
            AccountStatus::Closed => "closed",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(AccountStatus::Active),
            "inactive" => Some(AccountStatus::Inactive),
            "closed" => Some(AccountStatus::Closed),
            _ => None,
        }
    }
}

/// A user's membership in its directory (org-level access; suspend/restore).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MembershipStatus {
    Active,
    Suspended,
}

impl MembershipStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipStatus::Active => "active",
            MembershipStatus::Suspended => "suspended",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(MembershipStatus::Active),
            "suspended" => Some(MembershipStatus::Suspended),
            _ => None,
        }
    }
}

/// One identity directory of the org.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimDirectory {
    pub id: String,
    pub name: String,
    /// Fed by an identity provider (SCIM): its users and groups are read-only here.
    pub synced: bool,
}

/// A user of the simulated org (a snapshot when handed to tests).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimUser {
    pub account_id: String,
    pub email: String,
    pub name: String,
    pub nickname: String,
    pub account_status: AccountStatus,
    pub membership_status: MembershipStatus,
    /// Index into the directories (0 local, 1 identity provider).
    pub directory: usize,
    /// `managementSource = synced` (read-only here) rather than `invited`.
    pub synced: bool,
    pub added_to_org: DateTime<Utc>,
    /// Last Confluence visit; `None` for never.
    pub last_active: Option<DateTime<Utc>>,
    /// Group indexes.
    pub groups: BTreeSet<usize>,
    pub admin: bool,
    /// Removed from the directory; kept as a tombstone so cursor offsets stay valid.
    pub removed: bool,
}

/// A group of the simulated org.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub directory: usize,
    /// Created by IdP sync: memberships are read-only here.
    pub synced: bool,
    /// Membership grants the Confluence user role on the site (a licence).
    pub grants_confluence: bool,
    /// Member user indexes.
    pub members: BTreeSet<usize>,
}

/// The whole simulated organization.
#[derive(Clone, Debug)]
pub struct World {
    pub org_id: String,
    pub org_name: String,
    pub site_id: String,
    pub site_url: String,
    pub directories: Vec<SimDirectory>,
    pub users: Vec<SimUser>,
    pub groups: Vec<SimGroup>,
    pub user_index: HashMap<String, usize>,
    pub group_index: HashMap<String, usize>,
    /// Confluence seats; `None` is unlimited.
    pub seats: Option<u64>,
}

const FIRST: &[&str] = &[
    "Ada", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Lars", "Maya", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Viktor",
    "Wen", "Ximena", "Yusuf", "Zoe",
];
const LAST: &[&str] = &[
    "Abbott", "Berg", "Castro", "Diaz", "Eriksen", "Fischer", "Garcia", "Haas", "Ito", "Jensen",
    "Kowalski", "Lopez", "Meyer", "Nakamura", "Okafor", "Petrov", "Quist", "Rossi", "Schmidt",
    "Tanaka", "Ulrich", "Varga", "Weber", "Yilmaz", "Zhang",
];

/// The employee email domain of the seeded population.
pub const STAFF_DOMAIN: &str = "example.com";
/// The contractor email domain of the seeded population.
pub const CONTRACTOR_DOMAIN: &str = "contractors.example.net";

impl World {
    /// A reproducible population of `users` users for `seed`, anchored at `anchor` (last-active
    /// times are days before it).
    pub fn seeded(
        seed: u64,
        users: usize,
        org_id: Option<&str>,
        idp_share: f64,
        seats: Option<u64>,
        anchor: DateTime<Utc>,
    ) -> World {
        let mut rng = SimRng::new(seed);
        let uuid = SimRng::uuid;
        let org_id = org_id.map_or_else(|| uuid(&mut rng), str::to_owned);
        let cloud_id = uuid(&mut rng);
        let directories = vec![
            SimDirectory {
                id: uuid(&mut rng),
                name: "Local directory".into(),
                synced: false,
            },
            SimDirectory {
                id: uuid(&mut rng),
                name: "Okta (SCIM)".into(),
                synced: true,
            },
        ];
        let mut world = World {
            org_name: "Example Org".into(),
            site_id: format!("ari:cloud:confluence::site/{cloud_id}"),
            site_url: "example.atlassian.net/wiki".into(),
            org_id,
            directories,
            users: Vec::with_capacity(users),
            groups: Vec::new(),
            user_index: HashMap::with_capacity(users),
            group_index: HashMap::new(),
            seats,
        };
        let local_groups: &[(&str, bool)] = &[
            ("confluence-users", true),
            ("site-admins", true),
            ("engineering", false),
            ("marketing", false),
            ("sales", false),
            ("finance", false),
            ("support", false),
            ("contractors", false),
        ];
        for (name, grants) in local_groups {
            let id = uuid(&mut rng);
            world.add_group(id, name, 0, false, *grants);
        }
        let idp = idp_share > 0.0;
        if idp {
            for (name, grants) in [
                ("okta-confluence-users", true),
                ("okta-all-staff", false),
                ("okta-engineering", false),
            ] {
                let id = uuid(&mut rng);
                world.add_group(id, name, 1, true, grants);
            }
        }
        let admins = (users / 100).max(2).min(users);
        let day = |d: u64| Duration::days(d as i64);
        for i in 0..users {
            let account_id = rng.hex(24);
            let first = *rng.pick(FIRST);
            let last = *rng.pick(LAST);
            let contractor = i >= admins && rng.chance(0.10);
            let domain = if contractor {
                CONTRACTOR_DOMAIN
            } else {
                STAFF_DOMAIN
            };
            let email = format!(
                "{}.{}{}@{domain}",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase(),
                i + 1
            );
            let synced = i >= admins && idp && rng.chance(idp_share);
            let added_days = 30 + rng.below(1500);
            let added_to_org =
                anchor - day(added_days) - Duration::seconds(rng.below(86_400) as i64);
            let mut account_status = AccountStatus::Active;
            let mut membership_status = MembershipStatus::Active;
            let mut licensed = true;
            let roll = rng.below(100);
            let last_active = if i < admins {
                Some(anchor - day(rng.below(7)) - Duration::seconds(rng.below(86_400) as i64))
            } else {
                match roll {
                    // Suspended in the org: keeps groups, not billable.
                    0..=7 => {
                        membership_status = MembershipStatus::Suspended;
                        Some(anchor - day(60 + rng.below(400)))
                    }
                    // Deactivated Atlassian accounts.
                    8..=12 => {
                        account_status = AccountStatus::Inactive;
                        Some(anchor - day(200 + rng.below(400)))
                    }
                    13 => {
                        account_status = AccountStatus::Closed;
                        None
                    }
                    // Licensed but never visited Confluence.
                    14..=20 => None,
                    // Long inactive: more than 180 days.
                    21..=32 => Some(anchor - day(181 + rng.below(540))),
                    // Returners: in the org for long, back in the last week.
                    33..=35 => Some(anchor - day(rng.below(7))),
                    // No Confluence access at all.
                    36..=40 => {
                        licensed = false;
                        None
                    }
                    _ => Some(
                        anchor - day(rng.below(90)) - Duration::seconds(rng.below(86_400) as i64),
                    ),
                }
            };
            let last_active = last_active.map(|t| t.max(added_to_org));
            let directory = usize::from(synced);
            let idx = world.users.len();
            world.user_index.insert(account_id.clone(), idx);
            world.users.push(SimUser {
                account_id,
                email,
                name: format!("{first} {last}"),
                nickname: first.to_owned(),
                account_status,
                membership_status,
                directory,
                synced,
                added_to_org,
                last_active,
                groups: BTreeSet::new(),
                admin: i < admins,
                removed: false,
            });
            let mut join = |name: &str| {
                if let Some(g) = world.group_index_by_name(name) {
                    world.groups[g].members.insert(idx);
                    world.users[idx].groups.insert(g);
                }
            };
            if synced {
                join("okta-all-staff");
                if licensed {
                    join("okta-confluence-users");
                }
                if roll.is_multiple_of(3) {
                    join("okta-engineering");
                }
            } else {
                if licensed {
                    join("confluence-users");
                }
                if i < admins {
                    join("site-admins");
                }
                let team = ["engineering", "marketing", "sales", "finance", "support"]
                    [(roll as usize) % 5];
                join(team);
                if contractor {
                    join("contractors");
                }
            }
        }
        world
    }

    fn add_group(&mut self, id: String, name: &str, directory: usize, synced: bool, grants: bool) {
        self.group_index.insert(id.clone(), self.groups.len());
        self.groups.push(SimGroup {
            id,
            name: name.to_owned(),
            description: if grants {
                "Grants access to Confluence".into()
            } else {
                String::new()
            },
            directory,
            synced,
            grants_confluence: grants,
            members: BTreeSet::new(),
        });
    }

    /// A group's index by name (first match).
    pub fn group_index_by_name(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }

    /// The index of a present (not removed) user.
    pub fn user(&self, account_id: &str) -> Option<usize> {
        self.user_index
            .get(account_id)
            .copied()
            .filter(|&i| !self.users[i].removed)
    }

    /// Whether the user holds Confluence access through a group.
    pub fn has_confluence(&self, u: usize) -> bool {
        self.users[u]
            .groups
            .iter()
            .any(|&g| self.groups[g].grants_confluence)
    }

    /// Whether the user takes a Confluence seat: licensed, account active, not suspended.
    pub fn billable(&self, u: usize) -> bool {
        let user = &self.users[u];
        !user.removed
            && user.account_status == AccountStatus::Active
            && user.membership_status == MembershipStatus::Active
            && self.has_confluence(u)
    }

    /// Seats in use.
    pub fn billable_count(&self) -> u64 {
        (0..self.users.len()).filter(|&u| self.billable(u)).count() as u64
    }

    /// Whether one more seat can be taken.
    pub fn seat_free(&self) -> bool {
        self.seats.is_none_or(|s| self.billable_count() < s)
    }

    /// The v2 `status` of a user.
    pub fn v2_status(&self, u: usize) -> &'static str {
        let user = &self.users[u];
        match (user.account_status, user.membership_status) {
            (AccountStatus::Active, MembershipStatus::Active) => "active",
            (AccountStatus::Active, MembershipStatus::Suspended) => "suspended",
            (_, _) => "deactivated",
        }
    }
}
