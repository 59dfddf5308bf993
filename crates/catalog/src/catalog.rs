//! The model catalog: models, their endpoints and prices, and the geography table.
//!
//! # Layout
//! * `catalog.rs` (this file): the validated runtime types and loading.
//! * [`raw`]: the TOML file's serde shape, exactly as written on disk.
//! * [`check`]: every rule a catalog must satisfy (`gammainfra catalog check`), turning
//!   raw data into a [`Catalog`] or into the full list of problems.
//! * [`region`]: the `X-GammaInfra-Region` constraint and data-residency matching.
//! * [`resolve`]: model-ID resolution (gateway IDs, provider IDs, wrong forms).
//!
//! The default catalog (`catalog/catalog.toml` in the repository) is compiled into the
//! binary; `GAMMAINFRA_CATALOG` or the config file's `catalog` key points at another.

pub mod check;
pub mod raw;
pub mod region;
pub mod resolve;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::money::Price;

pub use check::CatalogError;
pub use region::{Asked, OutsidePolicy, RegionConstraint, RegionError, Residency};
pub use resolve::{Resolution, ResolveError};

/// The catalog compiled into the binary.
pub const DEFAULT_CATALOG: &str = include_str!("../../../catalog/catalog.toml");

/// A validated catalog. Built only by [`Catalog::from_toml`] / [`check::validate`].
#[derive(Debug)]
pub struct Catalog {
    pub version: String,
    pub geographies: Vec<Geography>,
    pub models: Vec<Arc<Model>>,
    /// Lower-cased gateway IDs, aliases and upstream IDs → index into `models`.
    pub(crate) index: HashMap<String, usize>,
    /// Every AWS region named by some geography.
    pub(crate) known_regions: BTreeSet<String>,
}

/// A named set of regions: the unit of `X-GammaInfra-Region` values and Bedrock profiles.
#[derive(Debug, Clone)]
pub struct Geography {
    pub id: String,
    pub name: String,
    /// Whether Bedrock has cross-region inference profiles with prefix `{id}.`.
    pub bedrock_profile: bool,
    pub regions: BTreeSet<String>,
}

/// Whether a model's Bedrock IDs must, must not, or may carry a profile prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BedrockProfileRule {
    Required,
    Forbidden,
    Optional,
}

/// What a model does: a closed set, so every place that must tell the two apart breaks
/// when a kind is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelKind {
    /// Chat completions (`/v1/chat/completions`, `/v1/messages`).
    Chat,
    /// Embeddings (`/v1/embeddings`): input tokens only, priced at `input`.
    Embedding(EmbeddingSpec),
}

impl ModelKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Embedding(_) => "embedding",
        }
    }
}

/// The vectors an embedding model returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingSpec {
    /// The size returned when the request names none (the model's full size).
    pub dimensions: u32,
    /// The only sizes a request may ask for; `None`: any size from 1 to `dimensions`
    /// (OpenAI's shortened embeddings).
    pub dimension_choices: Option<Vec<u32>>,
}

impl EmbeddingSpec {
    /// Whether a request may ask for `n` dimensions.
    pub fn allows(&self, n: u32) -> bool {
        match &self.dimension_choices {
            Some(c) => c.contains(&n),
            None => (1..=self.dimensions).contains(&n),
        }
    }
}

#[derive(Debug)]
pub struct Model {
    pub id: String,
    pub name: String,
    pub owned_by: String,
    pub kind: ModelKind,
    /// For an embedding model: the most tokens one input may have.
    pub context_window: u64,
    /// 0 for an embedding model.
    pub max_output_tokens: u64,
    pub capabilities: BTreeSet<String>,
    pub bedrock_profile: Option<BedrockProfileRule>,
    pub endpoints: Vec<Arc<Endpoint>>,
}

/// The provider an endpoint is served by. A closed set; OpenAI-compatible servers are
/// configuration (`openai_compatible:<name>`), not new variants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Bedrock,
    Anthropic,
    OpenAi,
    OpenAiCompatible(String),
}

impl ProviderKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bedrock" => Some(Self::Bedrock),
            "anthropic" => Some(Self::Anthropic),
            "openai" => Some(Self::OpenAi),
            other => other
                .strip_prefix("openai_compatible:")
                .filter(|n| !n.is_empty())
                .map(|n| Self::OpenAiCompatible(n.to_owned())),
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bedrock => f.write_str("bedrock"),
            Self::Anthropic => f.write_str("anthropic"),
            Self::OpenAi => f.write_str("openai"),
            Self::OpenAiCompatible(n) => write!(f, "openai_compatible:{n}"),
        }
    }
}

/// How a Bedrock endpoint is invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BedrockInvocation {
    /// A cross-region inference profile `{geography}.{model}` (or `global.`).
    Profile { geography: String },
    /// The bare model ID, on-demand in one region.
    OnDemand,
}

#[derive(Debug, Clone)]
pub struct BedrockEndpoint {
    pub invocation: BedrockInvocation,
    /// The region whose `bedrock-runtime` API endpoint is called (and signed for).
    pub source_region: String,
}

/// Where an endpoint may process a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessingRegions {
    /// Exactly these regions (a single region, or a geography's members).
    Known(BTreeSet<String>),
    /// Anywhere (a `global.` profile) or not published (direct provider APIs): eligible
    /// only for requests without a region constraint.
    Unknown,
}

#[derive(Debug)]
pub struct Endpoint {
    /// `provider:upstream_id`, unique within the catalog; names the endpoint in errors,
    /// logs and circuit-breaker state.
    pub key: String,
    pub model_id: String,
    pub provider: ProviderKind,
    pub upstream_id: String,
    pub bedrock: Option<BedrockEndpoint>,
    pub processing_regions: ProcessingRegions,
    /// Human label of where it processes: `us`, `us-east-1`, `global`, `unknown`.
    pub region_label: String,
    pub enabled: bool,
    pub pricing: Pricing,
    /// Where `pricing` was read (for the base prices, and for tiers without their own).
    pub price_source: PriceSource,
    /// One per entry of `pricing.tiers`, in the same order: the tier's own source, or a
    /// copy of `price_source` when the tier declares none.
    pub tier_sources: Vec<PriceSource>,
    pub verified_date: String,
    pub verified_method: String,
}

/// How directly a price was taken from the provider's own publication. Billing is
/// pass-through, so a price that was not read on the provider's page is a liability the
/// operator must be able to see: the kind says how far each price is from first-hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PriceSourceKind {
    /// Read on the provider's own price page or machine-readable price list.
    Provider,
    /// Read on a public price list that cites the provider's publication.
    Secondary,
    /// Computed from other prices by a rule the provider publishes (e.g. AWS: a
    /// geographic cross-Region profile costs about 10% more than the global one).
    Derived,
}

impl PriceSourceKind {
    pub const ALL: [Self; 3] = [Self::Provider, Self::Secondary, Self::Derived];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Secondary => "secondary",
            Self::Derived => "derived",
        }
    }
}

impl std::fmt::Display for PriceSourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and when a price list was read: `source = { kind, url, read, note }` in the
/// catalog. Required for every price, so a wrong price can be traced to what it was
/// copied from and re-checked there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceSource {
    pub kind: PriceSourceKind,
    /// An `https://` URL of the page or price list.
    pub url: String,
    /// The date it was read, `YYYY-MM-DD`.
    pub read: String,
    /// What the URL alone does not say: for a derived price, the rule and the price it
    /// was derived from; for a mixed block, which prices are less direct than `kind`.
    pub note: Option<String>,
}

impl Endpoint {
    /// Where a request to this endpoint is served, as the `X-GammaInfra-Upstream-Region`
    /// response header and the usage records say it: a Bedrock profile's geography
    /// (`us`, `global`), an on-demand Bedrock endpoint's region, else the region label.
    /// One function for both, so that a record always matches the header its response had.
    pub fn served_region(&self) -> &str {
        self.bedrock
            .as_ref()
            .map_or(self.region_label.as_str(), |b| match &b.invocation {
                BedrockInvocation::Profile { geography } => geography.as_str(),
                BedrockInvocation::OnDemand => b.source_region.as_str(),
            })
    }
}

/// Prices of one endpoint, USD per million tokens.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pricing {
    pub input: Price,
    pub output: Price,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<Price>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_5m: Option<Price>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<Price>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<PriceTier>,
}

/// Prices that apply when a request's input exceeds `above_input_tokens`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PriceTier {
    pub above_input_tokens: u64,
    pub input: Price,
    pub output: Price,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<Price>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_5m: Option<Price>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<Price>,
}

/// The prices in force for one request: the base prices, or the highest tier whose
/// threshold the request's total input exceeds.
#[derive(Debug, Clone, Copy)]
pub struct EffectivePrices {
    pub input: Price,
    pub output: Price,
    pub cache_read: Price,
    pub cache_write_5m: Price,
    pub cache_write_1h: Price,
}

impl Pricing {
    pub fn for_input_tokens(&self, total_input: u64) -> EffectivePrices {
        let base = EffectivePrices {
            input: self.input,
            output: self.output,
            cache_read: self.cache_read.unwrap_or(self.input),
            cache_write_5m: self.cache_write_5m.unwrap_or(self.input),
            cache_write_1h: self
                .cache_write_1h
                .or(self.cache_write_5m)
                .unwrap_or(self.input),
        };
        self.tiers
            .iter()
            .filter(|t| total_input > t.above_input_tokens)
            .max_by_key(|t| t.above_input_tokens)
            .map(|t| EffectivePrices {
                input: t.input,
                output: t.output,
                cache_read: t.cache_read.unwrap_or(base.cache_read),
                cache_write_5m: t.cache_write_5m.unwrap_or(base.cache_write_5m),
                cache_write_1h: t.cache_write_1h.unwrap_or(base.cache_write_1h),
            })
            .unwrap_or(base)
    }

    /// The highest prices of any tier: what a reservation must assume.
    pub fn worst_case(&self) -> EffectivePrices {
        self.for_input_tokens(u64::MAX)
    }
}

impl Model {
    /// The model's embedding sizes, if it is an embedding model.
    pub fn embedding(&self) -> Option<&EmbeddingSpec> {
        match &self.kind {
            ModelKind::Embedding(e) => Some(e),
            ModelKind::Chat => None,
        }
    }
}

impl Catalog {
    /// Parses and validates a catalog file's text.
    pub fn from_toml(text: &str) -> Result<Self, CatalogError> {
        let raw: raw::RawCatalog = toml::from_str(text).map_err(CatalogError::Parse)?;
        check::validate(raw)
    }

    /// The default catalog compiled into the binary.
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::from_toml(DEFAULT_CATALOG)
    }

    pub fn geography(&self, id: &str) -> Option<&Geography> {
        self.geographies.iter().find(|g| g.id == id)
    }

    pub fn is_known_region(&self, r: &str) -> bool {
        self.known_regions.contains(r)
    }

    pub fn model(&self, id: &str) -> Option<&Arc<Model>> {
        self.models.iter().find(|m| m.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_is_valid_and_has_the_seed_models() {
        let c = Catalog::builtin().expect("the shipped catalog passes the check");
        let seed = [
            ("anthropic/claude-opus-4-7", "us.anthropic.claude-opus-4-7"),
            (
                "anthropic/claude-sonnet-4-6",
                "us.anthropic.claude-sonnet-4-6",
            ),
            ("amazon/nova-pro-v1", "us.amazon.nova-pro-v1:0"),
            ("amazon/nova-2-lite-v1", "us.amazon.nova-2-lite-v1:0"),
            ("meta/llama3-70b-instruct", "meta.llama3-70b-instruct-v1:0"),
            (
                "mistral/mistral-large-2402",
                "mistral.mistral-large-2402-v1:0",
            ),
        ];
        for (model, upstream) in seed {
            let m = c.model(model).expect(model);
            let e = m
                .endpoints
                .iter()
                .find(|e| e.upstream_id == upstream)
                .expect(upstream);
            assert_eq!(e.provider, ProviderKind::Bedrock);
            assert!(e.enabled, "{upstream} enabled");
            assert_eq!(
                e.bedrock.as_ref().map(|b| b.source_region.as_str()),
                Some("us-east-1")
            );
        }
    }

    #[test]
    fn tiers_apply_above_their_threshold() {
        let p = Pricing {
            input: Price::from_nanos_per_mtok(3_000_000_000),
            output: Price::from_nanos_per_mtok(15_000_000_000),
            cache_read: None,
            cache_write_5m: None,
            cache_write_1h: None,
            tiers: vec![PriceTier {
                above_input_tokens: 200_000,
                input: Price::from_nanos_per_mtok(6_000_000_000),
                output: Price::from_nanos_per_mtok(22_500_000_000),
                cache_read: None,
                cache_write_5m: None,
                cache_write_1h: None,
            }],
        };
        assert_eq!(
            p.for_input_tokens(200_000).input.nanos_per_mtok(),
            3_000_000_000
        );
        assert_eq!(
            p.for_input_tokens(200_001).input.nanos_per_mtok(),
            6_000_000_000
        );
        assert_eq!(p.worst_case().output.nanos_per_mtok(), 22_500_000_000);
    }
}
