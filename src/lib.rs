//! # rekindle
//!
//! Brings a fleet of database containers back after a network failure: the
//! restarts are planned in dependency order, cut into waves that respect
//! per-host and per-replica-set limits, and paced under the DNS resolver's
//! capacity.
//!
//! # Layout
//!
//! The modules follow the pipeline a recovery goes through:
//!
//! ```text
//! playbook (TOML) ─▶ config ─▶ inventory ─▶ plan ─▶ (engine) ─▶ report
//! ```
//!
//! - [`config`]: the playbook schema and its validation; every error names
//!   the file, line, column and field.
//! - [`scenario`]: reference scenario files (simulated fleets) and their
//!   deterministic fleet generation.
//! - [`inventory`]: the containers to act on, from Docker hosts, a static
//!   JSON file or a scenario.
//! - [`plan`]: pure functions from inventory + playbook to a wave DAG.
//! - [`cli`]: the command-line front end (parsing and rendering only).

pub mod cli;
pub mod config;
pub mod duration;
pub mod engine;
pub mod inventory;
pub mod journal;
pub mod plan;
pub mod rehearse;
pub mod rng;
pub mod runtime;
pub mod sim;
pub mod scenario;
pub mod source;
