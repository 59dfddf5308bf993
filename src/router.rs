//! Endpoint selection: which endpoints may serve a request, in which order, and the
//! per-endpoint circuit breakers. Pure logic over the catalog: no wire formats, no IO.
//!
//! Eligible endpoints are those of the resolved model (restricted to the pinned provider,
//! the request's `provider.only`/`ignore`), whose processing regions satisfy the region
//! constraint, that are enabled in this deployment and whose provider is configured.
//! They are ordered by `provider.order`, then price (input + output list price), with
//! endpoints whose circuit is open moved last.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;

use crate::catalog::region::geographies_admitting;
use crate::catalog::{
    BedrockInvocation, Catalog, Endpoint, ProcessingRegions, ProviderKind, RegionConstraint,
    Residency, Resolution,
};
use crate::chat::request::ProviderPrefs;

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
}

pub struct Router {
    catalog: Arc<Catalog>,
    configured: Vec<ProviderKind>,
    /// Bedrock source regions where this deployment has model access (None: Bedrock is
    /// not configured, and its endpoints are refused as such).
    bedrock_regions: Option<Vec<String>>,
    /// Circuit state per endpoint key. Built once; atomics, so no lock on the hot path.
    health: HashMap<String, Health>,
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
            .map(|e| (e.key.clone(), Health::default()))
            .collect();
        Self {
            catalog,
            configured,
            bedrock_regions,
            health,
        }
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
        let mut cands: Vec<&Arc<Endpoint>> = model
            .endpoints
            .iter()
            .filter(|e| {
                res.pinned_provider
                    .as_ref()
                    .is_none_or(|p| *p == e.provider)
            })
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
            let missing: Vec<String> = enabled.iter().map(|e| provider_hint(&e.provider)).collect();
            return Err(RouteError::ProviderUnavailable(format!(
                "{} is listed in the catalog, but none of its eligible endpoints can be called by this deployment: {}.",
                model.id,
                dedup(missing).join("; ")
            )));
        }
        let order: Vec<String> = prefs.map(|p| p.order.clone()).unwrap_or_default();
        let by_price = prefs
            .and_then(|p| p.sort.as_deref())
            .is_none_or(|s| s != "latency");
        let now = crate::clock::unix_millis();
        usable.sort_by_key(|e| {
            let open = self.is_open(&e.key, now);
            let pos = order
                .iter()
                .position(|o| o.eq_ignore_ascii_case(&e.provider.to_string()))
                .unwrap_or(usize::MAX);
            let price = if by_price {
                e.pricing.input.nanos_per_mtok() + e.pricing.output.nanos_per_mtok()
            } else {
                0
            };
            (open, pos, price)
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

    fn is_open(&self, key: &str, now: i64) -> bool {
        self.health
            .get(key)
            .is_some_and(|h| h.open_until_ms.load(Ordering::Relaxed) > now)
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
}
