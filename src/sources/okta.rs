//! The Okta connector (being built; answers every call with a configuration error until then).

use super::{
    Change, SignIn, Source, SourceCheck, SourceError, SourceGroup, SourceIdentity, SourcePage,
};
use crate::config::SourceConfig;
use crate::domain::SourceKind;

/// A Okta source.
#[derive(Debug)]
pub struct OktaSource {
    name: String,
}

impl OktaSource {
    /// The connector for source `name`.
    pub fn from_config(name: &str, _cfg: &SourceConfig) -> Result<Self, SourceError> {
        Ok(OktaSource {
            name: name.to_owned(),
        })
    }

    fn not_yet(&self) -> SourceError {
        SourceError::Config(format!(
            "sources.{}: the Okta connector is not available yet",
            self.name
        ))
    }
}

impl Source for OktaSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Okta
    }

    async fn check(&self) -> Result<SourceCheck, SourceError> {
        Err(self.not_yet())
    }

    async fn list_identities(
        &self,
        _cursor: Option<&str>,
    ) -> Result<SourcePage<SourceIdentity>, SourceError> {
        Err(self.not_yet())
    }

    async fn list_groups(
        &self,
        _cursor: Option<&str>,
    ) -> Result<SourcePage<SourceGroup>, SourceError> {
        Err(self.not_yet())
    }

    async fn list_changes(
        &self,
        _checkpoint: &str,
        _cursor: Option<&str>,
    ) -> Result<SourcePage<Change>, SourceError> {
        Err(self.not_yet())
    }

    async fn sign_ins(
        &self,
        _checkpoint: Option<&str>,
        _cursor: Option<&str>,
    ) -> Result<SourcePage<SignIn>, SourceError> {
        Err(self.not_yet())
    }
}
