//! Distributed execution for Flotilla: stages across nodes over Arrow Flight.
//!
//! This crate will own the stage planner, the exchange operators (shuffle, gather, broadcast),
//! the worker service, plan and config codecs, worker discovery and in-process clusters (see
//! `ARCHITECTURE.md`). It is empty until the distribution issue lands; it exists now so that its
//! place in the dependency graph (it may use `flotilla-common`, never federation or connectors)
//! is checked from the start, and so that arrow-flight and tonic are pinned to the versions
//! DataFusion uses.
