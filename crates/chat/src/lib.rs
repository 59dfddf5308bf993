//! GammaInfra's chat format: the one internal format every dialect converts to and
//! from ([`chat`]), and the Anthropic Messages API on it ([`messages`]). Above the
//! catalog, below the providers.

pub use gammainfra_catalog::{catalog, clock, ids, money, secret};

pub mod chat;
pub mod messages;
pub mod responses;
