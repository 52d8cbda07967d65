//! The simulated instance's data: ordered directories, users (with `userKey`, login
//! bookkeeping and shadowing), groups with nesting, global permissions and long tasks; the
//! seeded population; licence arithmetic; and every mutation the APIs perform, with the
//! product's rules (read-only directories, duplicate names, seats).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::sim::common::SimRng;

/// What kind of user directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DirKind {
    Internal,
    Ldap,
    Crowd,
}

/// What Confluence may change in a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DirMode {
    ReadWrite,
    ReadOnly,
    ReadOnlyLocalGroups,
}

/// One user directory; its position in [`State::dirs`] is its priority.
#[derive(Clone, Debug, Serialize)]
pub struct Directory {
    pub id: u64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: DirKind,
    pub mode: DirMode,
}

/// The `logininfo` row Confluence keeps per user key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoginInfo {
    pub success_ms: Option<i64>,
    pub prev_success_ms: Option<i64>,
    pub failed_ms: Option<i64>,
    pub failed_count: u32,
}

/// One user row.
#[derive(Clone, Debug)]
pub struct User {
    pub key: String,
    pub username: String,
    pub display_name: String,
    pub email: String,
    /// Index into [`State::dirs`].
    pub dir: usize,
    pub active: bool,
    pub externally_deleted: bool,
    pub created_ms: i64,
    /// `cwd_user_attribute.lastAuthenticated`.
    pub last_auth_ms: Option<i64>,
    pub login: LoginInfo,
    /// Direct group memberships, by name.
    pub groups: Vec<String>,
    pub password: Option<String>,
    pub pat: Option<String>,
}

/// One group; `children` are groups nested in it (their members are its members).
#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub dir: usize,
    /// A Confluence-side group (writable even when its directory is read-only with local groups).
    pub local: bool,
    pub children: Vec<String>,
}

/// Who a global permission is granted to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Group(String),
    /// By user key.
    User(String),
    Anonymous,
    Unlicensed,
}

/// One global permission grant.
#[derive(Clone, Debug)]
pub struct Perm {
    pub subject: Subject,
    pub target: &'static str,
    pub op: &'static str,
}

impl Perm {
    /// Whether this permission makes its holder count toward the licence.
    pub fn grants_licence(&self) -> bool {
        matches!(
            (self.target, self.op),
            ("application", "use") | ("application", "administer") | ("system", "administer")
        )
    }
}

/// An asynchronous user deletion.
#[derive(Clone, Debug)]
pub struct Task {
    pub id: String,
    pub username: String,
    pub user_key: String,
    pub started: std::time::Instant,
    pub duration_ms: u64,
    /// Set when the task is configured to fail, with the reason.
    pub fail: Option<String>,
    /// Set once the outcome has been applied: `Some(true)` deleted, `Some(false)` failed.
    pub outcome: Option<bool>,
}

/// Why a mutation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fail {
    NotFound(String),
    ReadOnly(String),
    Conflict(String),
    Invalid(String),
    NoSeats,
}

impl Fail {
    pub fn message(&self) -> String {
        match self {
            Fail::NotFound(m) | Fail::ReadOnly(m) | Fail::Conflict(m) | Fail::Invalid(m) => {
                m.clone()
            }
            Fail::NoSeats => "No more licences available to add users".to_owned(),
        }
    }
}

/// Licence seats: `-1` means unlimited.
pub const UNLIMITED: i64 = -1;

/// Everything the simulated instance knows.
#[derive(Debug)]
pub struct State {
    pub dirs: Vec<Directory>,
    users: Vec<Option<User>>,
    by_key: HashMap<String, usize>,
    /// Username → slots, highest-priority directory first; the first is the effective user.
    by_name: HashMap<String, Vec<usize>>,
    /// Personal access token → slot.
    by_pat: HashMap<String, usize>,
    pub groups: BTreeMap<String, Group>,
    pub perms: Vec<Perm>,
    pub tasks: HashMap<String, Task>,
    pub rng: SimRng,
    /// Bumped by every mutation; caches compare against it.
    pub generation: u64,
    pub max_users: i64,
    /// The instant the population is anchored to (ms since epoch).
    pub epoch_ms: i64,
}

/// How to build a population.
#[derive(Clone, Debug)]
pub struct PopulationSpec {
    pub users: usize,
    pub seed: u64,
    pub crowd: bool,
    pub max_users: i64,
    pub epoch_ms: i64,
    pub admin_user: String,
    pub admin_password: String,
    pub admin_pat: String,
}

/// The built-in non-admin account tests use to see 403s.
pub const VIEWER: (&str, &str, &str) = ("viewer", "viewer", "dcsim-viewer-pat");

pub const CAN_USE: &str = "confluence-users";
pub const ADMINS: &str = "confluence-administrators";
pub const STAFF: &str = "staff";
pub const ENGINEERING: &str = "engineering";
pub const LDAP_GROUP: &str = "ldap-confluence";
pub const CONTRACTOR_DOMAIN: &str = "contractor.example.net";

const DAY_MS: i64 = 86_400_000;

const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "ursula", "victor", "wendy",
    "xavier", "yvonne", "zoe", "amir", "bea", "chen", "dara", "emeka", "fatima", "goran", "hana",
    "ines", "jonas", "kenji", "lena", "mateo", "noor", "olga", "priya",
];
const LAST: &[&str] = &[
    "smith", "jones", "garcia", "miller", "davis", "lopez", "wilson", "anderson", "thomas",
    "taylor", "moore", "martin", "lee", "walker", "hall", "young", "king", "wright", "scott",
    "green", "baker", "adams", "nelson", "hill", "campbell", "mitchell", "roberts", "carter",
    "phillips", "evans", "turner", "torres", "parker", "collins", "edwards", "stewart", "morris",
    "murphy", "cook", "rogers",
];

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

impl State {
    /// The seeded population for `spec`: the same spec always gives the same state.
    pub fn populate(spec: &PopulationSpec) -> State {
        let mut dirs = vec![
            Directory {
                id: 98305,
                name: "Confluence Internal Directory".into(),
                kind: DirKind::Internal,
                mode: DirMode::ReadWrite,
            },
            Directory {
                id: 98306,
                name: "Corporate LDAP".into(),
                kind: DirKind::Ldap,
                mode: DirMode::ReadOnlyLocalGroups,
            },
        ];
        if spec.crowd {
            dirs.push(Directory {
                id: 98307,
                name: "Crowd".into(),
                kind: DirKind::Crowd,
                mode: DirMode::ReadWrite,
            });
        }
        let mut groups = BTreeMap::new();
        let mut add_group = |name: &str, dir: usize, local: bool, children: &[&str]| {
            groups.insert(
                name.to_owned(),
                Group {
                    name: name.to_owned(),
                    dir,
                    local,
                    children: children.iter().map(|c| (*c).to_owned()).collect(),
                },
            );
        };
        add_group(CAN_USE, 0, true, &[STAFF]);
        add_group(ADMINS, 0, true, &[]);
        add_group(STAFF, 0, true, &[ENGINEERING]);
        add_group(ENGINEERING, 0, true, &[]);
        add_group(LDAP_GROUP, 1, false, &[]);
        add_group("contractors", 0, true, &[]);
        let perms = vec![
            Perm {
                subject: Subject::Group(CAN_USE.into()),
                target: "application",
                op: "use",
            },
            Perm {
                subject: Subject::Group(CAN_USE.into()),
                target: "personal_space",
                op: "create",
            },
            Perm {
                subject: Subject::Group(ADMINS.into()),
                target: "application",
                op: "use",
            },
            Perm {
                subject: Subject::Group(ADMINS.into()),
                target: "application",
                op: "administer",
            },
            Perm {
                subject: Subject::Group(LDAP_GROUP.into()),
                target: "application",
                op: "use",
            },
            Perm {
                subject: Subject::Unlicensed,
                target: "application",
                op: "use_unlicensed",
            },
            Perm {
                subject: Subject::Unlicensed,
                target: "user",
                op: "read",
            },
        ];
        let mut st = State {
            dirs,
            users: Vec::with_capacity(spec.users + 1),
            by_key: HashMap::with_capacity(spec.users + 1),
            by_name: HashMap::with_capacity(spec.users + 1),
            by_pat: HashMap::new(),
            groups,
            perms,
            tasks: HashMap::new(),
            rng: SimRng::new(spec.seed),
            generation: 0,
            max_users: spec.max_users,
            epoch_ms: spec.epoch_ms,
        };
        let now = spec.epoch_ms;
        // The built-in accounts.
        let admin_key = st.rng.hex(32);
        st.insert(User {
            key: admin_key.clone(),
            username: spec.admin_user.to_lowercase(),
            display_name: "Administrator".into(),
            email: format!("{}@example.com", spec.admin_user.to_lowercase()),
            dir: 0,
            active: true,
            externally_deleted: false,
            created_ms: now - 2000 * DAY_MS,
            last_auth_ms: Some(now - DAY_MS),
            login: LoginInfo {
                success_ms: Some(now - DAY_MS),
                ..LoginInfo::default()
            },
            groups: vec![ADMINS.into(), CAN_USE.into()],
            password: Some(spec.admin_password.clone()),
            pat: Some(spec.admin_pat.clone()),
        });
        st.perms.push(Perm {
            subject: Subject::User(admin_key),
            target: "system",
            op: "administer",
        });
        let sys_key = st.rng.hex(32);
        st.insert(User {
            key: sys_key.clone(),
            username: "sysadmin".into(),
            display_name: "System Administrator".into(),
            email: "sysadmin@example.com".into(),
            dir: 0,
            active: true,
            externally_deleted: false,
            created_ms: now - 1900 * DAY_MS,
            last_auth_ms: Some(now - 40 * DAY_MS),
            login: LoginInfo {
                success_ms: Some(now - 40 * DAY_MS),
                ..LoginInfo::default()
            },
            groups: vec![],
            password: Some("sysadmin".into()),
            pat: None,
        });
        st.perms.push(Perm {
            subject: Subject::User(sys_key),
            target: "system",
            op: "administer",
        });
        let viewer_key = st.rng.hex(32);
        st.insert(User {
            key: viewer_key,
            username: VIEWER.0.into(),
            display_name: "Viewer Account".into(),
            email: "viewer@example.com".into(),
            dir: 0,
            active: true,
            externally_deleted: false,
            created_ms: now - 800 * DAY_MS,
            last_auth_ms: Some(now - 2 * DAY_MS),
            login: LoginInfo {
                success_ms: Some(now - 2 * DAY_MS),
                ..LoginInfo::default()
            },
            groups: vec![CAN_USE.into()],
            password: Some(VIEWER.1.into()),
            pat: Some(VIEWER.2.into()),
        });
        let generated = spec.users.saturating_sub(3);
        let mut shadow_done = false;
        for i in 0..generated {
            let first = *st.rng.pick(FIRST);
            let last = *st.rng.pick(LAST);
            let base = format!("{first}.{last}");
            let username = if st.by_name.contains_key(&base) {
                format!("{base}{i}")
            } else {
                base
            };
            let roll = st.rng.below(100);
            let dir = if spec.crowd && roll < 10 {
                2
            } else if roll < 25 {
                1
            } else {
                0
            };
            let contractor = st.rng.chance(0.08);
            let email = if contractor {
                format!("{username}@{CONTRACTOR_DOMAIN}")
            } else {
                format!("{username}@example.com")
            };
            let kind = st.rng.below(100);
            let (active, login_age_days, licensed, admin) = match kind {
                0..55 => (true, Some(st.rng.below(30) as i64), true, false),
                55..67 => (true, Some(181 + st.rng.below(720) as i64), true, false),
                67..75 => (true, Some(30 + st.rng.below(150) as i64), true, false),
                75..83 => (true, None, true, false),
                83..93 => (false, Some(90 + st.rng.below(900) as i64), true, false),
                93..98 => (true, Some(st.rng.below(400) as i64), false, false),
                _ => (true, Some(st.rng.below(20) as i64), true, true),
            };
            let jitter = st.rng.below(DAY_MS as u64) as i64;
            let last_auth = login_age_days.map(|d| now - d * DAY_MS - jitter);
            let created =
                now - (login_age_days.unwrap_or(0) + 1 + st.rng.below(1500) as i64) * DAY_MS;
            let mut groups = Vec::new();
            if licensed {
                match (dir, st.rng.below(10)) {
                    (1, 0..5) => groups.push(LDAP_GROUP.to_owned()),
                    (_, 0..3) => groups.push(CAN_USE.to_owned()),
                    (_, 3..5) => groups.push(STAFF.to_owned()),
                    (_, 5..7) => groups.push(ENGINEERING.to_owned()),
                    _ => {
                        // Counted once despite two granting paths.
                        groups.push(CAN_USE.to_owned());
                        groups.push(ENGINEERING.to_owned());
                    }
                }
            }
            if admin {
                groups.push(ADMINS.to_owned());
            }
            if contractor {
                groups.push("contractors".to_owned());
            }
            groups.sort();
            groups.dedup();
            let key = st.rng.hex(32);
            let user = User {
                key,
                username: username.clone(),
                display_name: format!("{} {}", capitalise(first), capitalise(last)),
                email,
                dir,
                active,
                externally_deleted: false,
                created_ms: created,
                last_auth_ms: last_auth,
                login: LoginInfo {
                    success_ms: last_auth,
                    ..LoginInfo::default()
                },
                groups,
                password: None,
                pat: None,
            };
            let shadow = !shadow_done && dir == 0 && i >= 10;
            st.insert(user);
            if shadow {
                // The same username in the lower-priority LDAP directory: shadowed, never counted.
                shadow_done = true;
                let key = st.rng.hex(32);
                st.insert(User {
                    key,
                    username,
                    display_name: "Shadowed Duplicate".into(),
                    email: "shadow@example.com".into(),
                    dir: 1,
                    active: true,
                    externally_deleted: false,
                    created_ms: created,
                    last_auth_ms: None,
                    login: LoginInfo::default(),
                    groups: vec![LDAP_GROUP.to_owned()],
                    password: None,
                    pat: None,
                });
            }
        }
        st
    }

    /// Adds a user row and indexes it.
    fn insert(&mut self, user: User) -> usize {
        let slot = self.users.len();
        self.by_key.insert(user.key.clone(), slot);
        if let Some(p) = &user.pat {
            self.by_pat.insert(p.clone(), slot);
        }
        let dir = user.dir;
        let slots = self.by_name.entry(user.username.clone()).or_default();
        slots.push(slot);
        let users = &self.users;
        slots.sort_by_key(|s| {
            users
                .get(*s)
                .and_then(|u| u.as_ref())
                .map_or(dir, |u| u.dir)
        });
        self.users.push(Some(user));
        self.generation += 1;
        slot
    }

    fn reindex_name(&mut self, name: &str) {
        if let Some(mut slots) = self.by_name.remove(name) {
            slots.retain(|s| self.users.get(*s).is_some_and(Option::is_some));
            let users = &self.users;
            slots.sort_by_key(|s| {
                users
                    .get(*s)
                    .and_then(|u| u.as_ref())
                    .map_or(usize::MAX, |u| u.dir)
            });
            if !slots.is_empty() {
                self.by_name.insert(name.to_owned(), slots);
            }
        }
    }

    /// The row in `slot`.
    pub fn get(&self, slot: usize) -> Option<&User> {
        self.users.get(slot).and_then(|u| u.as_ref())
    }

    fn get_mut(&mut self, slot: usize) -> Option<&mut User> {
        self.users.get_mut(slot).and_then(|u| u.as_mut())
    }

    /// The effective user called `name` (case-insensitive).
    pub fn by_username(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.by_name.get(&lower).and_then(|s| s.first().copied())
    }

    /// The user with `key`.
    pub fn by_key(&self, key: &str) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    /// The user holding the personal access token `token`.
    pub fn by_pat(&self, token: &str) -> Option<usize> {
        self.by_pat.get(token).copied()
    }

    /// Gives `slot` a (new) personal access token.
    pub fn set_pat(&mut self, slot: usize, token: &str) {
        if let Some(old) = self.get(slot).and_then(|u| u.pat.clone()) {
            self.by_pat.remove(&old);
        }
        if let Some(u) = self.get_mut(slot) {
            u.pat = Some(token.to_owned());
            self.by_pat.insert(token.to_owned(), slot);
        }
        self.touch();
    }

    /// Whether a row is hidden by a same-named user in a higher-priority directory.
    pub fn is_shadowed(&self, slot: usize) -> bool {
        self.get(slot)
            .and_then(|u| self.by_name.get(&u.username))
            .and_then(|s| s.first())
            .is_some_and(|first| *first != slot)
    }

    /// Every row, shadowed ones included.
    pub fn all_slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.users
            .iter()
            .enumerate()
            .filter_map(|(i, u)| u.as_ref().map(|_| i))
    }

    /// The users Confluence shows: every row that is not shadowed.
    pub fn effective_slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.all_slots().filter(|s| !self.is_shadowed(*s))
    }

    /// Whether the user's own attributes (status, name, e-mail) may change.
    pub fn user_writable(&self, slot: usize) -> bool {
        self.get(slot)
            .and_then(|u| self.dirs.get(u.dir))
            .is_some_and(|d| d.mode == DirMode::ReadWrite)
    }

    /// Whether the membership of `slot` in `group` may change.
    pub fn membership_writable(&self, slot: usize, group: &Group) -> bool {
        let user_mode = self
            .get(slot)
            .and_then(|u| self.dirs.get(u.dir))
            .map(|d| d.mode);
        if user_mode.is_none_or(|m| m == DirMode::ReadOnly) {
            return false;
        }
        match self.dirs.get(group.dir).map(|d| d.mode) {
            Some(DirMode::ReadWrite) => true,
            Some(DirMode::ReadOnlyLocalGroups) => group.local,
            _ => false,
        }
    }

    /// Groups whose members hold a licence-granting permission, directly or through the
    /// groups they are nested in.
    pub fn granting_groups(&self) -> HashSet<&str> {
        let mut out: HashSet<&str> = HashSet::new();
        let mut todo: Vec<&str> = self
            .perms
            .iter()
            .filter(|p| p.grants_licence())
            .filter_map(|p| match &p.subject {
                Subject::Group(g) => Some(g.as_str()),
                _ => None,
            })
            .collect();
        while let Some(g) = todo.pop() {
            if let Some(group) = self.groups.get(g)
                && out.insert(group.name.as_str())
            {
                todo.extend(group.children.iter().map(String::as_str));
            }
        }
        out
    }

    /// User keys holding a licence-granting permission directly.
    pub fn granting_users(&self) -> HashSet<&str> {
        self.perms
            .iter()
            .filter(|p| p.grants_licence())
            .filter_map(|p| match &p.subject {
                Subject::User(k) => Some(k.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Whether `slot` has some path to "can use" (ignoring whether it is active).
    pub fn can_use(&self, slot: usize, groups: &HashSet<&str>, users: &HashSet<&str>) -> bool {
        self.get(slot).is_some_and(|u| {
            users.contains(u.key.as_str()) || u.groups.iter().any(|g| groups.contains(g.as_str()))
        })
    }

    /// Whether `slot` counts toward the licence.
    pub fn licensed(&self, slot: usize, groups: &HashSet<&str>, users: &HashSet<&str>) -> bool {
        self.get(slot)
            .is_some_and(|u| u.active && !u.externally_deleted)
            && !self.is_shadowed(slot)
            && self.can_use(slot, groups, users)
    }

    /// Users counting toward the licence.
    pub fn licensed_count(&self) -> usize {
        let g = self.granting_groups();
        let u = self.granting_users();
        self.all_slots()
            .filter(|s| self.licensed(*s, &g, &u))
            .count()
    }

    /// The `status` expansion value.
    pub fn status(
        &self,
        slot: usize,
        groups: &HashSet<&str>,
        users: &HashSet<&str>,
    ) -> &'static str {
        match self.get(slot) {
            Some(u) if u.externally_deleted => "externally_deleted",
            Some(u) if !u.active => "deactivated",
            Some(_) if !self.can_use(slot, groups, users) => "unlicensed",
            _ => "current",
        }
    }

    /// Seats left (`-1` when unlimited).
    pub fn remaining_seats(&self) -> i64 {
        if self.max_users < 0 {
            return UNLIMITED;
        }
        (self.max_users - self.licensed_count() as i64).max(0)
    }

    /// Whether the user is a Confluence or system administrator.
    pub fn is_admin(&self, slot: usize) -> bool {
        let Some(u) = self.get(slot) else {
            return false;
        };
        let admin_groups: Vec<&str> = self
            .perms
            .iter()
            .filter(|p| p.op == "administer")
            .filter_map(|p| match &p.subject {
                Subject::Group(g) => Some(g.as_str()),
                _ => None,
            })
            .collect();
        self.perms
            .iter()
            .any(|p| p.op == "administer" && matches!(&p.subject, Subject::User(k) if *k == u.key))
            || u.groups.iter().any(|g| admin_groups.contains(&g.as_str()))
    }

    /// Parents of `group` (groups it is nested in), transitively.
    pub fn ancestors(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut todo = vec![group.to_owned()];
        while let Some(g) = todo.pop() {
            for parent in self.groups.values() {
                if parent.children.contains(&g) && !out.contains(&parent.name) {
                    out.push(parent.name.clone());
                    todo.push(parent.name.clone());
                }
            }
        }
        out.sort();
        out
    }

    fn touch(&mut self) {
        self.generation += 1;
    }

    /// Deactivates or reactivates; idempotent.
    pub fn set_active(&mut self, slot: usize, active: bool) -> Result<(), Fail> {
        let name = self
            .get(slot)
            .map(|u| u.username.clone())
            .unwrap_or_default();
        if !self.user_writable(slot) {
            return Err(Fail::ReadOnly(format!(
                "User '{name}' belongs to a read-only directory and cannot be {}",
                if active { "enabled" } else { "disabled" }
            )));
        }
        if let Some(u) = self.get_mut(slot) {
            u.active = active;
        }
        self.touch();
        Ok(())
    }

    /// Adds a direct membership; idempotent.
    pub fn add_member(&mut self, slot: usize, group: &str) -> Result<(), Fail> {
        let g = self.find_group(group)?;
        if !self.membership_writable(slot, &g) {
            return Err(Fail::ReadOnly(format!(
                "Membership of group '{}' cannot be changed: the directory is read-only",
                g.name
            )));
        }
        if let Some(u) = self.get_mut(slot)
            && !u.groups.contains(&g.name)
        {
            u.groups.push(g.name.clone());
            u.groups.sort();
        }
        self.touch();
        Ok(())
    }

    /// Removes a direct membership; idempotent.
    pub fn remove_member(&mut self, slot: usize, group: &str) -> Result<(), Fail> {
        let g = self.find_group(group)?;
        if !self.membership_writable(slot, &g) {
            return Err(Fail::ReadOnly(format!(
                "Membership of group '{}' cannot be changed: the directory is read-only",
                g.name
            )));
        }
        if let Some(u) = self.get_mut(slot) {
            u.groups.retain(|x| *x != g.name);
        }
        self.touch();
        Ok(())
    }

    fn find_group(&self, name: &str) -> Result<Group, Fail> {
        self.groups
            .get(&name.to_lowercase())
            .cloned()
            .ok_or_else(|| Fail::NotFound(format!("Group not found: {name}")))
    }

    /// Renames a user, keeping its key. Fails when the name is taken in any directory or the
    /// user's directory is not writable.
    pub fn rename(&mut self, slot: usize, new_name: &str) -> Result<(), Fail> {
        let new_name = new_name.trim().to_lowercase();
        validate_username(&new_name)?;
        let Some(old) = self.get(slot).map(|u| u.username.clone()) else {
            return Err(Fail::NotFound("No such user".into()));
        };
        if old == new_name {
            return Ok(());
        }
        if self.by_name.contains_key(&new_name) {
            return Err(Fail::Conflict(format!(
                "A user with the username '{new_name}' already exists"
            )));
        }
        if !self.user_writable(slot) {
            return Err(Fail::ReadOnly(format!(
                "User '{old}' belongs to a read-only directory and cannot be renamed"
            )));
        }
        if let Some(u) = self.get_mut(slot) {
            u.username = new_name.clone();
        }
        if let Some(slots) = self.by_name.get_mut(&old) {
            slots.retain(|s| *s != slot);
        }
        self.reindex_name(&old);
        self.by_name.entry(new_name).or_default().push(slot);
        self.touch();
        Ok(())
    }

    /// Gives `slot` the name `name` even when another directory has a user of that name
    /// (which then shadows it, or is shadowed by it): the control API's way to set up
    /// shadowing.
    pub fn force_rename(&mut self, slot: usize, name: &str) {
        let Some(old) = self.get(slot).map(|u| u.username.clone()) else {
            return;
        };
        if let Some(slots) = self.by_name.get_mut(&old) {
            slots.retain(|s| *s != slot);
        }
        self.reindex_name(&old);
        if let Some(u) = self.get_mut(slot) {
            u.username = name.to_owned();
        }
        self.by_name.entry(name.to_owned()).or_default().push(slot);
        self.reindex_name(name);
        self.touch();
    }

    /// Creates a user in the first writable directory (or `dir`), returning its slot.
    pub fn create_user(&mut self, new: NewUser) -> Result<usize, Fail> {
        let username = new.username.to_lowercase();
        if self.by_name.contains_key(&username) {
            return Err(Fail::Conflict(format!(
                "A user with the username '{username}' already exists"
            )));
        }
        let dir = match new.dir {
            Some(d) if d < self.dirs.len() => d,
            Some(_) => return Err(Fail::Invalid("No such directory".into())),
            None => self
                .dirs
                .iter()
                .position(|d| d.mode == DirMode::ReadWrite)
                .ok_or_else(|| Fail::ReadOnly("No writable directory".into()))?,
        };
        let groups = new.groups.unwrap_or_else(|| vec![CAN_USE.to_owned()]);
        for g in &groups {
            if !self.groups.contains_key(g) {
                return Err(Fail::NotFound(format!("Group not found: {g}")));
            }
        }
        if new.check_seats && self.max_users >= 0 {
            let grants = self.granting_groups();
            let would_count = new.active && groups.iter().any(|g| grants.contains(g.as_str()));
            if would_count && self.remaining_seats() == 0 {
                return Err(Fail::NoSeats);
            }
        }
        let key = self.rng.hex(32);
        let slot = self.insert(User {
            key,
            username,
            display_name: new.display_name,
            email: new.email,
            dir,
            active: new.active,
            externally_deleted: false,
            created_ms: new.created_ms,
            last_auth_ms: None,
            login: LoginInfo::default(),
            groups,
            password: new.password,
            pat: None,
        });
        Ok(slot)
    }

    /// Changes e-mail and/or display name.
    pub fn update_profile(
        &mut self,
        slot: usize,
        email: Option<String>,
        display_name: Option<String>,
    ) -> Result<(), Fail> {
        if !self.user_writable(slot) {
            return Err(Fail::ReadOnly(
                "User belongs to a read-only directory and cannot be updated".into(),
            ));
        }
        if let Some(u) = self.get_mut(slot) {
            if let Some(e) = email {
                u.email = e;
            }
            if let Some(d) = display_name {
                u.display_name = d;
            }
        }
        self.touch();
        Ok(())
    }

    /// Removes a user row for good.
    pub fn delete_user(&mut self, slot: usize) -> Option<User> {
        let user = self.users.get_mut(slot).and_then(Option::take)?;
        self.by_key.remove(&user.key);
        if let Some(p) = &user.pat {
            self.by_pat.remove(p);
        }
        self.reindex_name(&user.username);
        self.perms
            .retain(|p| !matches!(&p.subject, Subject::User(k) if *k == user.key));
        self.touch();
        Some(user)
    }

    /// Creates a local group in the internal directory.
    pub fn create_group(&mut self, name: &str) -> Result<(), Fail> {
        let name = name.trim().to_lowercase();
        if name.is_empty() {
            return Err(Fail::Invalid("Group name cannot be blank".into()));
        }
        if self.groups.contains_key(&name) {
            return Err(Fail::Conflict(format!("Group '{name}' already exists")));
        }
        self.groups.insert(
            name.clone(),
            Group {
                name,
                dir: 0,
                local: true,
                children: Vec::new(),
            },
        );
        self.touch();
        Ok(())
    }

    /// Deletes a group, its memberships and its permissions.
    pub fn delete_group(&mut self, name: &str) -> Result<(), Fail> {
        let name = name.to_lowercase();
        if !self.groups.contains_key(&name) {
            return Err(Fail::NotFound(format!("Group not found: {name}")));
        }
        let admin_groups: Vec<&String> = self
            .perms
            .iter()
            .filter(|p| p.target == "application" && p.op == "administer")
            .filter_map(|p| match &p.subject {
                Subject::Group(g) => Some(g),
                _ => None,
            })
            .collect();
        if admin_groups.len() == 1 && admin_groups.first().is_some_and(|g| **g == name) {
            return Err(Fail::Invalid(
                "Cannot delete the last group with administration permission".into(),
            ));
        }
        self.groups.remove(&name);
        for g in self.groups.values_mut() {
            g.children.retain(|c| *c != name);
        }
        for u in self.users.iter_mut().flatten() {
            u.groups.retain(|g| *g != name);
        }
        self.perms
            .retain(|p| !matches!(&p.subject, Subject::Group(g) if *g == name));
        self.touch();
        Ok(())
    }

    /// Records a login attempt at `at_ms`: a success for an active user with "can use", a
    /// failure (failed date, count) otherwise. Returns whether it succeeded.
    pub fn login(&mut self, slot: usize, at_ms: i64) -> bool {
        let grants = self.granting_groups();
        let users = self.granting_users();
        let ok = self
            .get(slot)
            .is_some_and(|u| u.active && !u.externally_deleted)
            && self.can_use(slot, &grants, &users);
        drop(grants);
        drop(users);
        if let Some(u) = self.get_mut(slot) {
            if ok {
                u.last_auth_ms = Some(at_ms);
                u.login.prev_success_ms = u.login.success_ms;
                u.login.success_ms = Some(at_ms);
                u.login.failed_count = 0;
            } else {
                u.login.failed_ms = Some(at_ms);
                u.login.failed_count += 1;
            }
        }
        self.touch();
        ok
    }

    /// Direct mutable access for the control API.
    pub fn with_user<R>(&mut self, slot: usize, f: impl FnOnce(&mut User) -> R) -> Option<R> {
        let r = self.get_mut(slot).map(f);
        self.touch();
        r
    }

    /// Moves a user to another directory.
    pub fn move_user(&mut self, slot: usize, dir: usize) -> Result<(), Fail> {
        if dir >= self.dirs.len() {
            return Err(Fail::Invalid("No such directory".into()));
        }
        let name = match self.get_mut(slot) {
            Some(u) => {
                u.dir = dir;
                u.username.clone()
            }
            None => return Err(Fail::NotFound("No such user".into())),
        };
        self.by_name.entry(name.clone()).or_default();
        self.reindex_name(&name);
        self.touch();
        Ok(())
    }

    /// Finds a directory by numeric id or name (case-insensitive).
    pub fn find_dir(&self, id_or_name: &str) -> Option<usize> {
        self.dirs
            .iter()
            .position(|d| d.id.to_string() == id_or_name || d.name.eq_ignore_ascii_case(id_or_name))
    }
}

/// Input for [`State::create_user`].
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub password: Option<String>,
    pub active: bool,
    pub groups: Option<Vec<String>>,
    pub dir: Option<usize>,
    pub created_ms: i64,
    /// Refuse (402) when the new user would be licensed and no seat is left.
    pub check_seats: bool,
}

/// The create-user rules for `userName`.
pub fn validate_username(name: &str) -> Result<(), Fail> {
    if name.trim().is_empty() {
        return Err(Fail::Invalid("Username cannot be blank".into()));
    }
    if name.len() > 255 {
        return Err(Fail::Invalid("Username is too long".into()));
    }
    if name
        .chars()
        .any(|c| matches!(c, '\\' | ',' | '+' | '<' | '>' | '\'' | '"') || c.is_whitespace())
    {
        return Err(Fail::Invalid(format!(
            "Username '{name}' contains invalid characters"
        )));
    }
    if name.eq_ignore_ascii_case("anonymous") {
        return Err(Fail::Invalid("Username cannot be 'anonymous'".into()));
    }
    if name.chars().any(char::is_uppercase) {
        return Err(Fail::Invalid(
            "Username cannot contain upper case letters".into(),
        ));
    }
    Ok(())
}

/// The create-user rules for `fullName`.
pub fn validate_full_name(name: &str) -> Result<(), Fail> {
    if name.trim().is_empty() {
        return Err(Fail::Invalid("Full name cannot be blank".into()));
    }
    if name.contains('<') || name.contains('>') {
        return Err(Fail::Invalid(
            "Full name contains invalid characters".into(),
        ));
    }
    if name.trim().eq_ignore_ascii_case("anonymous") {
        return Err(Fail::Invalid("Full name cannot be 'anonymous'".into()));
    }
    Ok(())
}

/// A plausibility check for e-mail addresses, as the product's validator does.
pub fn validate_email(email: &str) -> Result<(), Fail> {
    let ok = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email
                    .chars()
                    .any(|c| c.is_whitespace() || c == '<' || c == '>')
                && !domain.contains('@')
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Fail::Invalid(format!("Invalid email address: {email}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(users: usize) -> PopulationSpec {
        PopulationSpec {
            users,
            seed: 42,
            crowd: true,
            max_users: 2 * users as i64,
            epoch_ms: 1_790_000_000_000,
            admin_user: "admin".into(),
            admin_password: "admin".into(),
            admin_pat: "pat".into(),
        }
    }

    #[test]
    fn the_same_seed_builds_the_same_population() {
        let a = State::populate(&spec(300));
        let b = State::populate(&spec(300));
        let ka: Vec<_> = a
            .all_slots()
            .filter_map(|s| a.get(s))
            .map(|u| (&u.key, &u.username, u.last_auth_ms))
            .collect();
        let kb: Vec<_> = b
            .all_slots()
            .filter_map(|s| b.get(s))
            .map(|u| (&u.key, &u.username, u.last_auth_ms))
            .collect();
        assert_eq!(ka, kb);
        assert_eq!(a.effective_slots().count(), 300);
    }

    #[test]
    fn nested_groups_grant_once_and_deactivated_users_never_count() {
        let mut st = State::populate(&spec(3));
        let before = st.licensed_count();
        let slot = st
            .create_user(NewUser {
                username: "nested".into(),
                display_name: "N".into(),
                email: "n@example.com".into(),
                password: None,
                active: true,
                groups: Some(vec![ENGINEERING.into(), CAN_USE.into()]),
                dir: None,
                created_ms: 0,
                check_seats: true,
            })
            .unwrap_or(usize::MAX);
        assert_eq!(st.licensed_count(), before + 1);
        assert!(st.set_active(slot, false).is_ok());
        assert_eq!(st.licensed_count(), before);
    }

    #[test]
    fn a_rename_keeps_the_key_and_refuses_taken_names() {
        let mut st = State::populate(&spec(50));
        let slot = st.by_username("viewer").unwrap_or(usize::MAX);
        let key = st.get(slot).map(|u| u.key.clone());
        assert!(st.rename(slot, "viewer_inactive_20261121").is_ok());
        assert_eq!(st.by_username("viewer_inactive_20261121"), Some(slot));
        assert_eq!(st.get(slot).map(|u| u.key.clone()), key);
        assert!(st.by_username("viewer").is_none());
        assert!(matches!(st.rename(slot, "admin"), Err(Fail::Conflict(_))));
    }

    #[test]
    fn create_user_names_follow_the_products_rules() {
        assert!(validate_username("user1").is_ok());
        for bad in ["", "Bob", "a b", "a,b", "anonymous", "x<y"] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
        assert!(validate_email("a@b.c").is_ok());
        assert!(validate_email("nope").is_err());
        assert!(validate_full_name("anonymous").is_err());
    }
}
