//! GammaInfra's simulated providers ([`simulators`]): AWS Bedrock, Anthropic and
//! OpenAI as strict in-process servers, for the tests and `gammainfra serve --demo`.
//! Written independently of the adapters: they name only the catalog.

pub use gammainfra_catalog::{catalog, clock, ids, money, secret};

pub mod simulators;
