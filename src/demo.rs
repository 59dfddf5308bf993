//! `gammainfra serve --demo`: the whole path offline. Simulated Bedrock (SigV4 checked,
//! profile rules enforced, event-stream framing), Anthropic and OpenAI servers on loopback (the same ones the tests use), a fresh database in a temporary
//! directory, an account with the trial credit, and a curl line that works; a simulated
//! Stripe takes card top-ups and delivers its signed events to the gateway.

use std::net::SocketAddr;

use crate::config::{BedrockAuthConfig, BedrockConfig, Config, ProviderConfig, Secret};
use crate::gateway::StartError;
use crate::ledger::keys;
use crate::simulators::{self, Simulator};

/// The running simulators; dropping this stops them.
pub struct Demo {
    pub bedrock: Simulator,
    pub anthropic: Simulator,
    pub openai: Simulator,
    /// Card top-ups: Checkout Sessions, a payment page and signed webhooks.
    pub stripe: simulators::StripeSim,
    /// Holds the demo database until the demo ends.
    _dir: DemoDir,
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
    let aws_key = keys::random_id("AKIDDEMO").to_ascii_uppercase();
    let aws_secret = keys::random_id("demo-secret-");
    let bedrock =
        simulators::start_bedrock(simulators::BedrockSimConfig::new(&aws_key, &aws_secret))
            .await
            .map_err(io)?;
    let dir = std::env::temp_dir().join(keys::random_id("gammainfra-demo-"));
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut config =
        Config::load(None, &|_| None).map_err(|e| StartError::Provider(e.to_string()))?;
    if let Some(l) = listen {
        config.listen = l;
    }
    config.database_url = format!("sqlite://{}", dir.join("demo.db").display());
    config.admin_token = Some(Secret::new(keys::random_id("demo-admin-")));
    config.anthropic = Some(ProviderConfig {
        base_url: anthropic.base_url(),
        api_key: Some(Secret::new(anthropic_key)),
    });
    config.bedrock = Some(BedrockConfig {
        regions: vec!["us-east-1".to_owned()],
        endpoint_url: Some(bedrock.base_url()),
        control_endpoint_url: Some(bedrock.base_url()),
        auth: BedrockAuthConfig::Static {
            access_key_id: aws_key,
            secret_access_key: Secret::new(aws_secret),
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
    Ok((
        Demo {
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

/// What the demo prints once it listens.
pub fn banner(addr: SocketAddr, api_key: &str, admin_token: &str) -> String {
    format!(
        r#"GammaInfra demo: gateway on http://{addr} with simulated AWS Bedrock, Anthropic and OpenAI upstreams (offline).
Demo account created with $3.00 trial credit. API key: {api_key}
Admin token (for /admin/v1): {admin_token}

Try it:

curl -s http://{addr}/v1/chat/completions -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json" -d '{{"model":"anthropic/claude-sonnet-4-6","messages":[{{"role":"user","content":"Hello!"}}]}}'

Streaming:

curl -sN http://{addr}/v1/chat/completions -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json" -d '{{"model":"openai/gpt-4o-mini","stream":true,"stream_options":{{"include_usage":true}},"messages":[{{"role":"user","content":"Hello!"}}]}}'

Credits: curl -s http://{addr}/v1/credits -H "Authorization: Bearer {api_key}"

Bedrock, with its verified IDs and a region constraint:

curl -s http://{addr}/v1/chat/completions -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json" -H "X-GammaInfra-Region: us-east-1" -d '{{"model":"meta/llama3-70b-instruct","messages":[{{"role":"user","content":"Hello!"}}]}}'

A $10.00 card top-up through the simulated Stripe (open the "url" it answers, press Pay):

curl -s http://{addr}/v1/credits/checkout -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json" -d '{{"amount_usd":"10.00"}}'

The web console, where a new customer signs up (the verification link is in the
server's log, and in the outbox: GET /admin/v1/outbox), creates keys, watches usage and
tops up through the simulated Stripe:

http://{addr}/console/signup

Press Ctrl-C to stop."#
    )
}
