//! Federation for Flotilla: the `Source` contract and the pushdown planner.
//!
//! This crate will own (see `ARCHITECTURE.md`, "Contracts worth getting right"):
//! - the `Source` contract every connector implements: structured identity, dialect and
//!   capabilities, lazy schema discovery, execute(SQL) → stream of Arrow batches, statistics;
//! - the planner that, after DataFusion's logical optimizer, cuts the largest sub-plans a single
//!   source can run and turns each into one federated scan;
//! - SQL generation per dialect and `FederatedScanExec`.
//!
//! It is empty until the federation issue lands; today each connector is a plain DataFusion
//! table provider with projection, filter and limit pushdown (see `flotilla-connectors-sqlite`).
//! The crate exists now so that the dependency direction (connectors → federation → common) is
//! fixed and checked from the start.
