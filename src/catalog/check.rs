//! The catalog check: every rule of a well-formed catalog, reported all at once.
//!
//! Rejected: a profile-required model with a bare Bedrock ID, a profile-forbidden model
//! with a prefixed one, an ID whose prefix disagrees with its declared geography, a
//! geography not in the table, a missing or non-decimal price; also duplicate IDs,
//! unknown providers and regions, and Bedrock fields on non-Bedrock endpoints.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::raw::{RawCatalog, RawEndpoint, RawModel, RawPricing};
use super::{
    BedrockEndpoint, BedrockInvocation, BedrockProfileRule, Catalog, Endpoint, Geography, Model,
    PriceTier, Pricing, ProcessingRegions, ProviderKind,
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

    // Resolution index: gateway ID, aliases, and every upstream ID map to one model.
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, m) in models.iter().enumerate() {
        let m_raw = &raw.models[raw.models.iter().position(|r| r.id == m.id).unwrap_or(i)];
        let names = std::iter::once(m.id.clone())
            .chain(m_raw.aliases.iter().cloned())
            .chain(m.endpoints.iter().map(|e| e.upstream_id.clone()));
        for name in names {
            let k = name.to_ascii_lowercase();
            match index.get(&k) {
                Some(&j) if j != i => errs.push(format!(
                    "models ({}): name `{name}` also names {}",
                    m.id, models[j].id
                )),
                _ => {
                    index.insert(k, i);
                }
            }
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
    if m.context_window == 0 || m.max_output_tokens == 0 {
        errs.push(format!(
            "{at}: context_window and max_output_tokens must be positive"
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
        if let Some(ep) = check_endpoint(ctx, &at, m, rule, e, errs) {
            endpoints.push(Arc::new(ep));
        }
    }
    (errs.len() == before).then(|| Model {
        id: m.id.clone(),
        name: m.name.clone(),
        owned_by: m.owned_by.clone(),
        context_window: m.context_window,
        max_output_tokens: m.max_output_tokens,
        capabilities: m.capabilities.iter().cloned().collect(),
        bedrock_profile: rule,
        endpoints,
    })
}

fn check_endpoint(
    ctx: &Ctx<'_>,
    at: &str,
    m: &RawModel,
    rule: Option<BedrockProfileRule>,
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
        Some(p) => check_pricing(at, p, errs),
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

    let (Some(provider), Some(pricing)) = (provider, pricing) else {
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
        pricing,
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

fn check_pricing(at: &str, p: &RawPricing, errs: &mut Vec<String>) -> Option<Pricing> {
    let before = errs.len();
    let at = format!("{at}.pricing");
    let input = price(&at, "input", &p.input, true, errs);
    let output = price(&at, "output", &p.output, true, errs);
    let cache_read = price(&at, "cache_read", &p.cache_read, false, errs);
    let cache_write_5m = price(&at, "cache_write_5m", &p.cache_write_5m, false, errs);
    let cache_write_1h = price(&at, "cache_write_1h", &p.cache_write_1h, false, errs);
    let mut tiers = Vec::new();
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
    }
    let (Some(input), Some(output)) = (input, output) else {
        return None;
    };
    (errs.len() == before).then_some(Pricing {
        input,
        output,
        cache_read,
        cache_write_5m,
        cache_write_1h,
        tiers,
    })
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

    const PRICES: &str = "pricing = { input = \"1\", output = \"2\" }";

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
    fn reports_every_problem_at_once() {
        let t = model(
            "required",
            "upstream_id = \"v.m\"\ninvocation = \"on_demand\"\nregion = \"mars-1\"\n",
        );
        assert!(problems(&t).len() >= 3, "{:?}", problems(&t));
    }
}
