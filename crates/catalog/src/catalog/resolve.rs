//! Model-ID resolution: what a client's `model` names.
//!
//! Accepted, case-insensitively: the gateway ID (`anthropic/claude-sonnet-4-6`), an alias,
//! any endpoint's upstream ID (`claude-sonnet-4-6`, `us.anthropic.claude-sonnet-4-6`), and a
//! Bedrock ID in the wrong form (bare for a profile-only model, prefixed for a
//! profile-forbidden one, or with another geography's prefix). A provider's own ID pins
//! the request to that provider; a Bedrock profile prefix implies its geography as the
//! region constraint (the `X-GammaInfra-Region` header wins over it).

use std::sync::Arc;

use super::{Catalog, Model, ProviderKind};

/// Longest `model` accepted, in bytes. The longest catalog or provider model ID is under
/// 100 bytes (`us.anthropic.claude-3-5-sonnet-20241022-v2:0` is 44); checked before any
/// lookup or fuzzy matching, whose cost grows with the string's length.
pub const MAX_MODEL_BYTES: usize = 256;

#[derive(Debug, Clone)]
pub struct Resolution {
    pub model: Arc<Model>,
    /// Only endpoints of this provider may serve the request.
    pub pinned_provider: Option<ProviderKind>,
    /// A geography implied by a Bedrock profile prefix in the requested ID.
    pub implied_region: Option<String>,
    /// Whether the client's name differs from the gateway ID (a provider ID, an alias or
    /// a corrected form): the response then carries `X-GammaInfra-Resolved-Model`.
    pub renamed: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("The model `{requested}` does not exist in the GammaInfra catalog.{}", suggestions(.close))]
pub struct ResolveError {
    pub requested: String,
    pub close: Vec<String>,
}

fn suggestions(close: &[String]) -> String {
    if close.is_empty() {
        " See GET /v1/models for the catalog.".to_owned()
    } else {
        format!(" Did you mean: {}?", close.join(", "))
    }
}

impl Catalog {
    pub fn resolve(&self, requested: &str) -> Result<Resolution, ResolveError> {
        // No catalog or provider ID is this long: refused unmatched, so the work below
        // (and the fuzzy matching, whose cost grows with the key's length) stays bounded.
        // The chat path refuses such a `model` with a 400 before it gets here.
        if requested.len() > MAX_MODEL_BYTES {
            let mut cut = MAX_MODEL_BYTES;
            while !requested.is_char_boundary(cut) {
                cut -= 1;
            }
            return Err(ResolveError {
                requested: format!("{}…", &requested[..cut]),
                close: Vec::new(),
            });
        }
        let key = requested.trim().to_ascii_lowercase();
        if let Some(&i) = self.index.get(&key) {
            let model = self.models[i].clone();
            if model.id.eq_ignore_ascii_case(&key) {
                return Ok(Resolution {
                    model,
                    pinned_provider: None,
                    implied_region: None,
                    renamed: false,
                });
            }
            let endpoint = model
                .endpoints
                .iter()
                .find(|e| e.upstream_id.eq_ignore_ascii_case(&key));
            let pinned_provider = endpoint.map(|e| e.provider.clone());
            let implied_region = endpoint
                .filter(|e| e.provider == ProviderKind::Bedrock)
                .and_then(|_| self.profile_prefix(&key))
                .filter(|p| *p != super::check::GLOBAL)
                .map(str::to_owned);
            return Ok(Resolution {
                model,
                pinned_provider,
                implied_region,
                renamed: true,
            });
        }
        // A Bedrock ID in the wrong form: compare with every Bedrock endpoint's base ID.
        let (prefix, base) = match self.profile_prefix(&key) {
            Some(p) => (Some(p), &key[p.len() + 1..]),
            None => (None, key.as_str()),
        };
        for m in &self.models {
            for e in m
                .endpoints
                .iter()
                .filter(|e| e.provider == ProviderKind::Bedrock)
            {
                let e_id = e.upstream_id.to_ascii_lowercase();
                let e_base = match self.profile_prefix(&e_id) {
                    Some(p) => e_id[p.len() + 1..].to_owned(),
                    None => e_id,
                };
                if e_base == base {
                    return Ok(Resolution {
                        model: m.clone(),
                        pinned_provider: Some(ProviderKind::Bedrock),
                        implied_region: prefix
                            .filter(|p| *p != super::check::GLOBAL)
                            .map(str::to_owned),
                        renamed: true,
                    });
                }
            }
        }
        Err(ResolveError {
            requested: requested.to_owned(),
            close: self.close_matches(&key),
        })
    }

    /// `us` for `us.anthropic...` when `us` is a Bedrock profile geography (or `global`).
    fn profile_prefix<'k>(&self, id: &'k str) -> Option<&'k str> {
        let (head, rest) = id.split_once('.')?;
        let is_profile = head == super::check::GLOBAL
            || self
                .geographies
                .iter()
                .any(|g| g.bedrock_profile && g.id == head);
        (is_profile && rest.contains('.')).then_some(head)
    }

    /// Up to three catalog models whose names are close to `key`. The candidates are the
    /// catalog's own names (a fixed set, built at start) and `key` is at most
    /// [`MAX_MODEL_BYTES`], so the Jaro-Winkler comparisons cost a bounded few
    /// microseconds whatever the request holds.
    fn close_matches(&self, key: &str) -> Vec<String> {
        let mut scored: Vec<(f64, &str)> = self
            .models
            .iter()
            .map(|m| {
                let names = std::iter::once(m.id.as_str())
                    .chain(m.endpoints.iter().map(|e| e.upstream_id.as_str()));
                let best = names
                    .map(|n| strsim::jaro_winkler(key, &n.to_ascii_lowercase()))
                    .fold(0.0_f64, f64::max);
                (best, m.id.as_str())
            })
            .filter(|(s, _)| *s > 0.75)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .take(3)
            .map(|(_, id)| id.to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{Catalog, ProviderKind};

    #[test]
    fn resolves_gateway_provider_and_wrong_form_ids() {
        let c = Catalog::builtin().expect("catalog");
        let r = c
            .resolve("anthropic/claude-sonnet-4-6")
            .expect("gateway id");
        assert!(!r.renamed && r.pinned_provider.is_none());

        let r = c
            .resolve("us.anthropic.claude-sonnet-4-6")
            .expect("profile id");
        assert_eq!(r.model.id, "anthropic/claude-sonnet-4-6");
        assert_eq!(r.pinned_provider, Some(ProviderKind::Bedrock));
        assert_eq!(r.implied_region.as_deref(), Some("us"));

        let r = c.resolve("claude-sonnet-4-6").expect("anthropic id");
        assert_eq!(r.pinned_provider, Some(ProviderKind::Anthropic));

        // Bare ID of a profile-only model.
        let r = c.resolve("anthropic.claude-sonnet-4-6").expect("bare");
        assert_eq!(r.model.id, "anthropic/claude-sonnet-4-6");
        assert_eq!(r.pinned_provider, Some(ProviderKind::Bedrock));
        assert!(r.renamed);

        // Prefixed ID of a profile-forbidden model.
        let r = c
            .resolve("us.meta.llama3-70b-instruct-v1:0")
            .expect("prefixed");
        assert_eq!(r.model.id, "meta/llama3-70b-instruct");
        assert_eq!(r.implied_region.as_deref(), Some("us"));
    }

    #[test]
    fn unknown_model_lists_close_matches() {
        let c = Catalog::builtin().expect("catalog");
        let e = c
            .resolve("anthropic/claude-sonet-4-6")
            .expect_err("unknown");
        assert!(
            e.close.contains(&"anthropic/claude-sonnet-4-6".to_owned()),
            "{e}"
        );
        assert!(e.to_string().contains("Did you mean"));
    }

    #[test]
    fn an_overlong_model_is_refused_without_matching_and_quickly() {
        let c = Catalog::builtin().expect("catalog");
        let long = "anthropic/claude-sonnet-4-6".repeat(1_000_000);
        let t = std::time::Instant::now();
        let e = c.resolve(&long).expect_err("too long");
        assert!(
            t.elapsed() < std::time::Duration::from_millis(50),
            "{:?}",
            t.elapsed()
        );
        assert!(e.close.is_empty());
        assert!(e.requested.len() <= super::MAX_MODEL_BYTES + 3);
    }

    /// The names Anthropic clients send: Claude Code's default (`claude-opus-4-8`, sent
    /// with no model setting at all), its small/fast model (`claude-haiku-4-5-20251001`),
    /// the values docs/clients.md shows for `ANTHROPIC_MODEL` and
    /// `ANTHROPIC_SMALL_FAST_MODEL`, and the dated snapshot IDs Anthropic documents.
    #[test]
    fn anthropic_client_names_resolve_to_the_catalog_model() {
        let c = Catalog::builtin().expect("catalog");
        let rows = [
            ("claude-opus-4-8", "anthropic/claude-opus-4-8"),
            ("Claude-Opus-4-8", "anthropic/claude-opus-4-8"),
            ("claude-opus-5-5", "anthropic/claude-opus-5-5"),
            ("claude-sonnet-5-5", "anthropic/claude-sonnet-5-5"),
            ("claude-haiku-5-5", "anthropic/claude-haiku-5-5"),
            ("claude-fable-5-1", "anthropic/claude-fable-5-1"),
            ("claude-opus-4-7", "anthropic/claude-opus-4-7"),
            ("claude-sonnet-4-6", "anthropic/claude-sonnet-4-6"),
            ("claude-opus-4-6", "anthropic/claude-opus-4-6"),
            ("claude-haiku-4-5", "anthropic/claude-haiku-4-5"),
            ("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
            ("claude-opus-4-5", "anthropic/claude-opus-4-5"),
        ];
        for (name, model) in rows {
            let r = c.resolve(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(r.model.id, model, "{name}");
            assert!(r.renamed, "{name}");
            assert_eq!(r.pinned_provider, Some(ProviderKind::Anthropic), "{name}");
            assert_eq!(r.implied_region, None, "{name}");
        }
        // Dated snapshot IDs are aliases: the model, no pin, so any endpoint may serve them.
        for (name, model) in [
            ("claude-haiku-4-5-20251001", "anthropic/claude-haiku-4-5"),
            ("claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"),
            ("claude-opus-4-5-20251101", "anthropic/claude-opus-4-5"),
        ] {
            let r = c.resolve(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(r.model.id, model, "{name}");
            assert!(r.renamed && r.pinned_provider.is_none(), "{name}");
        }
    }

    /// `claude-3-5-haiku-latest` and the other `-latest` aliases named models Anthropic has
    /// retired (Claude Haiku 3.5 on 2026-02-19) and no longer documents: they are unknown,
    /// and the refusal suggests current models rather than silently serving another one.
    #[test]
    fn retired_latest_aliases_are_unknown_with_suggestions() {
        let c = Catalog::builtin().expect("catalog");
        for name in ["claude-3-5-haiku-latest", "claude-3-7-sonnet-latest"] {
            let e = c.resolve(name).expect_err(name);
            assert!(!e.close.is_empty(), "{name}: {e}");
        }
    }

    #[test]
    fn new_geography_prefixes_imply_their_geography() {
        let c = Catalog::builtin().expect("catalog");
        for (name, model, geo) in [
            (
                "jp.anthropic.claude-opus-4-8",
                "anthropic/claude-opus-4-8",
                "jp",
            ),
            (
                "au.anthropic.claude-opus-4-8",
                "anthropic/claude-opus-4-8",
                "au",
            ),
            (
                "au.anthropic.claude-haiku-4-5-20251001-v1:0",
                "anthropic/claude-haiku-4-5",
                "au",
            ),
            (
                "jp.anthropic.claude-sonnet-4-6",
                "anthropic/claude-sonnet-4-6",
                "jp",
            ),
            // No such profile (Sonnet 5.5 has no jp. one): resolved, `jp` implied, and
            // routing refuses it with the model's endpoints and their regions.
            (
                "jp.anthropic.claude-sonnet-5-5",
                "anthropic/claude-sonnet-5-5",
                "jp",
            ),
        ] {
            let r = c.resolve(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(r.model.id, model, "{name}");
            assert_eq!(r.pinned_provider, Some(ProviderKind::Bedrock), "{name}");
            assert_eq!(r.implied_region.as_deref(), Some(geo), "{name}");
        }
        // The bare form of a profile-only model: Bedrock, no geography implied.
        let r = c.resolve("anthropic.claude-opus-4-8").expect("bare");
        assert_eq!(r.model.id, "anthropic/claude-opus-4-8");
        assert_eq!(r.pinned_provider, Some(ProviderKind::Bedrock));
        assert_eq!(r.implied_region, None);
        let r = c
            .resolve("global.anthropic.claude-opus-4-8")
            .expect("global");
        assert_eq!(r.implied_region, None);
    }
}
