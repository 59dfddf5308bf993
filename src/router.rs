//! Endpoint selection: which endpoints may serve a request, in which order, and the
//! per-endpoint circuit breakers. Pure logic over the catalog: no wire formats, no IO.
//!
//! Eligible endpoints are those of the resolved model (restricted to the pinned provider,
//! the request's `provider.only`/`ignore`), whose processing regions satisfy the region
//! constraint, that are enabled in this deployment and whose provider is configured.
//! They are ordered by `provider.order`, then by `provider.sort`: list price (input +
//! output), or what this process has observed of each endpoint (time to first token, or
//! output tokens per second: see `router/observe.rs`), with endpoints whose circuit is open
//! moved last.

mod observe;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use observe::{Observation, EWMA_DIVISOR, OBSERVATION_TTL_MS};

use crate::catalog::region::geographies_admitting;
use crate::catalog::{
    BedrockInvocation, Catalog, Endpoint, ProcessingRegions, ProviderKind, RegionConstraint,
    Residency, Resolution,
};
use crate::chat::request::{ProviderPrefs, SortBy};

/// Consecutive failures that open an endpoint's circuit.
const TRIP_AFTER: u32 = 3;
/// How long an open circuit keeps an endpoint at the back of the queue.
const COOLDOWN_MS: i64 = 30_000;

/// Why no endpoint can serve a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RouteError {
    /// A valid region constraint that no enabled endpoint satisfies (400).
    #[error("{0}")]
    NoEndpointInRegion(String),
    /// Endpoints exist but their providers are not configured in this deployment (503).
    #[error("{0}")]
    ProviderUnavailable(String),
    /// The request's `provider` preferences exclude every endpoint (400).
    #[error("{0}")]
    ExcludedByPreferences(String),
}

#[derive(Default)]
struct Health {
    failures: AtomicU32,
    open_until_ms: AtomicI64,
    /// What was observed of the endpoint's answers.
    observed: observe::Observed,
}

pub struct Router {
    catalog: Arc<Catalog>,
    configured: Vec<ProviderKind>,
    /// Bedrock source regions where this deployment has model access (None: Bedrock is
    /// not configured, and its endpoints are refused as such).
    bedrock_regions: Option<Vec<String>>,
    /// Bedrock is off by `[bedrock] enabled = false` in the configuration file, rather
    /// than for want of credentials.
    bedrock_disabled_in_file: bool,
    /// Circuit state per endpoint key. Built once per catalog (a reload carries each
    /// surviving endpoint's over); atomics, so no lock on the hot path.
    health: HashMap<String, Arc<Health>>,
}

impl Router {
    pub fn new(
        catalog: Arc<Catalog>,
        configured: Vec<ProviderKind>,
        bedrock_regions: Option<Vec<String>>,
    ) -> Self {
        let health = catalog
            .models
            .iter()
            .flat_map(|m| m.endpoints.iter())
            .map(|e| (e.key.clone(), Arc::default()))
            .collect();
        Self {
            catalog,
            configured,
            bedrock_regions,
            bedrock_disabled_in_file: false,
            health,
        }
    }

    /// This router for a deployment whose configuration file turns Bedrock off
    /// (`[bedrock] enabled = false`): requests only Bedrock could serve are told that,
    /// not to set AWS credentials.
    pub fn bedrock_disabled_in_file(mut self, disabled: bool) -> Self {
        self.bedrock_disabled_in_file = disabled;
        self
    }

    /// A router for a reloaded catalog: the endpoints `previous` also had keep their
    /// circuit state and observations (shared, so what requests still routed by
    /// `previous` record counts here too); new endpoints start afresh.
    pub fn reloaded(
        previous: &Router,
        catalog: Arc<Catalog>,
        configured: Vec<ProviderKind>,
        bedrock_regions: Option<Vec<String>>,
    ) -> Self {
        let mut r = Self::new(catalog, configured, bedrock_regions);
        for (key, h) in &mut r.health {
            if let Some(old) = previous.health.get(key) {
                *h = old.clone();
            }
        }
        r
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn is_configured(&self, p: &ProviderKind) -> bool {
        self.configured.contains(p)
    }

    /// Why this deployment does not route to an endpoint (provider configuration aside),
    /// or None if it does: the catalog's switch is off, or its Bedrock source region is
    /// not one where this deployment has model access.
    pub fn disabled_reason(&self, e: &Endpoint) -> Option<String> {
        if self.is_deployed(e) {
            return None;
        }
        if !e.enabled {
            return Some(format!(
                "{} ({}) is disabled in the catalog",
                e.upstream_id, e.region_label
            ));
        }
        match (&e.bedrock, &self.bedrock_regions) {
            (Some(b), Some(regions)) if !regions.contains(&b.source_region) => Some(format!(
                "{} ({}) exists but Bedrock access in {} is not enabled in this deployment (add {} to GAMMAINFRA_BEDROCK_REGIONS)",
                e.upstream_id, e.region_label, b.source_region, b.source_region
            )),
            _ => None,
        }
    }

    /// Whether this deployment routes to an endpoint, provider configuration aside (the
    /// allocation-free check behind [`Router::disabled_reason`], for the request path).
    pub fn is_deployed(&self, e: &Endpoint) -> bool {
        e.enabled
            && match (&e.bedrock, &self.bedrock_regions) {
                (Some(b), Some(regions)) => regions.contains(&b.source_region),
                _ => true,
            }
    }

    /// Whether requests can be routed to the endpoint at all in this deployment.
    pub fn routable(&self, e: &Endpoint) -> bool {
        self.is_deployed(e) && self.is_configured(&e.provider)
    }

    /// The endpoints to try, best first.
    pub fn plan(
        &self,
        res: &Resolution,
        constraint: Option<&RegionConstraint>,
        prefs: Option<&ProviderPrefs>,
    ) -> Result<Vec<Arc<Endpoint>>, RouteError> {
        self.plan_within(res, constraint, None, prefs)
    }

    /// [`Router::plan`] for a request held to a residency policy. `constraint` is
    /// already the intersection with the policy; the policy is needed only to explain a
    /// refusal without suggesting a constraint the policy would refuse.
    pub fn plan_within(
        &self,
        res: &Resolution,
        constraint: Option<&RegionConstraint>,
        residency: Option<&Residency>,
        prefs: Option<&ProviderPrefs>,
    ) -> Result<Vec<Arc<Endpoint>>, RouteError> {
        let model = &res.model;
        let matches_pref = |e: &Endpoint, list: &[String]| {
            let p = e.provider.to_string();
            list.iter().any(|x| {
                x.eq_ignore_ascii_case(&p)
                    || (x == "openai_compatible" && p.starts_with("openai_compatible:"))
            })
        };
        // A provider's own model ID pins the request to that provider, except that a pin to
        // a provider that says nowhere where it processes (Anthropic's or OpenAI's API: every
        // endpoint of it has unknown regions) yields to a region constraint. Such a pin could
        // never be honoured under one, so a client that sends the name Anthropic's SDKs and
        // Claude Code send (`claude-opus-4-8`) with a constraint (the header or a residency
        // policy) is served by the model's endpoints in that region, as the gateway ID would
        // be; without a constraint the pin holds.
        let pinned = res.pinned_provider.as_ref().filter(|p| {
            constraint.is_none()
                || model.endpoints.iter().any(|e| {
                    e.provider == **p && matches!(e.processing_regions, ProcessingRegions::Known(_))
                })
        });
        let mut cands: Vec<&Arc<Endpoint>> = model
            .endpoints
            .iter()
            .filter(|e| pinned.is_none_or(|p| *p == e.provider))
            .collect();
        if let Some(p) = prefs {
            cands.retain(|e| {
                (p.only.is_empty() || matches_pref(e, &p.only)) && !matches_pref(e, &p.ignore)
            });
            if cands.is_empty() {
                return Err(RouteError::ExcludedByPreferences(format!(
                    "The request's `provider` preferences exclude every endpoint of {}.",
                    model.id
                )));
            }
        }
        let in_region: Vec<&Arc<Endpoint>> = cands
            .iter()
            .copied()
            .filter(|e| constraint.is_none_or(|c| c.admits(e)))
            .collect();
        let enabled: Vec<&Arc<Endpoint>> = in_region
            .iter()
            .copied()
            .filter(|e| self.is_deployed(e))
            .collect();
        if let Some(c) = constraint {
            if enabled.is_empty() {
                return Err(RouteError::NoEndpointInRegion(self.explain_region(
                    model.id.as_str(),
                    &cands,
                    &in_region,
                    c,
                    residency,
                )));
            }
        }
        if enabled.is_empty() {
            return Err(RouteError::ProviderUnavailable(format!(
                "No endpoint of {} is enabled in this deployment.",
                model.id
            )));
        }
        let mut usable: Vec<Arc<Endpoint>> = enabled
            .iter()
            .filter(|e| self.is_configured(&e.provider))
            .map(|e| (*e).clone())
            .collect();
        if usable.is_empty() {
            let missing: Vec<String> = enabled
                .iter()
                .map(|e| self.provider_hint(&e.provider))
                .collect();
            return Err(RouteError::ProviderUnavailable(format!(
                "{} is listed in the catalog, but none of its eligible endpoints can be called by this deployment: {}.",
                model.id,
                dedup(missing).join("; ")
            )));
        }
        let order: &[String] = prefs.map_or(&[], |p| p.order.as_slice());
        let sort = prefs.map_or(SortBy::Price, ProviderPrefs::sort_by);
        let now = crate::clock::unix_millis();
        usable.sort_by_key(|e| {
            let health = self.health.get(&e.key);
            let open = health.is_some_and(|h| h.open_until_ms.load(Ordering::Relaxed) > now);
            let pos = order
                .iter()
                .position(|o| o.eq_ignore_ascii_case(&e.provider.to_string()))
                .unwrap_or(usize::MAX);
            // (observed, figure): unobserved endpoints first, then the best figure.
            let observed = match sort {
                SortBy::Price => None,
                SortBy::Latency => health.and_then(|h| h.observed.ttft_us(now)),
                SortBy::Throughput => health
                    .and_then(|h| h.observed.tokens_per_s_milli(now))
                    .map(|t| u64::MAX - t),
            };
            let price = e.pricing.input.nanos_per_mtok() + e.pricing.output.nanos_per_mtok();
            (open, pos, observed.is_some(), observed.unwrap_or(0), price)
        });
        if prefs.and_then(|p| p.allow_fallbacks) == Some(false) {
            usable.truncate(1);
        }
        Ok(usable)
    }

    fn explain_region(
        &self,
        model: &str,
        cands: &[&Arc<Endpoint>],
        in_region: &[&Arc<Endpoint>],
        c: &RegionConstraint,
        residency: Option<&Residency>,
    ) -> String {
        let mut msg = format!(
            "No enabled endpoint of {model} processes requests only within `{}`.",
            c.as_str()
        );
        let disabled: Vec<String> = in_region
            .iter()
            .filter_map(|e| self.disabled_reason(e))
            .collect();
        if !disabled.is_empty() {
            msg.push(' ');
            msg.push_str(&disabled.join("; "));
            msg.push('.');
        }
        let listed: Vec<String> = cands
            .iter()
            .map(|e| {
                let regions = match &e.processing_regions {
                    ProcessingRegions::Known(r) => r.iter().cloned().collect::<Vec<_>>().join(", "),
                    ProcessingRegions::Unknown => "any region (no residency guarantee)".to_owned(),
                };
                let state = if self.is_deployed(e) {
                    ""
                } else {
                    ", not enabled"
                };
                format!(
                    "{} via {} [{}: {regions}{state}]",
                    e.upstream_id, e.provider, e.region_label
                )
            })
            .collect();
        msg.push_str(&format!(" Its endpoints: {}.", listed.join("; ")));
        let profile_only = cands.iter().all(|e| {
            !matches!(
                e.bedrock.as_ref().map(|b| &b.invocation),
                Some(BedrockInvocation::OnDemand)
            )
        });
        // The smallest geography that would admit each enabled endpoint, among those
        // the residency policy allows: suggesting one it refuses would not work.
        let within_policy = |g: &&str| {
            residency.is_none_or(|r| {
                self.catalog
                    .geography(g)
                    .is_some_and(|g| r.allowed().allows_all(&g.regions))
            })
        };
        let working: Vec<&str> = cands
            .iter()
            .filter(|e| self.is_deployed(e))
            .filter_map(|e| {
                geographies_admitting(&self.catalog, e)
                    .into_iter()
                    .find(within_policy)
            })
            .collect();
        let working = dedup(working.into_iter().map(str::to_owned).collect());
        if profile_only && cands.iter().any(|e| e.bedrock.is_some()) && !working.is_empty() {
            msg.push_str(&format!(
                " This model is offered only through cross-region inference profiles, which may process in any region of their geography; `X-GammaInfra-Region: {}` would work.",
                working.join(",")
            ));
        } else if !working.is_empty() {
            msg.push_str(&format!(
                " `X-GammaInfra-Region: {}` would work.",
                working.join(",")
            ));
        }
        if let Some(r) = residency {
            msg.push_str(&format!(
                " Requests with this API key may be processed only within `{}` ({}).",
                r.allowed().as_str(),
                r.describe()
            ));
        }
        msg
    }

    /// Every endpoint requests can be routed to, with whether its circuit is open now.
    pub fn circuits(&self) -> impl Iterator<Item = (&Arc<Endpoint>, bool)> + '_ {
        let now = crate::clock::unix_millis();
        self.catalog
            .models
            .iter()
            .flat_map(|m| m.endpoints.iter())
            .filter(|e| self.routable(e))
            .map(move |e| {
                let open = self
                    .health
                    .get(&e.key)
                    .is_some_and(|h| h.open_until_ms.load(Ordering::Relaxed) > now);
                (e, open)
            })
    }

    /// What this process has observed of the endpoint `key` (None: no such endpoint).
    pub fn observed(&self, key: &str) -> Option<Observation> {
        let h = self.health.get(key)?;
        Some(h.observed.snapshot(crate::clock::unix_millis()))
    }

    /// Records a streamed answer's time to first token: from the adapter's call to the
    /// first chunk that carries output. An embeddings answer, which comes whole, records
    /// its call's time.
    pub fn record_ttft(&self, key: &str, ttft: Duration) {
        self.record_ttft_at(key, ttft, crate::clock::unix_millis());
    }

    fn record_ttft_at(&self, key: &str, ttft: Duration, now: i64) {
        if let Some(h) = self.health.get(key) {
            h.observed.record_ttft(ttft, now);
        }
    }

    /// Records `output_tokens` produced in `time`: a stream's, from its first output to
    /// its end; a non-streamed answer's, over the whole call. An answer with no output
    /// says nothing of throughput and is not recorded.
    pub fn record_throughput(&self, key: &str, output_tokens: u64, time: Duration) {
        if let Some(h) = self.health.get(key) {
            h.observed
                .record_throughput(output_tokens, time, crate::clock::unix_millis());
        }
    }

    pub fn record_success(&self, key: &str) {
        if let Some(h) = self.health.get(key) {
            h.failures.store(0, Ordering::Relaxed);
        }
    }

    /// Opens an endpoint's circuit at once (a catalog fault: retrying it cannot help).
    pub fn trip(&self, key: &str) {
        if let Some(h) = self.health.get(key) {
            h.open_until_ms
                .store(crate::clock::unix_millis() + COOLDOWN_MS, Ordering::Relaxed);
            h.failures.store(0, Ordering::Relaxed);
        }
    }

    pub fn record_failure(&self, key: &str) {
        if let Some(h) = self.health.get(key) {
            let n = h.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= TRIP_AFTER {
                h.open_until_ms
                    .store(crate::clock::unix_millis() + COOLDOWN_MS, Ordering::Relaxed);
                h.failures.store(0, Ordering::Relaxed);
                tracing::warn!(
                    endpoint = key,
                    "circuit opened after {n} consecutive failures"
                );
            }
        }
    }
}

impl Router {
    /// Why a provider of the catalog is not called by this deployment, and what to set.
    fn provider_hint(&self, p: &ProviderKind) -> String {
        match p {
            ProviderKind::Bedrock if self.bedrock_disabled_in_file => BEDROCK_DISABLED.to_owned(),
            p => provider_hint(p),
        }
    }
}

/// Bedrock turned off in the configuration file, credentials or not.
const BEDROCK_DISABLED: &str = "Bedrock is disabled in this deployment by `[bedrock] enabled = false` in the configuration file (to enable it, set `enabled = true` there, or remove the line with AWS credentials in the environment, and restart the gateway)";

fn provider_hint(p: &ProviderKind) -> String {
    match p {
        ProviderKind::Bedrock => {
            "Bedrock is not configured in this deployment (set AWS credentials, e.g. AWS_PROFILE or AWS_ACCESS_KEY_ID, or a Bedrock API key in AWS_BEARER_TOKEN_BEDROCK)"
                .to_owned()
        }
        ProviderKind::Anthropic => "Anthropic is not configured (set ANTHROPIC_API_KEY)".to_owned(),
        ProviderKind::OpenAi => "OpenAI is not configured (set OPENAI_API_KEY)".to_owned(),
        ProviderKind::OpenAiCompatible(n) => {
            format!("the OpenAI-compatible provider `{n}` is not configured")
        }
    }
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(providers: &[ProviderKind]) -> Router {
        let bedrock = providers
            .contains(&ProviderKind::Bedrock)
            .then(|| vec!["us-east-1".to_owned()]);
        Router::new(
            Arc::new(Catalog::builtin().expect("catalog")),
            providers.to_vec(),
            bedrock,
        )
    }

    #[test]
    fn exact_region_on_profile_only_model_names_the_geography() {
        let r = router(&[ProviderKind::Bedrock, ProviderKind::Anthropic]);
        let res = r
            .catalog()
            .resolve("anthropic/claude-sonnet-4-6")
            .expect("model");
        let c = RegionConstraint::parse("us-east-1", r.catalog()).expect("constraint");
        let Err(RouteError::NoEndpointInRegion(m)) = r.plan(&res, Some(&c), None) else {
            panic!("expected no_endpoint_in_region");
        };
        assert!(m.contains("X-GammaInfra-Region: us"), "{m}");
        assert!(m.contains("cross-region inference profiles"), "{m}");
    }

    #[test]
    fn eu_constraint_names_the_disabled_eu_profile() {
        let r = router(&[ProviderKind::Bedrock, ProviderKind::Anthropic]);
        let res = r
            .catalog()
            .resolve("anthropic/claude-sonnet-4-6")
            .expect("model");
        let c = RegionConstraint::parse("eu", r.catalog()).expect("constraint");
        let Err(RouteError::NoEndpointInRegion(m)) = r.plan(&res, Some(&c), None) else {
            panic!("expected no_endpoint_in_region");
        };
        assert!(m.contains("eu.anthropic.claude-sonnet-4-6"), "{m}");
        assert!(m.contains("not enabled"), "{m}");
    }

    #[test]
    fn bare_model_under_exact_region_is_eligible() {
        let r = router(&[ProviderKind::Bedrock]);
        let res = r
            .catalog()
            .resolve("meta/llama3-70b-instruct")
            .expect("model");
        let c = RegionConstraint::parse("us-east-1", r.catalog()).expect("constraint");
        let plan = r.plan(&res, Some(&c), None).expect("plan");
        assert_eq!(plan[0].upstream_id, "meta.llama3-70b-instruct-v1:0");
    }

    #[test]
    fn unconfigured_bedrock_is_refused_clearly() {
        let r = router(&[ProviderKind::Anthropic]);
        let res = r
            .catalog()
            .resolve("meta/llama3-70b-instruct")
            .expect("model");
        let Err(RouteError::ProviderUnavailable(m)) = r.plan(&res, None, None) else {
            panic!("expected provider unavailable");
        };
        assert!(m.contains("Bedrock is not configured"), "{m}");
    }

    #[test]
    fn bedrock_disabled_in_the_file_is_named_as_such() {
        let r = router(&[ProviderKind::Anthropic]).bedrock_disabled_in_file(true);
        let res = r
            .catalog()
            .resolve("meta/llama3-70b-instruct")
            .expect("model");
        let Err(RouteError::ProviderUnavailable(m)) = r.plan(&res, None, None) else {
            panic!("expected provider unavailable");
        };
        assert_eq!(
            m,
            "meta/llama3-70b-instruct is listed in the catalog, but none of its eligible endpoints can be called by this deployment: Bedrock is disabled in this deployment by `[bedrock] enabled = false` in the configuration file (to enable it, set `enabled = true` there, or remove the line with AWS credentials in the environment, and restart the gateway)."
        );
    }

    #[test]
    fn unconstrained_request_prefers_the_cheapest_and_trips_circuits() {
        let r = router(&[ProviderKind::Bedrock, ProviderKind::Anthropic]);
        let res = r
            .catalog()
            .resolve("anthropic/claude-sonnet-4-6")
            .expect("model");
        let plan = r.plan(&res, None, None).expect("plan");
        let prices: Vec<i64> = plan
            .iter()
            .map(|e| e.pricing.input.nanos_per_mtok() + e.pricing.output.nanos_per_mtok())
            .collect();
        let mut sorted = prices.clone();
        sorted.sort();
        assert_eq!(prices, sorted);
        let first = plan[0].key.clone();
        for _ in 0..TRIP_AFTER {
            r.record_failure(&first);
        }
        let plan = r.plan(&res, None, None).expect("plan");
        assert_ne!(
            plan[0].key, first,
            "an open circuit moves the endpoint last"
        );
        assert_eq!(plan.last().map(|e| e.key.clone()), Some(first));
    }

    #[test]
    fn provider_preferences_pin_and_order() {
        let r = router(&[ProviderKind::Bedrock, ProviderKind::Anthropic]);
        let res = r
            .catalog()
            .resolve("anthropic/claude-sonnet-4-6")
            .expect("model");
        let prefs = ProviderPrefs {
            order: vec!["anthropic".into()],
            allow_fallbacks: Some(false),
            ..ProviderPrefs::default()
        };
        let plan = r.plan(&res, None, Some(&prefs)).expect("plan");
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].provider, ProviderKind::Anthropic);
    }

    /// Regression test for Claude Code's default model under a region constraint: the
    /// Anthropic API name pins to Anthropic without a constraint, and yields to one (the
    /// Anthropic endpoint can never satisfy it), so `claude-opus-4-8` with `jp` is planned
    /// on the `jp.` profile, not refused.
    #[test]
    fn an_anthropic_api_name_pins_without_a_constraint_and_yields_to_one() {
        let r = Router::new(
            Arc::new(Catalog::builtin().expect("catalog")),
            vec![ProviderKind::Bedrock, ProviderKind::Anthropic],
            Some(vec!["us-east-1".to_owned(), "ap-northeast-1".to_owned()]),
        );
        let res = r.catalog().resolve("claude-opus-4-8").expect("model");
        assert_eq!(res.pinned_provider, Some(ProviderKind::Anthropic));
        let plan = r.plan(&res, None, None).expect("plan");
        assert!(plan.iter().all(|e| e.provider == ProviderKind::Anthropic));
        let jp = RegionConstraint::parse("jp", r.catalog()).expect("constraint");
        let plan = r.plan(&res, Some(&jp), None).expect("plan");
        assert_eq!(keys(&plan), ["bedrock:jp.anthropic.claude-opus-4-8"]);
        // A Bedrock pin does not yield: its endpoints say where they process.
        let res = r
            .catalog()
            .resolve("us.anthropic.claude-opus-4-8")
            .expect("model");
        let plan = r.plan(&res, Some(&jp), None).expect("plan");
        assert!(plan.iter().all(|e| e.provider == ProviderKind::Bedrock));
    }

    /// Claude Sonnet 4.6 with Bedrock and Anthropic configured: several endpoints.
    fn sonnet(r: &Router) -> Resolution {
        r.catalog()
            .resolve("anthropic/claude-sonnet-4-6")
            .expect("model")
    }

    fn sorted(sort: &str) -> ProviderPrefs {
        ProviderPrefs {
            sort: Some(sort.into()),
            ..ProviderPrefs::default()
        }
    }

    fn keys(plan: &[Arc<Endpoint>]) -> Vec<String> {
        plan.iter().map(|e| e.key.clone()).collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn latency_sort_tries_unobserved_endpoints_first_then_the_lowest_ttft() {
        let r = router(&[ProviderKind::Bedrock, ProviderKind::Anthropic]);
        let res = sonnet(&r);
        let by_price = keys(&r.plan(&res, None, None).expect("plan"));
        assert!(by_price.len() >= 3, "{by_price:?}");
        let latency = sorted("latency");
        // Nothing observed: price order, so every endpoint gets measured in turn.
        assert_eq!(
            keys(&r.plan(&res, None, Some(&latency)).expect("plan")),
            by_price
        );
        // The cheapest measured slow: the unobserved ones go ahead of it.
        r.record_ttft(&by_price[0], ms(900));
        let plan = keys(&r.plan(&res, None, Some(&latency)).expect("plan"));
        assert_eq!(plan.last(), Some(&by_price[0]), "{plan:?}");
        assert_eq!(plan[0], by_price[1], "unobserved, in price order");
        // Everything measured: lowest time to first token first.
        for (i, k) in by_price.iter().enumerate().skip(1) {
            r.record_ttft(k, ms(100 + 100 * (by_price.len() - i) as u64));
        }
        let plan = keys(&r.plan(&res, None, Some(&latency)).expect("plan"));
        let mut want: Vec<String> = by_price[1..].iter().rev().cloned().collect();
        want.push(by_price[0].clone());
        assert_eq!(plan, want);
        // Price order is untouched by observations.
        assert_eq!(keys(&r.plan(&res, None, None).expect("plan")), by_price);
        assert_eq!(
            keys(&r.plan(&res, None, Some(&sorted("price"))).expect("plan")),
            by_price
        );
    }

    #[test]
    fn throughput_sort_puts_the_most_tokens_per_second_first() {
        let r = router(&[ProviderKind::Bedrock, ProviderKind::Anthropic]);
        let res = sonnet(&r);
        let by_price = keys(&r.plan(&res, None, None).expect("plan"));
        let throughput = sorted("throughput");
        // Time to first token says nothing of throughput.
        r.record_ttft(&by_price[1], ms(10));
        assert_eq!(
            keys(&r.plan(&res, None, Some(&throughput)).expect("plan")),
            by_price
        );
        // 100 tokens/s, 50 tokens/s, then 200 tokens/s for the rest.
        r.record_throughput(&by_price[0], 100, ms(1000));
        r.record_throughput(&by_price[1], 100, ms(2000));
        for k in &by_price[2..] {
            r.record_throughput(k, 400, ms(2000));
        }
        let plan = keys(&r.plan(&res, None, Some(&throughput)).expect("plan"));
        let mut want: Vec<String> = by_price[2..].to_vec();
        want.push(by_price[0].clone());
        want.push(by_price[1].clone());
        assert_eq!(plan, want);
        let o = r.observed(&by_price[1]).expect("endpoint");
        assert_eq!(o.tokens_per_s_milli, Some(50_000));
        assert_eq!(o.throughput_samples, 1);
        assert_eq!(o.ttft_us, Some(10_000));
        // No output: nothing measured.
        r.record_throughput(&by_price[1], 0, ms(5));
        assert_eq!(r.observed(&by_price[1]).expect("e").throughput_samples, 1);
        assert_eq!(r.observed("nope:nothing"), None);
    }

    #[test]
    fn observations_are_decaying_averages_and_expire() {
        let r = router(&[ProviderKind::Bedrock, ProviderKind::Anthropic]);
        let key = sonnet(&r).model.endpoints[0].key.clone();
        r.record_ttft(&key, ms(1000));
        r.record_ttft(&key, ms(2000));
        // A new sample weighs a quarter.
        assert_eq!(
            r.observed(&key).expect("e").ttft_us,
            Some(1_250_000),
            "1000 + (2000 - 1000) / 4 ms"
        );
        assert_eq!(r.observed(&key).expect("e").ttft_samples, 2);
        // A burst shorter than a millisecond is timed as one.
        r.record_throughput(&key, 5, Duration::ZERO);
        assert_eq!(
            r.observed(&key).expect("e").tokens_per_s_milli,
            Some(5_000_000)
        );
        // Stale: counts as none, and the next sample starts afresh.
        let old = crate::clock::unix_millis() - OBSERVATION_TTL_MS - 1_000;
        let other = sonnet(&r).model.endpoints[1].key.clone();
        r.record_ttft_at(&other, ms(300), old);
        assert_eq!(r.observed(&other).expect("e").ttft_us, None);
        r.record_ttft(&other, ms(700));
        assert_eq!(r.observed(&other).expect("e").ttft_us, Some(700_000));
    }

    #[test]
    fn a_stale_observation_is_measured_again_first() {
        let r = router(&[ProviderKind::Bedrock, ProviderKind::Anthropic]);
        let res = sonnet(&r);
        let by_price = keys(&r.plan(&res, None, None).expect("plan"));
        let now = crate::clock::unix_millis();
        for k in &by_price {
            r.record_ttft(k, ms(100));
        }
        // The dearest was measured slow long ago: it is tried first again.
        let slowest = by_price.last().expect("one").clone();
        r.record_ttft_at(&slowest, ms(5000), now - OBSERVATION_TTL_MS - 1);
        let plan = keys(&r.plan(&res, None, Some(&sorted("latency"))).expect("plan"));
        assert_eq!(plan[0], slowest);
    }

    #[test]
    fn provider_order_wins_over_the_sort_and_open_circuits_go_last() {
        let r = router(&[ProviderKind::Bedrock, ProviderKind::Anthropic]);
        let res = sonnet(&r);
        let by_price = r.plan(&res, None, None).expect("plan");
        for e in &by_price {
            let t = if e.provider == ProviderKind::Anthropic {
                5000
            } else {
                50
            };
            r.record_ttft(&e.key, ms(t));
            r.record_throughput(&e.key, 10_000 / t, ms(1000));
        }
        for sort in ["latency", "throughput"] {
            let prefs = ProviderPrefs {
                order: vec!["anthropic".into()],
                sort: Some(sort.into()),
                ..ProviderPrefs::default()
            };
            let plan = r.plan(&res, None, Some(&prefs)).expect("plan");
            assert_eq!(plan[0].provider, ProviderKind::Anthropic, "{sort}");
            // Without the order, the slow endpoint goes last.
            let plan = r.plan(&res, None, Some(&sorted(sort))).expect("plan");
            assert_eq!(
                plan.last().map(|e| e.provider.clone()),
                Some(ProviderKind::Anthropic),
                "{sort}"
            );
            // `allow_fallbacks: false` keeps the best one only.
            let one = ProviderPrefs {
                allow_fallbacks: Some(false),
                ..sorted(sort)
            };
            let plan = r.plan(&res, None, Some(&one)).expect("plan");
            assert_eq!(plan.len(), 1);
            assert_eq!(plan[0].provider, ProviderKind::Bedrock, "{sort}");
        }
        // The fastest endpoint's circuit opens: last, whatever was observed.
        let fastest = r.plan(&res, None, Some(&sorted("latency"))).expect("plan")[0]
            .key
            .clone();
        r.trip(&fastest);
        for sort in ["price", "latency", "throughput"] {
            let plan = keys(&r.plan(&res, None, Some(&sorted(sort))).expect("plan"));
            assert_eq!(plan.last(), Some(&fastest), "{sort}");
        }
    }
}
