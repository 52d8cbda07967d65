//! Confluence Data Center (and Server) 7.x to 10.x: REST per the version matrix, the legacy
//! Remote API where REST lacks a call, and Crowd for renames in Crowd-backed directories.

use super::{
    AccountRef, GroupRef, Member, NewRemoteAccount, Page, Probe, RemoteAccount, RemoteGroup,
    Target, TargetError, WriteOutcome,
};
use crate::config::TargetConfig;
use crate::domain::TargetKind;

/// A Confluence Data Center instance.
#[derive(Debug)]
pub struct ConfluenceDc {
    name: String,
}

impl ConfluenceDc {
    /// A connector for the target `name` as configured.
    pub fn new(name: &str, _cfg: &TargetConfig) -> Result<Self, TargetError> {
        Ok(Self {
            name: name.to_owned(),
        })
    }

    fn pending<T>(&self) -> Result<T, TargetError> {
        Err(TargetError::Config(format!(
            "target `{}`: Data Center connector not built yet",
            self.name
        )))
    }
}

impl Target for ConfluenceDc {
    fn kind(&self) -> TargetKind {
        TargetKind::ConfluenceDc
    }
    async fn probe(&self) -> Result<Probe, TargetError> {
        self.pending()
    }
    async fn list_accounts(&self, _c: Option<&str>) -> Result<Page<RemoteAccount>, TargetError> {
        self.pending()
    }
    async fn get_account(&self, _a: &AccountRef) -> Result<Option<RemoteAccount>, TargetError> {
        self.pending()
    }
    async fn list_groups(&self, _c: Option<&str>) -> Result<Page<RemoteGroup>, TargetError> {
        self.pending()
    }
    async fn group_members(
        &self,
        _g: &GroupRef,
        _c: Option<&str>,
    ) -> Result<Page<Member>, TargetError> {
        self.pending()
    }
    async fn account_groups(&self, _a: &AccountRef) -> Result<Vec<RemoteGroup>, TargetError> {
        self.pending()
    }
    async fn licence_groups(&self) -> Result<Vec<String>, TargetError> {
        self.pending()
    }
    async fn licence_counters(&self) -> Result<(Option<u64>, Option<u64>), TargetError> {
        self.pending()
    }
    async fn disable(&self, _a: &AccountRef) -> Result<WriteOutcome, TargetError> {
        self.pending()
    }
    async fn enable(&self, _a: &AccountRef) -> Result<WriteOutcome, TargetError> {
        self.pending()
    }
    async fn add_to_group(
        &self,
        _a: &AccountRef,
        _g: &GroupRef,
    ) -> Result<WriteOutcome, TargetError> {
        self.pending()
    }
    async fn remove_from_group(
        &self,
        _a: &AccountRef,
        _g: &GroupRef,
    ) -> Result<WriteOutcome, TargetError> {
        self.pending()
    }
    async fn rename(&self, _a: &AccountRef, _n: &str) -> Result<WriteOutcome, TargetError> {
        self.pending()
    }
    async fn change_directory(
        &self,
        _a: &AccountRef,
        _d: &str,
    ) -> Result<WriteOutcome, TargetError> {
        self.pending()
    }
    async fn delete(&self, _a: &AccountRef) -> Result<WriteOutcome, TargetError> {
        self.pending()
    }
    async fn create_account(&self, _n: &NewRemoteAccount) -> Result<RemoteAccount, TargetError> {
        self.pending()
    }
    async fn update_profile(
        &self,
        _a: &AccountRef,
        _e: &str,
        _d: &str,
    ) -> Result<WriteOutcome, TargetError> {
        self.pending()
    }
}
