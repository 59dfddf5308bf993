-- Residency policies (docs/regions.md#residency-policies): where the requests of an
-- account, or of one API key, may be processed. A policy, not a default: a request's
-- X-GammaInfra-Region header (or the geography of a Bedrock profile prefix in `model`)
-- may narrow it, never widen it.
--
-- The value is an X-GammaInfra-Region value (a geography, an AWS region, or a
-- comma-separated list), validated against the catalog when set; NULL means no policy.
ALTER TABLE accounts ADD COLUMN residency TEXT;

-- A key's policy stays in `api_keys.default_region` (0001), which already held a region
-- constraint per key: the column is reused rather than renamed, so existing keys keep
-- their value. From this version on it is enforced as a policy (a header can no longer
-- override it).
