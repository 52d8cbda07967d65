//! Picks the connector a source's configuration names and forwards [`Source`] calls to it.

use super::{
    Change, SignIn, Source, SourceCheck, SourceError, SourceGroup, SourceIdentity, SourcePage,
};
use crate::config::SourceConfig;
use crate::domain::SourceKind;

/// Any polled source.
pub enum SourceConnector {
    Okta(Box<super::okta::OktaSource>),
    Entra(Box<super::entra::EntraSource>),
    Google(Box<super::google::GoogleSource>),
    Ldap(Box<super::ldap::LdapSource>),
    Csv(Box<super::csv::CsvSource>),
}

impl SourceConnector {
    /// The connector for source `name`. SCIM sources are pushed to idbridge and cannot be
    /// polled.
    pub fn from_config(name: &str, cfg: &SourceConfig) -> Result<Self, SourceError> {
        let problems = cfg.problems(name);
        if !problems.is_empty() {
            return Err(SourceError::Config(problems.join("; ")));
        }
        Ok(match cfg.kind {
            SourceKind::Okta => {
                Self::Okta(Box::new(super::okta::OktaSource::from_config(name, cfg)?))
            }
            SourceKind::Entra => {
                Self::Entra(Box::new(super::entra::EntraSource::from_config(name, cfg)?))
            }
            SourceKind::Google => Self::Google(Box::new(super::google::GoogleSource::from_config(
                name, cfg,
            )?)),
            SourceKind::Ldap => {
                Self::Ldap(Box::new(super::ldap::LdapSource::from_config(name, cfg)?))
            }
            SourceKind::Csv => Self::Csv(Box::new(super::csv::CsvSource::from_config(name, cfg)?)),
            SourceKind::Scim => {
                return Err(SourceError::Config(format!(
                    "sources.{name} is a SCIM source: the IdP pushes to idbridge, there is nothing to poll"
                )));
            }
        })
    }

    /// The same connector reading "now" from `clock` where it computes windows from it
    /// (sign-in look-backs, checkpoint age).
    pub fn with_clock(self, clock: crate::clock::SharedClock) -> Self {
        match self {
            Self::Okta(s) => Self::Okta(Box::new(s.with_clock(clock))),
            Self::Entra(s) => Self::Entra(Box::new(s.with_clock(clock))),
            Self::Google(s) => Self::Google(Box::new(s.with_clock(clock))),
            Self::Ldap(s) => Self::Ldap(Box::new(s.with_clock(clock))),
            other @ Self::Csv(_) => other,
        }
    }
}

macro_rules! each {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            SourceConnector::Okta($c) => $e,
            SourceConnector::Entra($c) => $e,
            SourceConnector::Google($c) => $e,
            SourceConnector::Ldap($c) => $e,
            SourceConnector::Csv($c) => $e,
        }
    };
}

impl Source for SourceConnector {
    fn kind(&self) -> SourceKind {
        each!(self, c => c.kind())
    }

    async fn check(&self) -> Result<SourceCheck, SourceError> {
        each!(self, c => c.check().await)
    }

    async fn list_identities(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceIdentity>, SourceError> {
        each!(self, c => c.list_identities(cursor).await)
    }

    async fn list_groups(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceGroup>, SourceError> {
        each!(self, c => c.list_groups(cursor).await)
    }

    async fn list_changes(
        &self,
        checkpoint: &str,
        cursor: Option<&str>,
    ) -> Result<SourcePage<Change>, SourceError> {
        each!(self, c => c.list_changes(checkpoint, cursor).await)
    }

    async fn sign_ins(
        &self,
        checkpoint: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SignIn>, SourceError> {
        each!(self, c => c.sign_ins(checkpoint, cursor).await)
    }
}
