//! Integration tests: the real gateway on a loopback port, in front of the simulated
//! providers (also on port 0), driven over HTTP.

mod harness;

mod admin;
mod afford;
mod bedrock;
mod billing;
mod catalog_current;
mod chat;
mod cli;
mod console;
mod control_plane;
mod demo;
mod embeddings;
mod errors;
mod faults;
mod fuzz;
mod hostile;
mod limits;
mod listener;
mod messages;
mod metrics;
mod migrate;
mod openapi;
mod payments;
mod priced;
mod provider_errors;
mod regions;
mod reload;
mod replicas;
mod residency;
mod responses;
mod routing;
mod settlement;
#[cfg(feature = "otlp")]
mod telemetry;
mod usage;
