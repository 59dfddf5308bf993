//! The simulator's configuration, its model table and the model-identifier rules:
//! which IDs are invocable from which source region, as a bare (on-demand) ID, as a
//! system-defined cross-region inference profile (`{geo}.{model}`) or as an ARN.

use serde_json::{json, Value};

/// The AWS account the simulator pretends to be (it appears in inference-profile ARNs).
pub(super) const ACCOUNT_ID: &str = "123456789012";

/// Source regions where the on-demand (bare ID) models can be invoked.
pub(super) const ON_DEMAND_REGIONS: [&str; 2] = ["us-east-1", "us-west-2"];

/// Timestamp reported as `createdAt` / `updatedAt` of every profile.
const PROFILE_TIMESTAMP: &str = "2025-01-01T00:00:00Z";

/// Geographies of system-defined inference profiles and their source regions
/// (`global` is callable from any region and listed with all of these).
const GEOGRAPHIES: &[(&str, &str, &[&str])] = &[
    ("us", "US", &["us-east-1", "us-east-2", "us-west-2"]),
    (
        "eu",
        "EU",
        &[
            "eu-central-1",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "eu-north-1",
        ],
    ),
    (
        "apac",
        "APAC",
        &[
            "ap-northeast-1",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-south-1",
            "ap-northeast-2",
        ],
    ),
    ("jp", "JP", &["ap-northeast-1", "ap-northeast-3"]),
    ("au", "AU", &["ap-southeast-2", "ap-southeast-4"]),
    ("us-gov", "US-GOV", &["us-gov-east-1", "us-gov-west-1"]),
    ("global", "Global", &[]),
];

/// One foundation model of the simulated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockSimModel {
    /// The bare foundation model ID, e.g. `anthropic.claude-sonnet-4-6`.
    pub id: String,
    /// Whether the bare ID is invocable (on-demand throughput, in us-east-1 and us-west-2).
    pub on_demand: bool,
    /// Geographies with a system-defined inference profile: `us`, `eu`, `apac`, `global`,
    /// `jp`, `au`.
    pub profiles: Vec<String>,
    /// Display name, e.g. `Claude Sonnet 4.6`.
    pub name: String,
    /// Provider name, e.g. `Anthropic`.
    pub provider: String,
}

impl BedrockSimModel {
    fn new(id: &str, on_demand: bool, profiles: &[&str], name: &str, provider: &str) -> Self {
        BedrockSimModel {
            id: id.to_owned(),
            on_demand,
            profiles: profiles.iter().map(|p| (*p).to_owned()).collect(),
            name: name.to_owned(),
            provider: provider.to_owned(),
        }
    }

    /// Whether the model can be used (by any form of its ID) from `region`.
    pub(super) fn available_in(&self, region: &str) -> bool {
        (self.on_demand && ON_DEMAND_REGIONS.contains(&region))
            || self
                .profiles
                .iter()
                .any(|geo| geography_contains(geo, region))
    }

    /// Whether the model makes embeddings (InvokeModel only; Converse refuses it).
    pub(super) fn is_embedding(&self) -> bool {
        self.id.contains(".titan-embed") || self.id.starts_with("cohere.embed-")
    }

    /// `inputModalities` as GetFoundationModel reports them.
    fn input_modalities(&self) -> Vec<&'static str> {
        let vision = self.id.starts_with("anthropic.")
            || (self.id.starts_with("amazon.nova") && !self.id.contains("micro"));
        if vision {
            vec!["TEXT", "IMAGE"]
        } else {
            vec!["TEXT"]
        }
    }
}

/// Configuration of [`start_bedrock`](crate::simulators::start_bedrock).
#[derive(Debug, Clone)]
pub struct BedrockSimConfig {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// When set, SigV4 requests must carry it as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
    /// A Bedrock API key, accepted as `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Source regions where the account has model access; requests signed for any
    /// other region get `AccessDeniedException`.
    pub accessible_regions: Vec<String>,
    /// The account's models (default: [`BedrockSimConfig::default_models`]).
    pub models: Vec<BedrockSimModel>,
}

impl BedrockSimConfig {
    /// Long-term credentials, model access in us-east-1 only, the default models.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        BedrockSimConfig {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            bearer_token: None,
            accessible_regions: vec!["us-east-1".to_owned()],
            models: Self::default_models(),
        }
    }

    /// The default model table: the Claude and Nova models are profile-only; Llama 3 70B
    /// Instruct and Mistral Large 2402 are on-demand only. Each Claude model has the
    /// profiles the catalog's sources list for it (docs/catalog.md), `jp.` and `au.`
    /// included, so every Bedrock endpoint of the built-in catalog can be called.
    pub fn default_models() -> Vec<BedrockSimModel> {
        const ALL_GEOS: &[&str] = &["us", "eu", "jp", "au", "global"];
        const US_EU_GLOBAL: &[&str] = &["us", "eu", "global"];
        const US_EU_APAC_GLOBAL: &[&str] = &["us", "eu", "apac", "global"];
        const US_EU_APAC: &[&str] = &["us", "eu", "apac"];
        let claude = |id: &str, profiles: &[&str], name: &str| {
            BedrockSimModel::new(id, false, profiles, name, "Anthropic")
        };
        let nova = |id: &str, profiles: &[&str], name: &str| {
            BedrockSimModel::new(id, false, profiles, name, "Amazon")
        };
        vec![
            claude("anthropic.claude-opus-4-8", ALL_GEOS, "Claude Opus 4.8"),
            claude("anthropic.claude-opus-5-5", ALL_GEOS, "Claude Opus 5.5"),
            claude(
                "anthropic.claude-sonnet-5-5",
                US_EU_GLOBAL,
                "Claude Sonnet 5.5",
            ),
            claude("anthropic.claude-haiku-5-5", ALL_GEOS, "Claude Haiku 5.5"),
            claude(
                "anthropic.claude-fable-5-1",
                &["us", "global"],
                "Claude Fable 5.1",
            ),
            claude("anthropic.claude-opus-4-7", ALL_GEOS, "Claude Opus 4.7"),
            claude("anthropic.claude-sonnet-4-6", ALL_GEOS, "Claude Sonnet 4.6"),
            claude(
                "anthropic.claude-haiku-4-5-20251001-v1:0",
                ALL_GEOS,
                "Claude Haiku 4.5",
            ),
            claude(
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
                ALL_GEOS,
                "Claude Sonnet 4.5",
            ),
            claude(
                "anthropic.claude-opus-4-5-20251101-v1:0",
                US_EU_GLOBAL,
                "Claude Opus 4.5",
            ),
            claude(
                "anthropic.claude-opus-4-6-v1",
                &["us", "eu", "jp", "au", "apac", "global"],
                "Claude Opus 4.6",
            ),
            nova("amazon.nova-pro-v1:0", US_EU_APAC, "Nova Pro"),
            nova("amazon.nova-lite-v1:0", US_EU_APAC, "Nova Lite"),
            nova("amazon.nova-micro-v1:0", US_EU_APAC, "Nova Micro"),
            nova("amazon.nova-2-lite-v1:0", US_EU_APAC_GLOBAL, "Nova 2 Lite"),
            BedrockSimModel::new(
                "meta.llama3-70b-instruct-v1:0",
                true,
                &[],
                "Llama 3 70B Instruct",
                "Meta",
            ),
            BedrockSimModel::new(
                "mistral.mistral-large-2402-v1:0",
                true,
                &[],
                "Mistral Large (24.02)",
                "Mistral AI",
            ),
            // Embedding models: InvokeModel only, on-demand, no inference profile.
            BedrockSimModel::new(
                "amazon.titan-embed-text-v2:0",
                true,
                &[],
                "Titan Text Embeddings V2",
                "Amazon",
            ),
            BedrockSimModel::new(
                "cohere.embed-english-v3",
                true,
                &[],
                "Embed English",
                "Cohere",
            ),
            BedrockSimModel::new(
                "cohere.embed-multilingual-v3",
                true,
                &[],
                "Embed Multilingual",
                "Cohere",
            ),
        ]
    }

    pub(super) fn model(&self, id: &str) -> Option<&BedrockSimModel> {
        self.models.iter().find(|m| m.id == id)
    }

    pub(super) fn has_access(&self, region: &str) -> bool {
        self.accessible_regions.iter().any(|r| r == region)
    }
}

fn geography(geo: &str) -> Option<(&'static str, &'static [&'static str])> {
    GEOGRAPHIES
        .iter()
        .find(|(name, _, _)| *name == geo)
        .map(|(_, label, regions)| (*label, *regions))
}

/// Whether a profile of geography `geo` may be invoked from source region `region`.
pub(super) fn geography_contains(geo: &str, region: &str) -> bool {
    match geo {
        "global" => true,
        _ => geography(geo).is_some_and(|(_, regions)| regions.contains(&region)),
    }
}

/// The regions a profile of geography `geo` may route to.
fn destination_regions(geo: &str) -> Vec<&'static str> {
    match geo {
        "global" => GEOGRAPHIES
            .iter()
            .filter(|(name, _, _)| ["us", "eu", "apac"].contains(name))
            .flat_map(|(_, _, regions)| regions.iter().copied())
            .collect(),
        _ => geography(geo).map_or_else(Vec::new, |(_, regions)| regions.to_vec()),
    }
}

/// How a resolved model identifier invokes its model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Invocation {
    OnDemand,
    Profile { geography: String },
}

/// Why a model identifier cannot be invoked from a source region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ModelIdError {
    /// "The provided model identifier is invalid."
    Invalid,
    /// The bare ID of a profile-only model.
    OnDemandUnsupported(String),
}

/// Resolves a (percent-decoded) runtime model identifier for a source region: a bare
/// foundation model ID, a profile ID `{geo}.{model}`, or the ARN of either.
pub(super) fn resolve<'a>(
    config: &'a BedrockSimConfig,
    id: &str,
    region: &str,
) -> Result<(&'a BedrockSimModel, Invocation), ModelIdError> {
    if id.starts_with("arn:") {
        let parts: Vec<&str> = id.splitn(6, ':').collect();
        let [_, "aws", "bedrock", arn_region, account, resource] = parts[..] else {
            return Err(ModelIdError::Invalid);
        };
        if arn_region != region {
            return Err(ModelIdError::Invalid);
        }
        return match resource.split_once('/') {
            Some(("foundation-model", model)) if account.is_empty() => {
                resolve_bare(config, model, region)
            }
            Some(("inference-profile", profile)) if account == ACCOUNT_ID => {
                resolve_profile_id(config, profile, region).ok_or(ModelIdError::Invalid)
            }
            _ => Err(ModelIdError::Invalid),
        };
    }
    if let Some(resolved) = resolve_profile_id(config, id, region) {
        return Ok(resolved);
    }
    if split_profile_id(id).is_some() {
        return Err(ModelIdError::Invalid);
    }
    resolve_bare(config, id, region)
}

/// `{geo}.{model}` split into its geography and model ID, if `geo` is a geography.
fn split_profile_id(id: &str) -> Option<(&str, &str)> {
    id.split_once('.')
        .filter(|(geo, _)| geography(geo).is_some())
}

fn resolve_profile_id<'a>(
    config: &'a BedrockSimConfig,
    id: &str,
    region: &str,
) -> Option<(&'a BedrockSimModel, Invocation)> {
    let (geo, model_id) = split_profile_id(id)?;
    let model = config.model(model_id)?;
    let usable = model.profiles.iter().any(|p| p == geo) && geography_contains(geo, region);
    usable.then(|| {
        let invocation = Invocation::Profile {
            geography: geo.to_owned(),
        };
        (model, invocation)
    })
}

fn resolve_bare<'a>(
    config: &'a BedrockSimConfig,
    id: &str,
    region: &str,
) -> Result<(&'a BedrockSimModel, Invocation), ModelIdError> {
    let model = config.model(id).ok_or(ModelIdError::Invalid)?;
    if !model.on_demand {
        return Err(ModelIdError::OnDemandUnsupported(model.id.clone()));
    }
    if !ON_DEMAND_REGIONS.contains(&region) {
        return Err(ModelIdError::Invalid);
    }
    Ok((model, Invocation::OnDemand))
}

/// A system-defined inference profile visible from a source region.
pub(super) struct Profile<'a> {
    pub id: String,
    pub geography: &'a str,
    pub model: &'a BedrockSimModel,
}

/// The system-defined profiles whose geography contains `region`, sorted by ID.
pub(super) fn profiles_in<'a>(config: &'a BedrockSimConfig, region: &str) -> Vec<Profile<'a>> {
    let mut profiles: Vec<Profile<'a>> = config
        .models
        .iter()
        .flat_map(|model| {
            model
                .profiles
                .iter()
                .filter(|geo| geography_contains(geo, region))
                .map(move |geo| Profile {
                    id: format!("{geo}.{}", model.id),
                    geography: geo,
                    model,
                })
        })
        .collect();
    profiles.sort_by(|a, b| a.id.cmp(&b.id));
    profiles
}

/// A profile ID or inference-profile ARN, as GetInferenceProfile accepts it.
pub(super) fn find_profile<'a>(
    config: &'a BedrockSimConfig,
    identifier: &str,
    region: &str,
) -> Option<Profile<'a>> {
    let id = match identifier.strip_prefix("arn:aws:bedrock:") {
        Some(rest) => rest
            .strip_prefix(&format!("{region}:{ACCOUNT_ID}:inference-profile/"))?
            .to_owned(),
        None => identifier.to_owned(),
    };
    profiles_in(config, region)
        .into_iter()
        .find(|profile| profile.id == id)
}

pub(super) fn foundation_model_arn(region: &str, model_id: &str) -> String {
    format!("arn:aws:bedrock:{region}::foundation-model/{model_id}")
}

/// The profile as ListInferenceProfiles / GetInferenceProfile describe it.
pub(super) fn profile_json(profile: &Profile<'_>, region: &str) -> Value {
    let label = geography(profile.geography).map_or("", |(label, _)| label);
    let destinations = destination_regions(profile.geography);
    let model = profile.model;
    json!({
        "inferenceProfileName": format!("{label} {} {}", model.provider, model.name),
        "description": format!(
            "Routes requests to {} {} in {}.",
            model.provider,
            model.name,
            destinations.join(", ")
        ),
        "createdAt": PROFILE_TIMESTAMP,
        "updatedAt": PROFILE_TIMESTAMP,
        "inferenceProfileArn": format!(
            "arn:aws:bedrock:{region}:{ACCOUNT_ID}:inference-profile/{}",
            profile.id
        ),
        "models": destinations
            .iter()
            .map(|r| json!({"modelArn": foundation_model_arn(r, &model.id)}))
            .collect::<Vec<_>>(),
        "inferenceProfileId": profile.id,
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
    })
}

/// The model as GetFoundationModel (`modelDetails`) / ListFoundationModels describe it.
pub(super) fn foundation_model_json(model: &BedrockSimModel, region: &str) -> Value {
    let inference_type = if model.on_demand {
        "ON_DEMAND"
    } else {
        "INFERENCE_PROFILE"
    };
    json!({
        "modelArn": foundation_model_arn(region, &model.id),
        "modelId": model.id,
        "modelName": model.name,
        "providerName": model.provider,
        "inputModalities": model.input_modalities(),
        "outputModalities": [if model.is_embedding() { "EMBEDDING" } else { "TEXT" }],
        "responseStreamingSupported": !model.is_embedding(),
        "customizationsSupported": [],
        "inferenceTypesSupported": [inference_type],
        "modelLifecycle": {"status": "ACTIVE"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BedrockSimConfig {
        BedrockSimConfig::new("AKID", "secret")
    }

    #[test]
    fn bare_and_profile_ids() {
        let config = config();
        let (model, how) =
            resolve(&config, "us.anthropic.claude-sonnet-4-6", "us-east-1").expect("profile");
        assert_eq!(model.id, "anthropic.claude-sonnet-4-6");
        assert_eq!(
            how,
            Invocation::Profile {
                geography: "us".to_owned()
            }
        );
        let (_, how) =
            resolve(&config, "meta.llama3-70b-instruct-v1:0", "us-west-2").expect("on-demand");
        assert_eq!(how, Invocation::OnDemand);
        assert_eq!(
            resolve(&config, "anthropic.claude-sonnet-4-6", "us-east-1").map(|(_, h)| h),
            Err(ModelIdError::OnDemandUnsupported(
                "anthropic.claude-sonnet-4-6".to_owned()
            ))
        );
        for (id, region) in [
            ("us.meta.llama3-70b-instruct-v1:0", "us-east-1"),
            ("apac.anthropic.claude-sonnet-4-6", "ap-south-1"),
            ("eu.anthropic.claude-sonnet-4-6", "us-east-1"),
            ("us.anthropic.claude-sonnet-4-6", "eu-west-1"),
            ("meta.llama3-70b-instruct-v1:0", "eu-west-1"),
            ("anthropic.claude-unknown", "us-east-1"),
            ("jp.anthropic.claude-sonnet-5-5", "ap-northeast-1"),
            ("au.anthropic.claude-fable-5-1", "ap-southeast-2"),
        ] {
            assert_eq!(
                resolve(&config, id, region).map(|(_, h)| h),
                Err(ModelIdError::Invalid),
                "{id} from {region}"
            );
        }
        assert!(resolve(&config, "global.anthropic.claude-opus-4-7", "sa-east-1").is_ok());
        assert!(resolve(&config, "jp.anthropic.claude-opus-4-7", "ap-northeast-3").is_ok());
        assert!(resolve(&config, "au.anthropic.claude-opus-4-7", "ap-southeast-4").is_ok());
        assert!(resolve(&config, "jp.anthropic.claude-opus-4-8", "ap-northeast-1").is_ok());
        assert!(resolve(&config, "au.anthropic.claude-haiku-5-5", "ap-southeast-2").is_ok());
        // A jp. profile is not callable from outside Japan.
        assert_eq!(
            resolve(&config, "jp.anthropic.claude-opus-4-8", "ap-southeast-2").map(|(_, h)| h),
            Err(ModelIdError::Invalid)
        );
    }

    /// Regression test for the catalog and the simulator drifting apart: every Bedrock
    /// endpoint of the built-in catalog resolves here from its source region, in the
    /// form the catalog sends (profile or on-demand), so tests can call any of them.
    #[test]
    fn every_catalog_bedrock_endpoint_is_known_in_its_form() {
        use crate::catalog::{BedrockInvocation, Catalog, ProviderKind};
        let config = config();
        let catalog = Catalog::builtin().expect("catalog");
        let mut n = 0;
        for e in catalog
            .models
            .iter()
            .flat_map(|m| m.endpoints.iter())
            .filter(|e| e.provider == ProviderKind::Bedrock)
        {
            let b = e.bedrock.as_ref().expect("bedrock endpoint");
            let got = resolve(&config, &e.upstream_id, &b.source_region)
                .map(|(_, how)| how)
                .unwrap_or_else(|err| {
                    panic!("{} from {}: {err:?}", e.upstream_id, b.source_region)
                });
            match &b.invocation {
                BedrockInvocation::OnDemand => assert_eq!(got, Invocation::OnDemand),
                BedrockInvocation::Profile { .. } => {
                    assert!(
                        matches!(got, Invocation::Profile { .. }),
                        "{}",
                        e.upstream_id
                    )
                }
            }
            n += 1;
        }
        assert!(n >= 60, "{n} Bedrock endpoints");
    }

    #[test]
    fn arns() {
        let config = config();
        let profile_arn = format!(
            "arn:aws:bedrock:eu-west-1:{ACCOUNT_ID}:inference-profile/eu.amazon.nova-pro-v1:0"
        );
        assert!(resolve(&config, &profile_arn, "eu-west-1").is_ok());
        assert_eq!(
            resolve(&config, &profile_arn, "eu-west-3").map(|(_, h)| h),
            Err(ModelIdError::Invalid)
        );
        let model_arn = foundation_model_arn("us-east-1", "mistral.mistral-large-2402-v1:0");
        assert_eq!(
            resolve(&config, &model_arn, "us-east-1").map(|(_, h)| h),
            Ok(Invocation::OnDemand)
        );
        let model_arn = foundation_model_arn("us-east-1", "amazon.nova-pro-v1:0");
        assert!(matches!(
            resolve(&config, &model_arn, "us-east-1"),
            Err(ModelIdError::OnDemandUnsupported(_))
        ));
    }

    #[test]
    fn profiles_by_region() {
        let config = config();
        let ids: Vec<String> = profiles_in(&config, "ap-northeast-1")
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert!(ids.contains(&"jp.anthropic.claude-opus-4-7".to_owned()));
        assert!(ids.contains(&"apac.amazon.nova-pro-v1:0".to_owned()));
        assert!(ids.contains(&"global.anthropic.claude-sonnet-4-6".to_owned()));
        assert!(!ids.iter().any(|id| id.starts_with("us.")));
        let found = find_profile(
            &config,
            &format!("arn:aws:bedrock:us-east-1:{ACCOUNT_ID}:inference-profile/us.anthropic.claude-sonnet-4-6"),
            "us-east-1",
        )
        .expect("profile by ARN");
        let json = profile_json(&found, "us-east-1");
        assert_eq!(json["inferenceProfileId"], "us.anthropic.claude-sonnet-4-6");
        assert_eq!(json["models"].as_array().map(Vec::len), Some(3));
        assert!(find_profile(&config, "eu.anthropic.claude-sonnet-4-6", "us-east-1").is_none());
    }
}
