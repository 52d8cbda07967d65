//! LDAP connections for the connector: connecting (`ldap://`, StartTLS, `ldaps://`, a custom
//! CA), simple bind, one page of an RFC 2696 paged search, and LDAP errors turned into
//! [`SourceError`]s. Result entries are decoded by [`super::decode`], never by ldap3's
//! panicking `SearchEntry::construct`.

use std::sync::Arc;
use std::time::Duration;

use ldap3::controls::{MakeCritical, PagedResults, RawControl};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Scope, SearchOptions};

use super::decode::{self, Entry};
use crate::config::Secret;
use crate::sources::SourceError;

const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// How to reach and bind to the directory.
#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    pub starttls: bool,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub timeout: Duration,
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("starttls", &self.starttls)
            .field("custom_ca", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .field("bind_dn", &self.bind_dn)
            .finish_non_exhaustive()
    }
}

/// A rustls client configuration trusting only the certificates in the PEM file `path`.
pub fn tls_with_ca(path: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let pem = std::fs::read(path).map_err(|e| format!("cannot read ca_file {path}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("ca_file {path} is not valid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("ca_file {path} holds an unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("ca_file {path} holds no certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An [`LdapError`] as a [`SourceError`].
pub fn ldap_error(e: LdapError, timeout: Duration) -> SourceError {
    match e {
        LdapError::Timeout { .. } => SourceError::Timeout(timeout),
        LdapError::LdapResult { result } => result_error(&result, "the operation"),
        other => SourceError::Transport {
            detail: other.to_string(),
        },
    }
}

/// A non-success LDAP result as a [`SourceError`]; `what` names the operation.
pub fn result_error(r: &LdapResult, what: &str) -> SourceError {
    let text = if r.text.is_empty() {
        String::new()
    } else {
        format!(": {}", r.text.chars().take(300).collect::<String>())
    };
    match r.rc {
        49 => SourceError::Unauthorized {
            detail: format!("invalid credentials (LDAP 49){text}"),
        },
        48 | 8 | 13 => SourceError::Unauthorized {
            detail: format!(
                "the server wants another kind of bind or a secure connection (LDAP {}){text}",
                r.rc
            ),
        },
        50 => SourceError::Forbidden {
            detail: format!("{what}: insufficient access rights (LDAP 50){text}"),
        },
        32 => SourceError::NotFound {
            what: format!("{what}: no such object (LDAP 32){text}"),
        },
        12 => SourceError::Unsupported {
            what: "the simple paged results control (RFC 2696)".into(),
            why: format!("the server refused a critical control (LDAP 12){text}"),
        },
        4 | 11 => SourceError::Rejected {
            status: u16::try_from(r.rc).unwrap_or(u16::MAX),
            detail: format!(
                "{what}: the server's size or administrative limit was hit (LDAP {}){text}; \
                 raise the paged-results limits for the bind DN",
                r.rc
            ),
        },
        51..=53 | 80 => SourceError::Unavailable {
            status: u16::try_from(r.rc).unwrap_or(u16::MAX),
            attempts: 1,
            detail: format!("{what}: LDAP {}{text}", r.rc),
        },
        3 => SourceError::Timeout(Duration::ZERO),
        rc => SourceError::Rejected {
            status: u16::try_from(rc).unwrap_or(u16::MAX),
            detail: format!("{what}: LDAP {rc}{text}"),
        },
    }
}

/// Connects to `ep` and binds (anonymously when no bind DN is configured).
pub async fn connect(ep: &Endpoint) -> Result<Ldap, SourceError> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(ep.timeout)
        .set_starttls(ep.starttls && ep.url.starts_with("ldap://"));
    if let Some(tls) = &ep.tls {
        settings = settings.set_config(tls.clone());
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &ep.url)
        .await
        .map_err(|e| match e {
            LdapError::Timeout { .. } => SourceError::Timeout(ep.timeout),
            other => SourceError::Transport {
                detail: format!("{}: {other}", ep.url),
            },
        })?;
    tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(error = %e, "LDAP connection ended with an error");
        }
    });
    if let Some(dn) = &ep.bind_dn {
        let pw = ep.bind_password.as_ref().map_or("", Secret::expose);
        if pw.is_empty() {
            return Err(SourceError::Config(
                "bind_dn is set but bind_password is empty (an empty password would be an \
                 unauthenticated bind)"
                    .into(),
            ));
        }
        let r = ldap
            .with_timeout(ep.timeout)
            .simple_bind(dn, pw)
            .await
            .map_err(|e| ldap_error(e, ep.timeout))?;
        if r.rc != 0 {
            return Err(result_error(&r, &format!("bind as {dn}")));
        }
    }
    Ok(ldap)
}

/// One page of a paged search.
#[derive(Debug, Default)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// The cookie for the next page; empty on the last page.
    pub cookie: Vec<u8>,
    /// The server's estimate of the total, when it gives one.
    pub estimate: Option<u64>,
}

/// A search that wants a result set small enough for one answer (rootDSE, one entry).
pub async fn search_small(
    ldap: &mut Ldap,
    timeout: Duration,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
    limit: i32,
) -> Result<Vec<Entry>, SourceError> {
    let mut stream = ldap
        .with_timeout(timeout)
        .with_search_options(SearchOptions::new().sizelimit(limit))
        .streaming_search(base, scope, filter, attrs.to_vec())
        .await
        .map_err(|e| ldap_error(e, timeout))?;
    let mut out = Vec::new();
    loop {
        match stream.next().await {
            Ok(Some(re)) => {
                if re.is_ref() || re.is_intermediate() {
                    continue;
                }
                if let Some(e) = decode::entry_from_tag(re.0)
                    && out.len() < usize::try_from(limit.max(1)).unwrap_or(1)
                {
                    out.push(e);
                }
            }
            Ok(None) => break,
            Err(e) => return Err(ldap_error(e, timeout)),
        }
    }
    let r = stream.finish().await;
    // 4 = sizeLimitExceeded: expected when more entries match than asked for.
    if r.rc != 0 && r.rc != 4 {
        return Err(result_error(&r, &format!("search under {base}")));
    }
    Ok(out)
}

/// One page of an RFC 2696 paged search (the control is sent as critical, so a server that
/// cannot page says so instead of silently truncating).
#[allow(clippy::too_many_arguments)]
pub async fn search_page(
    ldap: &mut Ldap,
    timeout: Duration,
    base: &str,
    filter: &str,
    attrs: &[String],
    size: i32,
    cookie: Vec<u8>,
) -> Result<Page, SourceError> {
    let ctrl: RawControl = PagedResults { size, cookie }.critical().into();
    let mut stream = ldap
        .with_timeout(timeout)
        .with_controls(vec![ctrl])
        .streaming_search(base, Scope::Subtree, filter, attrs.to_vec())
        .await
        .map_err(|e| ldap_error(e, timeout))?;
    // A server may send a little more than asked for; never unboundedly more.
    let cap = usize::try_from(size).unwrap_or(0).saturating_mul(2) + 16;
    let mut page = Page::default();
    loop {
        match stream.next().await {
            Ok(Some(re)) => {
                if re.is_ref() || re.is_intermediate() {
                    continue;
                }
                let entry =
                    decode::entry_from_tag(re.0).ok_or_else(|| SourceError::InvalidRecord {
                        detail: format!("a malformed search result entry under {base}"),
                    })?;
                page.entries.push(entry);
                if page.entries.len() > cap {
                    return Err(SourceError::UnexpectedBody {
                        status: 0,
                        detail: format!(
                            "the server sent more than {cap} entries for a page of {size}"
                        ),
                    });
                }
            }
            Ok(None) => break,
            Err(e) => return Err(ldap_error(e, timeout)),
        }
    }
    let r = stream.finish().await;
    if r.rc != 0 {
        return Err(result_error(&r, &format!("search under {base}")));
    }
    if let Some(ctrl) = r.ctrls.iter().find(|c| c.1.ctype == PAGED_RESULTS_OID) {
        let (estimate, cookie) = ctrl
            .1
            .val
            .as_deref()
            .and_then(decode::paged_results_value)
            .ok_or_else(|| SourceError::UnexpectedBody {
                status: 0,
                detail: "a malformed paged results control in the search result".into(),
            })?;
        page.cookie = cookie;
        page.estimate = u64::try_from(estimate).ok().filter(|n| *n > 0);
    }
    Ok(page)
}
