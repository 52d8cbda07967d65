//! Crowd usermanagement REST v1, for renaming users in the Crowd server that backs a
//! Confluence user directory: `GET /rest/usermanagement/1/user?username=` and
//! `POST /rest/usermanagement/1/user/rename?username=` `{"new-name": …}`, authenticated as the
//! Crowd *application* (Basic), never as a user. Confluence picks the rename up on its next
//! directory synchronisation; the user key stays.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::super::TargetError;
use super::super::http::{Body, Credentials, HttpSettings, RemoteClient, Response};
use super::version::Crowd as CrowdState;
use crate::config::CrowdConfig;

/// A Crowd user, as far as idbridge reads it.
#[derive(Debug, Deserialize)]
pub struct CrowdUser {
    #[serde(default)]
    pub name: Option<String>,
}

/// A Crowd client for one application.
#[derive(Debug)]
pub struct CrowdClient {
    http: RemoteClient,
    /// The Confluence directory Crowd backs, when configured.
    pub directory: Option<String>,
}

/// Crowd's error `reason` (e.g. `USER_NOT_FOUND`), when the body carries one.
fn reason(resp: &Response) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&resp.body).ok()?;
    v.get("reason")?.as_str().map(str::to_owned)
}

/// The error a Crowd answer stands for.
fn crowd_error(resp: &Response, what: &str) -> TargetError {
    let detail = format!("Crowd {what}: {}", resp.detail());
    let reason = reason(resp).unwrap_or_default();
    match (resp.status.as_u16(), reason.as_str()) {
        (401, _) => TargetError::Unauthorized {
            detail: format!("{detail} (check crowd.application and crowd.password)"),
        },
        (403, "APPLICATION_PERMISSION_DENIED" | "UNSUPPORTED_OPERATION") => {
            TargetError::ManagedByIdp {
                detail: format!("{detail} (the directory in Crowd does not allow renames)"),
            }
        }
        (403, _) => TargetError::Forbidden { detail },
        (404, _) => TargetError::NotFound { what: detail },
        (400, "INVALID_USER") if resp.detail().to_ascii_lowercase().contains("exist") => {
            TargetError::Conflict { detail }
        }
        (status @ 400..=499, _) => TargetError::Rejected { status, detail },
        _ => resp.error(),
    }
}

impl CrowdClient {
    /// A client for `cfg`, sharing the target's timeouts and rate-limit patience.
    pub fn new(cfg: &CrowdConfig, settings: HttpSettings) -> Result<Self, TargetError> {
        let http = RemoteClient::new(
            &cfg.base_url,
            Credentials::Basic {
                user: cfg.application.clone(),
                password: cfg.password.clone(),
            },
            settings,
        )
        .map_err(|e| TargetError::Config(format!("crowd.base_url: {e}")))?;
        Ok(Self {
            http,
            directory: cfg.directory.clone(),
        })
    }

    fn user_url(&self, path: &str, username: &str) -> Result<url::Url, TargetError> {
        let mut url = self.http.endpoint(path)?;
        url.query_pairs_mut().append_pair("username", username);
        Ok(url)
    }

    /// Whether Crowd holds `username`.
    pub async fn has_user(&self, username: &str) -> Result<bool, TargetError> {
        let url = self.user_url("rest/usermanagement/1/user", username)?;
        let resp = self.http.send(Method::GET, url, None).await?;
        match resp.status.as_u16() {
            200..=299 => {
                let _user: CrowdUser = resp.json()?;
                Ok(true)
            }
            404 if reason(&resp).as_deref() == Some("USER_NOT_FOUND")
                || !resp.detail().starts_with("HTML page") =>
            {
                Ok(false)
            }
            _ => Err(crowd_error(&resp, &format!("user `{username}`"))),
        }
    }

    /// Renames `old` to `new`.
    pub async fn rename(&self, old: &str, new: &str) -> Result<(), TargetError> {
        let url = self.user_url("rest/usermanagement/1/user/rename", old)?;
        let resp = self
            .http
            .send(
                Method::POST,
                url,
                Some(Body::Json(json!({ "new-name": new }))),
            )
            .await?;
        if !resp.is_success() {
            return Err(crowd_error(&resp, &format!("rename `{old}` to `{new}`")));
        }
        // The renamed user comes back; an empty 2xx is accepted too.
        if !resp.body.iter().all(u8::is_ascii_whitespace) {
            let user: CrowdUser = resp.json()?;
            if let Some(name) = user.name
                && !name.eq_ignore_ascii_case(new)
            {
                return Err(TargetError::UnexpectedBody {
                    status: resp.status.as_u16(),
                    detail: format!("Crowd renamed `{old}` but reports the name `{name}`"),
                });
            }
        }
        Ok(())
    }

    /// Checks the application credentials by looking up `principal` (found or not, a JSON
    /// answer means Crowd accepted idbridge).
    pub async fn check(&self, principal: &str) -> CrowdState {
        match self.has_user(principal).await {
            Ok(_) => CrowdState::Ready {
                directory: self.directory.clone(),
            },
            Err(e) => CrowdState::Unavailable(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn crowd_reasons_map_to_errors_an_admin_can_act_on() {
        let e = crowd_error(
            &resp(
                404,
                r#"{"reason":"USER_NOT_FOUND","message":"User <hoge> does not exist"}"#,
            ),
            "user `hoge`",
        );
        assert!(
            matches!(&e, TargetError::NotFound { what } if what.contains("USER_NOT_FOUND")),
            "{e}"
        );
        let e = crowd_error(
            &resp(
                400,
                r#"{"reason":"INVALID_USER","message":"User bob_x already exists"}"#,
            ),
            "rename",
        );
        assert!(matches!(e, TargetError::Conflict { .. }), "{e}");
        let e = crowd_error(
            &resp(
                400,
                r#"{"reason":"INVALID_USER","message":"name is invalid"}"#,
            ),
            "rename",
        );
        assert!(
            matches!(e, TargetError::Rejected { status: 400, .. }),
            "{e}"
        );
        let e = crowd_error(
            &resp(
                403,
                r#"{"reason":"APPLICATION_PERMISSION_DENIED","message":"no"}"#,
            ),
            "rename",
        );
        assert!(matches!(e, TargetError::ManagedByIdp { .. }), "{e}");
        let e = crowd_error(&resp(401, ""), "rename");
        assert!(
            matches!(&e, TargetError::Unauthorized { detail } if detail.contains("crowd.application")),
            "{e}"
        );
    }
}
