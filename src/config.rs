//! Configuration: a TOML file plus environment variables, the ecosystem's own names first
//! (`ANTHROPIC_API_KEY`, `OPENAI_BASE_URL`, ...) and `GAMMAINFRA_*` for the gateway's own
//! settings. Parsed raw, then validated into [`Config`], with every problem reported at
//! once. Secrets are never serialised or logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::money::Nanos;
use crate::providers::http::Timeouts;

pub use crate::ledger::{Billing, FeeStep};
pub use crate::providers::bedrock::auth::BedrockAuthConfig;
pub use crate::ratelimit::LimitsConfig;
pub use crate::secret::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<String>,
    database_url: Option<String>,
    replica_id: Option<String>,
    admin_token: Option<String>,
    catalog: Option<String>,
    #[serde(default)]
    providers: RawProviders,
    #[serde(default)]
    billing: RawBilling,
    #[serde(default)]
    timeouts: RawTimeouts,
    max_body_bytes: Option<usize>,
    body_timeout_ms: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    lingering_close_bytes: Option<usize>,
    lingering_close_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    #[serde(default)]
    bedrock: RawBedrock,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    payments: RawPayments,
    public_url: Option<String>,
    #[serde(default)]
    mail: RawMail,
    #[serde(default)]
    console: RawConsole,
}

/// `[mail]`: how the console's messages are sent (docs/console.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    smtp_url: Option<String>,
    from: Option<String>,
}

/// `[console]`: the customers' web console (docs/console.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    signup: Option<bool>,
    session_hours: Option<u64>,
}

/// `[payments]`: card top-ups through Stripe Checkout (docs/payments.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayments {
    stripe_secret_key: Option<String>,
    stripe_webhook_secret: Option<String>,
    stripe_api_base: Option<String>,
}

/// `[limits]`: default rate limits (none unless set) and where counters are shared.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    key_requests_per_minute: Option<u64>,
    key_tokens_per_minute: Option<u64>,
    account_requests_per_minute: Option<u64>,
    account_tokens_per_minute: Option<u64>,
    redis_url: Option<String>,
    redis_timeout_ms: Option<u64>,
    redis_key_prefix: Option<String>,
    key_max_concurrent_requests: Option<u32>,
    account_max_concurrent_requests: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBedrock {
    /// Whether to call Bedrock at all (default: when AWS credentials or a Bedrock API key
    /// are configured in the environment).
    enabled: Option<bool>,
    /// Source regions where this deployment's AWS account has model access.
    regions: Option<Vec<String>>,
    /// Replaces `https://bedrock-runtime.{region}.amazonaws.com` for every region.
    endpoint_url: Option<String>,
    /// Replaces `https://bedrock.{region}.amazonaws.com` (control plane, `catalog verify`).
    control_endpoint_url: Option<String>,
    /// Allow image URLs that resolve to loopback, private or link-local addresses.
    allow_private_image_urls: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProviders {
    anthropic: Option<RawProvider>,
    openai: Option<RawProvider>,
    #[serde(default)]
    openai_compatible: Vec<RawCompatible>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    base_url: Option<String>,
    api_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompatible {
    name: String,
    base_url: String,
    api_key: Option<String>,
    /// Name of an environment variable holding the key.
    api_key_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBilling {
    trial_usd: Option<String>,
    min_topup_usd: Option<String>,
    topup_fees: Option<Vec<RawFee>>,
    max_detached_per_account: Option<u32>,
    max_unwritten_usage: Option<usize>,
    flush_timeout_ms: Option<u64>,
    shutdown_drain_ms: Option<u64>,
    lease_ttl_ms: Option<u64>,
    lease_slice_usd: Option<String>,
    lease_idle_ms: Option<u64>,
    commit_before_answer: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFee {
    /// RFC 3339 instant from which this fee applies, as a string. Read as any TOML value
    /// so that an unquoted date (which TOML parses as a date-time) is reported with the
    /// field's name and its quoted form.
    from: toml::Value,
    /// Percent of the credited amount, e.g. "5" or "2.9".
    percent: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect_ms: Option<u64>,
    first_byte_ms: Option<u64>,
    idle_ms: Option<u64>,
    total_ms: Option<u64>,
    pool_idle_ms: Option<u64>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    /// This process's name among the replicas sharing a PostgreSQL ledger
    /// (`GAMMAINFRA_REPLICA_ID`); `None`: a random one. A replica restarted with the
    /// same ID closes the leases its previous run left open at once, instead of after
    /// they expire.
    pub replica_id: Option<String>,
    pub admin_token: Option<Secret>,
    /// A catalog file replacing the built-in one.
    pub catalog_path: Option<PathBuf>,
    pub anthropic: Option<ProviderConfig>,
    pub openai: Option<ProviderConfig>,
    pub openai_compatible: Vec<(String, ProviderConfig)>,
    pub billing: Billing,
    pub timeouts: Timeouts,
    pub max_body_bytes: usize,
    /// The most a client may take to send a request's headers, counted from when the
    /// connection is opened or has answered its previous request: so also the idle
    /// keep-alive timeout.
    pub header_read_timeout: Duration,
    /// Connections served at once; beyond it new connections wait in the kernel's
    /// accept queue until one closes.
    pub max_connections: usize,
    /// The most a chat request's body may take to arrive, once its headers have; then
    /// `408`.
    pub body_timeout: Duration,
    /// After an early answer (401, 413) to a client still sending its body, the most
    /// of the rest that is read and discarded, and for how long, before the connection
    /// is closed: the client gets the answer instead of a connection reset (nginx's
    /// lingering close).
    pub lingering_close_bytes: usize,
    pub lingering_close: Duration,
    /// At shutdown, how long requests in flight (streams included) may take to finish
    /// once accepting has stopped; then their connections are cut and they are settled
    /// for what was delivered.
    pub shutdown_grace: Duration,
    pub bedrock: Option<BedrockConfig>,
    /// Bedrock is off because the file says `[bedrock] enabled = false` (not for want of
    /// credentials): requests it alone could serve are told so.
    pub bedrock_disabled_in_file: bool,
    pub limits: LimitsConfig,
    /// Card top-ups through Stripe Checkout, when configured.
    pub payments: Option<PaymentsConfig>,
    /// `GAMMAINFRA_PUBLIC_URL`: the gateway as customers' browsers reach it, for the
    /// links in the console's emails and the pages Stripe sends customers back to.
    /// Unset: `http://` and the `Host` of the request that needs it.
    pub public_url: Option<String>,
    /// SMTP for the console's emails; `None`: they go to the log and the outbox.
    pub mail: Option<MailConfig>,
    pub console: ConsoleConfig,
}

/// SMTP for the console's emails (docs/console.md).
#[derive(Debug, Clone, PartialEq)]
pub struct MailConfig {
    /// `GAMMAINFRA_SMTP_URL`: `smtps://user:password@host:465` or
    /// `smtp://user:password@host:587?tls=required` (lettre's URL form).
    pub smtp_url: Secret,
    /// `GAMMAINFRA_MAIL_FROM`: the sender, `GammaInfra <billing@example.com>`.
    pub from: String,
}

/// The customers' web console.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleConfig {
    /// Whether anyone may sign up (default true); without it, customers of accounts an
    /// operator made can still log in after setting a password through a reset link.
    pub signup: bool,
    /// How long a login lasts (default 7 days).
    pub session: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            signup: true,
            session: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Card top-ups through Stripe Checkout (docs/payments.md).
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentsConfig {
    /// `STRIPE_SECRET_KEY`: `sk_test_…`, `sk_live_…` or a restricted `rk_…` key.
    pub secret_key: Secret,
    /// `STRIPE_WEBHOOK_SECRET`: the webhook endpoint's signing secret, `whsec_…`.
    pub webhook_secret: Secret,
    /// `GAMMAINFRA_STRIPE_API_BASE`: Stripe's API root (`https://api.stripe.com`).
    pub api_base: String,
}

/// How this deployment calls AWS Bedrock.
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockConfig {
    /// Source regions where the account has model access (default `us-east-1`).
    pub regions: Vec<String>,
    /// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`: one endpoint for every source region.
    pub endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_BEDROCK`: the control plane's endpoint.
    pub control_endpoint_url: Option<String>,
    pub auth: BedrockAuthConfig,
    pub allow_private_image_urls: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub base_url: String,
    pub api_key: Option<Secret>,
}

/// Every problem found in the configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// Where environment variables come from (the process, or a map in tests).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// The default data directory: `$GAMMAINFRA_DATA_DIR`, else `./data`.
fn data_dir(raw: &RawConfig, env: Env<'_>) -> PathBuf {
    env("GAMMAINFRA_DATA_DIR")
        .or_else(|| raw.data_dir.clone())
        .map_or_else(|| PathBuf::from("data"), PathBuf::from)
}

impl Config {
    /// Loads `file` (if any) and the environment, validating everything.
    pub fn load(file: Option<&Path>, env: Env<'_>) -> Result<Self, ConfigError> {
        let raw = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(vec![format!("{}: {e}", p.display())]))?;
                toml::from_str::<RawConfig>(&text)
                    .map_err(|e| ConfigError(vec![format!("{}: {e}", p.display())]))?
            }
            None => RawConfig::default(),
        };
        Self::validate(raw, env)
    }

    /// The catalog file `file` and the environment name, read leniently: for checking
    /// the catalog too when the configuration itself is invalid, so that a start or a
    /// reload reports the problems of both at once.
    pub fn catalog_path_of(file: Option<&Path>, env: Env<'_>) -> Option<PathBuf> {
        if let Some(p) = env("GAMMAINFRA_CATALOG") {
            return Some(PathBuf::from(p));
        }
        let text = std::fs::read_to_string(file?).ok()?;
        let table: toml::Table = toml::from_str(&text).ok()?;
        table
            .get("catalog")
            .and_then(toml::Value::as_str)
            .map(PathBuf::from)
    }

    /// The settings that differ in `new` and that a reload does not apply: they are
    /// read once, when the gateway starts (docs/operations.md, "Reloading").
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut check = |differs: bool, name: &'static str| {
            if differs {
                v.push(name);
            }
        };
        check(self.listen != new.listen, "listen");
        check(self.database_url != new.database_url, "database_url");
        check(self.replica_id != new.replica_id, "replica_id");
        check(self.admin_token != new.admin_token, "admin_token");
        check(self.anthropic != new.anthropic, "providers.anthropic");
        check(self.openai != new.openai, "providers.openai");
        check(
            self.openai_compatible != new.openai_compatible,
            "providers.openai_compatible",
        );
        let bedrock_rest = |b: &Option<BedrockConfig>| {
            b.as_ref().map(|b| {
                (
                    b.endpoint_url.clone(),
                    b.control_endpoint_url.clone(),
                    b.auth.clone(),
                    b.allow_private_image_urls,
                )
            })
        };
        check(
            bedrock_rest(&self.bedrock) != bedrock_rest(&new.bedrock),
            "bedrock (other than regions)",
        );
        check(self.timeouts != new.timeouts, "timeouts");
        check(self.max_body_bytes != new.max_body_bytes, "max_body_bytes");
        check(
            self.header_read_timeout != new.header_read_timeout,
            "header_read_timeout_ms",
        );
        check(
            self.max_connections != new.max_connections,
            "max_connections",
        );
        check(self.body_timeout != new.body_timeout, "body_timeout_ms");
        check(
            (self.lingering_close_bytes, self.lingering_close)
                != (new.lingering_close_bytes, new.lingering_close),
            "lingering_close_bytes / lingering_close_ms",
        );
        check(
            (
                &self.limits.redis_url,
                self.limits.redis_timeout,
                &self.limits.redis_prefix,
            ) != (
                &new.limits.redis_url,
                new.limits.redis_timeout,
                &new.limits.redis_prefix,
            ),
            "limits.redis_*",
        );
        check(
            (
                self.billing.lease_ttl,
                self.billing.lease_slice,
                self.billing.lease_idle,
            ) != (
                new.billing.lease_ttl,
                new.billing.lease_slice,
                new.billing.lease_idle,
            ),
            "billing.lease_*",
        );
        v
    }

    /// The settings that differ in `new` and that a reload applies.
    pub fn reloadable_changes(&self, new: &Config) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.catalog_path != new.catalog_path {
            v.push("catalog");
        }
        if self.bedrock.as_ref().map(|b| &b.regions) != new.bedrock.as_ref().map(|b| &b.regions) {
            v.push("bedrock.regions");
        }
        let rates = |l: &LimitsConfig| (l.key, l.account, l.key_concurrent, l.account_concurrent);
        if rates(&self.limits) != rates(&new.limits) {
            v.push("limits");
        }
        let mut a = self.billing.clone();
        let b = &new.billing;
        (a.lease_ttl, a.lease_slice, a.lease_idle) = (b.lease_ttl, b.lease_slice, b.lease_idle);
        if a != *b {
            v.push("billing");
        }
        if self.shutdown_grace != new.shutdown_grace {
            v.push("shutdown_grace_ms");
        }
        v
    }

    fn validate(raw: RawConfig, env: Env<'_>) -> Result<Self, ConfigError> {
        let mut errs = Vec::new();
        let listen_s = env("GAMMAINFRA_LISTEN")
            .or_else(|| raw.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen = listen_s.parse().unwrap_or_else(|_| {
            errs.push(format!(
                "listen / GAMMAINFRA_LISTEN: `{listen_s}` is not an address such as 127.0.0.1:8080"
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let database_url = env("GAMMAINFRA_DATABASE_URL")
            .or_else(|| raw.database_url.clone())
            .unwrap_or_else(|| {
                format!(
                    "sqlite://{}",
                    data_dir(&raw, env).join("gammainfra.db").display()
                )
            });
        if let Some(problem) = database_url_problem(&database_url) {
            errs.push(format!("database_url / GAMMAINFRA_DATABASE_URL: {problem}"));
        }
        let admin_token = env("GAMMAINFRA_ADMIN_TOKEN")
            .or(raw.admin_token)
            .map(Secret::new);
        if admin_token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            errs.push(
                "admin_token / GAMMAINFRA_ADMIN_TOKEN: must be at least 16 characters".to_owned(),
            );
        }
        let catalog_path = env("GAMMAINFRA_CATALOG").or(raw.catalog).map(PathBuf::from);

        let provider =
            |raw: Option<RawProvider>, key_var: &str, url_var: &str, default_url: &str| {
                let raw = raw.unwrap_or_default();
                let api_key = env(key_var).or(raw.api_key).map(Secret::new);
                let base_url = env(url_var).or(raw.base_url);
                // A provider is configured when it has a key, or an explicit base URL.
                (api_key.is_some() || base_url.is_some()).then(|| ProviderConfig {
                    base_url: base_url.unwrap_or_else(|| default_url.to_owned()),
                    api_key,
                })
            };
        let anthropic = provider(
            raw.providers.anthropic,
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
            "https://api.anthropic.com",
        );
        let openai = provider(
            raw.providers.openai,
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "https://api.openai.com/v1",
        );
        if anthropic.as_ref().is_some_and(|p| p.api_key.is_none()) {
            errs.push("providers.anthropic: ANTHROPIC_API_KEY (or api_key) is required".to_owned());
        }
        let mut openai_compatible = Vec::new();
        for (i, c) in raw.providers.openai_compatible.into_iter().enumerate() {
            if c.name.is_empty()
                || !c
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                errs.push(format!(
                    "providers.openai_compatible[{i}].name: `{}` must be a slug",
                    c.name
                ));
            }
            let api_key = match (&c.api_key_env, c.api_key) {
                (Some(var), _) => match env(var) {
                    Some(k) => Some(Secret::new(k)),
                    None => {
                        errs.push(format!(
                            "providers.openai_compatible[{i}].api_key_env: ${var} is not set"
                        ));
                        None
                    }
                },
                (None, k) => k.map(Secret::new),
            };
            openai_compatible.push((
                c.name,
                ProviderConfig {
                    base_url: c.base_url,
                    api_key,
                },
            ));
        }
        for (name, p) in anthropic
            .iter()
            .map(|p| ("anthropic", p))
            .chain(openai.iter().map(|p| ("openai", p)))
            .chain(openai_compatible.iter().map(|(n, p)| (n.as_str(), p)))
        {
            if let Err(e) = crate::providers::http::BaseUrl::parse(&p.base_url) {
                errs.push(format!("providers.{name}.base_url: {e}"));
            }
        }

        let mut billing = Billing::default();
        if let Some(t) = raw.billing.trial_usd {
            match Nanos::parse_cents(&t) {
                Ok(v) => billing.trial = v,
                Err(e) => errs.push(format!("billing.trial_usd: {e}")),
            }
        }
        if let Some(t) = raw.billing.min_topup_usd {
            match Nanos::parse_cents(&t) {
                Ok(v) => billing.min_topup = v,
                Err(e) => errs.push(format!("billing.min_topup_usd: {e}")),
            }
        }
        if let Some(fees) = raw.billing.topup_fees {
            let mut steps = Vec::new();
            for (i, f) in fees.iter().enumerate() {
                let from = match &f.from {
                    toml::Value::String(s) => time::OffsetDateTime::parse(
                        s,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map_err(|e| format!("`{s}`: {e}")),
                    other => Err(unquoted_instant(other)),
                };
                let pct = Nanos::parse_cents(&f.percent)
                    .ok()
                    .and_then(Nanos::whole_cents);
                match (from, pct) {
                    // A fee above 100% is a typo, and would let a fee outgrow the ledger.
                    (Ok(_), Some(bp)) if bp > 10_000 => errs.push(format!("billing.topup_fees[{i}].percent: `{}` is above 100", f.percent)),
                    (Ok(from), Some(bp)) => steps.push(FeeStep { from, basis_points: bp }),
                    (Err(e), _) => errs.push(format!("billing.topup_fees[{i}].from: {e}")),
                    (_, None) => errs.push(format!("billing.topup_fees[{i}].percent: `{}` is not a percentage like \"5\" or \"2.9\"", f.percent)),
                }
            }
            steps.sort_by_key(|s| s.from);
            billing.topup_fees = steps;
        }
        if let Some(n) = raw.billing.max_detached_per_account {
            if n == 0 {
                errs.push("billing.max_detached_per_account: must be at least 1".to_owned());
            }
            billing.max_detached_per_account = n;
        }
        if let Some(n) = raw.billing.max_unwritten_usage {
            if n == 0 {
                errs.push("billing.max_unwritten_usage: must be at least 1".to_owned());
            }
            billing.max_unwritten_usage = n;
        }
        if raw.max_connections == Some(0) {
            errs.push("max_connections: must be at least 1".to_owned());
        }
        if raw.header_read_timeout_ms == Some(0) {
            errs.push("header_read_timeout_ms: must be at least 1".to_owned());
        }
        if let Some(ms) = raw.billing.flush_timeout_ms {
            billing.flush_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = raw.billing.shutdown_drain_ms {
            billing.shutdown_drain = Duration::from_millis(ms);
        }
        match raw.billing.lease_ttl_ms {
            Some(ms) if ms < 1_000 => {
                errs.push("billing.lease_ttl_ms: must be at least 1000".to_owned());
            }
            Some(ms) => billing.lease_ttl = Duration::from_millis(ms),
            None => {}
        }
        if let Some(b) = raw.billing.commit_before_answer {
            billing.commit_before_answer = b;
        }
        if let Some(ms) = raw.billing.lease_idle_ms {
            billing.lease_idle = Duration::from_millis(ms);
        }
        if let Some(v) = &raw.billing.lease_slice_usd {
            match Nanos::parse_usd(v) {
                Ok(n) if n > Nanos::ZERO => billing.lease_slice = n,
                _ => errs.push(format!(
                    "billing.lease_slice_usd: `{v}` is not a positive dollar amount like \"5\" or \"0.50\""
                )),
            }
        }
        let replica_id = env("GAMMAINFRA_REPLICA_ID")
            .or_else(|| raw.replica_id.clone())
            .filter(|r| !r.is_empty());
        if let Some(r) = &replica_id {
            if r.len() > 64
                || !r
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                errs.push(format!(
                    "replica_id / GAMMAINFRA_REPLICA_ID: `{r}` must be 1 to 64 letters, digits, `-`, `_` or `.`"
                ));
            }
        }
        let t = raw.timeouts;
        let d = Timeouts::default();
        let timeouts = Timeouts {
            connect: t.connect_ms.map_or(d.connect, Duration::from_millis),
            first_byte: t.first_byte_ms.map_or(d.first_byte, Duration::from_millis),
            idle: t.idle_ms.map_or(d.idle, Duration::from_millis),
            total: t.total_ms.map_or(d.total, Duration::from_millis),
            pool_idle: t.pool_idle_ms.map_or(d.pool_idle, Duration::from_millis),
        };
        let bedrock_disabled_in_file = raw.bedrock.enabled == Some(false);
        let bedrock = bedrock_config(raw.bedrock, env, &mut errs);
        let limits = limits_config(raw.limits, env, &mut errs);
        let payments = payments_config(raw.payments, env, &mut errs);
        let public_url = env("GAMMAINFRA_PUBLIC_URL").or(raw.public_url);
        if let Some(Err(e)) = public_url
            .as_deref()
            .map(crate::providers::http::BaseUrl::parse)
        {
            errs.push(format!("public_url / GAMMAINFRA_PUBLIC_URL: {e}"));
        }
        let public_url = public_url.map(|u| u.trim_end_matches('/').to_owned());
        let mail = mail_config(raw.mail, env, &mut errs);
        let console = ConsoleConfig {
            signup: raw.console.signup.unwrap_or(true),
            session: match raw.console.session_hours {
                Some(0) => {
                    errs.push("console.session_hours: must be at least 1".to_owned());
                    ConsoleConfig::default().session
                }
                Some(h) => Duration::from_secs(h.saturating_mul(3600)),
                None => ConsoleConfig::default().session,
            },
        };
        if errs.is_empty() {
            Ok(Config {
                bedrock,
                bedrock_disabled_in_file,
                limits,
                payments,
                public_url,
                mail,
                console,
                listen,
                database_url,
                replica_id,
                admin_token,
                catalog_path,
                anthropic,
                openai,
                openai_compatible,
                billing,
                timeouts,
                max_body_bytes: raw.max_body_bytes.unwrap_or(32 * 1024 * 1024),
                header_read_timeout: raw
                    .header_read_timeout_ms
                    .map_or(Duration::from_secs(30), Duration::from_millis),
                max_connections: raw.max_connections.unwrap_or(4_096),
                body_timeout: raw
                    .body_timeout_ms
                    .map_or(Duration::from_secs(60), Duration::from_millis),
                lingering_close_bytes: raw.lingering_close_bytes.unwrap_or(64 * 1024 * 1024),
                lingering_close: raw
                    .lingering_close_ms
                    .map_or(Duration::from_secs(5), Duration::from_millis),
                shutdown_grace: raw
                    .shutdown_grace_ms
                    .map_or(Duration::from_secs(30), Duration::from_millis),
            })
        } else {
            Err(ConfigError(errs))
        }
    }
}

fn payments_config(
    raw: RawPayments,
    env: Env<'_>,
    errs: &mut Vec<String>,
) -> Option<PaymentsConfig> {
    let key = env("STRIPE_SECRET_KEY").or(raw.stripe_secret_key);
    let secret = env("STRIPE_WEBHOOK_SECRET").or(raw.stripe_webhook_secret);
    let api_base = env("GAMMAINFRA_STRIPE_API_BASE")
        .or(raw.stripe_api_base)
        .unwrap_or_else(|| "https://api.stripe.com".to_owned());
    let (key, secret) = match (key, secret) {
        (None, None) => return None,
        (Some(_), None) => {
            errs.push("payments: STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not; top-ups are credited only from signed webhooks, so both are needed".to_owned());
            return None;
        }
        (None, Some(_)) => {
            errs.push("payments: STRIPE_WEBHOOK_SECRET is set but STRIPE_SECRET_KEY is not; both are needed".to_owned());
            return None;
        }
        (Some(k), Some(s)) => (k, s),
    };
    if !["sk_test_", "sk_live_", "rk_test_", "rk_live_"]
        .iter()
        .any(|p| key.starts_with(p))
    {
        errs.push("payments.stripe_secret_key / STRIPE_SECRET_KEY: a Stripe secret key starts with sk_test_, sk_live_ (or a restricted rk_test_, rk_live_); the publishable pk_ key cannot create Checkout Sessions".to_owned());
    }
    if !secret.starts_with("whsec_") {
        errs.push("payments.stripe_webhook_secret / STRIPE_WEBHOOK_SECRET: a webhook signing secret starts with whsec_ (the Dashboard shows it on the webhook endpoint; `stripe listen` prints one)".to_owned());
    }
    if let Err(e) = crate::providers::http::BaseUrl::parse(&api_base) {
        errs.push(format!(
            "payments.stripe_api_base / GAMMAINFRA_STRIPE_API_BASE: {e}"
        ));
    }
    Some(PaymentsConfig {
        secret_key: Secret::new(key),
        webhook_secret: Secret::new(secret),
        api_base,
    })
}

fn mail_config(raw: RawMail, env: Env<'_>, errs: &mut Vec<String>) -> Option<MailConfig> {
    let url = env("GAMMAINFRA_SMTP_URL").or(raw.smtp_url)?;
    let from = env("GAMMAINFRA_MAIL_FROM").or(raw.from);
    if let Err(e) = crate::mail::smtp_transport(&url) {
        errs.push(format!("mail.smtp_url / GAMMAINFRA_SMTP_URL: {e}"));
    }
    let Some(from) = from else {
        errs.push("mail.from / GAMMAINFRA_MAIL_FROM: the sender is required with an SMTP server, e.g. `GammaInfra <billing@example.com>`".to_owned());
        return None;
    };
    if let Err(e) = from.parse::<lettre::message::Mailbox>() {
        errs.push(format!(
            "mail.from / GAMMAINFRA_MAIL_FROM: `{from}` is not an address such as `GammaInfra <billing@example.com>` ({e})"
        ));
    }
    Some(MailConfig {
        smtp_url: Secret::new(url),
        from,
    })
}

fn limits_config(raw: RawLimits, env: Env<'_>, errs: &mut Vec<String>) -> LimitsConfig {
    let mut positive = |name: &str, v: Option<u64>| {
        if v == Some(0) {
            errs.push(format!(
                "limits.{name}: must be at least 1 (leave it out for no limit)"
            ));
        }
        v.filter(|&n| n > 0)
    };
    let key = crate::ratelimit::Rates {
        rpm: positive("key_requests_per_minute", raw.key_requests_per_minute),
        tpm: positive("key_tokens_per_minute", raw.key_tokens_per_minute),
    };
    let account = crate::ratelimit::Rates {
        rpm: positive(
            "account_requests_per_minute",
            raw.account_requests_per_minute,
        ),
        tpm: positive("account_tokens_per_minute", raw.account_tokens_per_minute),
    };
    let d = LimitsConfig::default();
    let redis_url = env("GAMMAINFRA_REDIS_URL").or(raw.redis_url);
    if let Some(u) = &redis_url {
        // This build has no TLS for Redis (`rediss://`): a lean dependency.
        if !u.starts_with("redis://") {
            errs.push(
                "limits.redis_url / GAMMAINFRA_REDIS_URL: use redis://[:PASSWORD@]HOST:PORT[/DB] (rediss:// is not supported)".to_owned(),
            );
        }
    }
    LimitsConfig {
        key,
        account,
        redis_url: redis_url.map(Secret::new),
        redis_timeout: raw
            .redis_timeout_ms
            .map_or(d.redis_timeout, Duration::from_millis),
        redis_prefix: raw.redis_key_prefix.unwrap_or(d.redis_prefix),
        key_concurrent: concurrent(
            "key_max_concurrent_requests",
            raw.key_max_concurrent_requests,
            d.key_concurrent,
            errs,
        ),
        account_concurrent: concurrent(
            "account_max_concurrent_requests",
            raw.account_max_concurrent_requests,
            d.account_concurrent,
            errs,
        ),
    }
}

/// What is wrong with a database URL, if anything. `sqlite:PATH` is accepted as
/// `sqlite://PATH` is, as sqlx reads both (`sqlite:data/x.db` is the relative file
/// `data/x.db`, `sqlite:/srv/x.db` and `sqlite:///srv/x.db` the absolute `/srv/x.db`). Of a
/// URL with another scheme only the scheme is quoted, so credentials in it are never
/// printed; a bare path has no scheme (and no credentials), and is quoted in the URL
/// to write instead.
fn database_url_problem(url: &str) -> Option<String> {
    if ["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|p| url.starts_with(p))
    {
        return None;
    }
    let scheme = url.split_once(':').map(|(s, _)| s).filter(|s| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    Some(match scheme {
        Some(scheme) => format!(
            "the `{scheme}:` scheme is not supported (use sqlite://PATH or postgres://USER@HOST/DB)"
        ),
        None => format!(
            "must be sqlite://PATH or postgres://USER@HOST/DB, not a bare path; for the file {url} write sqlite://{url}"
        ),
    })
}

/// Why a fee step's `from` that is not a string is refused, with the quoted form to
/// write: TOML reads an unquoted `2026-01-01` as a date, not as a string.
fn unquoted_instant(v: &toml::Value) -> String {
    let (example, got) = match v {
        toml::Value::Datetime(d) => {
            let example = match (d.date, d.time, d.offset) {
                (Some(_), Some(_), Some(_)) => d.to_string(),
                (Some(date), time, _) => format!(
                    "{date}T{}Z",
                    time.map_or_else(|| "00:00:00".to_owned(), |t| t.to_string())
                ),
                (None, _, _) => "2026-06-24T00:00:00Z".to_owned(),
            };
            (
                example,
                format!("unquoted, TOML reads {d} as a date-time, not a string"),
            )
        }
        other => (
            "2026-06-24T00:00:00Z".to_owned(),
            format!("got {}", article(other.type_str())),
        ),
    };
    format!("must be a quoted RFC 3339 string, e.g. from = \"{example}\" ({got})")
}

fn article(word: &str) -> String {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {word}")
    } else {
        format!("a {word}")
    }
}

/// A concurrency limit: at least 1, or the default when unset.
fn concurrent(name: &str, v: Option<u32>, default: u32, errs: &mut Vec<String>) -> u32 {
    match v {
        Some(0) => {
            errs.push(format!("limits.{name}: must be at least 1"));
            default
        }
        Some(n) => n,
        None => default,
    }
}

/// Environment variables that mean "AWS credentials are configured here".
const AWS_CREDENTIAL_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

fn bedrock_config(raw: RawBedrock, env: Env<'_>, errs: &mut Vec<String>) -> Option<BedrockConfig> {
    let bearer = env("AWS_BEARER_TOKEN_BEDROCK").map(Secret::new);
    let has_creds = bearer.is_some() || AWS_CREDENTIAL_VARS.iter().any(|v| env(v).is_some());
    if !raw.enabled.unwrap_or(has_creds) {
        return None;
    }
    let regions: Vec<String> = match env("GAMMAINFRA_BEDROCK_REGIONS") {
        Some(v) => v
            .split(',')
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect(),
        None => raw.regions.unwrap_or_else(|| vec!["us-east-1".to_owned()]),
    };
    for r in &regions {
        if !crate::catalog::check::is_region_name(r) {
            errs.push(format!(
                "bedrock.regions / GAMMAINFRA_BEDROCK_REGIONS: `{r}` is not an AWS region name"
            ));
        }
    }
    if regions.is_empty() {
        errs.push(
            "bedrock.regions / GAMMAINFRA_BEDROCK_REGIONS: list at least one region".to_owned(),
        );
    }
    let endpoint_url = env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME").or(raw.endpoint_url);
    let control_endpoint_url = env("AWS_ENDPOINT_URL_BEDROCK").or(raw.control_endpoint_url);
    for (name, u) in [
        (
            "bedrock.endpoint_url / AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
            &endpoint_url,
        ),
        (
            "bedrock.control_endpoint_url / AWS_ENDPOINT_URL_BEDROCK",
            &control_endpoint_url,
        ),
    ] {
        if let Some(u) = u {
            if let Err(e) = crate::providers::http::BaseUrl::parse(u) {
                errs.push(format!("{name}: {e}"));
            }
        }
    }
    Some(BedrockConfig {
        regions,
        endpoint_url,
        control_endpoint_url,
        auth: match bearer {
            Some(t) => BedrockAuthConfig::BearerToken(t),
            None => BedrockAuthConfig::CredentialChain,
        },
        allow_private_image_urls: raw.allow_private_image_urls.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(toml_text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let raw: RawConfig = toml::from_str(toml_text).expect("toml");
        Config::validate(raw, &|k| map.get(k).cloned())
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            "listen = \"127.0.0.1:1\"\n[providers.openai]\nbase_url = \"http://x/v1\"",
            &[
                ("GAMMAINFRA_LISTEN", "127.0.0.1:9"),
                ("OPENAI_API_KEY", "sk-1"),
                ("ANTHROPIC_API_KEY", "k"),
            ],
        )
        .expect("valid");
        assert_eq!(c.listen.port(), 9);
        let o = c.openai.expect("openai");
        assert_eq!(o.base_url, "http://x/v1");
        assert_eq!(o.api_key.expect("key").expose(), "sk-1");
        assert_eq!(
            c.anthropic.expect("anthropic").base_url,
            "https://api.anthropic.com"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let e = load(
            "listen = \"nope\"\n[billing]\ntrial_usd = \"x\"\n[[providers.openai_compatible]]\nname = \"a b\"\nbase_url = \"ftp://x\"",
            &[("GAMMAINFRA_ADMIN_TOKEN", "short")],
        )
        .expect_err("invalid");
        assert_eq!(e.0.len(), 5, "{e}");
    }

    #[test]
    fn payments_need_both_stripe_secrets_of_the_right_kinds() {
        let c = load("", &[]).expect("no payments");
        assert!(c.payments.is_none());
        let c = load(
            "public_url = \"https://gw.example.com/\"\n[payments]\nstripe_secret_key = \"sk_test_file\"",
            &[("STRIPE_WEBHOOK_SECRET", "whsec_env")],
        )
        .expect("valid");
        let p = c.payments.expect("payments");
        assert_eq!(p.secret_key.expose(), "sk_test_file");
        assert_eq!(p.webhook_secret.expose(), "whsec_env");
        assert_eq!(p.api_base, "https://api.stripe.com");
        assert_eq!(c.public_url.as_deref(), Some("https://gw.example.com"));
        let one = load("", &[("STRIPE_SECRET_KEY", "sk_test_x")]).expect_err("one secret");
        assert!(
            one.to_string().contains("STRIPE_WEBHOOK_SECRET is not"),
            "{one}"
        );
        let kinds = load(
            "",
            &[
                ("STRIPE_SECRET_KEY", "pk_test_x"),
                ("STRIPE_WEBHOOK_SECRET", "secret"),
                ("GAMMAINFRA_STRIPE_API_BASE", "ftp://x"),
                ("GAMMAINFRA_PUBLIC_URL", "gw.example.com"),
            ],
        )
        .expect_err("wrong kinds");
        assert_eq!(kinds.0.len(), 4, "{kinds}");
        assert!(kinds.to_string().contains("publishable pk_ key"), "{kinds}");
        assert!(kinds.to_string().contains("starts with whsec_"), "{kinds}");
    }

    #[test]
    fn mail_needs_a_valid_smtp_url_and_sender_and_console_settings_are_checked() {
        let c = load("", &[]).expect("defaults");
        assert!(c.mail.is_none(), "the outbox by default");
        assert_eq!(c.console, ConsoleConfig::default());
        assert!(c.console.signup);
        let c = load(
            "[mail]\nfrom = \"GammaInfra <billing@example.com>\"\n[console]\nsignup = false\nsession_hours = 12",
            &[("GAMMAINFRA_SMTP_URL", "smtps://user:pw@smtp.example.com:465")],
        )
        .expect("valid");
        let m = c.mail.expect("mail");
        assert_eq!(m.smtp_url.expose(), "smtps://user:pw@smtp.example.com:465");
        assert!(
            !format!("{m:?}").contains("pw@"),
            "the URL's password is not printed"
        );
        assert!(!c.console.signup);
        assert_eq!(c.console.session, Duration::from_secs(12 * 3600));
        let e = load(
            "[console]\nsession_hours = 0",
            &[("GAMMAINFRA_SMTP_URL", "smtp://smtp.example.com")],
        )
        .expect_err("invalid");
        let e = e.to_string();
        assert!(
            e.contains("GAMMAINFRA_MAIL_FROM: the sender is required"),
            "{e}"
        );
        assert!(
            e.contains("console.session_hours: must be at least 1"),
            "{e}"
        );
        let e = load(
            "",
            &[
                ("GAMMAINFRA_SMTP_URL", "ftp://smtp.example.com"),
                ("GAMMAINFRA_MAIL_FROM", "not an address"),
            ],
        )
        .expect_err("invalid")
        .to_string();
        assert!(e.contains("mail.smtp_url / GAMMAINFRA_SMTP_URL"), "{e}");
        assert!(e.contains("`not an address` is not an address"), "{e}");
    }

    #[test]
    fn fee_schedule_switches_on_2026_06_24() {
        let b = Billing::default();
        let ten = Nanos::from_cents(1000);
        assert_eq!(
            b.topup_fee(ten, time::macros::datetime!(2026-06-23 23:59:59 UTC)),
            Nanos::from_cents(30)
        );
        assert_eq!(
            b.topup_fee(ten, time::macros::datetime!(2026-06-24 0:00 UTC)),
            Nanos::from_cents(50)
        );
        // Half-up to the cent: 5% of $10.09 = 50.45 cents → 50; of $10.10 = 50.5 → 51.
        let at = time::macros::datetime!(2026-11-25 0:00 UTC);
        assert_eq!(
            b.topup_fee(Nanos::from_cents(1009), at),
            Nanos::from_cents(50)
        );
        assert_eq!(
            b.topup_fee(Nanos::from_cents(1010), at),
            Nanos::from_cents(51)
        );
    }

    #[test]
    fn bedrock_is_configured_by_credentials_in_the_environment() {
        assert!(load("", &[]).expect("valid").bedrock.is_none());
        let c = load("", &[("AWS_PROFILE", "prod")]).expect("valid");
        let b = c.bedrock.expect("bedrock");
        assert_eq!(b.regions, vec!["us-east-1".to_owned()]);
        assert!(matches!(b.auth, BedrockAuthConfig::CredentialChain));
        let c = load(
            "",
            &[
                ("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-x"),
                ("GAMMAINFRA_BEDROCK_REGIONS", "us-east-1, eu-central-1"),
                ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://127.0.0.1:9"),
            ],
        )
        .expect("valid");
        let b = c.bedrock.expect("bedrock");
        assert!(matches!(b.auth, BedrockAuthConfig::BearerToken(_)));
        assert_eq!(
            b.regions,
            vec!["us-east-1".to_owned(), "eu-central-1".to_owned()]
        );
        assert_eq!(b.endpoint_url.as_deref(), Some("http://127.0.0.1:9"));
        let c = load("[bedrock]\nenabled = true\nregions = [\"eu-west-1\"]", &[]).expect("valid");
        assert_eq!(
            c.bedrock.expect("bedrock").regions,
            vec!["eu-west-1".to_owned()]
        );
        let e = load(
            "",
            &[
                ("AWS_ACCESS_KEY_ID", "a"),
                ("GAMMAINFRA_BEDROCK_REGIONS", "mars"),
            ],
        )
        .expect_err("bad region");
        assert!(e.to_string().contains("mars"), "{e}");
    }

    #[test]
    fn a_database_path_is_refused_with_the_url_to_write() {
        let problems = |url: &str| {
            load("", &[("GAMMAINFRA_DATABASE_URL", url)])
                .err()
                .map(|e| e.0)
                .unwrap_or_default()
        };
        assert_eq!(
            problems("/srv/gi.db"),
            vec!["database_url / GAMMAINFRA_DATABASE_URL: must be sqlite://PATH or postgres://USER@HOST/DB, not a bare path; for the file /srv/gi.db write sqlite:///srv/gi.db".to_owned()]
        );
        assert_eq!(
            problems("data/gi.db"),
            vec!["database_url / GAMMAINFRA_DATABASE_URL: must be sqlite://PATH or postgres://USER@HOST/DB, not a bare path; for the file data/gi.db write sqlite://data/gi.db".to_owned()]
        );
        // Only the scheme of another URL is quoted: it may carry a password.
        assert_eq!(
            problems("mysql://root:hunter2@db/gi"),
            vec!["database_url / GAMMAINFRA_DATABASE_URL: the `mysql:` scheme is not supported (use sqlite://PATH or postgres://USER@HOST/DB)".to_owned()]
        );
        // sqlx reads `sqlite:PATH` as `sqlite://PATH`: both are accepted.
        for ok in [
            "sqlite:gi.db",
            "sqlite:/srv/gi.db",
            "sqlite://gi.db",
            "sqlite:///srv/gi.db",
            "postgres://gi@db/gi",
            "postgresql://gi@db/gi",
        ] {
            assert_eq!(problems(ok), Vec::<String>::new(), "{ok}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        assert_eq!(format!("{:?}", Secret::new("sk-secret")), "[redacted]");
    }
}

/// Property tests of the default top-up fee schedule (docs/billing.md, "Top-ups"): 3%
/// for top-ups made up to and including 2026-06-23 (UTC), 5% from 2026-06-24 00:00 UTC,
/// rounded half-up to the cent. Expected fees are computed independently.
#[cfg(test)]
mod topup_fee_props {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime, UtcOffset};

    /// The first instant of the 5% fee.
    const SWITCH: OffsetDateTime = datetime!(2026-06-24 0:00 UTC);

    /// `cents × percent / 100`, rounded half-up to the cent: ⌊(2 × cents × percent + 100) / 200⌋.
    fn expected(cents: i64, percent: i64) -> Nanos {
        Nanos::from_cents((2 * cents * percent + 100) / 200)
    }

    fn percent_at(at: OffsetDateTime) -> i64 {
        if at < SWITCH {
            3
        } else {
            5
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every top-up the handler accepts ($10.00 to $1,000,000.00), at any instant from
        /// 2000 to 2100.
        #[test]
        fn fee_is_the_dated_percentage_rounded_half_up(
            cents in 1_000i64..=100_000_000,
            secs in 946_684_800i64..4_102_444_800,
            nanos in 0u32..1_000_000_000,
        ) {
            let at = OffsetDateTime::from_unix_timestamp(secs)
                .expect("in range")
                .replace_nanosecond(nanos)
                .expect("nanosecond");
            let fee = Billing::default().topup_fee(Nanos::from_cents(cents), at);
            prop_assert_eq!(fee, expected(cents, percent_at(at)));
        }

        /// Within a day of the switch, to the nanosecond and in any UTC offset: the
        /// schedule compares instants, not wall-clock dates.
        #[test]
        fn the_switch_is_at_midnight_utc_to_the_nanosecond(
            cents in 1_000i64..=100_000_000,
            before in 1i64..=86_400_000_000_000,
            offset_minutes in -(14 * 60)..=(14 * 60),
        ) {
            let b = Billing::default();
            let offset = UtcOffset::from_whole_seconds(offset_minutes * 60).expect("offset");
            let amount = Nanos::from_cents(cents);
            let earlier = (SWITCH - Duration::nanoseconds(before)).to_offset(offset);
            let later = (SWITCH + Duration::nanoseconds(before - 1)).to_offset(offset);
            prop_assert_eq!(b.topup_fee(amount, earlier), expected(cents, 3));
            prop_assert_eq!(b.topup_fee(amount, later), expected(cents, 5));
        }

        /// Half-up: the fee is more than the exact percentage minus half a cent and at most
        /// the exact percentage plus half a cent (a tie rounds up); it grows with the amount.
        #[test]
        fn fee_is_within_half_a_cent_and_monotonic(cents in 1_000i64..100_000_000) {
            let b = Billing::default();
            let at = SWITCH;
            let fee = b.topup_fee(Nanos::from_cents(cents), at).nanos();
            // In nano-dollars (exact: 5% of a cent is half a million nano-dollars).
            let exact = i128::from(cents) * 500_000;
            let diff = i128::from(fee) - exact;
            prop_assert!(diff > -5_000_000 && diff <= 5_000_000, "{}", diff);
            let next = b.topup_fee(Nanos::from_cents(cents + 1), at);
            prop_assert!(next.nanos() >= fee);
        }
    }

    #[test]
    fn the_documented_examples() {
        let b = Billing::default();
        let before = datetime!(2026-06-23 23:59:59.999999999 UTC);
        // (credited, fee before the switch, fee from the switch) in cents: docs/billing.md.
        for (credited, fee3, fee5) in [
            (1000, 30, 50),
            (1009, 30, 50),
            (1010, 30, 51),
            (2500, 75, 125),
        ] {
            let c = Nanos::from_cents(credited);
            assert_eq!(
                b.topup_fee(c, before),
                Nanos::from_cents(fee3),
                "{credited}"
            );
            assert_eq!(
                b.topup_fee(c, SWITCH),
                Nanos::from_cents(fee5),
                "{credited}"
            );
        }
        // Local time already on the 24th, but still the 23rd in UTC: 3%.
        let tokyo = datetime!(2026-06-24 08:59:59 +09:00);
        assert_eq!(
            b.topup_fee(Nanos::from_cents(1000), tokyo),
            Nanos::from_cents(30)
        );
    }

    #[test]
    fn an_unquoted_fee_date_names_the_field_and_its_quoted_form() {
        let problems = |text: &str| {
            let raw: RawConfig = toml::from_str(text).expect("toml");
            Config::validate(raw, &|_| None).expect_err("invalid").0
        };
        assert_eq!(
            problems("[[billing.topup_fees]]\nfrom = 2026-01-01\npercent = \"5\""),
            vec!["billing.topup_fees[0].from: must be a quoted RFC 3339 string, e.g. from = \"2026-01-01T00:00:00Z\" (unquoted, TOML reads 2026-01-01 as a date-time, not a string)".to_owned()]
        );
        assert_eq!(
            problems("[[billing.topup_fees]]\nfrom = \"2026-01-01T00:00:00Z\"\npercent = \"3\"\n[[billing.topup_fees]]\nfrom = 2026-06-24T00:00:00Z\npercent = \"5\""),
            vec!["billing.topup_fees[1].from: must be a quoted RFC 3339 string, e.g. from = \"2026-06-24T00:00:00Z\" (unquoted, TOML reads 2026-06-24T00:00:00Z as a date-time, not a string)".to_owned()]
        );
        assert_eq!(
            problems("[[billing.topup_fees]]\nfrom = 2026\npercent = \"5\""),
            vec!["billing.topup_fees[0].from: must be a quoted RFC 3339 string, e.g. from = \"2026-06-24T00:00:00Z\" (got an integer)".to_owned()]
        );
        assert_eq!(
            problems("[[billing.topup_fees]]\nfrom = \"tomorrow\"\npercent = \"5\""),
            vec![
                "billing.topup_fees[0].from: `tomorrow`: the 'year' component could not be parsed"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn a_fee_above_100_percent_is_a_configuration_error() {
        let raw: RawConfig = toml::from_str(
            "[[billing.topup_fees]]\nfrom = \"2026-01-01T00:00:00Z\"\npercent = \"100.01\"",
        )
        .expect("toml");
        let e = Config::validate(raw, &|_| None).expect_err("above 100%");
        assert!(e.to_string().contains("above 100"), "{e}");
    }
}
