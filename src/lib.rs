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
//! - [`engine`] over [`runtime`] (Docker via bollard, or [`sim`]): waves,
//!   pacing, health gates, journal ([`journal`]), pause/resume/abort.
//! - [`dns`]: the cached resolver and the adaptive DNS budget; [`health`]:
//!   probes in a database's own protocol (MongoDB `hello`).
//! - [`rehearse`] and [`report`]: rehearsals on a virtual clock and their
//!   timeline files; [`recovery`]: what a real run needs around the engine.
//! - [`api`]: the daemon's HTTP API; [`http`]: the client it and the CLI use.
//! - [`cli`]: the command-line front end (parsing and rendering only).

pub mod api;
pub mod cli;
pub mod config;
pub mod dns;
pub mod duration;
pub mod engine;
pub mod health;
pub mod http;
pub mod inventory;
pub mod journal;
pub mod plan;
pub mod recovery;
pub mod rehearse;
pub mod report;
pub mod rng;
pub mod runtime;
pub mod scenario;
pub mod sim;
pub mod source;
