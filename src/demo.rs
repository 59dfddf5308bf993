//! `gammainfra serve --demo`: the whole path offline. Simulated Bedrock (SigV4 checked,
//! profile rules enforced, event-stream framing), Anthropic, OpenAI and an
//! OpenAI-compatible server on loopback (the same ones the tests use), a fresh database in a temporary
//! directory, an account with the trial credit, and a curl line that works; a simulated
//! Stripe takes card top-ups and delivers its signed events to the gateway.

use std::net::SocketAddr;

use crate::config::{BedrockAuthConfig, BedrockConfig, Config, ProviderConfig, Secret};
use crate::gateway::StartError;
use crate::ledger::keys;
use crate::simulators::{self, Simulator};

/// The running simulators; dropping this stops them.
pub struct Demo {
    /// What `catalog verify` needs to reach the simulated Bedrock.
    pub aws: AwsDemo,
    pub bedrock: Simulator,
    pub anthropic: Simulator,
    pub openai: Simulator,
    /// The OpenAI-compatible server `local` (the OpenAI simulator again).
    pub local: Simulator,
    /// Card top-ups: Checkout Sessions, a payment page and signed webhooks.
    pub stripe: simulators::StripeSim,
    /// Holds the demo database until the demo ends.
    _dir: DemoDir,
}

/// The demo's catalog is the built-in one plus this model, served by the simulated
/// OpenAI-compatible server `local`, so that every kind of provider can be tried.
const LOCAL_MODEL: &str = r#"
[[models]]
id = "local/sim-echo"
name = "A self-hosted model (the demo's simulated OpenAI-compatible server)"
owned_by = "local"
context_window = 32768
max_output_tokens = 4096
capabilities = ["tools", "streaming"]

[[models.endpoints]]
provider = "openai_compatible:local"
upstream_id = "sim-echo"
region = "eu-west-1"
verified = { date = "2026-12-01", method = "the demo's simulated server lists it in GET /v1/models" }
  [models.endpoints.pricing]
  input = "0.10"
  output = "0.10"
  source = { kind = "provider", url = "https://example.com/demo-price-sheet", read = "2026-12-01" }
"#;

/// The simulated AWS account's credentials, endpoint and regions.
pub struct AwsDemo {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub endpoint: String,
    /// Comma-separated, as `GAMMAINFRA_BEDROCK_REGIONS`.
    pub regions: String,
}

impl AwsDemo {
    /// The environment under which `gammainfra catalog verify` checks the catalog
    /// against the simulated Bedrock, as shell assignments.
    pub fn verify_env(&self) -> String {
        format!(
            "AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_REGION=us-east-1 AWS_ENDPOINT_URL_BEDROCK={} AWS_ENDPOINT_URL_BEDROCK_RUNTIME={} GAMMAINFRA_BEDROCK_REGIONS={}",
            self.access_key_id, self.secret_access_key, self.endpoint, self.endpoint, self.regions
        )
    }
}

/// The source regions of the built-in catalog's Bedrock endpoints, us-east-1 first.
fn bedrock_regions() -> Result<Vec<String>, StartError> {
    let catalog = crate::catalog::Catalog::builtin()
        .map_err(|e| StartError::Provider(format!("the built-in catalog: {e}")))?;
    let mut regions: std::collections::BTreeSet<String> = catalog
        .models
        .iter()
        .flat_map(|m| m.endpoints.iter())
        .filter_map(|e| e.bedrock.as_ref().map(|b| b.source_region.clone()))
        .collect();
    let first = regions.take("us-east-1");
    Ok(first.into_iter().chain(regions).collect())
}

struct DemoDir(std::path::PathBuf);

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts the simulators and returns a configuration pointing the gateway at them.
pub async fn prepare(listen: Option<SocketAddr>) -> Result<(Demo, Config), StartError> {
    let io = |e: std::io::Error| {
        StartError::Provider(format!("cannot start the simulated providers: {e}"))
    };
    let anthropic_key = keys::random_id("sk-ant-sim-");
    let openai_key = keys::random_id("sk-sim-");
    let anthropic = simulators::start_anthropic(&anthropic_key)
        .await
        .map_err(io)?;
    let openai = simulators::start_openai(&openai_key).await.map_err(io)?;
    // A self-hosted OpenAI-compatible server (a vLLM, say) declared in eu-west-1.
    let local_key = keys::random_id("sk-local-");
    let local = simulators::start_openai(&local_key).await.map_err(io)?;
    let aws_key = keys::random_id("AKIDDEMO").to_ascii_uppercase();
    let aws_secret = keys::random_id("demo-secret-");
    // Every source region of the catalog's Bedrock endpoints, us-east-1 first: each
    // profile (`us.`, `eu.`, `apac.`, `jp.`, `au.`, `global.`) and on-demand model can
    // be called, so region constraints show what they do.
    let regions = bedrock_regions()?;
    let mut sim = simulators::BedrockSimConfig::new(&aws_key, &aws_secret);
    sim.accessible_regions = regions.clone();
    let bedrock = simulators::start_bedrock(sim).await.map_err(io)?;
    let dir = std::env::temp_dir().join(keys::random_id("gammainfra-demo-"));
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut config =
        Config::load(None, &|_| None).map_err(|e| StartError::Provider(e.to_string()))?;
    if let Some(l) = listen {
        config.listen = l;
    }
    config.database_url = format!("sqlite://{}", dir.join("demo.db").display());
    let catalog = dir.join("catalog.toml");
    std::fs::write(
        &catalog,
        format!("{}\n{LOCAL_MODEL}", crate::catalog::DEFAULT_CATALOG),
    )
    .map_err(io)?;
    config.catalog_path = Some(catalog);
    config.openai_compatible = vec![(
        "local".to_owned(),
        ProviderConfig {
            base_url: local.base_url(),
            api_key: Some(Secret::new(local_key)),
        },
    )];
    config.admin_token = Some(Secret::new(keys::random_id("demo-admin-")));
    config.anthropic = Some(ProviderConfig {
        base_url: anthropic.base_url(),
        api_key: Some(Secret::new(anthropic_key)),
    });
    config.bedrock = Some(BedrockConfig {
        regions,
        endpoint_url: Some(bedrock.base_url()),
        control_endpoint_url: Some(bedrock.base_url()),
        auth: BedrockAuthConfig::Static {
            access_key_id: aws_key.clone(),
            secret_access_key: Secret::new(aws_secret.clone()),
            session_token: None,
        },
        allow_private_image_urls: false,
    });
    config.openai = Some(ProviderConfig {
        base_url: openai.base_url(),
        api_key: Some(Secret::new(openai_key)),
    });
    let stripe_key = keys::random_id("sk_test_demo");
    let webhook_secret = keys::random_id("whsec_demo");
    let stripe = simulators::start_stripe(simulators::StripeSimConfig::new(
        &stripe_key,
        &webhook_secret,
    ))
    .await
    .map_err(io)?;
    config.payments = Some(crate::config::PaymentsConfig {
        secret_key: Secret::new(stripe_key),
        webhook_secret: Secret::new(webhook_secret),
        api_base: stripe.base_url(),
    });
    let aws = AwsDemo {
        access_key_id: aws_key,
        secret_access_key: aws_secret,
        endpoint: bedrock.base_url(),
        regions: config
            .bedrock
            .as_ref()
            .map(|b| b.regions.join(","))
            .unwrap_or_default(),
    };
    Ok((
        Demo {
            aws,
            local,
            bedrock,
            anthropic,
            openai,
            stripe,
            _dir: DemoDir(dir),
        },
        config,
    ))
}

impl Demo {
    /// The gateway listens on `addr`: the simulated Stripe delivers its events there.
    pub fn listening(&self, addr: SocketAddr) {
        self.stripe
            .set_webhook_url(format!("http://{addr}/webhooks/stripe"));
    }
}

/// How this program was started (`target/debug/gammainfra` under `cargo run`), for
/// the command lines the banner prints; `gammainfra` when unknown.
fn program() -> String {
    std::env::args()
        .next()
        .filter(|p| !p.is_empty() && !p.contains(char::is_whitespace))
        .unwrap_or_else(|| "gammainfra".to_owned())
}

impl Demo {
    /// What the demo prints once it listens: the account, the exports that
    /// docs/quickstart.md's commands use, one curl line per headline feature and a
    /// `catalog verify` line that succeeds against the simulated Bedrock.
    pub fn banner(&self, addr: SocketAddr, api_key: &str, admin_token: &str) -> String {
        let program = program();
        let verify_env = self.aws.verify_env();
        let regions = &self.aws.regions;
        // `-i` where the answer's headers are the point.
        let chat = |flags: &str, headers: &str, body: &str| {
            format!(
                r#"curl -s{flags} http://{addr}/v1/chat/completions -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json"{headers} -d '{body}'"#
            )
        };
        let hello = |model: &str| {
            format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"Hello!"}}]}}"#)
        };
        let bedrock = chat("", "", &hello("anthropic/claude-sonnet-4-6"));
        let anthropic = chat("", "", &hello("claude-sonnet-4-6"));
        let streaming = chat(
            "N",
            "",
            r#"{"model":"openai/gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello!"}]}"#,
        );
        let local = chat("i", "", &hello("local/sim-echo"));
        let eu = chat(
            "i",
            r#" -H "X-GammaInfra-Region: eu""#,
            &hello("anthropic/claude-sonnet-4-6"),
        );
        let apac = chat(
            "i",
            r#" -H "X-GammaInfra-Region: apac""#,
            &hello("amazon/nova-pro-v1"),
        );
        let refused = chat(
            "i",
            r#" -H "X-GammaInfra-Region: eu""#,
            &hello("meta/llama3-70b-instruct"),
        );
        let failover = chat(
            "i",
            "",
            r#"{"model":"anthropic/claude-sonnet-4-6","messages":[{"role":"user","content":"Hello! [[sim:error 503 @global.anthropic.claude-sonnet-4-6]]"}]}"#,
        );
        format!(
            r#"GammaInfra demo: gateway on http://{addr} with simulated AWS Bedrock (source regions {regions}), Anthropic, OpenAI, an OpenAI-compatible server and Stripe (offline).
Demo account created with $3.00 trial credit. API key: {api_key}
Admin token (for /admin/v1): {admin_token}

For the commands of docs/quickstart.md, run this in another shell:

export GAMMAINFRA_URL=http://{addr} GAMMAINFRA_API_KEY={api_key} GAMMAINFRA_ADMIN_TOKEN={admin_token}

Try it (the X-GammaInfra-* headers of each answer say where it went and what it cost):

Bedrock, the cheapest endpoint of Claude Sonnet 4.6 (its global. profile):

{bedrock}

Anthropic's own API (its model ID), and OpenAI, streamed:

{anthropic}

{streaming}

A self-hosted model on an OpenAI-compatible server (X-GammaInfra-Provider: openai_compatible:local):

{local}

Only in the EU: Bedrock's eu. profile answers (X-GammaInfra-Upstream-Model: eu.anthropic.claude-sonnet-4-6):

{eu}

Only in Asia-Pacific: Amazon Nova Pro through the apac. profile:

{apac}

A region the model is not served in: refused before anything is sent or charged (400 no_endpoint_in_region):

{refused}

Failover: the simulated Bedrock fails the global. profile with a 503, the next endpoint answers, and X-GammaInfra-Route lists both:

{failover}

Credits, and every charge with its provider, upstream ID, region and cost:

curl -s http://{addr}/v1/credits -H "Authorization: Bearer {api_key}"
curl -s http://{addr}/v1/usage -H "Authorization: Bearer {api_key}"

Every Bedrock ID of the catalog checked against the simulated AWS account (add --invoke for one call each):

{verify_env} {program} catalog verify

A $10.00 card top-up through the simulated Stripe (open the "url" it answers, press Pay):

curl -s http://{addr}/v1/credits/checkout -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json" -d '{{"amount_usd":"10.00"}}'

The web console, where a new customer signs up (the verification link is in the
server's log, and in the outbox: GET /admin/v1/outbox), creates keys, watches usage and
tops up through the simulated Stripe:

http://{addr}/console/signup

Press Ctrl-C to stop."#
        )
    }
}
