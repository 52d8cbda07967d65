//! Picks the connector for a configured target and dispatches the [`Target`] calls to it,
//! so callers that only know the configuration can hold "some target".

use super::confluence_cloud::AtlassianCloud;
use super::confluence_dc::ConfluenceDc;
use super::{
    AccountRef, GroupRef, Member, NewRemoteAccount, Page, Probe, RemoteAccount, RemoteGroup,
    Target, TargetError, Write, WriteOutcome,
};
use crate::config::TargetConfig;
use crate::domain::TargetKind;

/// The connector of one configured target.
#[derive(Debug)]
pub enum Connector {
    Dc(Box<ConfluenceDc>),
    Cloud(Box<AtlassianCloud>),
}

impl Connector {
    /// Builds the connector `cfg.kind` names.
    pub fn new(name: &str, cfg: &TargetConfig) -> Result<Self, TargetError> {
        Ok(match cfg.kind {
            TargetKind::ConfluenceDc => Connector::Dc(Box::new(ConfluenceDc::new(name, cfg)?)),
            TargetKind::ConfluenceCloud => {
                Connector::Cloud(Box::new(AtlassianCloud::new(name, cfg)?))
            }
        })
    }
}

macro_rules! dispatch {
    ($self:ident, |$t:ident| $body:expr) => {
        match $self {
            Connector::Dc($t) => $body,
            Connector::Cloud($t) => $body,
        }
    };
}

impl Target for Connector {
    fn kind(&self) -> TargetKind {
        dispatch!(self, |t| t.kind())
    }
    async fn probe(&self) -> Result<Probe, TargetError> {
        dispatch!(self, |t| t.probe().await)
    }
    async fn list_accounts(&self, c: Option<&str>) -> Result<Page<RemoteAccount>, TargetError> {
        dispatch!(self, |t| t.list_accounts(c).await)
    }
    async fn get_account(&self, a: &AccountRef) -> Result<Option<RemoteAccount>, TargetError> {
        dispatch!(self, |t| t.get_account(a).await)
    }
    async fn list_groups(&self, c: Option<&str>) -> Result<Page<RemoteGroup>, TargetError> {
        dispatch!(self, |t| t.list_groups(c).await)
    }
    async fn group_members(
        &self,
        g: &GroupRef,
        c: Option<&str>,
    ) -> Result<Page<Member>, TargetError> {
        dispatch!(self, |t| t.group_members(g, c).await)
    }
    async fn account_groups(&self, a: &AccountRef) -> Result<Vec<RemoteGroup>, TargetError> {
        dispatch!(self, |t| t.account_groups(a).await)
    }
    async fn licence_groups(&self) -> Result<Vec<String>, TargetError> {
        dispatch!(self, |t| t.licence_groups().await)
    }
    async fn licence_counters(&self) -> Result<(Option<u64>, Option<u64>), TargetError> {
        dispatch!(self, |t| t.licence_counters().await)
    }
    async fn disable(&self, a: &AccountRef) -> Result<WriteOutcome, TargetError> {
        dispatch!(self, |t| t.disable(a).await)
    }
    async fn enable(&self, a: &AccountRef) -> Result<WriteOutcome, TargetError> {
        dispatch!(self, |t| t.enable(a).await)
    }
    async fn add_to_group(
        &self,
        a: &AccountRef,
        g: &GroupRef,
    ) -> Result<WriteOutcome, TargetError> {
        dispatch!(self, |t| t.add_to_group(a, g).await)
    }
    async fn remove_from_group(
        &self,
        a: &AccountRef,
        g: &GroupRef,
    ) -> Result<WriteOutcome, TargetError> {
        dispatch!(self, |t| t.remove_from_group(a, g).await)
    }
    async fn rename(&self, a: &AccountRef, n: &str) -> Result<WriteOutcome, TargetError> {
        dispatch!(self, |t| t.rename(a, n).await)
    }
    async fn change_directory(&self, a: &AccountRef, d: &str) -> Result<WriteOutcome, TargetError> {
        dispatch!(self, |t| t.change_directory(a, d).await)
    }
    async fn delete(&self, a: &AccountRef) -> Result<WriteOutcome, TargetError> {
        dispatch!(self, |t| t.delete(a).await)
    }
    async fn create_account(&self, n: &NewRemoteAccount) -> Result<RemoteAccount, TargetError> {
        dispatch!(self, |t| t.create_account(n).await)
    }
    async fn update_profile(
        &self,
        a: &AccountRef,
        e: &str,
        d: &str,
    ) -> Result<WriteOutcome, TargetError> {
        dispatch!(self, |t| t.update_profile(a, e, d).await)
    }
    async fn apply(&self, a: &RemoteAccount, w: &Write) -> Result<WriteOutcome, TargetError> {
        dispatch!(self, |t| t.apply(a, w).await)
    }
}
