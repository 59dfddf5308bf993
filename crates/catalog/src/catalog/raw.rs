//! The catalog file's shape on disk (TOML). Nothing here is trusted until
//! [`super::check::validate`] has turned it into a [`super::Catalog`].

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    pub version: String,
    #[serde(default)]
    pub geographies: Vec<RawGeography>,
    #[serde(default)]
    pub models: Vec<RawModel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeography {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub bedrock_profile: bool,
    pub regions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub id: String,
    pub name: String,
    pub owned_by: String,
    pub context_window: u64,
    /// Required of a chat model; an embedding model generates no tokens and omits it.
    pub max_output_tokens: Option<u64>,
    /// `chat` (the default) or `embedding`.
    pub kind: Option<String>,
    /// An embedding model's output sizes (`kind = "embedding"` only).
    pub embedding: Option<RawEmbedding>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub bedrock_profile: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub endpoints: Vec<RawEndpoint>,
}

/// `embedding = { dimensions = 1024, dimension_choices = [256, 512, 1024] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbedding {
    pub dimensions: u32,
    pub dimension_choices: Option<Vec<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub provider: String,
    pub upstream_id: String,
    pub invocation: Option<String>,
    pub geography: Option<String>,
    pub source_region: Option<String>,
    pub region: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub verified: Option<RawVerified>,
    pub pricing: Option<RawPricing>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerified {
    pub date: String,
    pub method: String,
}

/// Prices are kept as TOML values so that a number written without quotes is reported
/// as "not a decimal string" instead of being silently read as a float.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPricing {
    pub input: Option<toml::Value>,
    pub output: Option<toml::Value>,
    pub cache_read: Option<toml::Value>,
    pub cache_write_5m: Option<toml::Value>,
    pub cache_write_1h: Option<toml::Value>,
    #[serde(default)]
    pub tiers: Vec<RawTier>,
    /// Where these prices were read. Optional here only so that the check can report a
    /// missing one with the model and endpoint it belongs to; the check requires it.
    pub source: Option<RawPriceSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub above_input_tokens: u64,
    pub input: Option<toml::Value>,
    pub output: Option<toml::Value>,
    pub cache_read: Option<toml::Value>,
    pub cache_write_5m: Option<toml::Value>,
    pub cache_write_1h: Option<toml::Value>,
    /// The tier's own source, when it was read somewhere else than the base prices;
    /// without one the tier shares the endpoint's `source`.
    pub source: Option<RawPriceSource>,
}

/// `source = { kind = "provider", url = "https://...", read = "YYYY-MM-DD", note = "..." }`:
/// where a price list was read, when, and how directly. Every field is optional here so
/// that the check names the model and endpoint of a missing one, instead of serde's bare
/// "missing field".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPriceSource {
    pub kind: Option<String>,
    pub url: Option<String>,
    /// A TOML value, so that an unquoted TOML date (`read = 2026-11-25`) is reported as
    /// "write it as a quoted string" rather than as a type error without a location.
    pub read: Option<toml::Value>,
    pub note: Option<String>,
}
