//! GammaInfra: an LLM API gateway. One OpenAI-compatible endpoint in front of AWS
//! Bedrock, Anthropic, OpenAI and OpenAI-compatible servers, with a curated catalog of
//! verified model IDs, routing under a per-request region constraint, and prepaid
//! credits billed exactly at pass-through provider rates.
//!
//! # Layout
//! This crate is the top of a workspace (docs/architecture.md, "Crates"); it re-exports
//! the lower crates' modules, so every module is reachable as `gammainfra::<module>`.
//! The path of a request, in the order it meets them:
//! * [`server`]: the axum surface (routes, auth, error shape, streaming bodies).
//! * [`chat`]: the one internal chat format every dialect converts to and from
//!   (`gammainfra-chat`).
//! * [`messages`]: the Anthropic Messages API (`/v1/messages`) on the same pipeline
//!   (`gammainfra-chat`).
//! * [`catalog`]: models, endpoints, prices, geographies, region constraints, model-ID
//!   resolution and the catalog check (`gammainfra-catalog`).
//! * [`router`]: which endpoints may serve a request and in which order; circuit breakers.
//! * [`providers`]: the `Provider` trait and one adapter per upstream API
//!   (`gammainfra-providers`).
//! * [`ledger`]: accounts, keys, reservations and the append-only ledger
//!   (`gammainfra-ledger`, with [`ratelimit`] and [`histogram`]).
//! * [`money`]: exact USD amounts and prices (`gammainfra-catalog`).
//! * [`metrics`]: the Prometheus series served at `/metrics`.
//! * [`mail`]: the console's emails, over SMTP or to the log and the outbox.
//! * [`payments`]: card top-ups through Stripe Checkout and its signed webhooks.
//! * [`config`]: the TOML file and environment, validated.
//! * [`gateway`]: wires configuration, catalog, providers and ledger into a server.
//! * [`reload`]: the catalog and configuration reloaded while serving.
//! * `simulators`: simulated upstream providers for tests and `serve --demo`
//!   (`gammainfra-simulators`, through the `demo` feature).
//! * `demo`: the offline demo (the `demo` feature).
//! * [`verify`]: `catalog verify`, the catalog's Bedrock IDs checked against AWS.
//! * [`telemetry`]: logs (text or JSON) and OpenTelemetry traces over OTLP.

pub use gammainfra_catalog::{catalog, clock, ids, money, secret};
pub use gammainfra_chat::{chat, messages, responses};
pub use gammainfra_ledger::{histogram, ledger, ratelimit};
pub use gammainfra_providers::providers;
#[cfg(any(test, feature = "demo"))]
pub use gammainfra_simulators::simulators;

pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod gateway;
pub mod mail;
pub mod metrics;
pub mod payments;
pub mod reload;
pub mod router;
pub mod server;
pub mod telemetry;
pub mod verify;
