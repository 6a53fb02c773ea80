//! Crate-level tests: literal frames through the parser, rewrites,
//! encapsulation; property tests against etherparse.
