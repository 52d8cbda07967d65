//! The Ldap connector (being built; answers every call with a configuration error until then).

use super::{
    Change, SignIn, Source, SourceCheck, SourceError, SourceGroup, SourceIdentity, SourcePage,
};
use crate::config::SourceConfig;
use crate::domain::SourceKind;

/// A Ldap source.
#[derive(Debug)]
pub struct LdapSource {
    name: String,
}

impl LdapSource {
    /// The connector for source `name`.
    pub fn from_config(name: &str, _cfg: &SourceConfig) -> Result<Self, SourceError> {
        Ok(LdapSource {
            name: name.to_owned(),
        })
    }

    fn not_yet(&self) -> SourceError {
        SourceError::Config(format!(
            "sources.{}: the Ldap connector is not available yet",
            self.name
        ))
    }
}

impl Source for LdapSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Ldap
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
