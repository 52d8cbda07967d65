//! Wire-faithful simulators of the systems idbridge talks to but that cannot run here:
//! Confluence Data Center (with Crowd and the legacy Remote API) and the Atlassian Cloud
//! admin APIs. Tests, benchmarks, `idbridge sim …` and `idbridge demo` use them. [`common`]
//! holds the seeded random source, the virtual clock, the request log, fault injection and
//! the `/__sim/` control routes they all share.

pub mod atlassian_cloud;
pub mod common;
pub mod company;
pub mod confluence_dc;
pub mod entra;
pub mod google;
pub mod okta;
