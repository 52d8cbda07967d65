//! The engine: turns what sources and targets say into snapshots, plans and actions.
//! [`inventory`] reads a target's accounts and groups into a snapshot; [`sources`] reads an
//! identity source's people, groups and sign-ins; [`link`] matches identities to accounts;
//! [`activity`] and [`plan`] (pure) turn person views and rules into a plan with reasons;
//! [`safety`] weighs it against the budgets; [`execute`] carries it out; [`regrant`] gives a
//! licence back to an inactive person who signs in again; [`audit`] keys, checks and exports
//! the audit log; [`export`] writes the joined view of accounts, people and runs as CSV or
//! JSON; [`run`] ties one pass together; [`scheduler`] runs syncs and rules on their cron
//! schedules under the scheduler lease.

pub mod activity;
pub mod audit;
pub mod bulk;
pub mod execute;
pub mod export;
pub mod inventory;
pub mod link;
pub mod plan;
pub mod regrant;
pub mod run;
pub mod safety;
pub mod scheduler;
pub mod sources;
pub mod undo;
