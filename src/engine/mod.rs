//! The engine: turns what sources and targets say into stored snapshots, and (later) plans
//! and actions. [`inventory`] reads a target's accounts and groups into a snapshot;
//! [`sources`] reads an identity source's people, groups and sign-ins.

pub mod execute;
pub mod inventory;
pub mod sources;
