//! GammaInfra's lowest layer: exact money, the catalog of models and endpoints with
//! their prices, geographies and region constraints, and the small helpers every layer
//! shares (clock, random IDs, secrets). It names no other GammaInfra crate.
//!
//! * [`money`]: exact USD amounts and prices.
//! * [`catalog`]: models, endpoints, prices, geographies, region constraints, model-ID
//!   resolution and the catalog check.
//! * [`clock`], [`ids`], [`secret`]: wall-clock helpers, random identifiers, redacted
//!   secrets.

pub mod catalog;
pub mod clock;
pub mod ids;
pub mod money;
pub mod secret;
