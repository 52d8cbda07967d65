//! The LDAP / Active Directory connector: people and groups from a directory by paged search
//! (RFC 2696 simple paged results), over `ldap://` (optionally upgraded with StartTLS) or
//! `ldaps://`, with simple bind.
//!
//! # Paging and cursors
//! The paged-results cookie is only valid on the connection that started the search, so the
//! connector keeps that connection and the search state between calls: one slot each for the
//! identity, group and change listings. The cursor handed out is `<generation>.<cookie in
//! base64url>`; a call with a cursor must match the slot's generation and cookie exactly.
//! A cursor from another listing, an older listing, another process, or a listing whose
//! connection failed is stale and fails with [`SourceError::NotFound`] — start again without
//! a cursor. A listing started without a cursor replaces the slot's previous one; only one
//! listing of each kind runs at a time per source.
//!
//! # Flavours
//! `flavour = "ad"` or `"openldap"`; when unset, the rootDSE decides (AD announces capability
//! `1.2.840.113556.1.4.800`). AD: external id = `objectGUID` as a canonical GUID string,
//! login = `sAMAccountName` (else `userPrincipalName`), status from `userAccountControl`
//! (bit 0x2 → `disabled`), `accountExpires` (past → `expired`; 0 and 0x7FFFFFFFFFFFFFFF mean
//! never) and `lockoutTime` (> 0 → `locked`, still Active); last login = `lastLogonTimestamp`
//! (replicated, up to ~14 days stale by design); groups = `memberOf` (the primary group, e.g.
//! Domain Users, is not in `memberOf` and so not reported). OpenLDAP: external id =
//! `entryUUID`, login = `uid` (else `mail`, else `cn`), status from ppolicy
//! `pwdAccountLockedTime` (`000001010000Z` = locked by an administrator → `disabled`; any
//! other value → `locked`, still Active), last login = the later of ppolicy `pwdLastSuccess`
//! and lastbind `authTimestamp` (none when neither is enabled), groups = `memberOf` (memberof
//! overlay) plus a group search (`group_filter` under `base_dn`: `member`, `uniqueMember`,
//! `memberUid`) done once at the start of each listing.
//!
//! # Groups
//! A group's external id is its DN, normalised (lower case, no spaces around separators), the
//! same string people carry in `groups`. Group members are reported as people's external ids:
//! at the start of a group listing the connector reads every person's DN, id and login
//! (one paged search asking for those attributes only) and resolves `member`/`uniqueMember` DNs and `memberUid`s with
//! it; members that are not people under `base_dn` (nested groups, computers) are left out.
//! AD returns the members of a large group in ranges (`member;range=0-1499`); the connector
//! reads the remaining ranges of such a group with base searches before reporting it.
//!
//! # Incremental listing
//! `list_changes` searches `(&<user_filter>(modifyTimestamp>=<checkpoint>))` (AD:
//! `whenChanged`). The checkpoint is idbridge's clock at the start of the listing minus
//! [`CHECKPOINT_OVERLAP`], in generalized time, so clock skew and changes made while a
//! listing runs are read again rather than lost. Deletions are not visible this way (AD
//! tombstones need extra rights); the next full listing finds them. `whenChanged` is not
//! replicated: always poll the same domain controller.
//!
//! Sign-ins are unsupported: LDAP has no per-application sign-in log; the last-login
//! attributes above are read instead.

mod conn;
pub mod decode;
pub mod map;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ldap3::{Ldap, Scope};
use tokio::sync::{Mutex, OnceCell};

use super::{
    Change, SignIn, Source, SourceCheck, SourceError, SourceGroup, SourceIdentity, SourcePage,
};
use crate::clock::{SharedClock, SystemClock};
use crate::config::SourceConfig;
use crate::domain::SourceKind;
use conn::Endpoint;
pub use map::Flavour;
use map::Memberships;

/// How far behind the listing's start the incremental checkpoint is set.
pub const CHECKPOINT_OVERLAP: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// Default page size; AD's own MaxPageSize is 1000.
const DEFAULT_PAGE_SIZE: u32 = 500;
const MAX_PAGE_SIZE: u32 = 1000;
/// Most group memberships or people kept in memory for one listing's look-ups.
const MAX_LOOKUP_ENTRIES: usize = 5_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Identities,
    Groups,
    Changes,
}

/// A paged search in progress, with its connection.
struct Listing {
    generation: u64,
    ldap: Ldap,
    cookie: Vec<u8>,
    flavour: Flavour,
    filter: String,
    /// The checkpoint the terminal page hands out.
    checkpoint: String,
    memberships: Memberships,
    ids: HashMap<String, String>,
}

/// An LDAP or Active Directory source.
pub struct LdapSource {
    name: String,
    endpoint: Endpoint,
    base_dn: String,
    configured_flavour: Option<Flavour>,
    flavour: OnceCell<Flavour>,
    user_filter: Option<String>,
    group_filter: Option<String>,
    page_size: i32,
    custom_attributes: Vec<String>,
    clock: SharedClock,
    generation: AtomicU64,
    identities: Mutex<Option<Listing>>,
    groups: Mutex<Option<Listing>>,
    changes: Mutex<Option<Listing>>,
}

impl std::fmt::Debug for LdapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapSource")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("base_dn", &self.base_dn)
            .finish_non_exhaustive()
    }
}

fn check_filter(name: &str, key: &str, filter: &str) -> Result<(), SourceError> {
    ldap3::parse_filter(filter).map(|_| ()).map_err(|_| {
        SourceError::Config(format!(
            "sources.{name}.{key}: `{filter}` is not a valid LDAP filter"
        ))
    })
}

impl LdapSource {
    /// The connector for source `name`.
    pub fn from_config(name: &str, cfg: &SourceConfig) -> Result<Self, SourceError> {
        let url = cfg.base_url.clone().ok_or_else(|| {
            SourceError::Config(format!("sources.{name}.base_url: required for LDAP"))
        })?;
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
            return Err(SourceError::Config(format!(
                "sources.{name}.base_url: `{url}` is not an ldap:// or ldaps:// URL"
            )));
        }
        if cfg.starttls && url.starts_with("ldaps://") {
            return Err(SourceError::Config(format!(
                "sources.{name}.starttls: StartTLS is for ldap:// URLs; ldaps:// is already TLS"
            )));
        }
        let base_dn = cfg
            .base_dn
            .clone()
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| {
                SourceError::Config(format!("sources.{name}.base_dn: required for LDAP"))
            })?;
        let configured_flavour = match cfg.flavour.as_deref() {
            None => None,
            Some("ad") => Some(Flavour::ActiveDirectory),
            Some("openldap") => Some(Flavour::OpenLdap),
            Some(other) => {
                return Err(SourceError::Config(format!(
                    "sources.{name}.flavour: `{other}` is not `ad` or `openldap`"
                )));
            }
        };
        if let Some(f) = &cfg.user_filter {
            check_filter(name, "user_filter", f)?;
        }
        if let Some(f) = &cfg.group_filter {
            check_filter(name, "group_filter", f)?;
        }
        let tls = match &cfg.ca_file {
            Some(path) => Some(
                conn::tls_with_ca(path)
                    .map_err(|e| SourceError::Config(format!("sources.{name}.ca_file: {e}")))?,
            ),
            None => None,
        };
        let page_size = cfg
            .page_size
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE);
        Ok(LdapSource {
            name: name.to_owned(),
            endpoint: Endpoint {
                url,
                starttls: cfg.starttls,
                tls,
                timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
                bind_dn: cfg.bind_dn.clone(),
                bind_password: cfg.bind_password.clone(),
            },
            base_dn,
            configured_flavour,
            flavour: OnceCell::new(),
            user_filter: cfg.user_filter.clone(),
            group_filter: cfg.group_filter.clone(),
            page_size: i32::try_from(page_size).unwrap_or(500),
            custom_attributes: cfg.custom_attributes.clone(),
            clock: Arc::new(SystemClock),
            generation: AtomicU64::new(0),
            identities: Mutex::new(None),
            groups: Mutex::new(None),
            changes: Mutex::new(None),
        })
    }

    /// The same connector reading "now" (account expiry, checkpoints) from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn timeout(&self) -> Duration {
        self.endpoint.timeout
    }

    /// Connects, binds and finds out the flavour (once per connector).
    async fn open(&self) -> Result<(Ldap, Flavour), SourceError> {
        let ldap = conn::connect(&self.endpoint).await?;
        let flavour = match self.configured_flavour {
            Some(f) => f,
            None => {
                *self
                    .flavour
                    .get_or_try_init(|| async {
                        let root = conn::search_small(
                            &mut ldap.clone(),
                            self.timeout(),
                            "",
                            Scope::Base,
                            "(objectClass=*)",
                            &["supportedCapabilities"],
                            1,
                        )
                        .await?;
                        let ad = root.iter().any(|e| {
                            e.all("supportedCapabilities")
                                .iter()
                                .any(|c| c == map::AD_CAPABILITY)
                        });
                        Ok::<_, SourceError>(if ad {
                            Flavour::ActiveDirectory
                        } else {
                            Flavour::OpenLdap
                        })
                    })
                    .await?
            }
        };
        Ok((ldap, flavour))
    }

    fn user_filter(&self, flavour: Flavour) -> String {
        self.user_filter
            .clone()
            .unwrap_or_else(|| flavour.default_user_filter().to_owned())
    }

    fn group_filter(&self, flavour: Flavour) -> String {
        self.group_filter
            .clone()
            .unwrap_or_else(|| flavour.default_group_filter().to_owned())
    }

    fn slot(&self, kind: Kind) -> &Mutex<Option<Listing>> {
        match kind {
            Kind::Identities => &self.identities,
            Kind::Groups => &self.groups,
            Kind::Changes => &self.changes,
        }
    }

    /// Runs a whole paged search internally (for look-up tables at the start of a
    /// listing), calling `each` per entry; at most [`MAX_LOOKUP_ENTRIES`] entries.
    async fn scan(
        &self,
        ldap: &mut Ldap,
        filter: &str,
        attrs: &[String],
        mut each: impl FnMut(&decode::Entry),
    ) -> Result<usize, SourceError> {
        let mut cookie = Vec::new();
        let mut seen = 0usize;
        loop {
            let page = conn::search_page(
                ldap,
                self.timeout(),
                &self.base_dn,
                filter,
                attrs,
                self.page_size,
                cookie,
            )
            .await?;
            seen += page.entries.len();
            if seen > MAX_LOOKUP_ENTRIES {
                return Err(SourceError::UnexpectedBody {
                    status: 0,
                    detail: format!("more than {MAX_LOOKUP_ENTRIES} entries match {filter}"),
                });
            }
            page.entries.iter().for_each(&mut each);
            if page.cookie.is_empty() {
                return Ok(seen);
            }
            cookie = page.cookie;
        }
    }

    /// OpenLDAP: who is in which group, from one group search.
    async fn memberships(
        &self,
        ldap: &mut Ldap,
        flavour: Flavour,
    ) -> Result<Memberships, SourceError> {
        let mut out = Memberships::new();
        if flavour != Flavour::OpenLdap {
            return Ok(out);
        }
        let attrs: Vec<String> = ["member", "uniqueMember", "memberUid"]
            .map(String::from)
            .to_vec();
        let filter = self.group_filter(flavour);
        let mut total = 0usize;
        self.scan(ldap, &filter, &attrs, |e| {
            let gid = decode::normalise_dn(&e.dn);
            let dns = e.all("member").into_iter().chain(e.all("uniqueMember"));
            for dn in dns {
                let dn = dn.split('#').next().unwrap_or_default().to_owned();
                out.entry(decode::normalise_dn(&dn))
                    .or_default()
                    .push(gid.clone());
                total += 1;
            }
            for uid in e.all("memberUid") {
                out.entry(map::uid_key(&uid)).or_default().push(gid.clone());
                total += 1;
            }
        })
        .await?;
        if total > MAX_LOOKUP_ENTRIES {
            return Err(SourceError::UnexpectedBody {
                status: 0,
                detail: format!("more than {MAX_LOOKUP_ENTRIES} group memberships"),
            });
        }
        Ok(out)
    }

    /// Every person's normalised DN and `uid:<login>` → external id.
    async fn people_ids(
        &self,
        ldap: &mut Ldap,
        flavour: Flavour,
    ) -> Result<HashMap<String, String>, SourceError> {
        let mut attrs = vec![flavour.id_attr().to_owned()];
        attrs.extend(flavour.login_attrs().iter().map(|a| (*a).to_owned()));
        let mut ids = HashMap::new();
        let filter = self.user_filter(flavour);
        self.scan(ldap, &filter, &attrs, |e| {
            if let Ok(id) = map::external_id(e, flavour) {
                if let Some(login) = map::login(e, flavour) {
                    ids.insert(map::uid_key(&login), id.clone());
                }
                ids.insert(decode::normalise_dn(&e.dn), id);
            }
        })
        .await?;
        Ok(ids)
    }

    /// Starts a listing of `kind` on a fresh connection.
    async fn start(&self, kind: Kind, since: Option<&str>) -> Result<Listing, SourceError> {
        let started = self.clock.now();
        let (mut ldap, flavour) = self.open().await?;
        let user_filter = self.user_filter(flavour);
        let (filter, memberships, ids) = match kind {
            Kind::Identities => (
                user_filter,
                self.memberships(&mut ldap, flavour).await?,
                HashMap::new(),
            ),
            Kind::Changes => {
                let since = since.unwrap_or_default();
                (
                    format!(
                        "(&{user_filter}({}>={}))",
                        flavour.modified_attr(),
                        ldap3::ldap_escape(since)
                    ),
                    self.memberships(&mut ldap, flavour).await?,
                    HashMap::new(),
                )
            }
            Kind::Groups => (
                self.group_filter(flavour),
                Memberships::new(),
                self.people_ids(&mut ldap, flavour).await?,
            ),
        };
        Ok(Listing {
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
            ldap,
            cookie: Vec::new(),
            flavour,
            filter,
            checkpoint: decode::to_generalized_time(started - CHECKPOINT_OVERLAP),
            memberships,
            ids,
        })
    }

    fn stale(&self, cursor: &str) -> SourceError {
        SourceError::NotFound {
            what: format!(
                "sources.{}: the LDAP paged search for cursor `{}` (paged-results cursors live \
                 only on the connection that started the listing; it has ended, failed or been \
                 replaced — start the listing again without a cursor)",
                self.name,
                cursor.chars().take(40).collect::<String>()
            ),
        }
    }

    /// Takes the listing `cursor` continues out of `slot`.
    fn resume(&self, slot: &mut Option<Listing>, cursor: &str) -> Result<Listing, SourceError> {
        let (generation, cookie) = cursor
            .split_once('.')
            .and_then(|(g, c)| Some((g.parse::<u64>().ok()?, URL_SAFE_NO_PAD.decode(c).ok()?)))
            .ok_or_else(|| self.stale(cursor))?;
        match slot.take() {
            Some(l) if l.generation == generation && l.cookie == cookie && !cookie.is_empty() => {
                Ok(l)
            }
            other => {
                *slot = other;
                Err(self.stale(cursor))
            }
        }
    }

    /// One page of the listing of `kind`, mapped by `each`; `since` for changes.
    async fn page<T>(
        &self,
        kind: Kind,
        since: Option<&str>,
        cursor: Option<&str>,
        mut each: impl FnMut(&decode::Entry, &Listing) -> Result<Option<T>, SourceError>,
    ) -> Result<SourcePage<T>, SourceError> {
        let mut slot = self.slot(kind).lock().await;
        let mut listing = match cursor {
            None => {
                if let Some(mut old) = slot.take() {
                    let _ = old.ldap.unbind().await;
                }
                self.start(kind, since).await?
            }
            Some(c) => self.resume(&mut slot, c)?,
        };
        let attrs = match kind {
            Kind::Groups => ["cn", "member", "uniqueMember", "memberUid"]
                .map(String::from)
                .to_vec(),
            _ => listing.flavour.person_attrs(&self.custom_attributes),
        };
        let cookie = std::mem::take(&mut listing.cookie);
        let page = conn::search_page(
            &mut listing.ldap,
            self.timeout(),
            &self.base_dn,
            &listing.filter,
            &attrs,
            self.page_size,
            cookie,
        )
        .await?;
        let mut entries = page.entries;
        if kind == Kind::Groups {
            for e in entries.iter_mut().filter(|e| !e.ranges.is_empty()) {
                self.complete_ranges(&mut listing.ldap, e).await?;
            }
        }
        let mut items = Vec::with_capacity(entries.len());
        for e in &entries {
            if let Some(item) = each(e, &listing)? {
                items.push(item);
            }
        }
        if page.cookie.is_empty() {
            let checkpoint = listing.checkpoint.clone();
            let _ = listing.ldap.unbind().await;
            return Ok(SourcePage {
                items,
                next: None,
                total: page.estimate,
                checkpoint: Some(checkpoint),
            });
        }
        let next = format!(
            "{}.{}",
            listing.generation,
            URL_SAFE_NO_PAD.encode(&page.cookie)
        );
        listing.cookie = page.cookie;
        *slot = Some(listing);
        Ok(SourcePage {
            items,
            next: Some(next),
            total: page.estimate,
            checkpoint: None,
        })
    }

    /// Reads the rest of every ranged attribute of `e` (AD `member;range=1500-*`, …).
    async fn complete_ranges(
        &self,
        ldap: &mut Ldap,
        e: &mut decode::Entry,
    ) -> Result<(), SourceError> {
        let mut pending = std::mem::take(&mut e.ranges);
        let mut values = 0usize;
        while let Some((attr, next)) = pending.pop() {
            let want = format!("{attr};range={next}-*");
            let got = conn::search_small(
                ldap,
                self.timeout(),
                &e.dn,
                Scope::Base,
                "(objectClass=*)",
                &[want.as_str()],
                1,
            )
            .await?;
            let Some(more) = got.into_iter().next() else {
                break;
            };
            let new = more.attrs.get(&attr).cloned().unwrap_or_default();
            if new.is_empty() {
                break;
            }
            values += new.len();
            if values > MAX_LOOKUP_ENTRIES {
                return Err(SourceError::UnexpectedBody {
                    status: 0,
                    detail: format!("{} has more than {MAX_LOOKUP_ENTRIES} {attr} values", e.dn),
                });
            }
            e.attrs.entry(attr.clone()).or_default().extend(new);
            if let Some(r) = more.ranges.into_iter().find(|(a, _)| *a == attr) {
                if r.1 <= next {
                    break; // a range that does not move on would never end
                }
                pending.push(r);
            }
        }
        Ok(())
    }

    fn person(&self, e: &decode::Entry, l: &Listing) -> Result<SourceIdentity, SourceError> {
        map::identity(
            e,
            l.flavour,
            self.clock.now(),
            &self.custom_attributes,
            &l.memberships,
        )
    }
}

impl Source for LdapSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Ldap
    }

    async fn check(&self) -> Result<SourceCheck, SourceError> {
        let (mut ldap, flavour) = self.open().await?;
        let t = self.timeout();
        let base = conn::search_small(
            &mut ldap,
            t,
            &self.base_dn,
            Scope::Base,
            "(objectClass=*)",
            &["1.1"],
            1,
        )
        .await?;
        if base.is_empty() {
            return Err(SourceError::NotFound {
                what: format!("base_dn {} (or the bind DN may not read it)", self.base_dn),
            });
        }
        let user_filter = self.user_filter(flavour);
        let people = self
            .scan(&mut ldap, &user_filter, &["1.1".into()], |_| {})
            .await?;
        let mut notes = vec![format!("flavour: {}", flavour.as_str())];
        let login_attrs: &[&str] = match flavour {
            Flavour::ActiveDirectory => &["lastLogonTimestamp"],
            Flavour::OpenLdap => &["pwdLastSuccess", "authTimestamp"],
        };
        let mut found = Vec::new();
        for attr in login_attrs {
            let hit = conn::search_small(
                &mut ldap,
                t,
                &self.base_dn,
                Scope::Subtree,
                &format!("(&{user_filter}({attr}=*))"),
                &["1.1"],
                1,
            )
            .await;
            match hit {
                Ok(h) if !h.is_empty() => found.push(*attr),
                Ok(_) => {}
                Err(e) => notes.push(format!("could not look for {attr}: {e}")),
            }
        }
        let last_login = if found.is_empty() {
            match flavour {
                Flavour::ActiveDirectory => "no person carries lastLogonTimestamp yet (or the bind DN cannot read it)".to_owned(),
                Flavour::OpenLdap => "none: no person carries pwdLastSuccess (ppolicy olcPPolicyUseLastBind / lastbind-precision) or authTimestamp (lastbind overlay); enable one of them for last-login data".to_owned(),
            }
        } else {
            format!(
                "{} (found on people under {})",
                found.join(", "),
                self.base_dn
            )
        };
        if flavour == Flavour::ActiveDirectory {
            notes.push(
                "lastLogonTimestamp replicates lazily: it may be up to 14 days behind".into(),
            );
        }
        let _ = ldap.unbind().await;
        Ok(SourceCheck {
            kind: SourceKind::Ldap,
            principal: self
                .endpoint
                .bind_dn
                .clone()
                .unwrap_or_else(|| "anonymous bind".into()),
            granted: vec![format!("read {} under {}", user_filter, self.base_dn)],
            missing: Vec::new(),
            people: Some(people as u64),
            last_login,
            sign_ins:
                "none: LDAP has no per-application sign-in log; the last-login attribute is used"
                    .into(),
            incremental: format!(
                "{}>= filter (checkpoints overlap by {} minutes; deletions appear only in full listings)",
                flavour.modified_attr(),
                CHECKPOINT_OVERLAP.num_minutes()
            ),
            notes,
        })
    }

    async fn list_identities(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceIdentity>, SourceError> {
        self.page(Kind::Identities, None, cursor, |e, l| {
            self.person(e, l).map(Some)
        })
        .await
    }

    async fn list_groups(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceGroup>, SourceError> {
        self.page(Kind::Groups, None, cursor, |e, l| {
            let (g, unresolved) = map::group(e, &l.ids);
            if unresolved > 0 {
                tracing::debug!(group = %g.external_id, unresolved, "group members that are not people under base_dn were left out");
            }
            Ok(Some(g))
        })
        .await
    }

    async fn list_changes(
        &self,
        checkpoint: &str,
        cursor: Option<&str>,
    ) -> Result<SourcePage<Change>, SourceError> {
        let Some(since) = decode::generalized_time(checkpoint) else {
            return Err(SourceError::CheckpointExpired {
                detail: format!(
                    "`{}` is not an LDAP generalized time",
                    checkpoint.chars().take(40).collect::<String>()
                ),
            });
        };
        let since = decode::to_generalized_time(since);
        self.page(Kind::Changes, Some(&since), cursor, |e, l| {
            self.person(e, l).map(|p| Some(Change::Upsert(Box::new(p))))
        })
        .await
    }

    async fn sign_ins(
        &self,
        _checkpoint: Option<&str>,
        _cursor: Option<&str>,
    ) -> Result<SourcePage<SignIn>, SourceError> {
        Err(SourceError::Unsupported {
            what: "sign-in events".into(),
            why: "LDAP has no per-application sign-in log; lastLogonTimestamp (AD) or pwdLastSuccess/authTimestamp (OpenLDAP) is read as each person's last login".into(),
        })
    }
}
