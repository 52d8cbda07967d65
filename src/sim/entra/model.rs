//! The simulated Entra tenant's state: users (with `signInActivity`, soft-deletion and
//! permanent deletion), groups with direct members, the sign-in log, and the change log the
//! delta query reads. Seeded reproducibly from a number; every listing reads a page by
//! position, so a page costs O(page size) whatever the population.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::super::common::SimRng;

/// How a user's `signInActivity` looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Activity {
    /// No `signInActivity` object (never signed in).
    Absent,
    /// Every date is the `0001-01-01T00:00:00Z` sentinel (never signed in).
    Sentinel,
    /// Real dates (either may still be null).
    Present,
}

/// Who a seeded user is meant to be (for tests that need one of each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Persona {
    Active,
    Disabled,
    Deleted,
    NeverSignedIn,
    LongInactive,
    Returner,
    Admin,
    Contractor,
    /// Failed sign-in attempts after the last successful one.
    FailedAttempts,
}

/// One user.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimUser {
    pub id: String,
    pub user_principal_name: String,
    pub mail: Option<String>,
    pub other_mails: Vec<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub display_name: String,
    pub account_enabled: bool,
    pub created: DateTime<Utc>,
    pub employee_id: Option<String>,
    pub employee_type: Option<String>,
    pub user_type: String,
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub company_name: Option<String>,
    pub activity: Activity,
    /// `lastSignInDateTime`: the last interactive attempt, successful or not.
    pub last_sign_in: Option<DateTime<Utc>>,
    /// `lastSuccessfulSignInDateTime`.
    pub last_success: Option<DateTime<Utc>>,
    /// Soft-deleted at (in `deletedItems`).
    pub deleted: Option<DateTime<Utc>>,
    /// Permanently deleted (gone everywhere; delta says `@removed: deleted`).
    pub purged: bool,
    pub persona: Persona,
}

impl SimUser {
    /// Listed under `/users`.
    pub fn present(&self) -> bool {
        self.deleted.is_none() && !self.purged
    }

    /// Listed under `/directory/deletedItems`.
    pub fn soft_deleted(&self) -> bool {
        self.deleted.is_some() && !self.purged
    }

    /// The UPN as Graph shows it: a soft-deleted user's UPN gets the id (without hyphens) in
    /// front, as Entra does to free the name.
    pub fn shown_upn(&self) -> String {
        if self.soft_deleted() {
            format!("{}{}", self.id.replace('-', ""), self.user_principal_name)
        } else {
            self.user_principal_name.clone()
        }
    }
}

/// One group.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimGroup {
    pub id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub security_enabled: bool,
    pub members: Vec<usize>,
}

/// One sign-in event.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimSignIn {
    pub id: String,
    pub created: DateTime<Utc>,
    pub user: usize,
    pub app_id: String,
    pub app_display_name: String,
    /// 0 = success.
    pub error_code: i64,
}

/// The tenant.
#[derive(Debug)]
pub struct World {
    pub tenant_id: String,
    pub domain: String,
    pub users: Vec<SimUser>,
    pub by_id: HashMap<String, usize>,
    pub by_upn: HashMap<String, usize>,
    /// Soft-deleted users, in deletion order.
    pub deleted: Vec<usize>,
    pub groups: Vec<SimGroup>,
    pub group_by_id: HashMap<String, usize>,
    /// Ascending by `created`.
    pub sign_ins: Vec<SimSignIn>,
    /// The change counter.
    pub seq: u64,
    /// (seq, user) for every change, ascending.
    pub changes: Vec<(u64, usize)>,
    rng: SimRng,
}

/// The Confluence application's display name in the sign-in log.
pub const APP_NAME: &str = "Atlassian Cloud";

const GIVEN: &[&str] = &[
    "Adele", "Alex", "Bianca", "Chen", "Dara", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kemi", "Lena", "Marco", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar",
    "Vera", "Wei", "Yara", "Zoe",
];
const FAMILY: &[&str] = &[
    "Vance",
    "Wilber",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Schmidt",
    "Rossi",
    "Haddad",
    "Novak",
    "Garcia",
    "Kowalski",
    "Nguyen",
    "Fischer",
    "Silva",
    "Petrov",
    "Murphy",
    "Sato",
];
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Support",
    "Legal",
];

impl World {
    /// A tenant of `users` people seeded from `seed`; dates are relative to `now`.
    pub fn seeded(
        seed: u64,
        users: usize,
        tenant_id: Option<&str>,
        app_id: &str,
        now: DateTime<Utc>,
    ) -> World {
        let mut rng = SimRng::new(seed);
        let tenant_id = tenant_id.map_or_else(|| rng.uuid(), str::to_owned);
        let domain = "contoso.example".to_owned();
        let contractor_domain = "contractors.fabrikam.example";
        let mut world = World {
            tenant_id,
            domain: domain.clone(),
            users: Vec::with_capacity(users),
            by_id: HashMap::with_capacity(users),
            by_upn: HashMap::with_capacity(users),
            deleted: Vec::new(),
            groups: Vec::new(),
            group_by_id: HashMap::new(),
            sign_ins: Vec::new(),
            seq: 0,
            changes: Vec::new(),
            rng: SimRng::new(seed ^ 0x005E_ED0F_E27A),
        };
        let mut group = |world: &mut World, name: &str, security: bool| {
            let id = rng.uuid();
            world.group_by_id.insert(id.clone(), world.groups.len());
            world.groups.push(SimGroup {
                id,
                display_name: name.to_owned(),
                description: Some(format!("{name} (seeded)")),
                security_enabled: security,
                members: Vec::new(),
            });
            world.groups.len() - 1
        };
        let g_users = group(&mut world, "Confluence Users", true);
        let g_admins = group(&mut world, "Confluence Administrators", true);
        let g_contractors = group(&mut world, "Contractors", true);
        let g_depts: Vec<usize> = DEPARTMENTS
            .iter()
            .map(|d| group(&mut world, d, false))
            .collect();
        let other_app = "00000003-0000-0ff1-ce00-000000000000";
        for i in 0..users {
            let roll = rng.below(1000);
            let persona = match roll {
                0..=699 => Persona::Active,
                700..=779 => Persona::Disabled,
                780..=799 => Persona::Deleted,
                800..=849 => Persona::NeverSignedIn,
                850..=909 => Persona::LongInactive,
                910..=929 => Persona::Returner,
                930..=944 => Persona::Admin,
                945..=979 => Persona::Contractor,
                _ => Persona::FailedAttempts,
            };
            let given = *rng.pick(GIVEN);
            let family = *rng.pick(FAMILY);
            let nick = format!("{}.{}{}", given.to_lowercase(), family.to_lowercase(), i);
            let contractor = persona == Persona::Contractor;
            let upn = if contractor {
                format!("{nick}_{contractor_domain}#EXT#@{domain}")
            } else {
                format!("{nick}@{domain}")
            };
            let mail = if contractor {
                format!("{nick}@{contractor_domain}")
            } else {
                format!("{nick}@{domain}")
            };
            let days = |rng: &mut SimRng, lo: i64, hi: i64| {
                now - Duration::days(lo + rng.below((hi - lo).max(1) as u64) as i64)
                    - Duration::seconds(rng.below(86_400) as i64)
            };
            let created = days(&mut rng, 200, 2500);
            let (activity, last_success) = match persona {
                Persona::NeverSignedIn => {
                    if rng.chance(0.5) {
                        (Activity::Absent, None)
                    } else {
                        (Activity::Sentinel, None)
                    }
                }
                Persona::LongInactive => (Activity::Present, Some(days(&mut rng, 181, 700))),
                Persona::Disabled | Persona::Deleted => {
                    (Activity::Present, Some(days(&mut rng, 30, 400)))
                }
                Persona::Returner => (Activity::Present, Some(days(&mut rng, 0, 3))),
                _ => (Activity::Present, Some(days(&mut rng, 0, 60))),
            };
            let last_sign_in = match persona {
                Persona::FailedAttempts => Some(now - Duration::hours(rng.below(48) as i64 + 1)),
                _ => last_success,
            };
            let last_success = match persona {
                Persona::FailedAttempts => Some(days(&mut rng, 60, 300)),
                _ => last_success,
            };
            let dept = rng.below(DEPARTMENTS.len() as u64) as usize;
            let id = rng.uuid();
            let user = SimUser {
                id: id.clone(),
                user_principal_name: upn.clone(),
                mail: Some(mail),
                other_mails: if rng.chance(0.1) {
                    vec![format!("{nick}@personal.example")]
                } else {
                    Vec::new()
                },
                given_name: Some(given.to_owned()),
                surname: Some(family.to_owned()),
                display_name: format!("{given} {family}"),
                account_enabled: !matches!(persona, Persona::Disabled),
                created,
                employee_id: (!contractor).then(|| format!("E{:06}", i + 1)),
                employee_type: Some(if contractor { "Contractor" } else { "Employee" }.into()),
                user_type: if contractor { "Guest" } else { "Member" }.into(),
                department: Some(DEPARTMENTS[dept].to_owned()),
                job_title: Some(if persona == Persona::Admin {
                    "Confluence Administrator".to_owned()
                } else {
                    "Staff".to_owned()
                }),
                company_name: Some(if contractor { "Fabrikam" } else { "Contoso" }.into()),
                activity,
                last_sign_in,
                last_success,
                deleted: None,
                purged: false,
                persona,
            };
            world.by_id.insert(id, i);
            world.by_upn.insert(upn.to_lowercase(), i);
            world.users.push(user);
            if persona == Persona::Deleted {
                let at = days(&mut rng, 1, 25);
                world.users[i].deleted = Some(at);
                world.deleted.push(i);
            } else {
                if persona != Persona::NeverSignedIn || rng.chance(0.5) {
                    world.groups[g_users].members.push(i);
                }
                world.groups[g_depts[dept]].members.push(i);
                if persona == Persona::Admin {
                    world.groups[g_admins].members.push(i);
                }
                if contractor {
                    world.groups[g_contractors].members.push(i);
                }
            }
            // Sign-in log (30 days): successes to the Confluence app for recent users,
            // failures, and sign-ins to another application.
            let mut event = |rng: &mut SimRng, at: DateTime<Utc>, app: &str, code: i64| {
                if at > now - Duration::days(30) && at <= now {
                    world.sign_ins.push(SimSignIn {
                        id: rng.uuid(),
                        created: at,
                        user: i,
                        app_id: app.to_owned(),
                        app_display_name: if app == other_app {
                            "Office 365 SharePoint Online".to_owned()
                        } else {
                            APP_NAME.to_owned()
                        },
                        error_code: code,
                    });
                }
            };
            if let Some(t) = world.users[i].last_success
                && matches!(
                    persona,
                    Persona::Active | Persona::Returner | Persona::Admin | Persona::Contractor
                )
            {
                event(&mut rng, t, app_id, 0);
                // Earlier visits within the retention window.
                let earlier = rng.below(4);
                let mut at = t;
                for _ in 0..earlier {
                    at -= Duration::hours(6 + rng.below(24 * 6) as i64);
                    event(&mut rng, at, app_id, 0);
                }
                if rng.chance(0.3) {
                    event(&mut rng, t - Duration::hours(30), other_app, 0);
                }
            }
            if persona == Persona::FailedAttempts
                && let Some(t) = world.users[i].last_sign_in
            {
                event(&mut rng, t, app_id, 50126);
            }
        }
        world.sign_ins.sort_by_key(|s| s.created);
        world.rng = rng;
        world
    }

    /// A new random id.
    pub fn new_id(&mut self) -> String {
        self.rng.uuid()
    }

    /// Records that user `i` changed (for the delta query).
    pub fn touch(&mut self, i: usize) {
        self.seq += 1;
        self.changes.push((self.seq, i));
    }

    /// The user with this id or UPN (case-insensitive), present or not.
    pub fn find(&self, key: &str) -> Option<usize> {
        self.by_id
            .get(key)
            .or_else(|| self.by_upn.get(&key.to_lowercase()))
            .copied()
    }

    /// Adds a user; returns its index.
    pub fn add_user(&mut self, mut user: SimUser) -> usize {
        if user.id.is_empty() {
            user.id = self.new_id();
        }
        let i = self.users.len();
        self.by_id.insert(user.id.clone(), i);
        self.by_upn
            .insert(user.user_principal_name.to_lowercase(), i);
        self.users.push(user);
        if let Some(g) = self.groups.first_mut() {
            g.members.push(i);
        }
        self.touch(i);
        i
    }

    /// Soft-deletes user `i` (to `deletedItems`).
    pub fn soft_delete(&mut self, i: usize, at: DateTime<Utc>) {
        if self.users[i].present() {
            self.users[i].deleted = Some(at);
            self.deleted.push(i);
            self.touch(i);
        }
    }

    /// Restores a soft-deleted user.
    pub fn restore(&mut self, i: usize) {
        if self.users[i].soft_deleted() {
            self.users[i].deleted = None;
            self.deleted.retain(|&d| d != i);
            self.touch(i);
        }
    }

    /// Deletes user `i` for good.
    pub fn purge(&mut self, i: usize) {
        if !self.users[i].purged {
            self.users[i].purged = true;
            self.deleted.retain(|&d| d != i);
            self.by_upn
                .remove(&self.users[i].user_principal_name.to_lowercase());
            self.touch(i);
        }
    }

    /// Permanently deletes users soft-deleted more than 30 days before `now`, as Entra does.
    pub fn sweep(&mut self, now: DateTime<Utc>) {
        let cutoff = now - Duration::days(30);
        let expired: Vec<usize> = self
            .deleted
            .iter()
            .copied()
            .filter(|&i| self.users[i].deleted.is_some_and(|t| t < cutoff))
            .collect();
        for i in expired {
            self.purge(i);
        }
    }

    /// Renames user `i`.
    pub fn rename(&mut self, i: usize, upn: &str) {
        self.by_upn
            .remove(&self.users[i].user_principal_name.to_lowercase());
        self.users[i].user_principal_name = upn.to_owned();
        self.by_upn.insert(upn.to_lowercase(), i);
        self.touch(i);
    }

    /// Adds a sign-in event, keeping the log in time order.
    pub fn add_sign_in(&mut self, event: SimSignIn) {
        let pos = self
            .sign_ins
            .partition_point(|s| s.created <= event.created);
        self.sign_ins.insert(pos, event);
    }

    /// Users listed under `/users`.
    pub fn present_count(&self) -> usize {
        self.users.iter().filter(|u| u.present()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_tenant_with_every_persona() {
        let now = DateTime::parse_from_rfc3339("2026-01-10T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let a = World::seeded(7, 2000, None, "app", now);
        let b = World::seeded(7, 2000, None, "app", now);
        assert_eq!(a.tenant_id, b.tenant_id);
        assert_eq!(a.users[1999].id, b.users[1999].id);
        for p in [
            Persona::Active,
            Persona::Disabled,
            Persona::Deleted,
            Persona::NeverSignedIn,
            Persona::LongInactive,
            Persona::Returner,
            Persona::Admin,
            Persona::Contractor,
            Persona::FailedAttempts,
        ] {
            assert!(a.users.iter().any(|u| u.persona == p), "{p:?}");
        }
        assert!(a.sign_ins.windows(2).all(|w| w[0].created <= w[1].created));
        assert_eq!(
            a.deleted.len(),
            a.users.iter().filter(|u| u.soft_deleted()).count()
        );
    }
}
