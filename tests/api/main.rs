//! idbridge's integration tests: one binary, real sockets, real databases.

mod helpers;

mod cli;
mod crash;
mod execute;
mod health;
mod inventory;
mod metrics;
mod middleware;
mod scim_bad_input;
mod scim_bulk;
mod scim_compliance;
mod scim_entra;
mod scim_filter_sql;
mod scim_okta;
mod scim_query;
mod scim_store;
mod scim_support;
mod secrets;
mod shutdown;
mod sim_atlassian_cloud;
mod sim_confluence_dc;
mod slapd;
mod source_csv;
mod source_entra;
mod source_google;
mod source_ldap;
mod source_okta;
mod source_sync;
mod sources_cli;
mod sources_e2e;
mod store_contract;
mod target_confluence_cloud;
mod target_confluence_dc;
mod targets_cli;
mod tokens;
