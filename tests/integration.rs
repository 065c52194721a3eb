//! The integration tests, one binary (issue 27: each test binary links the
//! whole crate again: one link instead of one per area, on a 2-core
//! machine). A module
//! per area; `common` holds the helpers they share (the test fleet on the
//! real Docker Engine, unbound, etcd, the daemon and the fake fleet).
//!
//! Tests that need the Docker Engine say `docker` in their name; the HA
//! tests need the `etcd` feature.

mod common;

mod browser;
mod cli_help;
mod cli_rehearse;
mod cli_run_preflight;
mod crash_resume;
mod daemon_api;
mod daemon_client;
mod daemon_tls;
mod dns_unbound;
mod docker_daemon;
mod docker_discovery;
mod docker_gates;
mod docker_run;
mod docker_tls;
mod engine_sim;
mod etcd_coord;
mod fakefleet;
mod fuzz_inputs;
mod ha_daemon;
mod layers;
mod malformed_playbooks;
mod mongo_tls;
mod only_broken;
mod pacing_sim;
mod plan_invariants;
mod readme;
