//! The simulated Okta org's state: users (kept in id order so a page after a cursor costs
//! O(page)), groups with sorted member lists, the System Log in persistence order, and the
//! seeded population; plus the filter grammar Okta's `filter` parameters accept.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::sim::common::SimRng;

/// One user as the simulator holds it.
#[derive(Clone, Debug)]
pub struct SimUser {
    pub id: String,
    pub status: String,
    pub created: DateTime<Utc>,
    pub activated: Option<DateTime<Utc>>,
    pub status_changed: Option<DateTime<Utc>>,
    pub last_login: Option<DateTime<Utc>>,
    pub last_updated: DateTime<Utc>,
    pub password_changed: Option<DateTime<Utc>>,
    pub login: String,
    pub email: String,
    pub second_email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub display_name: Option<String>,
    /// Custom and optional profile attributes (department, employeeNumber, costCenter, userType).
    pub extra: BTreeMap<String, String>,
}

/// A group.
#[derive(Clone, Debug)]
pub struct SimGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    /// `OKTA_GROUP`, `APP_GROUP` or `BUILT_IN`.
    pub kind: &'static str,
    pub created: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
    pub last_membership_updated: DateTime<Utc>,
    /// Member user ids, sorted.
    pub members: Vec<String>,
}

/// One System Log event.
#[derive(Clone, Debug)]
pub struct SimEvent {
    /// Position in persistence order.
    pub seq: u64,
    pub uuid: String,
    pub published: DateTime<Utc>,
    pub persisted: DateTime<Utc>,
    pub event_type: String,
    pub actor_id: String,
    pub actor_login: String,
    pub actor_name: String,
    /// The app instance the event targets (SSO events), if any.
    pub app_id: Option<String>,
    pub app_name: String,
    pub result: String,
    /// The user a lifecycle event targets (id, login, display name), if any.
    pub target_user: Option<(String, String, String)>,
}

/// The org.
#[derive(Debug)]
pub struct World {
    pub org: String,
    pub app_id: String,
    pub users: BTreeMap<String, SimUser>,
    pub by_login: HashMap<String, String>,
    /// Ids of users deleted (404 now), for the state summary.
    pub deleted: Vec<String>,
    pub groups: BTreeMap<String, SimGroup>,
    pub events: Vec<SimEvent>,
    rng: SimRng,
}

/// Okta's timestamp format (`2025-06-03T07:45:11.000Z`).
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(ts(t)))
}

const FIRST: &[&str] = &[
    "Alice", "Bob", "Carol", "Dmitri", "Esra", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kasia",
    "Liam", "Mei", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor",
    "Wen", "Ximena", "Yusuf", "Zoe",
];
const LAST: &[&str] = &[
    "Smith",
    "Jones",
    "Okafor",
    "Nakamura",
    "Schmidt",
    "Garcia",
    "Kowalski",
    "Haddad",
    "Nguyen",
    "Rossi",
    "Andersson",
    "Dubois",
    "Patel",
    "Kim",
    "Silva",
    "Novak",
    "Murphy",
    "Yilmaz",
];
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Support",
    "Finance",
    "Marketing",
    "Legal",
];

/// The email domain of employees and of contractors.
pub const EMPLOYEE_DOMAIN: &str = "example.com";
pub const CONTRACTOR_DOMAIN: &str = "contractors.example-partner.com";

impl World {
    /// A reproducible org of `n` users anchored at `now`, with the Confluence app `app_id`.
    pub fn seeded(seed: u64, n: usize, app_id: &str, now: DateTime<Utc>) -> World {
        let mut rng = SimRng::new(seed);
        let org = format!("00o{}", rng.hex(17));
        let mut w = World {
            org,
            app_id: app_id.to_owned(),
            users: BTreeMap::new(),
            by_login: HashMap::with_capacity(n),
            deleted: Vec::new(),
            groups: BTreeMap::new(),
            events: Vec::new(),
            rng: SimRng::new(seed ^ 0x5EED_0C7A),
        };
        let day = Duration::days(1);
        // Groups first, so members can be added as users are made.
        let mut group_ids: Vec<(String, &'static str)> = Vec::new();
        let add_group = |w: &mut World, name: &str, desc: &str, kind: &'static str| {
            let id = format!("00g{}", w.rng.hex(17));
            w.groups.insert(
                id.clone(),
                SimGroup {
                    id: id.clone(),
                    name: name.to_owned(),
                    description: desc.to_owned(),
                    kind,
                    created: now - day * 900,
                    last_updated: now - day * 30,
                    last_membership_updated: now - day,
                    members: Vec::new(),
                },
            );
            id
        };
        let everyone = add_group(
            &mut w,
            "Everyone",
            "All users in your organization",
            "BUILT_IN",
        );
        let confluence = add_group(
            &mut w,
            "Confluence Users",
            "Assigned to the Confluence app",
            "OKTA_GROUP",
        );
        let admins = add_group(&mut w, "Okta Admins", "Administrators", "OKTA_GROUP");
        let contractors = add_group(&mut w, "Contractors", "External staff", "OKTA_GROUP");
        for d in DEPARTMENTS {
            let id = add_group(&mut w, d, &format!("The {d} department"), "OKTA_GROUP");
            group_ids.push((id, d));
        }
        let ad = add_group(
            &mut w,
            "AD Domain Users",
            "Imported from Active Directory",
            "APP_GROUP",
        );

        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("00u{}", rng.hex(17));
            let first = *rng.pick(FIRST);
            let last = *rng.pick(LAST);
            let contractor = rng.chance(0.08);
            let admin = !contractor && rng.chance(0.01);
            let domain = if contractor {
                CONTRACTOR_DOMAIN
            } else {
                EMPLOYEE_DOMAIN
            };
            let login = format!(
                "{}.{}{}@{domain}",
                first.to_lowercase(),
                last.to_lowercase(),
                i
            );
            let created = now
                - day * (30 + rng.below(2000) as i32)
                - Duration::seconds(rng.below(86_400) as i64);
            let roll = rng.below(1000);
            let status = match roll {
                0..=679 => "ACTIVE",
                680..=699 => "LOCKED_OUT",
                700..=709 => "PASSWORD_EXPIRED",
                710..=714 => "RECOVERY",
                715..=734 => "STAGED",
                735..=754 => "PROVISIONED",
                755..=814 => "SUSPENDED",
                _ => "DEPROVISIONED",
            };
            let activated = (!matches!(status, "STAGED")).then(|| created + Duration::minutes(5));
            // Login history: never, long inactive, returner, recent.
            let kind = rng.below(100);
            let last_login = if matches!(status, "STAGED" | "PROVISIONED") || kind < 8 {
                None
            } else if kind < 25 {
                Some(now - day * (181 + rng.below(500) as i32))
            } else if status == "DEPROVISIONED" || status == "SUSPENDED" {
                Some(now - day * (20 + rng.below(150) as i32))
            } else {
                Some(now - Duration::minutes(5 + rng.below(60 * 24 * 28) as i64))
            }
            .map(|t: DateTime<Utc>| t.max(created + Duration::hours(1)));
            let status_changed = activated.map(|a| {
                if matches!(status, "ACTIVE" | "PROVISIONED") {
                    a
                } else {
                    (now - day * (1 + rng.below(120) as i32)).max(a)
                }
            });
            let last_updated = [Some(created), status_changed, last_login]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(created);
            let dept_ix = rng.below(group_ids.len() as u64) as usize;
            let mut extra = BTreeMap::new();
            extra.insert("department".into(), DEPARTMENTS[dept_ix].to_owned());
            extra.insert("employeeNumber".into(), format!("E{:06}", i + 1));
            extra.insert("costCenter".into(), format!("CC-{}", 100 + rng.below(40)));
            extra.insert(
                "userType".into(),
                if contractor {
                    "Contractor"
                } else if admin {
                    "Admin"
                } else {
                    "Employee"
                }
                .to_owned(),
            );
            let user = SimUser {
                id: id.clone(),
                status: status.to_owned(),
                created,
                activated,
                status_changed,
                last_login,
                last_updated,
                password_changed: activated,
                login: login.clone(),
                email: login.clone(),
                second_email: rng
                    .chance(0.1)
                    .then(|| format!("{}.{}@personal.example.org", first.to_lowercase(), i)),
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                display_name: Some(format!("{first} {last}")),
                extra,
            };
            // Returners: came back recently after a long gap (old and recent SSO).
            let returner = last_login.is_some_and(|t| now - t < day * 7) && rng.chance(0.05);
            let assigned = rng.chance(0.85);
            if let Some(t) = last_login
                && assigned
                && now - t < day * 90
            {
                if returner {
                    let old = now - day * (100 + rng.below(60) as i32);
                    w.push_seed_event(&user, old.max(created), "SUCCESS", true);
                }
                w.push_seed_event(&user, t, "SUCCESS", true);
                if rng.chance(0.05) {
                    w.push_seed_event(&user, t - Duration::minutes(2), "FAILURE", true);
                }
                if rng.chance(0.2) {
                    w.push_seed_event(&user, t - Duration::minutes(1), "SUCCESS", false);
                }
            }
            w.by_login.insert(login, id.clone());
            let mut gs = vec![everyone.clone(), group_ids[dept_ix].0.clone()];
            if assigned {
                gs.push(confluence.clone());
            }
            if admin {
                gs.push(admins.clone());
            }
            if contractor {
                gs.push(contractors.clone());
            }
            if rng.chance(0.3) {
                gs.push(ad.clone());
            }
            for g in gs {
                if let Some(group) = w.groups.get_mut(&g) {
                    group.members.push(id.clone());
                }
            }
            w.users.insert(id.clone(), user);
            ids.push(id);
        }
        // Deleted users: they were there, now 404.
        let deleted = n / 33;
        for _ in 0..deleted {
            let id = format!("00u{}", rng.hex(17));
            w.deleted.push(id);
        }
        for g in w.groups.values_mut() {
            g.members.sort_unstable();
        }
        // Persistence order: by persisted time, late inserts included.
        w.events.sort_by_key(|e| e.persisted);
        for (i, e) in w.events.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
        }
        w
    }

    fn push_seed_event(&mut self, u: &SimUser, at: DateTime<Utc>, result: &str, this_app: bool) {
        let late = self.rng.chance(0.01);
        let delay = if late {
            Duration::minutes(5 + self.rng.below(30) as i64)
        } else {
            Duration::milliseconds(50 + self.rng.below(2000) as i64)
        };
        let (app_id, app_name) = if this_app {
            (self.app_id.clone(), "Confluence".to_owned())
        } else {
            (format!("0oa{}", self.rng.hex(17)), "Slack".to_owned())
        };
        let uuid = self.rng.uuid();
        self.events.push(SimEvent {
            seq: 0,
            uuid,
            published: at,
            persisted: at + delay,
            event_type: "user.authentication.sso".into(),
            actor_id: u.id.clone(),
            actor_login: u.login.clone(),
            actor_name: format!("{} {}", u.first_name, u.last_name),
            app_id: Some(app_id),
            app_name,
            result: result.to_owned(),
            target_user: None,
        });
    }

    /// Appends an event persisted at `persisted` (published may be earlier: a late arrival).
    pub fn append_event(&mut self, mut e: SimEvent) -> SimEvent {
        e.seq = self.events.last().map_or(1, |l| l.seq + 1);
        if e.uuid.is_empty() {
            e.uuid = self.rng.uuid();
        }
        if let Some(last) = self.events.last() {
            e.persisted = e.persisted.max(last.persisted);
        }
        self.events.push(e.clone());
        e
    }

    /// A fresh user id (random, like Okta's).
    pub fn new_user_id(&mut self) -> String {
        format!("00u{}", self.rng.hex(17))
    }

    /// A user by id or login.
    pub fn user(&self, id_or_login: &str) -> Option<&SimUser> {
        self.users.get(id_or_login).or_else(|| {
            self.by_login
                .get(id_or_login)
                .and_then(|id| self.users.get(id))
        })
    }

    /// Deletes a user at `now`: gone from the list, 404 by id, removed from groups, and a
    /// `user.lifecycle.delete.initiated` event in the System Log.
    pub fn delete_user(&mut self, id: &str, now: DateTime<Utc>) -> bool {
        let Some(u) = self.users.remove(id) else {
            return false;
        };
        self.append_event(SimEvent {
            seq: 0,
            uuid: String::new(),
            published: now,
            persisted: now,
            event_type: "user.lifecycle.delete.initiated".into(),
            actor_id: "00uadmin0000000000001".into(),
            actor_login: format!("admin@{EMPLOYEE_DOMAIN}"),
            actor_name: "Org Admin".into(),
            app_id: None,
            app_name: String::new(),
            result: "SUCCESS".into(),
            target_user: Some((
                u.id.clone(),
                u.login.clone(),
                format!("{} {}", u.first_name, u.last_name),
            )),
        });
        self.by_login.remove(&u.login);
        for g in self.groups.values_mut() {
            if let Ok(i) = g.members.binary_search(&u.id) {
                g.members.remove(i);
            }
        }
        self.deleted.push(u.id);
        true
    }

    /// Adds a user (and puts them in Everyone).
    pub fn add_user(&mut self, u: SimUser) {
        self.by_login.insert(u.login.clone(), u.id.clone());
        for g in self.groups.values_mut() {
            if g.kind == "BUILT_IN"
                && let Err(i) = g.members.binary_search(&u.id)
            {
                g.members.insert(i, u.id.clone());
            }
        }
        self.users.insert(u.id.clone(), u);
    }
}

impl SimUser {
    /// The user as Okta's API shows it.
    pub fn to_json(&self, base: &str) -> Value {
        let mut profile = Map::new();
        profile.insert("firstName".into(), json!(self.first_name));
        profile.insert("lastName".into(), json!(self.last_name));
        profile.insert("mobilePhone".into(), Value::Null);
        profile.insert(
            "secondEmail".into(),
            self.second_email.clone().map_or(Value::Null, Value::String),
        );
        profile.insert("login".into(), json!(self.login));
        profile.insert("email".into(), json!(self.email));
        if let Some(d) = &self.display_name {
            profile.insert("displayName".into(), json!(d));
        }
        for (k, v) in &self.extra {
            profile.insert(k.clone(), json!(v));
        }
        let mut credentials = json!({ "provider": { "type": "OKTA", "name": "OKTA" } });
        if self.status != "STAGED" {
            credentials["password"] = json!({});
        }
        json!({
            "id": self.id,
            "status": self.status,
            "created": ts(self.created),
            "activated": opt_ts(self.activated),
            "statusChanged": opt_ts(self.status_changed),
            "lastLogin": opt_ts(self.last_login),
            "lastUpdated": ts(self.last_updated),
            "passwordChanged": opt_ts(self.password_changed),
            "type": { "id": "oty1162QAr8hJjTaq0g4" },
            "profile": Value::Object(profile),
            "credentials": credentials,
            "_links": { "self": { "href": format!("{base}/api/v1/users/{}", self.id) } }
        })
    }

    /// The value of a filterable attribute.
    fn attr(&self, name: &str) -> Option<FilterValue<'_>> {
        Some(match name {
            "status" => FilterValue::Text(&self.status),
            "id" => FilterValue::Text(&self.id),
            "lastUpdated" => FilterValue::Time(self.last_updated),
            "profile.login" => FilterValue::Text(&self.login),
            "profile.email" => FilterValue::Text(&self.email),
            "profile.firstName" => FilterValue::Text(&self.first_name),
            "profile.lastName" => FilterValue::Text(&self.last_name),
            _ => return None,
        })
    }
}

impl SimGroup {
    /// The group as Okta's API shows it; `stats` adds `_embedded.stats.usersCount`.
    pub fn to_json(&self, base: &str, stats: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "created": ts(self.created),
            "lastUpdated": ts(self.last_updated),
            "lastMembershipUpdated": ts(self.last_membership_updated),
            "objectClass": ["okta:user_group"],
            "type": self.kind,
            "profile": { "name": self.name, "description": self.description },
            "_links": {
                "logo": [
                    { "name": "medium", "href": format!("{base}/img/logos/groups/okta-medium.png"), "type": "image/png" }
                ],
                "users": { "href": format!("{base}/api/v1/groups/{}/users", self.id) },
                "apps": { "href": format!("{base}/api/v1/groups/{}/apps", self.id) }
            }
        });
        if stats {
            v["_embedded"] = json!({ "stats": { "usersCount": self.members.len() } });
        }
        v
    }

    fn attr(&self, name: &str) -> Option<FilterValue<'_>> {
        Some(match name {
            "id" => FilterValue::Text(&self.id),
            "type" => FilterValue::Text(self.kind),
            "lastUpdated" => FilterValue::Time(self.last_updated),
            "lastMembershipUpdated" => FilterValue::Time(self.last_membership_updated),
            _ => return None,
        })
    }
}

impl SimEvent {
    /// The event as the System Log API shows it.
    pub fn to_json(&self, org: &str) -> Value {
        let mut target = Vec::new();
        if let Some(app) = &self.app_id {
            target.push(json!({
                "id": app, "type": "AppInstance", "alternateId": self.app_name,
                "displayName": self.app_name, "detailEntry": { "signOnModeType": "SAML_2_0" }
            }));
            target.push(json!({
                "id": format!("0ua{}", &self.uuid.replace('-', "")[..17]), "type": "AppUser",
                "alternateId": self.actor_login, "displayName": self.actor_name
            }));
        }
        if let Some((id, login, name)) = &self.target_user {
            target.push(json!({
                "id": id, "type": "User", "alternateId": login, "displayName": name
            }));
        }
        let mut outcome = json!({ "result": self.result });
        if self.result != "SUCCESS" {
            outcome["reason"] = json!("VERIFICATION_ERROR");
        }
        let tx = &self.uuid[..8];
        json!({
            "uuid": self.uuid,
            "published": ts(self.published),
            "eventType": self.event_type,
            "version": "0",
            "severity": if self.result == "SUCCESS" { "INFO" } else { "WARN" },
            "displayMessage": if self.target_user.is_some() { "Delete Okta user" } else { "User single sign on to app" },
            "legacyEventType": if self.target_user.is_some() { "core.user.config.user_deleted" } else { "app.auth.sso" },
            "actor": {
                "id": self.actor_id, "type": "User", "alternateId": self.actor_login,
                "displayName": self.actor_name
            },
            "client": {
                "userAgent": { "rawUserAgent": "Mozilla/5.0 (Macintosh)", "os": "Mac OS X", "browser": "CHROME" },
                "zone": "null", "device": "Computer", "ipAddress": "203.0.113.10",
                "geographicalContext": {
                    "city": "Berlin", "state": "Berlin", "country": "Germany", "postalCode": "10115",
                    "geolocation": { "lat": 52.52, "lon": 13.4 }
                }
            },
            "authenticationContext": { "authenticationStep": 0, "externalSessionId": format!("102{tx}") },
            "outcome": outcome,
            "target": target,
            "transaction": { "type": "WEB", "id": tx, "detail": {} },
            "debugContext": { "debugData": { "requestId": tx, "requestUri": "/app/confluence/sso/saml" } },
            "request": { "ipChain": [ { "ip": "203.0.113.10", "version": "V4" } ] },
            "org": org
        })
    }

    fn attr_matches(&self, name: &str, op: Op, value: &str) -> Option<bool> {
        let text = |s: &str| op.text(s, value);
        Some(match name {
            "eventType" => text(&self.event_type),
            "actor.id" => text(&self.actor_id),
            "actor.alternateId" => text(&self.actor_login),
            "outcome.result" => text(&self.result),
            "target.id" => {
                let app_user = self.app_id.as_ref().map(|_| {
                    format!(
                        "0ua{}",
                        &self.uuid.replace('-', "")[..17.min(self.uuid.len())]
                    )
                });
                self.app_id.as_deref().is_some_and(text)
                    || app_user.as_deref().is_some_and(text)
                    || self.target_user.as_ref().is_some_and(|t| text(&t.0))
            }
            "severity" => text(if self.result == "SUCCESS" {
                "INFO"
            } else {
                "WARN"
            }),
            _ => return None,
        })
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Co,
    Sw,
    Ew,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            _ => return None,
        })
    }

    fn text(self, have: &str, want: &str) -> bool {
        match self {
            Op::Eq => have == want,
            Op::Ne => have != want,
            Op::Gt => have > want,
            Op::Ge => have >= want,
            Op::Lt => have < want,
            Op::Le => have <= want,
            Op::Co => have.contains(want),
            Op::Sw => have.starts_with(want),
            Op::Ew => have.ends_with(want),
        }
    }

    fn ord(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => o == Equal,
            Op::Ne => o != Equal,
            Op::Gt => o == Greater,
            Op::Ge => o != Less,
            Op::Lt => o == Less,
            Op::Le => o != Greater,
            _ => false,
        }
    }
}

enum FilterValue<'a> {
    Text(&'a str),
    Time(DateTime<Utc>),
}

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Cmp { attr: String, op: Op, value: String },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

/// Which grammar a filter follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grammar {
    /// `GET /api/v1/users?filter=`: status, lastUpdated, id, profile.login/email/firstName/
    /// lastName; `eq` only, except lastUpdated which also takes gt/ge/lt/le.
    Users,
    /// `GET /api/v1/groups?filter=`: id, type, lastUpdated, lastMembershipUpdated.
    Groups,
    /// `GET /api/v1/logs?filter=`: SCIM operators on event attributes.
    Logs,
}

/// Why a filter was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum FilterError {
    /// Not a filter at all (E0000053 on logs, E0000031 elsewhere).
    Syntax(String),
    /// A property or operator the endpoint does not support (E0000031).
    Unsupported(String),
}

fn tokens(s: &str) -> Result<Vec<String>, FilterError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut v = String::from("\"");
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => v.push(c),
                }
            }
            if !closed {
                return Err(FilterError::Syntax("unterminated string".into()));
            }
            out.push(v);
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            out.push(w);
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<String>,
    pos: usize,
    grammar: Grammar,
}

impl Parser {
    fn peek_kw(&self, kw: &str) -> bool {
        self.toks
            .get(self.pos)
            .is_some_and(|t| !t.starts_with('"') && t.eq_ignore_ascii_case(kw))
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.peek_kw("or") {
            self.pos += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.atom()?;
        while self.peek_kw("and") {
            self.pos += 1;
            left = Filter::And(Box::new(left), Box::new(self.atom()?));
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Filter, FilterError> {
        let tok = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or_else(|| FilterError::Syntax("unexpected end".into()))?;
        if tok == "(" {
            self.pos += 1;
            let f = self.or()?;
            if self.toks.get(self.pos).map(String::as_str) != Some(")") {
                return Err(FilterError::Syntax("missing )".into()));
            }
            self.pos += 1;
            return Ok(f);
        }
        if tok.eq_ignore_ascii_case("not") {
            return Err(FilterError::Unsupported("`not` is not supported".into()));
        }
        let op_tok = self
            .toks
            .get(self.pos + 1)
            .ok_or_else(|| FilterError::Syntax(format!("no operator after {tok}")))?;
        let op = Op::parse(op_tok)
            .ok_or_else(|| FilterError::Syntax(format!("unknown operator {op_tok}")))?;
        let val = self
            .toks
            .get(self.pos + 2)
            .ok_or_else(|| FilterError::Syntax(format!("no value after {tok} {op_tok}")))?;
        let value = val
            .strip_prefix('"')
            .map(str::to_owned)
            .or_else(|| matches!(val.as_str(), "true" | "false" | "null").then(|| val.clone()))
            .ok_or_else(|| FilterError::Syntax(format!("value {val} is not quoted")))?;
        self.pos += 3;
        self.check(&tok, op, &value)?;
        Ok(Filter::Cmp {
            attr: tok,
            op,
            value,
        })
    }

    fn check(&self, attr: &str, op: Op, value: &str) -> Result<(), FilterError> {
        let time_attr = matches!(attr, "lastUpdated" | "lastMembershipUpdated");
        let ok = match self.grammar {
            Grammar::Users => match attr {
                "lastUpdated" => matches!(op, Op::Eq | Op::Gt | Op::Ge | Op::Lt | Op::Le),
                "status" | "id" | "profile.login" | "profile.email" | "profile.firstName"
                | "profile.lastName" => op == Op::Eq,
                _ => false,
            },
            Grammar::Groups => match attr {
                "lastUpdated" | "lastMembershipUpdated" => {
                    matches!(op, Op::Eq | Op::Gt | Op::Ge | Op::Lt | Op::Le)
                }
                "id" | "type" => op == Op::Eq,
                _ => false,
            },
            Grammar::Logs => matches!(
                attr,
                "eventType"
                    | "actor.id"
                    | "actor.alternateId"
                    | "outcome.result"
                    | "target.id"
                    | "severity"
            ),
        };
        if !ok {
            return Err(FilterError::Unsupported(format!(
                "{attr} with that operator is not supported"
            )));
        }
        if time_attr && parse_time(value).is_none() {
            return Err(FilterError::Syntax(format!("{value} is not a timestamp")));
        }
        Ok(())
    }
}

/// An ISO 8601 timestamp as Okta accepts them.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Filter {
    /// Parses `text` under `grammar`.
    pub fn parse(text: &str, grammar: Grammar) -> Result<Filter, FilterError> {
        let toks = tokens(text)?;
        let mut p = Parser {
            toks,
            pos: 0,
            grammar,
        };
        let f = p.or()?;
        if p.pos != p.toks.len() {
            return Err(FilterError::Syntax(format!(
                "unexpected `{}`",
                p.toks[p.pos]
            )));
        }
        Ok(f)
    }

    fn eval(&self, get: &dyn Fn(&str, Op, &str) -> bool) -> bool {
        match self {
            Filter::Cmp { attr, op, value } => get(attr, *op, value),
            Filter::And(a, b) => a.eval(get) && b.eval(get),
            Filter::Or(a, b) => a.eval(get) || b.eval(get),
        }
    }

    /// Whether a user matches.
    pub fn user(&self, u: &SimUser) -> bool {
        self.eval(&|attr, op, value| cmp(u.attr(attr), op, value))
    }

    /// Whether a group matches.
    pub fn group(&self, g: &SimGroup) -> bool {
        self.eval(&|attr, op, value| cmp(g.attr(attr), op, value))
    }

    /// Whether an event matches.
    pub fn event(&self, e: &SimEvent) -> bool {
        self.eval(&|attr, op, value| e.attr_matches(attr, op, value).unwrap_or(false))
    }
}

fn cmp(have: Option<FilterValue<'_>>, op: Op, value: &str) -> bool {
    match have {
        Some(FilterValue::Text(t)) => op.text(t, value),
        Some(FilterValue::Time(t)) => parse_time(value).is_some_and(|v| op.ord(t.cmp(&v))),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_filter_grammar_takes_okta_examples_and_refuses_the_rest() {
        let f = Filter::parse(
            r#"status eq "DEPROVISIONED" or lastUpdated GT "2025-06-01T00:00:00.000Z""#,
            Grammar::Users,
        )
        .unwrap();
        assert!(matches!(f, Filter::Or(..)));
        assert!(matches!(
            Filter::parse(r#"status gt "A""#, Grammar::Users),
            Err(FilterError::Unsupported(_))
        ));
        assert!(matches!(
            Filter::parse(r#"profile.department eq "x""#, Grammar::Users),
            Err(FilterError::Unsupported(_))
        ));
        assert!(matches!(
            Filter::parse(r#"status eq ACTIVE"#, Grammar::Users),
            Err(FilterError::Syntax(_))
        ));
        assert!(matches!(
            Filter::parse(r#"(status eq "ACTIVE""#, Grammar::Users),
            Err(FilterError::Syntax(_))
        ));
    }

    #[test]
    fn a_seeded_org_is_reproducible_and_has_every_kind_of_person() {
        use crate::clock::Clock;
        let now = crate::clock::SystemClock.now();
        let a = World::seeded(7, 2000, "0oaapp", now);
        let b = World::seeded(7, 2000, "0oaapp", now);
        assert_eq!(
            a.users.keys().collect::<Vec<_>>(),
            b.users.keys().collect::<Vec<_>>()
        );
        let count = |s: &str| a.users.values().filter(|u| u.status == s).count();
        for s in [
            "ACTIVE",
            "SUSPENDED",
            "DEPROVISIONED",
            "STAGED",
            "LOCKED_OUT",
        ] {
            assert!(count(s) > 0, "{s}");
        }
        assert!(a.users.values().any(|u| u.last_login.is_none()));
        assert!(
            a.users
                .values()
                .any(|u| u.last_login.is_some_and(|t| now - t > Duration::days(180)))
        );
        assert!(
            a.users
                .values()
                .any(|u| u.email.ends_with(CONTRACTOR_DOMAIN))
        );
        assert!(!a.deleted.is_empty());
        assert!(a.events.iter().any(|e| e.result == "FAILURE"));
        assert!(
            a.events
                .windows(2)
                .all(|w| w[0].persisted <= w[1].persisted)
        );
    }
}
