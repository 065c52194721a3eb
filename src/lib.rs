//! # rekindle
//!
//! Brings a fleet of database containers back after a network failure: the
//! restarts are planned in dependency order, cut into waves that respect
//! per-host and per-replica-set limits, and paced under the DNS resolver's
//! capacity.
//!
//! # Layout
//!
//! The modules are layered; a module uses only the layers below it
//! (docs/ARCHITECTURE.md draws the table, `tests/layers.rs` enforces it):
//!
//! ```text
//! cli ─ api ─ rehearse ─ recovery, report ─ engine ─ inventory, sim ─ runtime
//!   ─ health ─ dns ─ plan, scenario ─ config ─ model ─ leaves
//! ```
//!
//! - [`model`]: containers, labels, states, health, the inventory: plain
//!   data that uses nothing else.
//! - [`config`]: the playbook schema and its validation; every error names
//!   the file, line, column and field.
//! - [`scenario`]: reference scenario files (simulated fleets) and their
//!   deterministic fleet generation.
//! - [`plan`]: pure functions from inventory + playbook to a wave DAG.
//! - [`dns`]: the cached resolver and the adaptive DNS budget; [`health`]:
//!   probes in a database's own protocol (MongoDB `hello`).
//! - [`runtime`]: the container boundary (Docker via bollard); [`sim`]: the
//!   simulated fleet behind the same trait; [`inventory`]: where the
//!   containers come from (Docker hosts, a JSON file, a scenario).
//! - [`engine`]: waves, pacing, health gates, the journal ([`journal`]),
//!   pause/resume/abort.
//! - [`recovery`]: what a real run needs around the engine; [`report`]:
//!   timeline files; [`rehearse`]: rehearsals on a virtual clock.
//! - [`daemon`]: runs, their records, the audit log, webhooks, metrics and
//!   HA; [`api`]: its HTTP surface; [`http`]: the client the daemon's
//!   webhooks and the CLI use; [`cli`]: the command-line front end
//!   (parsing and rendering).
//! - Leaves: [`source`] (located errors), [`duration`], [`rng`], [`dag`].

#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod config;
#[cfg(feature = "etcd")]
pub mod coord;
pub mod daemon;
pub mod dag;
pub mod dns;
pub mod duration;
pub mod engine;
pub mod health;
pub mod http;
pub mod inventory;
pub mod journal;
pub mod model;
pub mod plan;
pub mod probe;
pub mod recovery;
pub mod rehearse;
pub mod report;
pub mod retry;
pub mod rng;
pub mod runtime;
pub mod scenario;
pub mod session;
pub mod sim;
pub mod source;
