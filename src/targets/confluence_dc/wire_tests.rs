//! Wire tests: placeholder.
