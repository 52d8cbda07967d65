//! Configuration: typed structs, layered loading and validation.
//!
//! Layers, later ones winning: built-in defaults, then one TOML file (`--config`), then
//! environment variables `IDBRIDGE_<SECTION>__<KEY>` (`__` nests), then secret files named by
//! `IDBRIDGE_<SECTION>__<KEY>_FILE`. Unknown keys are errors that name the key and the layer it
//! came from. Secrets are [`Secret`]s and the database URL is a [`DatabaseUrl`]; both are masked
//! in every `Debug`, `Display` and serialised form, so [`Config::render_redacted`] is safe to
//! print.

mod engine;
mod load;
mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use engine::{
    AttributeCondition, AuditConfig, Budget, ExecutorConfig, LinkKey, LinkingConfig,
    MIN_AUDIT_KEY_BYTES, PlannerConfig, RuleConfig, SafetyConfig, SchedulerConfig,
    USERS_CSV_MAX_BYTES, USERS_CSV_MAX_ROWS, WhenConfig, read_users_csv, rules_from_config,
};
pub use load::{ConfigError, ENV_PREFIX, load};

use crate::domain::{SourceKind, TargetKind};
pub use secret::{DatabaseBackend, DatabaseUrl, REDACTED, Secret};

/// Everything idbridge can be told.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP server.
    pub server: ServerConfig,
    /// The store.
    pub database: DatabaseConfig,
    /// Logging.
    pub log: LogConfig,
    /// The SCIM 2.0 service provider.
    pub scim: ScimConfig,
    /// Identity sources by name. A `scim` source is served at `/scim/v2/<name>`.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Confluence instances by name.
    pub targets: BTreeMap<String, TargetConfig>,
    /// Rules (schemes) by name.
    pub rules: BTreeMap<String, RuleConfig>,
    /// How identities are matched to accounts.
    pub linking: LinkingConfig,
    /// Planning settings shared by every rule.
    pub planner: PlannerConfig,
    /// Blast-radius budgets and approval.
    pub safety: SafetyConfig,
    /// How planned actions are carried out.
    pub executor: ExecutorConfig,
    /// The audit log's key and external checkpoint.
    pub audit: AuditConfig,
    /// Scheduled syncs and rules under `serve`, and the lease that elects one scheduler.
    pub scheduler: SchedulerConfig,
}

/// One identity source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `scim` (pushed to idbridge), or a polled IdP: `okta`, `entra`, `google`, `ldap`, `csv`.
    pub kind: SourceKind,
    /// Okta: the org URL (`https://acme.okta.com`). Entra: Graph (`https://graph.microsoft.com`).
    /// Google: `https://admin.googleapis.com`. LDAP: `ldap://host:389` or `ldaps://host:636`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Okta SSWS API token (when no OAuth service app is configured).
    #[serde(default)]
    pub token: Option<Secret>,
    /// Okta service app or Entra application (client) id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Entra client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// PEM private key: Okta `private_key_jwt`, or the Entra certificate's key.
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// Okta: the `kid` of the key registered with the service app.
    #[serde(default)]
    pub key_id: Option<String>,
    /// Entra: the certificate's SHA-256 thumbprint (hex or base64url), sent as `x5t#S256`.
    #[serde(default)]
    pub certificate_thumbprint: Option<String>,
    /// Entra tenant id or domain.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Token endpoint override (Entra authority, Okta org server); Google takes `token_uri`
    /// from the service account key unless this is set.
    #[serde(default)]
    pub token_url: Option<String>,
    /// OAuth scopes to ask for; empty means the connector's read-only defaults.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Google service account key (the JSON file's content; use `…_FILE` to name the file).
    #[serde(default)]
    pub service_account_key: Option<Secret>,
    /// Google: the admin the service account acts as (domain-wide delegation `sub`).
    #[serde(default)]
    pub admin_subject: Option<String>,
    /// Google customer (default `my_customer`).
    #[serde(default)]
    pub customer: Option<String>,
    /// The Confluence application in the IdP: Okta app instance id, Entra `appId`. Sign-in
    /// events are read for this application only.
    #[serde(default)]
    pub app_id: Option<String>,
    /// Google: the SAML application's name as the Reports API shows it (`application_name`).
    #[serde(default)]
    pub app_name: Option<String>,
    /// Users per page (capped at the vendor's maximum).
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Whether a suspended person counts as a leaver (default: no; suspension is often
    /// temporary).
    #[serde(default)]
    pub suspended_is_leaver: bool,
    /// A snapshot whose count moves more than this % from the last complete one is
    /// incomplete until an admin looks.
    #[serde(default = "default_source_plausible_change_percent")]
    pub plausible_change_percent: f64,
    /// Okta: the share of each rate-limit bucket idbridge may use (0 < share ≤ 1).
    #[serde(default = "default_rate_limit_share")]
    pub rate_limit_share: f64,
    /// Longest time one request may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Longest total wait on rate limits within one call before it fails.
    #[serde(default = "default_max_rate_limit_wait_secs")]
    pub max_rate_limit_wait_secs: u64,
    /// Custom IdP attributes to keep on each identity (rules can select on them).
    #[serde(default)]
    pub custom_attributes: Vec<String>,
    /// When `serve` syncs this polled source: a cron expression (5 fields, or 6 with seconds
    /// first) in `scheduler.timezone`. None: every five minutes; empty: only by hand.
    #[serde(default)]
    pub schedule: Option<String>,
    /// LDAP: the DN idbridge binds as.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// LDAP: the bind password.
    #[serde(default)]
    pub bind_password: Option<Secret>,
    /// LDAP: where people are searched.
    #[serde(default)]
    pub base_dn: Option<String>,
    /// LDAP: the filter that selects people (default per flavour).
    #[serde(default)]
    pub user_filter: Option<String>,
    /// LDAP: the filter that selects groups (default per flavour).
    #[serde(default)]
    pub group_filter: Option<String>,
    /// LDAP: `ad` (Active Directory) or `openldap`.
    #[serde(default)]
    pub flavour: Option<String>,
    /// LDAP: upgrade `ldap://` with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// LDAP: a PEM CA bundle to trust for LDAPS/StartTLS.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// CSV: the file to import.
    #[serde(default)]
    pub path: Option<String>,
}

fn default_source_plausible_change_percent() -> f64 {
    10.0
}

fn default_rate_limit_share() -> f64 {
    0.5
}

fn default_timeout_secs() -> u64 {
    30
}

fn default_max_rate_limit_wait_secs() -> u64 {
    120
}

impl SourceConfig {
    /// A source of `kind` with every other setting at its default.
    pub fn new(kind: SourceKind) -> Self {
        SourceConfig {
            kind,
            base_url: None,
            token: None,
            client_id: None,
            client_secret: None,
            private_key: None,
            key_id: None,
            certificate_thumbprint: None,
            tenant_id: None,
            token_url: None,
            scopes: Vec::new(),
            service_account_key: None,
            admin_subject: None,
            customer: None,
            app_id: None,
            app_name: None,
            page_size: None,
            suspended_is_leaver: false,
            plausible_change_percent: default_source_plausible_change_percent(),
            rate_limit_share: default_rate_limit_share(),
            timeout_secs: default_timeout_secs(),
            max_rate_limit_wait_secs: default_max_rate_limit_wait_secs(),
            custom_attributes: Vec::new(),
            schedule: None,
            bind_dn: None,
            bind_password: None,
            base_dn: None,
            user_filter: None,
            group_filter: None,
            flavour: None,
            starttls: false,
            ca_file: None,
            path: None,
        }
    }

    /// What is missing or wrong for this source's kind, as `sources.<name>.<key>: …` lines.
    pub fn problems(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut need = |key: &str, present: bool, why: &str| {
            if !present {
                out.push(format!("sources.{name}.{key}: required {why}"));
            }
        };
        match self.kind {
            SourceKind::Scim => {}
            SourceKind::Okta => {
                need(
                    "base_url",
                    self.base_url.is_some(),
                    "for Okta (the org URL)",
                );
                let oauth = self.client_id.is_some() || self.private_key.is_some();
                if oauth {
                    need(
                        "client_id",
                        self.client_id.is_some(),
                        "for an Okta service app",
                    );
                    need(
                        "private_key",
                        self.private_key.is_some(),
                        "for an Okta service app (private_key_jwt)",
                    );
                } else {
                    need(
                        "token",
                        self.token.is_some(),
                        "for Okta (an SSWS API token, or client_id and private_key)",
                    );
                }
            }
            SourceKind::Entra => {
                need("tenant_id", self.tenant_id.is_some(), "for Entra ID");
                need("client_id", self.client_id.is_some(), "for Entra ID");
                need(
                    "client_secret",
                    self.client_secret.is_some() || self.private_key.is_some(),
                    "for Entra ID (or private_key with certificate_thumbprint)",
                );
                if self.private_key.is_some() {
                    need(
                        "certificate_thumbprint",
                        self.certificate_thumbprint.is_some(),
                        "with a certificate private_key",
                    );
                }
            }
            SourceKind::Google => {
                need(
                    "service_account_key",
                    self.service_account_key.is_some(),
                    "for Google Workspace",
                );
                need(
                    "admin_subject",
                    self.admin_subject.is_some(),
                    "for Google Workspace (the admin to act as)",
                );
            }
            SourceKind::Ldap => {
                need(
                    "base_url",
                    self.base_url.is_some(),
                    "for LDAP (ldap:// or ldaps://)",
                );
                need("base_dn", self.base_dn.is_some(), "for LDAP");
                if let Some(f) = &self.flavour
                    && !matches!(f.as_str(), "ad" | "openldap")
                {
                    out.push(format!(
                        "sources.{name}.flavour: `{f}` is not `ad` or `openldap`"
                    ));
                }
            }
            SourceKind::Csv => need("path", self.path.is_some(), "for a CSV source"),
        }
        if let Some(url) = &self.base_url {
            let ok_schemes: &[&str] = if self.kind == SourceKind::Ldap {
                &["ldap", "ldaps"]
            } else {
                &["http", "https"]
            };
            match url::Url::parse(url) {
                Ok(u) if ok_schemes.contains(&u.scheme()) && u.host().is_some() => {
                    if !u.username().is_empty() || u.password().is_some() {
                        out.push(format!(
                            "sources.{name}.base_url: must not carry credentials"
                        ));
                    }
                }
                _ => out.push(format!(
                    "sources.{name}.base_url: `{url}` is not an absolute {} URL",
                    ok_schemes.join("/")
                )),
            }
        }
        if let Some(p) = self.page_size
            && p == 0
        {
            out.push(format!("sources.{name}.page_size: must be at least 1"));
        }
        if !(0.0..=100.0).contains(&self.plausible_change_percent) {
            out.push(format!(
                "sources.{name}.plausible_change_percent: must be 0 to 100"
            ));
        }
        if !(self.rate_limit_share > 0.0 && self.rate_limit_share <= 1.0) {
            out.push(format!(
                "sources.{name}.rate_limit_share: must be above 0 and at most 1"
            ));
        }
        if self.timeout_secs == 0 {
            out.push(format!("sources.{name}.timeout_secs: must be at least 1"));
        }
        out
    }
}

/// One Confluence instance idbridge reads and acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `confluence_dc` (Data Center or Server) or `confluence_cloud` (Atlassian Cloud).
    pub kind: TargetKind,
    /// Data Center: the site's base URL with its context path
    /// (`https://wiki.example.com/confluence`). Cloud: the admin API
    /// (`https://api.atlassian.com`).
    pub base_url: String,
    /// Data Center personal access token, or the Atlassian organization API key (Bearer).
    #[serde(default)]
    pub token: Option<Secret>,
    /// Data Center Basic auth user (when no token is set).
    #[serde(default)]
    pub username: Option<String>,
    /// Data Center Basic auth password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The version to assume when it cannot be detected (e.g. `8.5.4`); a detected version
    /// wins, and `targets check` notes any difference.
    #[serde(default)]
    pub version: Option<String>,
    /// Groups whose members hold a licence, where the instance cannot say (DC before 9.3).
    #[serde(default = "default_licence_groups")]
    pub licence_groups: Vec<String>,
    /// Groups whose members administer the instance; idbridge never acts on them.
    #[serde(default = "default_admin_groups")]
    pub admin_groups: Vec<String>,
    /// Whether accounts linked to no identity may be acted on (by rules that need no IdP
    /// status). Off by default: idbridge only touches accounts it can trace to a source.
    #[serde(default)]
    pub manage_unlinked: bool,
    /// The licence tier (seats) to measure usage against; unset: the instance's own limit.
    #[serde(default)]
    pub licence_tier: Option<u64>,
    /// Data Center: use the legacy Remote API (JSON-RPC) for what REST lacks, notably rename
    /// and deactivation before 8.2: `auto` (when the instance has it enabled), `on`, `off`.
    #[serde(default)]
    pub remote_api: RemoteApiMode,
    /// Data Center: rename users in the Crowd server that backs their directory.
    #[serde(default)]
    pub crowd: Option<CrowdConfig>,
    /// Data Center before 10.2: a read-only connection to Confluence's own PostgreSQL
    /// database, to read last-login times (`logininfo`, `cwd_user_attribute`).
    #[serde(default)]
    pub last_login_database: Option<DatabaseUrl>,
    /// Cloud: the organization id.
    #[serde(default)]
    pub org_id: Option<String>,
    /// Cloud: the identity directory to act in (`-` for all).
    #[serde(default)]
    pub directory_id: Option<String>,
    /// Cloud: the Confluence site's resource id (ARI), for last-active dates and licences.
    #[serde(default)]
    pub site_id: Option<String>,
    /// Accounts per page when listing.
    #[serde(default = "default_target_page_size")]
    pub page_size: u32,
    /// Longest time one HTTP call may take.
    #[serde(default = "default_target_timeout_secs")]
    pub timeout_secs: u64,
    /// Client-side pacing; unset: as fast as the instance allows.
    #[serde(default)]
    pub max_requests_per_second: Option<f64>,
    /// Longest total wait on rate limits for one call before it fails.
    #[serde(default = "default_target_rate_limit_wait_secs")]
    pub max_rate_limit_wait_secs: u64,
    /// Longest wait for an asynchronous deletion to finish.
    #[serde(default = "default_target_delete_timeout_secs")]
    pub delete_timeout_secs: u64,
    /// An inventory is incomplete when its count differs from the last complete one by more
    /// than this percentage.
    #[serde(default = "default_plausible_change_percent")]
    pub plausible_change_percent: f64,
    /// When `serve` reads this target's inventory: a cron expression in
    /// `scheduler.timezone`. None: only by hand.
    #[serde(default)]
    pub schedule: Option<String>,
}

impl TargetConfig {
    /// A target of `kind` at `base_url` with every other setting at its default.
    pub fn new(kind: TargetKind, base_url: impl Into<String>) -> Self {
        Self {
            kind,
            base_url: base_url.into(),
            token: None,
            username: None,
            password: None,
            version: None,
            licence_groups: default_licence_groups(),
            admin_groups: default_admin_groups(),
            manage_unlinked: false,
            licence_tier: None,
            remote_api: RemoteApiMode::default(),
            crowd: None,
            last_login_database: None,
            org_id: None,
            directory_id: None,
            site_id: None,
            page_size: default_target_page_size(),
            timeout_secs: default_target_timeout_secs(),
            max_requests_per_second: None,
            max_rate_limit_wait_secs: default_target_rate_limit_wait_secs(),
            delete_timeout_secs: default_target_delete_timeout_secs(),
            plausible_change_percent: default_plausible_change_percent(),
            schedule: None,
        }
    }
}

fn default_licence_groups() -> Vec<String> {
    vec!["confluence-users".into()]
}
fn default_admin_groups() -> Vec<String> {
    vec!["confluence-administrators".into(), "site-admins".into()]
}
fn default_target_page_size() -> u32 {
    200
}
fn default_target_timeout_secs() -> u64 {
    30
}
fn default_target_rate_limit_wait_secs() -> u64 {
    120
}
fn default_target_delete_timeout_secs() -> u64 {
    300
}
fn default_plausible_change_percent() -> f64 {
    20.0
}

/// Whether a Data Center target may use the legacy Remote API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteApiMode {
    /// Use it where REST lacks the call, when the instance has it enabled.
    #[default]
    Auto,
    /// Always use it where REST lacks the call.
    On,
    /// Never use it.
    Off,
}

/// A Crowd server that backs a Data Center user directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrowdConfig {
    /// Crowd's base URL (`https://crowd.example.com/crowd`).
    pub base_url: String,
    /// The Crowd application name idbridge authenticates as.
    pub application: String,
    /// The application password.
    pub password: Secret,
    /// The Confluence user directory (by name) that Crowd backs.
    #[serde(default)]
    pub directory: Option<String>,
}

/// The SCIM 2.0 service provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScimConfig {
    /// Most resources one list or search page returns (advertised as `filter.maxResults`).
    pub max_page_size: usize,
    /// Page size when a request gives no `count`.
    pub default_page_size: usize,
    /// Longest filter expression accepted, in bytes.
    pub max_filter_length: usize,
    /// Most operations in one PATCH request.
    pub max_patch_operations: usize,
    /// Most member values one PATCH request may add, replace or remove.
    pub max_members_per_patch: usize,
    /// Most operations in one Bulk request (advertised as `bulk.maxOperations`).
    pub bulk_max_operations: usize,
    /// Largest Bulk request body in bytes (advertised as `bulk.maxPayloadSize`).
    pub bulk_max_payload_bytes: usize,
    /// Sustained requests per second allowed per token; more are answered 429.
    pub rate_limit_per_second: u32,
    /// Requests a token may make in a burst above the sustained rate.
    pub rate_limit_burst: u32,
}

impl Default for ScimConfig {
    fn default() -> Self {
        Self {
            max_page_size: 1000,
            default_page_size: 100,
            max_filter_length: 4096,
            max_patch_operations: 1000,
            max_members_per_patch: 10_000,
            bulk_max_operations: 1000,
            bulk_max_payload_bytes: 1024 * 1024,
            rate_limit_per_second: 50,
            rate_limit_burst: 200,
        }
    }
}

/// The HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Longest time one request may take before it is answered 408.
    pub request_timeout_secs: u64,
    /// Largest request body accepted; larger ones are answered 413.
    pub body_limit_bytes: usize,
    /// How long in-flight requests may run on after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
    /// The URL clients reach idbridge at (e.g. `https://idbridge.example.com`), used in SCIM
    /// `meta.location`, `$ref` and `Location`. Unset: taken from each request's `Host`.
    pub public_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_secs: 30,
            body_limit_bytes: 1024 * 1024,
            shutdown_grace_secs: 30,
            metrics_token: None,
            public_url: None,
        }
    }
}

impl ServerConfig {
    /// [`Self::request_timeout_secs`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// [`Self::shutdown_grace_secs`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// The store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://user:pass@host/db`.
    pub url: DatabaseUrl,
    /// Pool size.
    pub max_connections: u32,
    /// How long to wait for a connection before giving up.
    pub connect_timeout_secs: u64,
    /// SQLite only: how long a writer waits for the lock.
    pub sqlite_busy_timeout_ms: u64,
    /// Apply pending migrations at start-up.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: DatabaseUrl::default(),
            max_connections: 8,
            connect_timeout_secs: 5,
            sqlite_busy_timeout_ms: 5000,
            migrate_on_start: true,
        }
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,idbridge::store=debug`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info,sqlx=warn".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// The zone schedules are read in: `scheduler.timezone`, else `planner.timezone`.
    pub fn schedule_timezone(&self) -> &str {
        self.scheduler
            .timezone
            .as_deref()
            .unwrap_or(&self.planner.timezone)
    }

    /// Every cron expression parses, the schedule zone exists, the lease can be renewed.
    fn schedule_problems(&self) -> Vec<String> {
        use crate::domain::schedule::Schedule;
        let mut problems = Vec::new();
        let schedules = self
            .rules
            .iter()
            .map(|(n, r)| (format!("rules.{n}"), &r.schedule))
            .chain(
                self.targets
                    .iter()
                    .map(|(n, t)| (format!("targets.{n}"), &t.schedule)),
            )
            .chain(
                self.sources
                    .iter()
                    .map(|(n, s)| (format!("sources.{n}"), &s.schedule)),
            );
        let regrant = (!self.scheduler.regrant_schedule.trim().is_empty())
            .then(|| self.scheduler.regrant_schedule.clone());
        let schedules =
            schedules.chain(std::iter::once(("scheduler.regrant".to_owned(), &regrant)));
        for (key, expr) in schedules {
            // An empty schedule turns the job off.
            if let Some(e) = expr
                && !e.trim().is_empty()
                && let Err(err) = Schedule::parse(e)
            {
                problems.push(format!("{key}.schedule: {err}"));
            }
        }
        for (name, src) in &self.sources {
            if src.kind == SourceKind::Scim
                && src
                    .schedule
                    .as_deref()
                    .is_some_and(|e| !e.trim().is_empty())
            {
                problems.push(format!(
                    "sources.{name}.schedule: a SCIM source is pushed to idbridge; there is \
                     nothing to poll"
                ));
            }
        }
        if let Some(tz) = &self.scheduler.timezone
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            problems.push(format!(
                "scheduler.timezone: `{tz}` is not an IANA time zone (e.g. Europe/Berlin)"
            ));
        }
        if self.scheduler.lease_ttl_secs < 3 {
            problems.push("scheduler.lease_ttl_secs: must be at least 3".into());
        }
        if self.scheduler.executor_interval_secs == 0 {
            problems.push("scheduler.executor_interval_secs: must be at least 1".into());
        }
        problems
    }

    /// Checks what types alone cannot; returns every problem, each naming its key.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.database.url.backend().is_none() {
            problems.push(format!(
                "database.url: unsupported scheme `{}` (expected `sqlite:` or `postgres://`)",
                self.database.url.scheme()
            ));
        }
        if self.database.max_connections == 0 {
            problems.push("database.max_connections: must be at least 1".into());
        }
        if self.database.connect_timeout_secs == 0 {
            problems.push("database.connect_timeout_secs: must be at least 1".into());
        }
        if self.server.request_timeout_secs == 0 {
            problems.push("server.request_timeout_secs: must be at least 1".into());
        }
        if self.server.body_limit_bytes == 0 {
            problems.push("server.body_limit_bytes: must be at least 1".into());
        }
        if let Some(token) = &self.server.metrics_token
            && token.expose().len() < 16
        {
            problems.push("server.metrics_token: must be at least 16 characters".into());
        }
        if let Some(url) = &self.server.public_url {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => problems.push(format!(
                    "server.public_url: `{url}` is not an absolute http(s) URL"
                )),
            }
        }
        problems.extend(self.safety.problems());
        problems.extend(self.audit.problems());
        problems.extend(self.schedule_problems());
        if self.executor.concurrency == 0 {
            problems.push("executor.concurrency: must be at least 1".into());
        }
        if self.executor.max_attempts == 0 {
            problems.push("executor.max_attempts: must be at least 1".into());
        }
        if self.executor.claim_ttl_secs == 0 {
            problems.push("executor.claim_ttl_secs: must be at least 1".into());
        }
        for (name, source) in &self.sources {
            if !is_valid_source_name(name) {
                problems.push(format!(
                    "sources.{name}: a source name is 1 to 63 lower-case letters, digits and `-`, \
                     starting with a letter or digit (it appears in URLs)"
                ));
            }
            problems.extend(source.problems(name));
        }
        for (name, t) in &self.targets {
            if !is_valid_source_name(name) {
                problems.push(format!(
                    "targets.{name}: a target name is 1 to 63 lower-case letters, digits and `-`"
                ));
            }
            match url::Url::parse(&t.base_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    if !u.username().is_empty() || u.password().is_some() {
                        problems.push(format!(
                            "targets.{name}.base_url: must not carry credentials; use token or \
                             username/password"
                        ));
                    }
                }
                _ => problems.push(format!(
                    "targets.{name}.base_url: `{}` is not an absolute http(s) URL",
                    t.base_url
                )),
            }
            match t.kind {
                TargetKind::ConfluenceDc => {
                    if t.token.is_none() && (t.username.is_none() || t.password.is_none()) {
                        problems.push(format!(
                            "targets.{name}: set `token` (a personal access token) or both \
                             `username` and `password`"
                        ));
                    }
                }
                TargetKind::ConfluenceCloud => {
                    if t.token.is_none() {
                        problems.push(format!(
                            "targets.{name}.token: the organization API key is required"
                        ));
                    }
                    if t.org_id.as_deref().is_none_or(str::is_empty) {
                        problems.push(format!("targets.{name}.org_id: required for Cloud"));
                    }
                }
            }
            if t.page_size == 0 || t.page_size > 1000 {
                problems.push(format!("targets.{name}.page_size: must be 1 to 1000"));
            }
            if t.timeout_secs == 0 {
                problems.push(format!("targets.{name}.timeout_secs: must be at least 1"));
            }
            if t.max_requests_per_second
                .is_some_and(|r| r.is_nan() || r <= 0.0)
            {
                problems.push(format!(
                    "targets.{name}.max_requests_per_second: must be above 0"
                ));
            }
            if !(0.0..=100.0).contains(&t.plausible_change_percent) {
                problems.push(format!(
                    "targets.{name}.plausible_change_percent: must be 0 to 100"
                ));
            }
        }
        let scim = &self.scim;
        for (key, value) in [
            ("max_page_size", scim.max_page_size),
            ("default_page_size", scim.default_page_size),
            ("max_filter_length", scim.max_filter_length),
            ("max_patch_operations", scim.max_patch_operations),
            ("max_members_per_patch", scim.max_members_per_patch),
            ("bulk_max_operations", scim.bulk_max_operations),
            ("bulk_max_payload_bytes", scim.bulk_max_payload_bytes),
            ("rate_limit_per_second", scim.rate_limit_per_second as usize),
            ("rate_limit_burst", scim.rate_limit_burst as usize),
        ] {
            if value == 0 {
                problems.push(format!("scim.{key}: must be at least 1"));
            }
        }
        if scim.default_page_size > scim.max_page_size {
            problems.push("scim.default_page_size: must not exceed scim.max_page_size".into());
        }
        if let Err(e) = crate::telemetry::parse_filter(&self.log.filter) {
            problems.push(format!("log.filter: {e}"));
        }
        problems.extend(rules_from_config(self).err().unwrap_or_default());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The names of the sources of `kind`.
    pub fn sources_of(&self, kind: SourceKind) -> impl Iterator<Item = &str> {
        self.sources
            .iter()
            .filter(move |(_, s)| s.kind == kind)
            .map(|(name, _)| name.as_str())
    }

    /// The effective configuration as TOML, with every secret shown as `***`.
    pub fn render_redacted(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Source names appear in URLs (`/scim/v2/<name>`); Okta refuses base URLs with `_`.
fn is_valid_source_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_are_url_safe_without_underscores() {
        for ok in ["entra", "okta-prod", "a", "idp2"] {
            assert!(is_valid_source_name(ok), "{ok}");
        }
        for bad in ["", "Entra", "okta_prod", "-x", "a/b", &"x".repeat(64)] {
            assert!(!is_valid_source_name(bad), "{bad}");
        }
    }
}
