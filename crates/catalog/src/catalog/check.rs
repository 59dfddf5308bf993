//! The catalog check: every rule of a well-formed catalog, reported all at once.
//!
//! Rejected: a profile-required model with a bare Bedrock ID, a profile-forbidden model
//! with a prefixed one, an ID whose prefix disagrees with its declared geography, a
//! geography not in the table, a missing or non-decimal price, a price without a source
//! (`source = { kind, url, read }`: where and when it was read, and how directly); also
//! duplicate IDs, unknown providers and regions, and Bedrock fields on non-Bedrock
//! endpoints.
//!
//! The same check runs when the gateway loads a catalog, so a catalog that fails here is
//! never served.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::raw::{RawCatalog, RawEndpoint, RawModel, RawPriceSource, RawPricing};
use super::{
    BedrockEndpoint, BedrockInvocation, BedrockProfileRule, Catalog, EmbeddingSpec, Endpoint,
    Geography, Model, ModelKind, PriceSource, PriceSourceKind, PriceTier, Pricing,
    ProcessingRegions, ProviderKind,
};
use crate::money::Price;

/// Why a catalog was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog file is not valid TOML for the catalog schema: {0}")]
    Parse(#[source] toml::de::Error),
    #[error("catalog has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    Invalid(Vec<String>),
    #[error("cannot read catalog file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The ID prefix `global.` (a global cross-region profile: may process in any region).
pub const GLOBAL: &str = "global";

/// Turns raw catalog data into a validated [`Catalog`], or lists every problem found.
pub fn validate(raw: RawCatalog) -> Result<Catalog, CatalogError> {
    let mut errs = Vec::new();
    if raw.version.trim().is_empty() {
        errs.push("version: must not be empty".to_owned());
    }

    let mut geographies: Vec<Geography> = Vec::new();
    for (i, g) in raw.geographies.iter().enumerate() {
        let at = format!("geographies[{i}] ({})", g.id);
        if !is_slug(&g.id) || g.id == GLOBAL {
            errs.push(format!(
                "{at}: id must be a lower-case slug other than `global`"
            ));
        }
        if geographies.iter().any(|x| x.id == g.id) {
            errs.push(format!("{at}: duplicate geography id"));
        }
        if g.regions.is_empty() {
            errs.push(format!("{at}: lists no regions"));
        }
        for r in &g.regions {
            if !is_region_name(r) {
                errs.push(format!("{at}: `{r}` is not an AWS region name"));
            }
        }
        geographies.push(Geography {
            id: g.id.clone(),
            name: g.name.clone(),
            bedrock_profile: g.bedrock_profile,
            regions: g.regions.iter().cloned().collect(),
        });
    }
    let known_regions: BTreeSet<String> = geographies
        .iter()
        .flat_map(|g| g.regions.iter().cloned())
        .collect();
    let profile_prefixes: Vec<String> = geographies
        .iter()
        .filter(|g| g.bedrock_profile)
        .map(|g| g.id.clone())
        .chain([GLOBAL.to_owned()])
        .collect();
    let ctx = Ctx {
        geographies: &geographies,
        known_regions: &known_regions,
        profile_prefixes: &profile_prefixes,
    };

    let mut models = Vec::new();
    let mut model_ids = HashSet::new();
    let mut endpoint_keys = HashSet::new();
    for (i, m) in raw.models.iter().enumerate() {
        let at = format!("models[{i}] ({})", m.id);
        if !model_ids.insert(m.id.to_ascii_lowercase()) {
            errs.push(format!("{at}: duplicate model id"));
        }
        if let Some(model) = check_model(&ctx, &at, m, &mut errs) {
            for e in &model.endpoints {
                if !endpoint_keys.insert(e.key.clone()) {
                    errs.push(format!("{at}: endpoint {} is listed twice", e.key));
                }
            }
            models.push(Arc::new(model));
        }
    }

    // Every name (gateway ID, aliases, upstream IDs) must name one model. Checked on the
    // file's models as written, so that a collision is reported together with the other
    // problems of the models involved, not only once those are fixed.
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (i, m) in raw.models.iter().enumerate() {
        for name in model_names(m) {
            let k = name.to_ascii_lowercase();
            match owner.get(&k) {
                // Two models with one ID are reported as a duplicate model id above.
                Some(&j) if j != i && !raw.models[j].id.eq_ignore_ascii_case(&m.id) => {
                    errs.push(format!(
                        "models ({}): name `{name}` also names {}",
                        m.id, raw.models[j].id
                    ));
                }
                Some(_) => {}
                None => {
                    owner.insert(k, i);
                }
            }
        }
    }
    // Resolution index: gateway ID, aliases, and every upstream ID map to one model.
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, m) in models.iter().enumerate() {
        let m_raw = &raw.models[raw.models.iter().position(|r| r.id == m.id).unwrap_or(i)];
        for name in model_names(m_raw) {
            index.entry(name.to_ascii_lowercase()).or_insert(i);
        }
    }

    if errs.is_empty() {
        Ok(Catalog {
            version: raw.version,
            geographies,
            models,
            index,
            known_regions,
        })
    } else {
        Err(CatalogError::Invalid(errs))
    }
}

/// The names a model is resolved by: its ID, its aliases and its endpoints' upstream IDs.
fn model_names(m: &RawModel) -> impl Iterator<Item = &str> {
    std::iter::once(m.id.as_str())
        .chain(m.aliases.iter().map(String::as_str))
        .chain(m.endpoints.iter().map(|e| e.upstream_id.as_str()))
}

struct Ctx<'a> {
    geographies: &'a [Geography],
    known_regions: &'a BTreeSet<String>,
    profile_prefixes: &'a [String],
}

impl Ctx<'_> {
    /// The profile prefix an ID starts with, if any (`us.anthropic...` → `us`).
    fn prefix_of<'s>(&self, id: &'s str) -> Option<&'s str> {
        let (head, _) = id.split_once('.')?;
        self.profile_prefixes
            .iter()
            .any(|p| p == head)
            .then_some(head)
    }
}

fn check_model(ctx: &Ctx<'_>, at: &str, m: &RawModel, errs: &mut Vec<String>) -> Option<Model> {
    let before = errs.len();
    match m.id.split_once('/') {
        Some((v, n)) if is_slug(v) && !n.is_empty() && !n.contains('/') => {}
        _ => errs.push(format!("{at}: id must be `vendor/model`")),
    }
    let kind = check_kind(at, m, errs);
    let embedding = matches!(kind, Some(ModelKind::Embedding(_)));
    match m.max_output_tokens {
        Some(_) if embedding => errs.push(format!(
            "{at}: an embedding model generates no tokens: omit max_output_tokens"
        )),
        _ if m.context_window == 0 && embedding => {
            errs.push(format!("{at}: context_window must be positive"));
        }
        Some(n) if n == 0 || m.context_window == 0 => errs.push(format!(
            "{at}: context_window and max_output_tokens must be positive"
        )),
        None if !embedding => errs.push(format!("{at}: missing max_output_tokens")),
        _ => {}
    }
    if embedding && !m.capabilities.is_empty() {
        errs.push(format!(
            "{at}: an embedding model has no capabilities (tools, vision, streaming)"
        ));
    }
    for c in &m.capabilities {
        if !["tools", "vision", "streaming"].contains(&c.as_str()) {
            errs.push(format!(
                "{at}: unknown capability `{c}` (tools, vision, streaming)"
            ));
        }
    }
    let rule = match m.bedrock_profile.as_deref() {
        None => None,
        Some("required") => Some(BedrockProfileRule::Required),
        Some("forbidden") => Some(BedrockProfileRule::Forbidden),
        Some("optional") => Some(BedrockProfileRule::Optional),
        Some(o) => {
            errs.push(format!(
                "{at}: bedrock_profile `{o}` must be required, forbidden or optional"
            ));
            None
        }
    };
    if m.endpoints.is_empty() {
        errs.push(format!("{at}: has no endpoints"));
    }
    let mut endpoints = Vec::new();
    for (j, e) in m.endpoints.iter().enumerate() {
        let at = format!("{at}.endpoints[{j}] ({})", e.upstream_id);
        if let Some(ep) = check_endpoint(ctx, &at, m, rule, embedding, e, errs) {
            endpoints.push(Arc::new(ep));
        }
    }
    let kind = kind?;
    (errs.len() == before).then(|| Model {
        id: m.id.clone(),
        name: m.name.clone(),
        owned_by: m.owned_by.clone(),
        kind,
        context_window: m.context_window,
        max_output_tokens: m.max_output_tokens.unwrap_or(0),
        capabilities: m.capabilities.iter().cloned().collect(),
        bedrock_profile: rule,
        endpoints,
    })
}

/// `kind` and, for an embedding model, its `embedding` sizes.
fn check_kind(at: &str, m: &RawModel, errs: &mut Vec<String>) -> Option<ModelKind> {
    match (m.kind.as_deref(), &m.embedding) {
        (None | Some("chat"), None) => Some(ModelKind::Chat),
        (None | Some("chat"), Some(_)) => {
            errs.push(format!(
                "{at}: `embedding` belongs to kind = \"embedding\" models only"
            ));
            None
        }
        (Some("embedding"), None) => {
            errs.push(format!(
                "{at}: an embedding model needs embedding = {{ dimensions = N }}"
            ));
            None
        }
        (Some("embedding"), Some(e)) => {
            let spec = EmbeddingSpec {
                dimensions: e.dimensions,
                dimension_choices: e.dimension_choices.clone(),
            };
            let choices_ok = spec.dimension_choices.as_ref().is_none_or(|c| {
                !c.is_empty() && c.contains(&spec.dimensions) && c.iter().all(|&n| n > 0)
            });
            if spec.dimensions == 0 || !choices_ok {
                errs.push(format!(
                    "{at}: embedding.dimensions must be positive and, when dimension_choices is given, one of them"
                ));
                return None;
            }
            Some(ModelKind::Embedding(spec))
        }
        (Some(o), _) => {
            errs.push(format!("{at}: kind `{o}` must be chat or embedding"));
            None
        }
    }
}

fn check_endpoint(
    ctx: &Ctx<'_>,
    at: &str,
    m: &RawModel,
    rule: Option<BedrockProfileRule>,
    embedding: bool,
    e: &RawEndpoint,
    errs: &mut Vec<String>,
) -> Option<Endpoint> {
    let before = errs.len();
    let provider = ProviderKind::parse(&e.provider);
    if provider.is_none() {
        errs.push(format!(
            "{at}: provider `{}` must be bedrock, anthropic, openai or openai_compatible:<name>",
            e.provider
        ));
    }
    if e.upstream_id.trim().is_empty() || e.upstream_id.trim() != e.upstream_id {
        errs.push(format!(
            "{at}: upstream_id must be non-empty without surrounding spaces"
        ));
    }
    let pricing = match &e.pricing {
        Some(p) => check_pricing(at, p, embedding, errs),
        None => {
            errs.push(format!(
                "{at}: missing pricing (input and output are required)"
            ));
            None
        }
    };
    let (vdate, vmethod) = match &e.verified {
        Some(v) if is_date(&v.date) && !v.method.trim().is_empty() => {
            (v.date.clone(), v.method.clone())
        }
        Some(_) => {
            errs.push(format!(
                "{at}: verified needs a YYYY-MM-DD date and a non-empty method"
            ));
            (String::new(), String::new())
        }
        None => {
            errs.push(format!("{at}: missing `verified` (date and method)"));
            (String::new(), String::new())
        }
    };

    let (bedrock, processing_regions, region_label) = if provider == Some(ProviderKind::Bedrock) {
        match check_bedrock(ctx, at, rule, e, errs) {
            Some(x) => x,
            None => (None, ProcessingRegions::Unknown, String::new()),
        }
    } else {
        for (k, v) in [
            ("invocation", &e.invocation),
            ("geography", &e.geography),
            ("source_region", &e.source_region),
        ] {
            if v.is_some() {
                errs.push(format!("{at}: `{k}` applies only to bedrock endpoints"));
            }
        }
        // A self-hosted OpenAI-compatible server may declare the one region it runs in.
        match (&e.region, &provider) {
            (Some(r), Some(ProviderKind::OpenAiCompatible(_))) => {
                if !ctx.known_regions.contains(r) {
                    errs.push(format!(
                        "{at}: region `{r}` is in no geography of the table"
                    ));
                }
                (
                    None,
                    ProcessingRegions::Known([r.clone()].into_iter().collect()),
                    r.clone(),
                )
            }
            (Some(_), _) => {
                errs.push(format!(
                    "{at}: `region` applies only to bedrock and openai_compatible endpoints"
                ));
                (None, ProcessingRegions::Unknown, "unknown".to_owned())
            }
            (None, _) => (None, ProcessingRegions::Unknown, "unknown".to_owned()),
        }
    };

    let (Some(provider), Some(priced)) = (provider, pricing) else {
        return None;
    };
    (errs.len() == before).then(|| Endpoint {
        key: format!("{provider}:{}", e.upstream_id),
        model_id: m.id.clone(),
        provider,
        upstream_id: e.upstream_id.clone(),
        bedrock,
        processing_regions,
        region_label,
        enabled: e.enabled,
        pricing: priced.pricing,
        price_source: priced.source,
        tier_sources: priced.tier_sources,
        verified_date: vdate,
        verified_method: vmethod,
    })
}

type BedrockParts = (Option<BedrockEndpoint>, ProcessingRegions, String);

fn check_bedrock(
    ctx: &Ctx<'_>,
    at: &str,
    rule: Option<BedrockProfileRule>,
    e: &RawEndpoint,
    errs: &mut Vec<String>,
) -> Option<BedrockParts> {
    let Some(rule) = rule else {
        errs.push(format!(
            "{at}: a model with Bedrock endpoints must declare bedrock_profile (required, forbidden or optional)"
        ));
        return None;
    };
    let prefix = ctx.prefix_of(&e.upstream_id);
    match e.invocation.as_deref() {
        Some("profile") => {
            let Some(geo) = e.geography.as_deref() else {
                errs.push(format!("{at}: a profile endpoint needs `geography`"));
                return None;
            };
            if rule == BedrockProfileRule::Forbidden {
                errs.push(format!(
                    "{at}: the model forbids inference profiles, so its Bedrock ID must be bare (without `{geo}.`)"
                ));
            }
            let members = if geo == GLOBAL {
                None
            } else {
                match ctx.geographies.iter().find(|g| g.id == geo) {
                    Some(g) if g.bedrock_profile => Some(g.regions.clone()),
                    Some(_) => {
                        errs.push(format!(
                            "{at}: geography `{geo}` has no Bedrock inference profiles"
                        ));
                        return None;
                    }
                    None => {
                        errs.push(format!(
                            "{at}: geography `{geo}` is not in the geography table"
                        ));
                        return None;
                    }
                }
            };
            match prefix {
                Some(p) if p == geo => {}
                Some(p) => errs.push(format!(
                    "{at}: ID prefix `{p}.` disagrees with declared geography `{geo}`"
                )),
                None => errs.push(format!(
                    "{at}: a profile endpoint's ID must start with `{geo}.`"
                )),
            }
            if e.region.is_some() {
                errs.push(format!(
                    "{at}: `region` is for on_demand endpoints; use source_region"
                ));
            }
            let Some(src) = e.source_region.clone() else {
                errs.push(format!("{at}: missing source_region"));
                return None;
            };
            let src_ok = match &members {
                Some(m) => m.contains(&src),
                None => ctx.known_regions.contains(&src),
            };
            if !src_ok {
                errs.push(format!(
                    "{at}: source_region `{src}` is not a region of geography `{geo}`"
                ));
            }
            let processing = match members {
                Some(m) => ProcessingRegions::Known(m),
                None => ProcessingRegions::Unknown,
            };
            Some((
                Some(BedrockEndpoint {
                    invocation: BedrockInvocation::Profile {
                        geography: geo.to_owned(),
                    },
                    source_region: src,
                }),
                processing,
                geo.to_owned(),
            ))
        }
        Some("on_demand") => {
            if rule == BedrockProfileRule::Required {
                errs.push(format!(
                    "{at}: the model requires an inference profile; a bare ID fails with \"on-demand throughput isn't supported\""
                ));
            }
            if let Some(p) = prefix {
                errs.push(format!(
                    "{at}: an on_demand endpoint's ID must be bare, not prefixed with `{p}.`"
                ));
            }
            if e.geography.is_some() {
                errs.push(format!("{at}: `geography` is for profile endpoints"));
            }
            let Some(region) = e.region.clone() else {
                errs.push(format!("{at}: an on_demand endpoint needs `region`"));
                return None;
            };
            if !ctx.known_regions.contains(&region) {
                errs.push(format!(
                    "{at}: region `{region}` is in no geography of the table"
                ));
            }
            if let Some(src) = &e.source_region {
                if *src != region {
                    errs.push(format!(
                        "{at}: source_region must equal region for an on_demand endpoint"
                    ));
                }
            }
            Some((
                Some(BedrockEndpoint {
                    invocation: BedrockInvocation::OnDemand,
                    source_region: region.clone(),
                }),
                ProcessingRegions::Known([region.clone()].into_iter().collect()),
                region,
            ))
        }
        other => {
            errs.push(format!(
                "{at}: invocation must be `profile` or `on_demand`, got {other:?}"
            ));
            None
        }
    }
}

fn price(
    at: &str,
    name: &str,
    v: &Option<toml::Value>,
    required: bool,
    errs: &mut Vec<String>,
) -> Option<Price> {
    match v {
        None => {
            if required {
                errs.push(format!("{at}: missing price `{name}`"));
            }
            None
        }
        Some(toml::Value::String(s)) => match Price::parse(s) {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(format!("{at}: price `{name}`: {e}"));
                None
            }
        },
        Some(other) => {
            errs.push(format!(
                "{at}: price `{name}` must be a decimal string such as \"3.00\", not the {} {other:?}", other.type_str()
            ));
            None
        }
    }
}

/// An endpoint's prices with where they were read.
struct CheckedPricing {
    pricing: Pricing,
    source: PriceSource,
    tier_sources: Vec<PriceSource>,
}

fn check_pricing(
    at: &str,
    p: &RawPricing,
    embedding: bool,
    errs: &mut Vec<String>,
) -> Option<CheckedPricing> {
    let before = errs.len();
    let at = format!("{at}.pricing");
    let input = price(&at, "input", &p.input, true, errs);
    // An embedding model bills input only: its output price is absent or zero.
    let output = if embedding {
        match price(&at, "output", &p.output, false, errs) {
            Some(o) if o != Price::default() => {
                errs.push(format!(
                    "{at}: an embedding model is billed for input only: omit `output` or set it to \"0\""
                ));
                None
            }
            _ => Some(Price::default()),
        }
    } else {
        price(&at, "output", &p.output, true, errs)
    };
    let cache_read = price(&at, "cache_read", &p.cache_read, false, errs);
    let cache_write_5m = price(&at, "cache_write_5m", &p.cache_write_5m, false, errs);
    let cache_write_1h = price(&at, "cache_write_1h", &p.cache_write_1h, false, errs);
    let source = match &p.source {
        Some(s) => check_source(&at, s, errs),
        None => {
            errs.push(format!(
                "{at}: missing `source`: every price must say where it was read, e.g. \
                 source = {{ kind = \"provider\", url = \"https://...\", read = \"YYYY-MM-DD\" }} \
                 (kind: {})",
                kinds_list()
            ));
            None
        }
    };
    let mut tiers = Vec::new();
    let mut tier_sources = Vec::new();
    for (k, t) in p.tiers.iter().enumerate() {
        let at = format!("{at}.tiers[{k}]");
        let input = price(&at, "input", &t.input, true, errs);
        let output = price(&at, "output", &t.output, true, errs);
        let tier = PriceTier {
            above_input_tokens: t.above_input_tokens,
            input: input.unwrap_or_default(),
            output: output.unwrap_or_default(),
            cache_read: price(&at, "cache_read", &t.cache_read, false, errs),
            cache_write_5m: price(&at, "cache_write_5m", &t.cache_write_5m, false, errs),
            cache_write_1h: price(&at, "cache_write_1h", &t.cache_write_1h, false, errs),
        };
        tiers.push(tier);
        // A tier without its own source was read with the base prices.
        match &t.source {
            Some(s) => tier_sources.extend(check_source(&at, s, errs)),
            None => tier_sources.extend(source.clone()),
        }
    }
    let (Some(input), Some(output), Some(source)) = (input, output, source) else {
        return None;
    };
    (errs.len() == before).then_some(CheckedPricing {
        pricing: Pricing {
            input,
            output,
            cache_read,
            cache_write_5m,
            cache_write_1h,
            tiers,
        },
        source,
        tier_sources,
    })
}

fn kinds_list() -> String {
    PriceSourceKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A price's `source`: a known kind, an https URL, a valid read date, and for a derived
/// price a note naming the rule (a URL of a rule does not say which price it was applied
/// to).
fn check_source(at: &str, s: &RawPriceSource, errs: &mut Vec<String>) -> Option<PriceSource> {
    let before = errs.len();
    let at = format!("{at}.source");
    let kind = match s.kind.as_deref() {
        None => {
            errs.push(format!("{at}: missing `kind` ({})", kinds_list()));
            None
        }
        Some(k) => {
            let kind = PriceSourceKind::parse(k);
            if kind.is_none() {
                errs.push(format!(
                    "{at}: unknown kind `{k}`: use provider (read on the provider's own \
                     publication), secondary (a public price list citing the provider) or \
                     derived (computed by a rule the provider publishes)"
                ));
            }
            kind
        }
    };
    let url = match s.url.as_deref() {
        None => {
            errs.push(format!(
                "{at}: missing `url` (the page or price list the price was read on)"
            ));
            None
        }
        Some(u) if is_https_url(u) => Some(u.to_owned()),
        Some(u) => {
            errs.push(format!(
                "{at}: url `{u}` must be an https:// URL with a host"
            ));
            None
        }
    };
    let read = match &s.read {
        None => {
            errs.push(format!(
                "{at}: missing `read` (the YYYY-MM-DD date it was read)"
            ));
            None
        }
        Some(toml::Value::String(d)) if is_date(d) => Some(d.clone()),
        Some(toml::Value::String(d)) => {
            errs.push(format!("{at}: read `{d}` is not a valid YYYY-MM-DD date"));
            None
        }
        Some(other) => {
            errs.push(format!(
                "{at}: read must be a quoted YYYY-MM-DD string such as \"2026-11-25\", not a TOML {}",
                other.type_str()
            ));
            None
        }
    };
    let note = match s.note.as_deref() {
        Some(n) if n.trim().is_empty() => {
            errs.push(format!("{at}: note must not be empty (omit it instead)"));
            None
        }
        n => n.map(str::to_owned),
    };
    if kind == Some(PriceSourceKind::Derived) && s.note.is_none() {
        errs.push(format!(
            "{at}: a derived price needs a `note` naming the rule and the price it was derived from"
        ));
    }
    let (Some(kind), Some(url), Some(read)) = (kind, url, read) else {
        return None;
    };
    (errs.len() == before).then_some(PriceSource {
        kind,
        url,
        read,
        note,
    })
}

/// `https://host[:port][/...]`: no other scheme, a non-empty host of URL host
/// characters, no whitespace. Deliberately strict: the URL is for a person to open.
fn is_https_url(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty()
        && host.contains('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':')
        && !s.chars().any(char::is_whitespace)
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-7`.
pub fn is_region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn is_date(s: &str) -> bool {
    time::Date::parse(
        s,
        &time::macros::format_description!("[year]-[month]-[day]"),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    const GEOS: &str = r#"
version = "t"
[[geographies]]
id = "us"
name = "United States"
bedrock_profile = true
regions = ["us-east-1", "us-east-2", "us-west-2"]
[[geographies]]
id = "eu"
name = "Europe"
bedrock_profile = true
regions = ["eu-central-1", "eu-west-1"]
"#;

    fn model(rule: &str, endpoint: &str) -> String {
        format!(
            r#"{GEOS}
[[models]]
id = "v/m"
name = "M"
owned_by = "v"
context_window = 1000
max_output_tokens = 100
bedrock_profile = "{rule}"
[[models.endpoints]]
provider = "bedrock"
verified = {{ date = "2026-05-15", method = "test" }}
{endpoint}
"#
        )
    }

    fn problems(text: &str) -> Vec<String> {
        match Catalog::from_toml(text) {
            Ok(_) => Vec::new(),
            Err(CatalogError::Invalid(v)) => v,
            Err(e) => vec![e.to_string()],
        }
    }

    fn assert_rejects(text: &str, needle: &str) {
        let p = problems(text);
        assert!(
            p.iter().any(|x| x.contains(needle)),
            "expected a problem containing {needle:?}, got {p:?}"
        );
    }

    const SOURCE: &str =
        "source = { kind = \"provider\", url = \"https://example.com/pricing\", read = \"2026-11-25\" }";
    const PRICES: &str = "pricing = { input = \"1\", output = \"2\", source = { kind = \"provider\", url = \"https://example.com/pricing\", read = \"2026-11-25\" } }";
    /// A good profile endpoint without its pricing line.
    const PROFILE: &str = "upstream_id = \"us.v.m-v1:0\"\ninvocation = \"profile\"\ngeography = \"us\"\nsource_region = \"us-east-1\"\n";
    /// Where the check reports a problem with that endpoint's prices.
    const AT: &str = "models[0] (v/m).endpoints[0] (us.v.m-v1:0).pricing";

    /// The profile endpoint priced at 1 / 2 with this `source` line (empty: none).
    fn with_source(source: &str) -> String {
        model(
            "required",
            &format!(
                "{PROFILE}[models.endpoints.pricing]\ninput = \"1\"\noutput = \"2\"\n{source}\n"
            ),
        )
    }

    #[test]
    fn accepts_a_good_profile_and_a_good_bare_entry() {
        let ok = model(
            "required",
            &format!("upstream_id = \"us.v.m-v1:0\"\ninvocation = \"profile\"\ngeography = \"us\"\nsource_region = \"us-east-1\"\n{PRICES}"),
        );
        assert_eq!(problems(&ok), Vec::<String>::new());
        let ok = model(
            "forbidden",
            &format!("upstream_id = \"v.m-v1:0\"\ninvocation = \"on_demand\"\nregion = \"us-east-1\"\n{PRICES}"),
        );
        assert_eq!(problems(&ok), Vec::<String>::new());
    }

    #[test]
    fn rejects_profile_required_model_with_bare_id() {
        let t = model(
            "required",
            &format!("upstream_id = \"v.m-v1:0\"\ninvocation = \"on_demand\"\nregion = \"us-east-1\"\n{PRICES}"),
        );
        assert_rejects(&t, "requires an inference profile");
    }

    #[test]
    fn rejects_profile_forbidden_model_with_prefix() {
        let t = model(
            "forbidden",
            &format!("upstream_id = \"us.v.m-v1:0\"\ninvocation = \"profile\"\ngeography = \"us\"\nsource_region = \"us-east-1\"\n{PRICES}"),
        );
        assert_rejects(&t, "forbids inference profiles");
        // Declared on_demand but written with a prefix: also refused.
        let t = model(
            "forbidden",
            &format!("upstream_id = \"us.v.m-v1:0\"\ninvocation = \"on_demand\"\nregion = \"us-east-1\"\n{PRICES}"),
        );
        assert_rejects(&t, "must be bare");
    }

    #[test]
    fn rejects_prefix_that_disagrees_with_geography() {
        let t = model(
            "required",
            &format!("upstream_id = \"eu.v.m-v1:0\"\ninvocation = \"profile\"\ngeography = \"us\"\nsource_region = \"us-east-1\"\n{PRICES}"),
        );
        assert_rejects(&t, "disagrees with declared geography");
    }

    #[test]
    fn rejects_geography_not_in_table() {
        let t = model(
            "required",
            &format!("upstream_id = \"xx.v.m-v1:0\"\ninvocation = \"profile\"\ngeography = \"xx\"\nsource_region = \"us-east-1\"\n{PRICES}"),
        );
        assert_rejects(&t, "not in the geography table");
    }

    #[test]
    fn rejects_missing_or_non_decimal_prices() {
        let base = "upstream_id = \"us.v.m-v1:0\"\ninvocation = \"profile\"\ngeography = \"us\"\nsource_region = \"us-east-1\"\n";
        assert_rejects(&model("required", base), "missing pricing");
        assert_rejects(
            &model("required", &format!("{base}pricing = {{ input = \"1\" }}")),
            "missing price `output`",
        );
        assert_rejects(
            &model(
                "required",
                &format!("{base}pricing = {{ input = 3.0, output = \"1\" }}"),
            ),
            "must be a decimal string",
        );
        assert_rejects(
            &model(
                "required",
                &format!("{base}pricing = {{ input = \"3e-6\", output = \"1\" }}"),
            ),
            "not a decimal number",
        );
    }

    #[test]
    fn rejects_source_region_outside_geography() {
        let t = model(
            "required",
            &format!("upstream_id = \"eu.v.m-v1:0\"\ninvocation = \"profile\"\ngeography = \"eu\"\nsource_region = \"us-east-1\"\n{PRICES}"),
        );
        assert_rejects(&t, "is not a region of geography `eu`");
    }

    #[test]
    fn a_price_without_a_source_fails_naming_the_model_and_endpoint() {
        let p = problems(&with_source(""));
        assert!(
            p.iter()
                .any(|x| x.starts_with(AT) && x.contains("missing `source`")),
            "{p:?}"
        );
    }

    #[test]
    fn a_source_needs_a_valid_read_date() {
        for (read, needle) in [
            (
                "\"2026-02-30\"",
                "read `2026-02-30` is not a valid YYYY-MM-DD date",
            ),
            (
                "\"25/11/2026\"",
                "read `25/11/2026` is not a valid YYYY-MM-DD date",
            ),
            ("\"\"", "read `` is not a valid YYYY-MM-DD date"),
            // An unquoted TOML date is a datetime value, not the string the schema asks for.
            ("2026-11-25", "read must be a quoted YYYY-MM-DD string"),
        ] {
            let t = with_source(&format!(
                "source = {{ kind = \"provider\", url = \"https://example.com/p\", read = {read} }}"
            ));
            assert_rejects(&t, &format!("{AT}.source: {needle}"));
        }
        let t = with_source("source = { kind = \"provider\", url = \"https://example.com/p\" }");
        assert_rejects(&t, &format!("{AT}.source: missing `read`"));
    }

    #[test]
    fn a_source_needs_an_https_url() {
        for url in [
            "http://example.com/pricing",
            "example.com/pricing",
            "https://",
            "https:///pricing",
            "https://localhost/pricing",
            "https://example.com/a b",
            "ftp://example.com/pricing",
        ] {
            let t = with_source(&format!(
                "source = {{ kind = \"provider\", url = \"{url}\", read = \"2026-11-25\" }}"
            ));
            assert_rejects(
                &t,
                &format!("{AT}.source: url `{url}` must be an https:// URL"),
            );
        }
        let t = with_source("source = { kind = \"provider\", read = \"2026-11-25\" }");
        assert_rejects(&t, &format!("{AT}.source: missing `url`"));
    }

    #[test]
    fn a_source_needs_a_known_kind() {
        for kind in ["official", "Provider", "", "confirmed"] {
            let t = with_source(&format!(
                "source = {{ kind = \"{kind}\", url = \"https://example.com/p\", read = \"2026-11-25\" }}"
            ));
            assert_rejects(&t, &format!("{AT}.source: unknown kind `{kind}`"));
        }
        let t = with_source("source = { url = \"https://example.com/p\", read = \"2026-11-25\" }");
        assert_rejects(&t, &format!("{AT}.source: missing `kind`"));
    }

    #[test]
    fn a_derived_price_names_its_rule_in_a_note() {
        let t = with_source(
            "source = { kind = \"derived\", url = \"https://example.com/rule\", read = \"2026-11-25\" }",
        );
        assert_rejects(&t, &format!("{AT}.source: a derived price needs a `note`"));
        let t = with_source(
            "source = { kind = \"derived\", url = \"https://example.com/rule\", read = \"2026-11-25\", note = \"global price +10%\" }",
        );
        assert_eq!(problems(&t), Vec::<String>::new());
        let t = with_source(
            "source = { kind = \"secondary\", url = \"https://example.com/list\", read = \"2026-11-25\", note = \" \" }",
        );
        assert_rejects(&t, &format!("{AT}.source: note must not be empty"));
    }

    #[test]
    fn every_kind_with_an_https_url_and_a_date_is_accepted_and_kept() {
        for kind in PriceSourceKind::ALL {
            let note = if kind == PriceSourceKind::Derived {
                ", note = \"rule\""
            } else {
                ""
            };
            let t = with_source(&format!(
                "source = {{ kind = \"{kind}\", url = \"https://example.com:8443/p?q=1#x\", read = \"2024-02-29\"{note} }}"
            ));
            let c = Catalog::from_toml(&t).expect("valid");
            let e = &c.models[0].endpoints[0];
            assert_eq!(e.price_source.kind, kind);
            assert_eq!(e.price_source.url, "https://example.com:8443/p?q=1#x");
            assert_eq!(e.price_source.read, "2024-02-29");
        }
    }

    #[test]
    fn a_tier_shares_the_endpoint_source_unless_it_has_its_own() {
        let tier = |source: &str| {
            model(
                "required",
                &format!(
                    "{PROFILE}[models.endpoints.pricing]\ninput = \"1\"\noutput = \"2\"\n{SOURCE}\n\
                     [[models.endpoints.pricing.tiers]]\nabove_input_tokens = 10\ninput = \"2\"\noutput = \"4\"\n{source}\n"
                ),
            )
        };
        let c = Catalog::from_toml(&tier("")).expect("valid");
        let e = &c.models[0].endpoints[0];
        assert_eq!(e.tier_sources, vec![e.price_source.clone()]);

        let own = "source = { kind = \"secondary\", url = \"https://example.com/list\", read = \"2026-11-30\" }";
        let c = Catalog::from_toml(&tier(own)).expect("valid");
        let e = &c.models[0].endpoints[0];
        assert_eq!(e.tier_sources.len(), 1);
        assert_eq!(e.tier_sources[0].kind, PriceSourceKind::Secondary);
        assert_eq!(e.tier_sources[0].read, "2026-11-30");

        let bad =
            "source = { kind = \"provider\", url = \"http://example.com\", read = \"2026-11-30\" }";
        assert_rejects(
            &tier(bad),
            &format!("{AT}.tiers[0].source: url `http://example.com` must be an https:// URL"),
        );
    }

    #[test]
    fn the_shipped_catalog_passes_with_a_source_for_every_price() {
        let c = Catalog::builtin().expect("the shipped catalog passes the check");
        for m in &c.models {
            for e in &m.endpoints {
                let s = &e.price_source;
                assert!(s.url.starts_with("https://"), "{}: {s:?}", e.key);
                assert!(is_date(&s.read), "{}: {s:?}", e.key);
                assert_eq!(e.tier_sources.len(), e.pricing.tiers.len(), "{}", e.key);
            }
        }
        // The seed price corrected on 2026-11-30: AWS's us-east-1 price, not the launch price.
        let mistral = c
            .model("mistral/mistral-large-2402")
            .and_then(|m| m.endpoints.first())
            .expect("mistral");
        assert_eq!(mistral.pricing.input.nanos_per_mtok(), 4_000_000_000);
        assert_eq!(mistral.pricing.output.nanos_per_mtok(), 12_000_000_000);
        assert_eq!(mistral.price_source.kind, PriceSourceKind::Secondary);
    }

    /// A collision of names is reported with the other problems of the models it
    /// involves, not once they are fixed.
    #[test]
    fn an_alias_collision_is_reported_with_the_models_other_problems() {
        let ok = format!("{PROFILE}{PRICES}");
        let text = format!(
            "{}\n[[models]]\nid = \"w/n\"\nname = \"N\"\nowned_by = \"w\"\naliases = [\"v/m\"]\ncontext_window = 0\nmax_output_tokens = 100\n[[models.endpoints]]\nprovider = \"anthropic\"\nupstream_id = \"n-1\"\nverified = {{ date = \"2026-05-15\", method = \"test\" }}\n{PRICES}\n",
            model("required", &ok)
        );
        assert_eq!(
            problems(&text),
            vec![
                "models[1] (w/n): context_window and max_output_tokens must be positive".to_owned(),
                "models (w/n): name `v/m` also names v/m".to_owned(),
            ]
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let t = model(
            "required",
            "upstream_id = \"v.m\"\ninvocation = \"on_demand\"\nregion = \"mars-1\"\n",
        );
        assert!(problems(&t).len() >= 3, "{:?}", problems(&t));
    }
}
