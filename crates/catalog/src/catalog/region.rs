//! `X-GammaInfra-Region`: a geography (`us`), an exact region (`us-east-1`), or a
//! comma-separated list of these (their union). Matching is by data residency: an
//! endpoint is eligible only if every region it may process in lies inside the allowed
//! set, so `us-east-1` admits a bare endpoint in us-east-1 but not a `us.` profile, and a
//! `global.` profile or an endpoint with unknown processing regions is eligible only
//! without a constraint.
//!
//! The same values express a **residency policy** on an account or an API key
//! ([`Residency`]): a constraint every request of that key must stay within. A request's
//! own constraint (the header, or the geography implied by a Bedrock profile prefix in
//! `model`) can only narrow it: the constraint routed under is the intersection of the
//! policies and the request's constraint, and a request whose constraint has no region
//! inside the policy is refused ([`OutsidePolicy`]) rather than served elsewhere.

use std::borrow::Cow;
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
#[error("{subject} value `{value}` is not valid: {reason}. Accepted values: a geography ({geographies}), an AWS region such as us-east-1 or eu-west-1, or a comma-separated list of these")]
pub struct RegionError {
    /// Where the value came from: `X-GammaInfra-Region`, or an admin API field.
    pub subject: &'static str,
    pub value: String,
    pub reason: String,
    pub geographies: String,
}

/// The header, as named in messages about its value.
const HEADER: &str = "X-GammaInfra-Region";

impl RegionConstraint {
    /// Parses an `X-GammaInfra-Region` value.
    pub fn parse(value: &str, catalog: &Catalog) -> Result<Self, RegionError> {
        Self::parse_as(HEADER, value, catalog)
    }

    /// Parses a residency policy given in the admin API field `field` (same values as
    /// the header; the messages name the field instead).
    pub fn parse_policy(
        field: &'static str,
        value: &str,
        catalog: &Catalog,
    ) -> Result<Self, RegionError> {
        Self::parse_as(field, value, catalog)
    }

    /// A policy as stored in the database, parsed when it is loaded. A stored value the
    /// catalog no longer accepts (a region removed from the geography table since) must
    /// not lift the policy: it becomes a constraint that admits nothing, so the
    /// account's or key's requests are refused until an admin sets a valid policy.
    pub fn stored(value: &str, catalog: &Catalog) -> (Self, Option<RegionError>) {
        match Self::parse_as("stored residency policy", value, catalog) {
            Ok(c) => (c, None),
            Err(e) => (
                Self {
                    text: value.trim().to_ascii_lowercase(),
                    allowed: BTreeSet::new(),
                },
                Some(e),
            ),
        }
    }

    fn parse_as(
        subject: &'static str,
        value: &str,
        catalog: &Catalog,
    ) -> Result<Self, RegionError> {
        let err = |reason: String| RegionError {
            subject,
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
                return Err(err(if subject == HEADER {
                    "`global` is not a constraint; send no X-GammaInfra-Region header to allow any region".to_owned()
                } else {
                    "`global` is not a constraint; set no residency (null) to allow any region"
                        .to_owned()
                }));
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

    /// Whether the constraint allows no region at all (the intersection of disjoint
    /// constraints, or a stored policy that no longer parses). Nothing is admitted.
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// Whether every region of `regions` is allowed.
    pub fn allows_all(&self, regions: &BTreeSet<String>) -> bool {
        !regions.is_empty() && regions.is_subset(&self.allowed)
    }

    /// The regions both constraints allow. Its text is the narrower operand's when the
    /// intersection equals it (`eu` ∩ `us-east-1,eu` is `eu`), otherwise the list of the
    /// remaining regions, which is itself a valid header value.
    pub fn intersect(&self, other: &RegionConstraint) -> RegionConstraint {
        let allowed: BTreeSet<String> =
            self.allowed.intersection(&other.allowed).cloned().collect();
        let text = if allowed == self.allowed {
            self.text.clone()
        } else if allowed == other.allowed {
            other.text.clone()
        } else {
            allowed
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        RegionConstraint { text, allowed }
    }
}

/// Where a request's own constraint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// The `X-GammaInfra-Region` header.
    Header,
    /// The geography implied by a Bedrock profile prefix in `model` (`us.anthropic...`).
    ModelPrefix,
}

/// Where the requests of one API key may be processed: its account's residency policy
/// and its own, and their intersection, computed once when a policy is loaded or set
/// (never per request). A policy is not a default: a request may narrow it, never widen
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Residency {
    account: Option<RegionConstraint>,
    key: Option<RegionConstraint>,
    /// `account ∩ key`; possibly empty, in which case every request is refused.
    allowed: RegionConstraint,
}

impl Residency {
    /// The combined policy, or `None` when neither the account nor the key has one.
    pub fn of(account: Option<RegionConstraint>, key: Option<RegionConstraint>) -> Option<Self> {
        let allowed = match (&account, &key) {
            (None, None) => return None,
            (Some(a), None) => a.clone(),
            (None, Some(k)) => k.clone(),
            (Some(a), Some(k)) => a.intersect(k),
        };
        Some(Self {
            account,
            key,
            allowed,
        })
    }

    pub fn account(&self) -> Option<&RegionConstraint> {
        self.account.as_ref()
    }

    pub fn key(&self) -> Option<&RegionConstraint> {
        self.key.as_ref()
    }

    /// The regions requests may be processed in.
    pub fn allowed(&self) -> &RegionConstraint {
        &self.allowed
    }

    /// Names the policy or policies, for error messages.
    pub fn describe(&self) -> String {
        let narrowest = &self.allowed.allowed;
        match (&self.account, &self.key) {
            (Some(a), Some(k)) if a.allowed == k.allowed => format!(
                "the residency policy `{}` of the account and of the API key",
                a.text
            ),
            (Some(a), Some(k)) if &k.allowed == narrowest => format!(
                "the API key's residency policy `{}` (within the account's policy `{}`)",
                k.text, a.text
            ),
            (Some(a), Some(k)) if &a.allowed == narrowest => format!(
                "the account's residency policy `{}` (narrower than the API key's own policy `{}`)",
                a.text, k.text
            ),
            (Some(a), Some(k)) => format!(
                "the residency policies of the account (`{}`) and of the API key (`{}`)",
                a.text, k.text
            ),
            (Some(a), None) => format!("the account's residency policy `{}`", a.text),
            (None, Some(k)) => format!("the API key's residency policy `{}`", k.text),
            (None, None) => "no residency policy".to_owned(),
        }
    }

    /// The constraint a request is routed under: the policy itself when the request
    /// asks for nothing (borrowed, so a policy costs no allocation per request), or
    /// the intersection with what it asked for. Refused when nothing is left.
    pub fn apply(
        &self,
        requested: Option<(RegionConstraint, Asked)>,
    ) -> Result<Cow<'_, RegionConstraint>, OutsidePolicy> {
        let refuse = |asked: Option<(&RegionConstraint, Asked)>| OutsidePolicy {
            policy: self.describe(),
            allowed: self.allowed.text.clone(),
            asked: asked.map(|(c, a)| (c.text.clone(), a)),
            model: None,
        };
        if self.allowed.is_empty() {
            return Err(refuse(requested.as_ref().map(|(c, a)| (c, *a))));
        }
        match requested {
            None => Ok(Cow::Borrowed(&self.allowed)),
            Some((c, asked)) => {
                let i = c.intersect(&self.allowed);
                if i.is_empty() {
                    Err(refuse(Some((&c, asked))))
                } else {
                    Ok(Cow::Owned(i))
                }
            }
        }
    }
}

/// A request whose region constraint has no region inside its residency policy (or a
/// policy that allows no region at all). `403 region_not_allowed`: the request is well
/// formed, but this key is not permitted to have it processed there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutsidePolicy {
    /// The policy, described (see [`Residency::describe`]).
    pub policy: String,
    /// The regions the policy allows, as a constraint value (empty when none).
    pub allowed: String,
    /// What the request asked for, and where.
    pub asked: Option<(String, Asked)>,
    /// The gateway's ID of the requested model, when known: suggested instead of a
    /// provider ID whose prefix leaves the policy.
    pub model: Option<String>,
}

impl OutsidePolicy {
    /// The request field the refusal is about, for the error's `param`.
    pub fn param(&self) -> Option<&'static str> {
        match self.asked {
            _ if self.allowed.is_empty() => None,
            Some((_, Asked::Header)) => Some(HEADER),
            Some((_, Asked::ModelPrefix)) => Some("model"),
            None => None,
        }
    }
}

impl std::fmt::Display for OutsidePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (policy, allowed) = (&self.policy, &self.allowed);
        if allowed.is_empty() {
            return write!(
                f,
                "Requests with this API key cannot be processed anywhere: {policy} leaves no region (the account's and the key's policies have no region in common, or a stored policy is no longer valid for this catalog). An administrator must change the account's or the key's residency."
            );
        }
        match &self.asked {
            Some((asked, Asked::Header)) => write!(
                f,
                "X-GammaInfra-Region `{asked}` names no region inside {policy}: requests with this API key may be processed only within `{allowed}`. Send a constraint inside `{allowed}`, or no header to be served anywhere within it."
            ),
            Some((asked, Asked::ModelPrefix)) => write!(
                f,
                "The model ID's Bedrock profile prefix implies `{asked}`, which has no region inside {policy}: requests with this API key may be processed only within `{allowed}`. Send the gateway's model ID{} (served within `{allowed}`), or an X-GammaInfra-Region header inside `{allowed}` (the header takes precedence over the prefix).",
                self.model.as_deref().map(|m| format!(" `{m}`")).unwrap_or_default()
            ),
            None => write!(
                f,
                "Requests with this API key may be processed only within `{allowed}` ({policy})."
            ),
        }
    }
}

impl std::error::Error for OutsidePolicy {}

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

    fn k(c: &Catalog, v: &str) -> RegionConstraint {
        RegionConstraint::parse(v, c).expect(v)
    }

    #[test]
    fn intersection_is_the_set_intersection_named_by_the_narrower_operand() {
        let c = cat();
        // (a, b, text of a ∩ b, empty)
        let rows: &[(&str, &str, &str, bool)] = &[
            ("eu", "eu", "eu", false),
            ("eu", "eu-central-1", "eu-central-1", false),
            ("eu-central-1", "eu", "eu-central-1", false),
            ("eu", "us-east-1,eu", "eu", false),
            ("us-east-1,eu", "eu", "eu", false),
            ("eu", "us", "", true),
            ("eu", "us-east-1", "", true),
            (
                "us,eu",
                "eu-west-1,us-east-1,apac",
                "eu-west-1,us-east-1",
                false,
            ),
            (
                "us-east-1,eu-west-1",
                "eu-west-1,ap-northeast-1",
                "eu-west-1",
                false,
            ),
        ];
        for &(a, b, text, empty) in rows {
            let i = k(&c, a).intersect(&k(&c, b));
            assert_eq!(i.is_empty(), empty, "{a} ∩ {b}");
            assert_eq!(i.as_str(), text, "{a} ∩ {b}");
            // Commutative as a set, and a non-empty result is itself a valid value.
            assert_eq!(i.allowed, k(&c, b).intersect(&k(&c, a)).allowed);
            if !empty {
                assert_eq!(k(&c, text).allowed, i.allowed, "{text} re-parses");
            }
        }
        // Narrowing never admits more: eu ∩ eu-central-1 drops the eu. profile.
        let eu_profile = endpoint(&c, "eu.anthropic.claude-sonnet-4-6");
        assert!(k(&c, "eu").admits(eu_profile));
        assert!(!k(&c, "eu")
            .intersect(&k(&c, "eu-central-1"))
            .admits(eu_profile));
    }

    #[test]
    fn a_policy_is_narrowed_by_a_request_never_widened() {
        let c = cat();
        let eu = Residency::of(Some(k(&c, "eu")), None).expect("policy");
        // No request constraint: the policy itself, borrowed.
        let got = eu.apply(None).expect("served");
        assert!(matches!(got, Cow::Borrowed(_)));
        assert_eq!(got.as_str(), "eu");
        // Narrower: the request's constraint.
        let got = eu
            .apply(Some((k(&c, "eu-central-1"), Asked::Header)))
            .expect("served");
        assert_eq!(got.as_str(), "eu-central-1");
        // Partly outside: the part inside.
        let got = eu
            .apply(Some((k(&c, "us-east-1,eu-west-1"), Asked::Header)))
            .expect("served");
        assert_eq!(got.as_str(), "eu-west-1");
        // Wider: the policy.
        let got = eu
            .apply(Some((k(&c, "us,eu"), Asked::Header)))
            .expect("served");
        assert_eq!(got.as_str(), "eu");
        // Outside: refused, naming the policy and what was asked.
        let e = eu
            .apply(Some((k(&c, "us"), Asked::Header)))
            .expect_err("refused");
        assert_eq!(e.param(), Some("X-GammaInfra-Region"));
        let m = e.to_string();
        assert!(
            m.contains("`us`") && m.contains("account's residency policy `eu`"),
            "{m}"
        );
        let e = eu
            .apply(Some((k(&c, "us"), Asked::ModelPrefix)))
            .expect_err("refused");
        assert_eq!(e.param(), Some("model"));
        assert!(e.to_string().contains("profile prefix implies `us`"), "{e}");
    }

    #[test]
    fn account_and_key_policies_combine() {
        let c = cat();
        assert!(Residency::of(None, None).is_none());
        let r = Residency::of(Some(k(&c, "eu")), Some(k(&c, "eu-west-1"))).expect("p");
        assert_eq!(r.allowed().as_str(), "eu-west-1");
        assert!(
            r.describe()
                .contains("API key's residency policy `eu-west-1`"),
            "{}",
            r.describe()
        );
        let got = r.apply(Some((k(&c, "eu"), Asked::Header))).expect("served");
        assert_eq!(got.as_str(), "eu-west-1");
        // A key policy wider than its account's is held to the account's.
        let r = Residency::of(Some(k(&c, "eu-west-1")), Some(k(&c, "eu,us"))).expect("p");
        assert_eq!(r.allowed().as_str(), "eu-west-1");
        // Disjoint policies (the account's changed after the key was made): nothing is
        // served, whatever the request asks.
        let r = Residency::of(Some(k(&c, "eu")), Some(k(&c, "us"))).expect("p");
        assert!(r.allowed().is_empty());
        let e = r.apply(None).expect_err("refused");
        assert_eq!(e.param(), None);
        assert!(
            e.to_string().contains("cannot be processed anywhere"),
            "{e}"
        );
        assert!(r.apply(Some((k(&c, "eu"), Asked::Header))).is_err());
    }

    #[test]
    fn a_stored_policy_that_no_longer_parses_admits_nothing() {
        let c = cat();
        let (bad, err) = RegionConstraint::stored("eu-mars-1", &c);
        assert!(bad.is_empty());
        assert_eq!(bad.as_str(), "eu-mars-1");
        assert!(err.expect("invalid").to_string().contains("eu-mars-1"));
        let r = Residency::of(Some(bad), None).expect("p");
        assert!(r.apply(None).is_err());
        let (eu, err) = RegionConstraint::stored(" EU ", &c);
        assert_eq!((eu.as_str(), err), ("eu", None));
    }

    #[test]
    fn a_policy_field_is_named_in_its_errors() {
        let c = cat();
        let e = RegionConstraint::parse_policy("residency", "global", &c).expect_err("global");
        let m = e.to_string();
        assert!(m.starts_with("residency value `global`"), "{m}");
        assert!(m.contains("set no residency (null)"), "{m}");
    }

    /// The profile geographies of `testdata/bedrock_geographies.md` (a copy of the project's
    /// reference table) and the regions each may process in; `ap-south-1/2` stands for two.
    fn reference_geographies() -> Vec<(String, BTreeSet<String>)> {
        include_str!("testdata/bedrock_geographies.md")
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let prefix = cells.get(1)?.strip_prefix('`')?.strip_suffix(".`")?;
                Some((prefix.to_owned(), expand_regions(cells.get(3)?)))
            })
            .collect()
    }

    fn expand_regions(cell: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for word in cell.split(|c: char| c.is_whitespace() || ",()".contains(c)) {
            let mut parts = word.split('/');
            let first = parts.next().unwrap_or_default();
            if !crate::catalog::check::is_region_name(first) {
                continue;
            }
            let stem = first.rsplit_once('-').map_or(first, |(s, _)| s);
            out.insert(first.to_owned());
            out.extend(parts.map(|n| format!("{stem}-{n}")));
        }
        out
    }

    #[test]
    fn profile_geographies_match_the_reference_table() {
        let c = cat();
        let reference = reference_geographies();
        for id in ["us", "eu", "apac", "jp", "au", "us-gov"] {
            let (_, regions) = reference
                .iter()
                .find(|(p, _)| p == id)
                .unwrap_or_else(|| panic!("`{id}.` in the reference table"));
            let g = c
                .geography(id)
                .unwrap_or_else(|| panic!("{id} in the catalog"));
            assert!(g.bedrock_profile, "{id}");
            assert_eq!(&g.regions, regions, "{id}");
        }
        assert_eq!(
            c.geography("jp")
                .map(|g| g.regions.iter().cloned().collect::<Vec<_>>()),
            Some(vec![
                "ap-northeast-1".to_owned(),
                "ap-northeast-3".to_owned()
            ])
        );
        assert_eq!(
            c.geography("au")
                .map(|g| g.regions.iter().cloned().collect::<Vec<_>>()),
            Some(vec![
                "ap-southeast-2".to_owned(),
                "ap-southeast-4".to_owned()
            ])
        );
        // `global` is reserved, not a geography; the unconfirmed `ca.` is no profile prefix.
        assert!(reference.iter().any(|(p, _)| p == "global"));
        assert!(c.geography("global").is_none());
        assert!(c.geography("ca").is_some_and(|g| !g.bedrock_profile));
    }

    /// Every `jp.` and `au.` profile processes exactly in its geography, is called from a
    /// source region inside it, and is eligible under `jp`/`au` (and `apac`, which contains
    /// both) but not under the other one or under its exact source region.
    #[test]
    fn jp_and_au_profiles_stay_in_their_geography() {
        let c = cat();
        let k = |s: &str| RegionConstraint::parse(s, &c).expect(s);
        let (jp, au, apac) = (k("jp"), k("au"), k("apac"));
        let mut seen = 0;
        for e in c.models.iter().flat_map(|m| m.endpoints.iter()) {
            let (own, other) = match e.upstream_id.split_once('.') {
                Some(("jp", _)) => (&jp, &au),
                Some(("au", _)) => (&au, &jp),
                _ => continue,
            };
            seen += 1;
            let g = c.geography(own.as_str()).expect("geography");
            assert_eq!(
                e.processing_regions,
                ProcessingRegions::Known(g.regions.clone()),
                "{}",
                e.key
            );
            let src = &e.bedrock.as_ref().expect("bedrock").source_region;
            assert!(g.regions.contains(src), "{}: {src}", e.key);
            assert!(own.admits(e) && apac.admits(e), "{}", e.key);
            assert!(!other.admits(e) && !k(src).admits(e), "{}", e.key);
        }
        assert!(seen >= 16, "{seen} jp./au. endpoints");
    }

    /// The geographies each current Claude model is offered in on Bedrock, as the
    /// catalog's sources list them (docs/catalog.md): `jp.` and `au.` where listed.
    #[test]
    fn claude_models_have_the_listed_bedrock_geographies() {
        let c = cat();
        let all = ["au", "eu", "global", "jp", "us"];
        let table: &[(&str, &[&str])] = &[
            ("anthropic/claude-opus-4-8", &all),
            ("anthropic/claude-opus-5-5", &all),
            ("anthropic/claude-haiku-5-5", &all),
            ("anthropic/claude-sonnet-5-5", &["eu", "global", "us"]),
            ("anthropic/claude-fable-5-1", &["global", "us"]),
            ("anthropic/claude-opus-4-7", &all),
            ("anthropic/claude-sonnet-4-6", &all),
            ("anthropic/claude-opus-4-6", &all),
            ("anthropic/claude-haiku-4-5", &all),
            ("anthropic/claude-sonnet-4-5", &all),
            ("anthropic/claude-opus-4-5", &["eu", "global", "us"]),
        ];
        for (model, want) in table {
            let m = c.model(model).unwrap_or_else(|| panic!("{model}"));
            let mut got: Vec<&str> = m
                .endpoints
                .iter()
                .filter(|e| e.provider == ProviderKind::Bedrock)
                .filter_map(|e| e.upstream_id.split_once('.').map(|(g, _)| g))
                .collect();
            got.sort_unstable();
            assert_eq!(&got, want, "{model}");
            assert!(
                m.endpoints
                    .iter()
                    .any(|e| e.provider == ProviderKind::Anthropic),
                "{model} has an Anthropic endpoint"
            );
        }
    }
}
