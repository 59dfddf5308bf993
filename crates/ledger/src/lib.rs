//! GammaInfra's ledger: accounts, keys, reservations and the append-only ledger on
//! SQLite or PostgreSQL ([`ledger`]), rate limits shared through Redis ([`ratelimit`]),
//! and the commit-latency [`histogram`]. Above the chat format (a charge carries its
//! usage), beside the providers, below the server.

pub use gammainfra_chat::{catalog, chat, clock, ids, messages, money, secret};

pub mod histogram;
pub mod ledger;
pub mod ratelimit;
