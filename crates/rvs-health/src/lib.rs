//! Health checks for rvs real servers, with keepalived's semantics.
//!
//! - [`spec`]: what to check, as keepalived.conf says it (plain data; the
//!   keepalived parser produces it, the checkers consume it).

#![deny(missing_docs)]

pub mod spec;
