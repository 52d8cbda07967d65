//! The simulated Workspace account's state: users (live and deleted), groups with their
//! members, SAML sign-in events from the Reports API, and the seeded population that fills
//! them. Users sit in one vector in id order (ids only grow), with ordered index sets for the
//! live and the deleted ones, so a page of a 100,000-user listing is a range walk from the
//! last id handed out. Events sit in time order, so a Reports page is a binary search and a
//! walk backwards.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::sim::common::SimRng;

/// The application name seeded SAML events to Confluence carry.
pub const CONFLUENCE_APP: &str = "Atlassian Cloud";
/// Another SAML application in the seeded event log (must never count as Confluence).
pub const OTHER_APP: &str = "Slack";

/// A user of the simulated account.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimUser {
    /// 21-digit numeric id (fixed width, so string order is numeric order).
    pub id: String,
    pub primary_email: String,
    /// Further addresses (aliases), listed in `emails[]` after the primary one.
    pub aliases: Vec<String>,
    pub given_name: String,
    pub family_name: String,
    pub is_admin: bool,
    pub suspended: bool,
    pub suspension_reason: Option<String>,
    pub archived: bool,
    /// Set on deleted users (listed only with `showDeleted=true`).
    pub deletion_time: Option<DateTime<Utc>>,
    pub creation_time: DateTime<Utc>,
    /// `None`: never signed in (answered as `1970-01-01T00:00:00.000Z`).
    pub last_login_time: Option<DateTime<Utc>>,
    pub org_unit_path: String,
    /// `externalIds` of type `organization` (employee number).
    pub employee_id: Option<String>,
    /// `customSchemas.Employment`: `costCenter`, `employeeType`.
    pub cost_center: Option<String>,
    pub employee_type: Option<String>,
}

impl SimUser {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.given_name, self.family_name)
    }
}

/// What a group member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MemberRef {
    /// A user (index into `World::users`).
    User(usize),
    /// A nested group (index into `World::groups`).
    Group(usize),
    /// Everyone in the account (`type: CUSTOMER`).
    Customer,
}

/// A group member with its role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimMember {
    pub member: MemberRef,
    /// `OWNER`, `MANAGER` or `MEMBER`.
    pub role: &'static str,
}

/// A group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimGroup {
    pub id: String,
    pub email: String,
    pub name: String,
    pub description: String,
    pub members: Vec<SimMember>,
    /// Deleted: neither listed nor found.
    pub deleted: bool,
}

/// One SAML event of the Reports API (`applicationName=saml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SamlEvent {
    pub time: DateTime<Utc>,
    /// Signed 64-bit number as Google sends it (a string on the wire).
    pub unique_qualifier: i64,
    /// Index into `World::users`.
    pub user: usize,
    /// `login_success` or `login_failure`.
    pub name: String,
    /// The SAML service provider's name (`application_name` parameter).
    pub app_name: String,
    /// `idp` or `sp`.
    pub initiated_by: &'static str,
    /// On failures: why (`failure_app_not_configured_for_user`, …).
    pub failure_type: Option<String>,
}

impl SamlEvent {
    /// The order key: time in milliseconds, then the qualifier.
    pub fn key(&self) -> (i64, i64) {
        (self.time.timestamp_millis(), self.unique_qualifier)
    }
}

/// The whole simulated account.
#[derive(Clone, Debug)]
pub struct World {
    pub customer_id: String,
    pub domain: String,
    pub contractor_domain: String,
    /// Every user ever created, in id order.
    pub users: Vec<SimUser>,
    /// Indexes of users that are not deleted, in id order.
    pub live: BTreeSet<usize>,
    /// Indexes of deleted users, in id order.
    pub deleted: BTreeSet<usize>,
    by_id: HashMap<String, usize>,
    by_email: HashMap<String, usize>,
    pub groups: Vec<SimGroup>,
    group_by_key: HashMap<String, usize>,
    /// SAML events in `(time, uniqueQualifier)` order.
    pub events: Vec<SamlEvent>,
    next_id: u128,
    rng: SimRng,
}

const FIRST: &[&str] = &[
    "Ann", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal",
    "Lena", "Marta", "Noah", "Olga", "Priya", "Quentin", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoe",
];
const LAST: &[&str] = &[
    "Lee", "Okafor", "Schmidt", "Garcia", "Nakamura", "Rossi", "Novak", "Haddad", "Silva",
    "Kowalski", "Jensen", "Dubois", "Murphy", "Singh", "Ivanova", "Chen", "Larsen", "Moreau",
];
const UNITS: &[&str] = &[
    "/Engineering",
    "/Engineering/Platform",
    "/Sales",
    "/Support",
    "/Finance",
    "/People",
];
const TEAMS: &[&str] = &[
    "platform", "payments", "mobile", "search", "data", "security", "growth", "infra",
];

impl World {
    /// A seeded account of `users` people (at least one: the super admin
    /// `admin@<domain>`), as of `now`.
    pub fn seeded(seed: u64, users: usize, domain: &str, now: DateTime<Utc>) -> Self {
        let mut rng = SimRng::new(seed);
        let customer_id = format!("C0{}", rng.hex(7));
        let stem = domain.split('.').next().unwrap_or(domain);
        let mut w = World {
            customer_id,
            domain: domain.to_owned(),
            contractor_domain: format!("{stem}-contractors.com"),
            users: Vec::with_capacity(users.max(1)),
            live: BTreeSet::new(),
            deleted: BTreeSet::new(),
            by_id: HashMap::with_capacity(users.max(1) * 2),
            by_email: HashMap::with_capacity(users.max(1) * 2),
            groups: Vec::new(),
            group_by_key: HashMap::new(),
            events: Vec::new(),
            next_id: 100_000_000_000_000_000_000 + u128::from(rng.below(1 << 40)),
            rng: SimRng::new(seed ^ 0x600_613),
        };
        let mut ev_rng = SimRng::new(seed ^ 0x5A41);
        for n in 0..users.max(1) {
            let u = w.seed_user(&mut rng, n, now);
            let idx = w.insert(u);
            w.seed_events(&mut ev_rng, idx, now);
        }
        w.events.sort_by_key(SamlEvent::key);
        w.seed_groups(&mut rng);
        w
    }

    fn seed_user(&mut self, rng: &mut SimRng, n: usize, now: DateTime<Utc>) -> SimUser {
        let given = (*rng.pick(FIRST)).to_owned();
        let family = (*rng.pick(LAST)).to_owned();
        let day = |d: u64| Duration::days(d as i64);
        let secs = |s: u64| Duration::seconds(s as i64);
        let contractor = n > 0 && rng.chance(0.07);
        let (email, unit) = if n == 0 {
            (format!("admin@{}", self.domain), "/".to_owned())
        } else if contractor {
            (
                format!(
                    "{}.{}{n}@{}",
                    given.to_lowercase(),
                    family.to_lowercase(),
                    self.contractor_domain
                ),
                "/Contractors".to_owned(),
            )
        } else {
            (
                format!(
                    "{}.{}{n}@{}",
                    given.to_lowercase(),
                    family.to_lowercase(),
                    self.domain
                ),
                (*rng.pick(UNITS)).to_owned(),
            )
        };
        let created = now - day(30 + rng.below(6 * 365)) - secs(rng.below(86_400));
        let mut u = SimUser {
            id: String::new(),
            primary_email: email,
            aliases: Vec::new(),
            given_name: given,
            family_name: family,
            is_admin: n == 0 || rng.chance(0.005),
            suspended: false,
            suspension_reason: None,
            archived: false,
            deletion_time: None,
            creation_time: created,
            last_login_time: Some(now - day(rng.below(60)) - secs(rng.below(86_400))),
            org_unit_path: unit,
            employee_id: (!contractor).then(|| format!("E-{}", 1000 + n)),
            cost_center: Some(format!("CC-{}", 100 + rng.below(40))),
            employee_type: Some(if contractor { "Contractor" } else { "FTE" }.to_owned()),
        };
        if n > 0 && rng.chance(0.1) {
            let alias = format!(
                "{}@{}",
                u.given_name.to_lowercase() + &n.to_string(),
                self.domain
            );
            u.aliases.push(alias);
        }
        if n == 0 {
            return u;
        }
        let roll = rng.below(1000);
        match roll {
            // Deleted within Google's undelete window.
            0..30 => {
                u.deletion_time = Some(now - day(rng.below(19)) - secs(rng.below(86_400)));
                u.last_login_time = Some(now - day(20 + rng.below(200)));
            }
            // Suspended, mostly by an admin.
            30..80 => {
                u.suspended = true;
                let r = rng.below(100);
                u.suspension_reason = Some(
                    match r {
                        0..70 => "ADMIN",
                        70..85 => "WEB_LOGIN_REQUIRED",
                        85..95 => "ABUSE",
                        _ => "UNDER13",
                    }
                    .to_owned(),
                );
                u.last_login_time = Some(now - day(30 + rng.below(300)));
                if rng.chance(0.5) {
                    u.org_unit_path = "/Offboarding".into();
                }
            }
            // Archived (former employees whose data is kept).
            80..110 => {
                u.archived = true;
                u.last_login_time = Some(now - day(90 + rng.below(600)));
                u.org_unit_path = "/Offboarding".into();
            }
            // Never signed in (some created recently).
            110..190 => {
                u.last_login_time = None;
                if rng.chance(0.5) {
                    u.creation_time = now - day(rng.below(14)) - secs(rng.below(86_400));
                }
            }
            // Long inactive: last sign-in over 180 days ago.
            190..290 => {
                u.last_login_time = Some(now - day(181 + rng.below(540)));
            }
            // Returners: back recently after a gap of over 180 days.
            290..320 => {
                u.creation_time = now - day(400 + rng.below(1000));
                u.last_login_time = Some(now - day(rng.below(7)) - secs(rng.below(86_400)));
            }
            _ => {}
        }
        u
    }

    fn seed_events(&mut self, rng: &mut SimRng, idx: usize, now: DateTime<Utc>) {
        let u = &self.users[idx];
        let Some(last) = u.last_login_time else {
            return;
        };
        if u.deletion_time.is_some() || now - last > Duration::days(179) {
            return;
        }
        let day = |d: u64| Duration::days(d as i64);
        let secs = |s: u64| Duration::seconds(s as i64);
        let mut push = |rng: &mut SimRng, at: DateTime<Utc>, name: &str, app: &str| {
            let fail = name == "login_failure";
            self.events.push(SamlEvent {
                time: DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at),
                unique_qualifier: rng.next_u64() as i64,
                user: idx,
                name: name.to_owned(),
                app_name: app.to_owned(),
                initiated_by: if rng.chance(0.7) { "sp" } else { "idp" },
                failure_type: fail.then(|| "failure_app_not_configured_for_user".to_owned()),
            });
        };
        if rng.chance(0.7) {
            // The newest Confluence sign-in is the account's last sign-in.
            push(rng, last, "login_success", CONFLUENCE_APP);
            let older = rng.below(3);
            for _ in 0..older {
                let back = day(rng.below(90)) + secs(rng.below(86_400));
                if now - (last - back) < Duration::days(179) {
                    push(rng, last - back, "login_success", CONFLUENCE_APP);
                }
            }
        }
        if rng.chance(0.3) {
            let at = last - secs(rng.below(3_600));
            push(rng, at, "login_success", OTHER_APP);
        }
        if rng.chance(0.05) {
            let at = last - secs(1 + rng.below(86_400));
            push(rng, at, "login_failure", CONFLUENCE_APP);
        }
    }

    fn seed_groups(&mut self, rng: &mut SimRng) {
        let n_users = self.users.len();
        let mut groups: Vec<SimGroup> = Vec::new();
        let new_group = |rng: &mut SimRng, slug: &str, name: &str, domain: &str| SimGroup {
            id: format!("0{}", rng.hex(14)),
            email: format!("{slug}@{domain}"),
            name: name.to_owned(),
            description: format!("{name} (simulated)"),
            members: Vec::new(),
            deleted: false,
        };
        // One group per org unit, everyone in the unit a member.
        let mut by_unit: BTreeMap<String, usize> = BTreeMap::new();
        for unit in UNITS.iter().chain(["/Contractors", "/Offboarding"].iter()) {
            let slug = unit
                .trim_start_matches('/')
                .replace('/', "-")
                .to_lowercase();
            by_unit.insert((*unit).to_owned(), groups.len());
            groups.push(new_group(rng, &slug, &slug, &self.domain));
        }
        let confluence = groups.len();
        groups.push(new_group(
            rng,
            "confluence-users",
            "Confluence users",
            &self.domain,
        ));
        let mut all_staff = new_group(rng, "all-staff", "All staff", &self.domain);
        all_staff.members.push(SimMember {
            member: MemberRef::Customer,
            role: "MEMBER",
        });
        groups.push(all_staff);
        let teams = (n_users / 40).clamp(2, 4000);
        let first_team = groups.len();
        for t in 0..teams {
            let slug = format!("team-{}-{t}", TEAMS[t % TEAMS.len()]);
            groups.push(new_group(rng, &slug, &slug, &self.domain));
        }
        for (i, u) in self.users.iter().enumerate() {
            if let Some(&g) = by_unit.get(&u.org_unit_path) {
                groups[g].members.push(SimMember {
                    member: MemberRef::User(i),
                    role: "MEMBER",
                });
            }
            if rng.chance(0.6) {
                groups[confluence].members.push(SimMember {
                    member: MemberRef::User(i),
                    role: if u.is_admin { "OWNER" } else { "MEMBER" },
                });
            }
            let t = first_team + rng.below(teams as u64) as usize;
            let role = if rng.chance(0.05) {
                "MANAGER"
            } else {
                "MEMBER"
            };
            groups[t].members.push(SimMember {
                member: MemberRef::User(i),
                role,
            });
        }
        // Nested groups: the first team inside Confluence users; a group is not a user.
        groups[confluence].members.push(SimMember {
            member: MemberRef::Group(first_team),
            role: "MEMBER",
        });
        for (i, g) in groups.iter().enumerate() {
            self.group_by_key.insert(g.id.clone(), i);
            self.group_by_key.insert(g.email.to_lowercase(), i);
        }
        self.groups = groups;
    }

    /// A fresh user id, above every id handed out so far.
    pub fn next_user_id(&mut self) -> String {
        self.next_id += 1 + u128::from(self.rng.below(1_000_000));
        format!("{:021}", self.next_id)
    }

    /// Adds a user (giving it an id when it has none) and returns its index.
    pub fn insert(&mut self, mut u: SimUser) -> usize {
        if u.id.is_empty() {
            u.id = self.next_user_id();
        }
        let idx = self.users.len();
        self.by_id.insert(u.id.clone(), idx);
        self.by_email.insert(u.primary_email.to_lowercase(), idx);
        for a in &u.aliases {
            self.by_email.insert(a.to_lowercase(), idx);
        }
        if u.deletion_time.is_some() {
            self.deleted.insert(idx);
        } else {
            self.live.insert(idx);
        }
        self.users.push(u);
        idx
    }

    /// A user by id, primary email or alias (deleted ones included).
    pub fn user(&self, key: &str) -> Option<usize> {
        self.by_id
            .get(key)
            .or_else(|| self.by_email.get(&key.to_lowercase()))
            .copied()
    }

    /// A group by id or email.
    pub fn group(&self, key: &str) -> Option<usize> {
        self.group_by_key
            .get(key)
            .or_else(|| self.group_by_key.get(&key.to_lowercase()))
            .copied()
            .filter(|&g| !self.groups[g].deleted)
    }

    /// Deletes (or undeletes) a user, moving it between the live and deleted sets.
    pub fn set_deleted(&mut self, idx: usize, at: Option<DateTime<Utc>>) {
        self.users[idx].deletion_time = at;
        if at.is_some() {
            self.live.remove(&idx);
            self.deleted.insert(idx);
        } else {
            self.deleted.remove(&idx);
            self.live.insert(idx);
        }
    }

    /// Adds an event, keeping the time order.
    pub fn add_event(&mut self, e: SamlEvent) {
        let key = e.key();
        let at = self.events.partition_point(|x| x.key() <= key);
        self.events.insert(at, e);
    }

    /// A random qualifier for a new event.
    pub fn new_qualifier(&mut self) -> i64 {
        self.rng.next_u64() as i64
    }

    /// The live super admins' primary emails (subjects the token endpoint delegates to).
    pub fn is_active_admin(&self, idx: usize) -> bool {
        let u = &self.users[idx];
        u.is_admin && !u.suspended && !u.archived && u.deletion_time.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_account() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let a = World::seeded(7, 500, "example.com", now);
        let b = World::seeded(7, 500, "example.com", now);
        assert_eq!(a.users, b.users);
        assert_eq!(a.events, b.events);
        assert_eq!(a.groups, b.groups);
        assert_eq!(a.users[0].primary_email, "admin@example.com");
        assert!(a.users.windows(2).all(|w| w[0].id < w[1].id));
        assert!(a.users.iter().all(|u| u.id.len() == 21));
    }

    #[test]
    fn the_seeded_population_has_every_kind_of_person() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let w = World::seeded(42, 3000, "example.com", now);
        let count = |f: &dyn Fn(&SimUser) -> bool| w.users.iter().filter(|u| f(u)).count();
        assert!(count(&|u| u.deletion_time.is_some()) > 0);
        assert!(count(&|u| u.suspended) > 0);
        assert!(count(&|u| u.archived) > 0);
        assert!(count(&|u| u.last_login_time.is_none()) > 0);
        assert!(
            count(&|u| u
                .last_login_time
                .is_some_and(|t| now - t > Duration::days(180)))
                > 0
        );
        assert!(count(&|u| u.is_admin) > 1);
        assert!(count(&|u| u.primary_email.ends_with("example-contractors.com")) > 0);
        assert!(
            w.events
                .iter()
                .any(|e| e.name == "login_failure" && e.app_name == CONFLUENCE_APP)
        );
        assert!(w.events.iter().any(|e| e.app_name == OTHER_APP));
        assert!(w.events.windows(2).all(|p| p[0].key() <= p[1].key()));
    }
}
