//! The Arrow Flight SQL service of a Flotilla node.
//!
//! This crate will own the Flight SQL service over a session provider: statements planned once,
//! prepared statements, updates, metadata, sessions and auth (see `ARCHITECTURE.md`). It is
//! empty until the Flight SQL issue lands; it exists now so that its place in the dependency
//! graph is checked from the start.
