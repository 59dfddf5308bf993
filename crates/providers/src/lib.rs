//! GammaInfra's provider adapters ([`providers`]): the `Provider` trait and one adapter
//! per upstream API (AWS Bedrock, Anthropic, OpenAI and OpenAI-compatible servers), with
//! the upstream HTTP client. Above the chat format, below the server.

pub use gammainfra_chat::{catalog, chat, clock, ids, messages, money, responses, secret};

pub mod providers;
