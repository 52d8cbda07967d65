//! SCIM 2.0 as a protocol, with no I/O: errors (RFC 7644 §3.12), schemas and attribute
//! resolution (RFC 7643), filter and PATCH-path syntax and parsing (RFC 7644 §3.4.2.2,
//! §3.5.2), an in-memory filter evaluator, resource normalisation and projection, PATCH
//! application with the quirks of Okta and Microsoft Entra ID, and the discovery documents.
//! Storage lives in `store::scim`, HTTP in `http::scim`.

pub mod ast;
pub mod discovery;
pub mod error;
pub mod eval;
pub mod filter;
pub mod index;
pub mod patch;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimType};
