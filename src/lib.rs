//! GammaInfra: an LLM API gateway. One OpenAI-compatible endpoint in front of AWS
//! Bedrock, Anthropic, OpenAI and OpenAI-compatible servers, with a curated catalog of
//! verified model IDs, routing under a per-request region constraint, and prepaid
//! credits billed exactly at pass-through provider rates.
//!
//! # Layout
//! The path of a request, in the order it meets these modules:
//! * [`server`]: the axum surface (routes, auth, error shape, streaming bodies).
//! * [`chat`]: the one internal chat format every dialect converts to and from.
//! * [`messages`]: the Anthropic Messages API (`/v1/messages`) on the same pipeline.
//! * [`catalog`]: models, endpoints, prices, geographies, region constraints, model-ID
//!   resolution and the catalog check.
//! * [`router`]: which endpoints may serve a request and in which order; circuit breakers.
//! * [`providers`]: the `Provider` trait and one adapter per upstream API.
//! * [`ledger`]: accounts, keys, reservations and the append-only ledger.
//! * [`money`]: exact USD amounts and prices.
//! * [`metrics`]: the Prometheus series served at `/metrics`.
//! * [`config`]: the TOML file and environment, validated.
//! * [`gateway`]: wires configuration, catalog, providers and ledger into a server.
//! * [`reload`]: the catalog and configuration reloaded while serving.
//! * [`simulators`]: simulated upstream providers for tests and `serve --demo`.
//! * [`demo`]: the offline demo.
//! * [`verify`]: `catalog verify`, the catalog's Bedrock IDs checked against AWS.
//! * [`telemetry`]: logs (text or JSON) and OpenTelemetry traces over OTLP.

pub mod catalog;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod histogram;
pub mod ids;
pub mod ledger;
pub mod messages;
pub mod metrics;
pub mod money;
pub mod providers;
pub mod ratelimit;
pub mod reload;
pub mod router;
pub mod secret;
pub mod server;
pub mod simulators;
pub mod telemetry;
pub mod verify;
