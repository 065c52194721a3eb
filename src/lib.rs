//! # rekindle
//!
//! Brings a fleet of database containers back after a network failure: the
//! restarts are planned in dependency order, cut into waves that respect
//! per-host and per-replica-set limits, and paced under the DNS resolver's
//! capacity.
//!
//! # Layout
//!
//! The modules are layered: a module uses only the rows below its own.
//! The one table of the layers is in docs/ARCHITECTURE.md (`tests/layers.rs`
//! reads it and checks every `crate::` path against it); bottom up:
//!
//! - Leaves: [`source`] (located errors), [`duration`], [`rng`], [`dag`],
//!   [`journal`] (the append-only record file), [`http`] (the small client
//!   of the CLI and the webhooks).
//! - [`model`]: containers, labels, states, health, the inventory: plain
//!   data; [`retry`]: the one rule for calls that may fail for a moment.
//! - [`config`]: the playbook schema and its validation (every error names
//!   the file, line, column and field); `coord` (feature `etcd`):
//!   leadership and the fenced journal on etcd.
//! - [`plan`]: pure functions from inventory + playbook to a wave DAG;
//!   [`scenario`]: simulated fleets, read from scenario files.
//! - [`dns`]: the cached resolver and the adaptive budget's signals;
//!   [`health`]: MongoDB's wire protocol, SCRAM and the SDAM classification.
//! - [`runtime`]: the container boundary (Docker via bollard); [`probe`]:
//!   the health gate's probes, every check kind behind one trait.
//! - [`inventory`]: where the containers come from (Docker hosts, a JSON
//!   file, a scenario); [`sim`]: the simulated fleet behind the runtime
//!   and probe traits.
//! - [`engine`]: waves, the pacer, health gates, retries, pause, resume,
//!   abort, retune.
//! - [`recovery`]: a real run's preparation, DNS probe, pre-flight;
//!   [`report`]: timeline files; [`survey`]: every container asked its
//!   gate, nothing restarted.
//! - [`session`]: a run's journal, engine and observer wired together;
//!   [`pipeline`]: the one sequence every command and the daemon follow
//!   (prepare on a fleet, check, run the session, report and archive).
//! - [`rehearse`]: rehearsals, baselines, the budget sweep.
//! - [`daemon`]: runs, their records, audit, webhooks, metrics, HA;
//!   [`api`]: its HTTP surface; [`cli`]: the command line.

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
pub mod pipeline;
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
pub mod survey;
