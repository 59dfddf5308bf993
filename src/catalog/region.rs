//! `X-GammaInfra-Region`: a geography (`us`), an exact region (`us-east-1`), or a
//! comma-separated list of these (their union). Matching is by data residency: an
//! endpoint is eligible only if every region it may process in lies inside the allowed
//! set, so `us-east-1` admits a bare endpoint in us-east-1 but not a `us.` profile, and a
//! `global.` profile or an endpoint with unknown processing regions is eligible only
//! without a constraint.

use std::collections::BTreeSet;

use super::{Catalog, Endpoint, ProcessingRegions};

/// A parsed, valid region constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionConstraint {
    /// The value as the client wrote it, normalised (trimmed, lower-case).
    text: String,
    /// The union of all regions the constraint allows.
    allowed: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("X-GammaInfra-Region value `{value}` is not valid: {reason}. Accepted values: a geography ({geographies}), an AWS region such as us-east-1 or eu-west-1, or a comma-separated list of these")]
pub struct RegionError {
    pub value: String,
    pub reason: String,
    pub geographies: String,
}

impl RegionConstraint {
    pub fn parse(value: &str, catalog: &Catalog) -> Result<Self, RegionError> {
        let err = |reason: String| RegionError {
            value: value.to_owned(),
            reason,
            geographies: catalog
                .geographies
                .iter()
                .map(|g| g.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let mut allowed = BTreeSet::new();
        let mut items = Vec::new();
        for item in value.split(',') {
            let item = item.trim().to_ascii_lowercase();
            if item.is_empty() {
                return Err(err("it has an empty item".to_owned()));
            }
            if let Some(g) = catalog.geography(&item) {
                allowed.extend(g.regions.iter().cloned());
            } else if catalog.is_known_region(&item) {
                allowed.insert(item.clone());
            } else if item == super::check::GLOBAL {
                return Err(err(
                    "`global` is not a constraint; send no X-GammaInfra-Region header to allow any region".to_owned(),
                ));
            } else {
                return Err(err(format!(
                    "`{item}` is neither a geography nor a known AWS region"
                )));
            }
            items.push(item);
        }
        Ok(Self {
            text: items.join(","),
            allowed,
        })
    }

    /// Whether all of the endpoint's processing regions lie inside this constraint.
    pub fn admits(&self, e: &Endpoint) -> bool {
        match &e.processing_regions {
            ProcessingRegions::Known(r) => !r.is_empty() && r.is_subset(&self.allowed),
            ProcessingRegions::Unknown => false,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The geographies a constraint would need to admit this endpoint: those containing all
/// its processing regions, smallest first. Used to tell the user what would work.
pub fn geographies_admitting<'c>(catalog: &'c Catalog, e: &Endpoint) -> Vec<&'c str> {
    let ProcessingRegions::Known(r) = &e.processing_regions else {
        return Vec::new();
    };
    let mut g: Vec<_> = catalog
        .geographies
        .iter()
        .filter(|g| r.is_subset(&g.regions))
        .collect();
    g.sort_by_key(|g| g.regions.len());
    g.into_iter().map(|g| g.id.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, ProviderKind};

    fn cat() -> Catalog {
        Catalog::builtin().expect("builtin catalog")
    }

    fn endpoint<'c>(c: &'c Catalog, upstream: &str) -> &'c Endpoint {
        c.models
            .iter()
            .flat_map(|m| m.endpoints.iter())
            .find(|e| e.upstream_id == upstream)
            .expect(upstream)
    }

    #[test]
    fn table() {
        let c = cat();
        let us_profile = endpoint(&c, "us.anthropic.claude-sonnet-4-6");
        let bare = endpoint(&c, "meta.llama3-70b-instruct-v1:0");
        let eu_profile = endpoint(&c, "eu.anthropic.claude-sonnet-4-6");
        let direct = c
            .model("anthropic/claude-sonnet-4-6")
            .expect("model")
            .endpoints
            .iter()
            .find(|e| e.provider == ProviderKind::Anthropic)
            .expect("anthropic direct")
            .clone();
        // (constraint, us profile, bare us-east-1, eu profile, direct)
        let rows: &[(&str, bool, bool, bool, bool)] = &[
            ("us", true, true, false, false),
            ("US", true, true, false, false),
            ("us-east-1", false, true, false, false),
            ("eu", false, false, true, false),
            ("eu-central-1", false, false, false, false),
            ("apac", false, false, false, false),
            ("us-east-1,eu", false, true, true, false),
            (
                "us-east-1, us-east-2, us-west-1, us-west-2",
                true,
                true,
                false,
                false,
            ),
            ("eu,us", true, true, true, false),
        ];
        for &(v, a, b, e, d) in rows {
            let k = RegionConstraint::parse(v, &c).expect(v);
            assert_eq!(k.admits(us_profile), a, "{v} vs us profile");
            assert_eq!(k.admits(bare), b, "{v} vs bare us-east-1");
            assert_eq!(k.admits(eu_profile), e, "{v} vs eu profile");
            assert_eq!(k.admits(&direct), d, "{v} vs direct");
        }
    }

    #[test]
    fn invalid_values_are_rejected_with_the_accepted_values() {
        let c = cat();
        for v in ["mars", "us-east-9", "", "us,,eu", "global"] {
            let e = RegionConstraint::parse(v, &c).expect_err(v);
            let msg = e.to_string();
            assert!(msg.contains("us, eu"), "{msg}");
        }
    }

    #[test]
    fn suggests_the_geography_that_would_admit_a_profile() {
        let c = cat();
        let e = endpoint(&c, "us.anthropic.claude-sonnet-4-6");
        assert_eq!(geographies_admitting(&c, e).first(), Some(&"us"));
    }
}
