//! A simulated Confluence Data Center instance (versions 7.13 to 10.2), with Crowd and the
//! legacy Remote API.
