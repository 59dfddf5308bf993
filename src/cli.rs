//! The `gammainfra` command line. `serve` runs the gateway; `catalog check` validates a
//! catalog file; `accounts`, `keys`, `topups`, `grants`, `stripe`, `credits` and `reload` call a running
//! gateway's admin API (so that the gateway's in-memory keys and balances stay exact); `db
//! migrate-to` copies a stopped gateway's SQLite database into PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::Full;

use gammainfra::catalog::Catalog;
use gammainfra::config::{process_env, Config};
use gammainfra::providers::http::{HttpClient, Timeouts};

#[derive(Parser)]
#[command(
    name = "gammainfra",
    version,
    about = "GammaInfra: an LLM API gateway with verified model IDs, region-constrained routing and exact prepaid billing"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// TOML configuration file.
        #[arg(long, env = "GAMMAINFRA_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address (overrides GAMMAINFRA_LISTEN and the file).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Run offline against built-in simulated providers, with a demo account.
        #[arg(long)]
        demo: bool,
    },
    /// Catalog tools.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Accounts (through a running gateway's admin API).
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// API keys (through a running gateway's admin API).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Top-ups (through a running gateway's admin API).
    Topups {
        #[command(subcommand)]
        command: TopupsCommand,
    },
    /// Credit granted by an operator, with a reason (through a running gateway's admin
    /// API).
    Grants {
        #[command(subcommand)]
        command: GrantsCommand,
    },
    /// Stripe: the webhook events received and what each did (through a running
    /// gateway's admin API).
    Stripe {
        #[command(subcommand)]
        command: StripeCommand,
    },
    /// Credits (through a running gateway's admin API).
    Credits {
        #[command(subcommand)]
        command: CreditsCommand,
    },
    /// Reload a running gateway's catalog and configuration (through its admin API;
    /// the same as sending it SIGHUP). A refused reload changes nothing.
    Reload {
        #[command(flatten)]
        admin: Admin,
    },
    /// Database tools (on a stopped gateway's database).
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
pub enum DbCommand {
    /// Copy the SQLite database into an empty PostgreSQL database or schema, every
    /// ledger entry as it is, verified before it is committed (all or nothing). Stop
    /// the gateway first.
    MigrateTo {
        /// The target: postgres://USER@HOST/DB, with `?options[search_path]=SCHEMA` to
        /// copy into a schema of its own.
        to: String,
        /// The source, sqlite://PATH (default: the configured database, as `serve`
        /// opens it: GAMMAINFRA_DATABASE_URL, the file's `database_url`, or
        /// sqlite://DATA_DIR/gammainfra.db).
        #[arg(long)]
        from: Option<String>,
        /// TOML configuration file, for the default source.
        #[arg(long, env = "GAMMAINFRA_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Check a catalog file (default: the built-in catalog) against every rule.
    Check { file: Option<PathBuf> },
    /// Ask this deployment's Bedrock control plane whether every routable Bedrock ID of
    /// the catalog exists in its form and is accessible; exits non-zero on a mismatch.
    Verify {
        /// Catalog file (default: GAMMAINFRA_CATALOG or the built-in catalog).
        file: Option<PathBuf>,
        /// TOML configuration file.
        #[arg(long, env = "GAMMAINFRA_CONFIG")]
        config: Option<PathBuf>,
        /// Also send a 1-token Converse call to each entry (this costs money).
        #[arg(long)]
        invoke: bool,
    },
}

#[derive(clap::Args)]
pub struct Admin {
    /// The gateway's base URL.
    #[arg(long, env = "GAMMAINFRA_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The admin token.
    #[arg(long, env = "GAMMAINFRA_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
}

#[derive(Subcommand)]
pub enum AccountsCommand {
    /// Create an account (grants the trial credit once per email) and print its first key.
    Create {
        #[arg(long)]
        email: String,
        /// Residency policy: the account's requests are processed only within it
        /// (a geography such as `eu`, a region, or a comma-separated list).
        #[arg(long)]
        residency: Option<String>,
        #[command(flatten)]
        admin: Admin,
    },
    /// Change an account; it applies from the next request on. Only the options given
    /// are changed.
    Update {
        #[arg(long)]
        account: String,
        /// New residency policy (`eu`, `eu-west-1`, `us-east-1,eu`, ...), or `none` to
        /// remove it.
        #[arg(long)]
        residency: Option<String>,
        /// Requests per minute for all the account's keys together, or `none` (the
        /// configured default applies).
        #[arg(long)]
        rpm: Option<String>,
        /// Tokens per minute for all the account's keys together, or `none`.
        #[arg(long)]
        tpm: Option<String>,
        /// `true` disables the account (its keys are refused with 403
        /// account_disabled), `false` enables it again.
        #[arg(long)]
        disabled: Option<bool>,
        #[command(flatten)]
        admin: Admin,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create another key for an account.
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: Option<String>,
        /// Residency policy: requests with this key are processed only within it (and
        /// within the account's). `--default-region` is a deprecated alias.
        #[arg(long, alias = "default-region")]
        residency: Option<String>,
        #[command(flatten)]
        limits: KeyLimitArgs,
        #[command(flatten)]
        admin: Admin,
    },
    /// Change a key's limits; only the options given are changed (`none` removes one).
    Update {
        #[arg(long)]
        key: String,
        #[command(flatten)]
        limits: KeyLimitArgs,
        #[command(flatten)]
        admin: Admin,
    },
    /// Show a key: its limits and what it has spent today, this month and in total.
    Show {
        #[arg(long)]
        key: String,
        #[command(flatten)]
        admin: Admin,
    },
    /// Revoke a key; it fails from the next request on.
    Revoke {
        key_id: String,
        #[command(flatten)]
        admin: Admin,
    },
}

/// A key's limits on the command line; each takes a value or `none`.
#[derive(clap::Args)]
pub struct KeyLimitArgs {
    /// Most the key may spend in total, USD in whole cents (e.g. 50.00).
    #[arg(long)]
    total_usd: Option<String>,
    /// Most the key may spend per UTC day, USD (e.g. 5.00).
    #[arg(long)]
    daily_usd: Option<String>,
    /// Most the key may spend per UTC month, USD.
    #[arg(long)]
    monthly_usd: Option<String>,
    /// Requests per minute (overrides the configured default).
    #[arg(long)]
    rpm: Option<String>,
    /// Tokens per minute (overrides the configured default).
    #[arg(long)]
    tpm: Option<String>,
}

impl KeyLimitArgs {
    /// The `limits` object of the admin API: only the options given; `none` is `null`.
    /// Values are passed as given: the gateway validates them (and names the field).
    fn to_json(&self) -> Option<serde_json::Value> {
        let mut m = serde_json::Map::new();
        for (name, v) in [
            ("total_usd", &self.total_usd),
            ("daily_usd", &self.daily_usd),
            ("monthly_usd", &self.monthly_usd),
        ] {
            if let Some(v) = v {
                m.insert(name.into(), none_or(v, |s| serde_json::json!(s)));
            }
        }
        for (name, v) in [
            ("requests_per_minute", &self.rpm),
            ("tokens_per_minute", &self.tpm),
        ] {
            if let Some(v) = v {
                m.insert(name.into(), none_or(v, count_json));
            }
        }
        (!m.is_empty()).then_some(serde_json::Value::Object(m))
    }
}

/// `null` for `none`, else `f(v)`.
fn none_or(v: &str, f: impl Fn(&str) -> serde_json::Value) -> serde_json::Value {
    if v.trim().eq_ignore_ascii_case("none") {
        serde_json::Value::Null
    } else {
        f(v.trim())
    }
}

/// A count as a JSON number when it is one, else the text (which the gateway refuses
/// with a message naming the field).
fn count_json(v: &str) -> serde_json::Value {
    v.parse::<u64>()
        .map_or_else(|_| serde_json::json!(v), serde_json::Value::from)
}

#[derive(Subcommand)]
pub enum TopupsCommand {
    /// Credit an account (minimum $10.00; the fee is charged on top).
    Create {
        #[arg(long)]
        account: String,
        /// Amount in USD, whole cents, e.g. 10.00.
        #[arg(long)]
        amount: String,
        /// The top-up's Idempotency-Key (default: a new random key, printed on stderr).
        /// Running the command again with the same key and amount credits once.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        admin: Admin,
    },
}

#[derive(Subcommand)]
pub enum GrantsCommand {
    /// Grant an account credit (no fee), recorded with its reason.
    Create {
        #[arg(long)]
        account: String,
        /// Amount in USD, whole cents, e.g. 5.00.
        #[arg(long)]
        amount: String,
        /// Why (1 to 500 characters), kept in the ledger with the grant.
        #[arg(long)]
        reason: String,
        /// The grant's Idempotency-Key (default: a new random key, printed on stderr).
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        admin: Admin,
    },
}

#[derive(Subcommand)]
pub enum StripeCommand {
    /// List the Stripe events received, newest first.
    Events {
        /// How many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only events received before this event ID (the next page).
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        admin: Admin,
    },
}

#[derive(Subcommand)]
pub enum CreditsCommand {
    /// Show an account's balance, reservations and ledger sum.
    Show {
        #[arg(long)]
        account: String,
        #[command(flatten)]
        admin: Admin,
    },
}

/// Runs the command; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Serve {
            config,
            listen,
            demo,
        } => serve(config, listen, demo).await,
        Command::Catalog {
            command: CatalogCommand::Check { file },
        } => catalog_check(file),
        Command::Catalog {
            command:
                CatalogCommand::Verify {
                    file,
                    config,
                    invoke,
                },
        } => catalog_verify(file, config, invoke).await,
        Command::Accounts { command } => match command {
            AccountsCommand::Create {
                email,
                residency,
                admin,
            } => {
                admin_call(
                    &admin,
                    "POST",
                    "/admin/v1/accounts",
                    Some(serde_json::json!({"email": email, "residency": residency})),
                )
                .await
            }
            AccountsCommand::Update {
                account,
                residency,
                rpm,
                tpm,
                disabled,
                admin,
            } => {
                let mut body = serde_json::Map::new();
                if let Some(r) = residency {
                    body.insert("residency".into(), none_or(&r, |s| serde_json::json!(s)));
                }
                let mut limits = serde_json::Map::new();
                if let Some(v) = rpm {
                    limits.insert("requests_per_minute".into(), none_or(&v, count_json));
                }
                if let Some(v) = tpm {
                    limits.insert("tokens_per_minute".into(), none_or(&v, count_json));
                }
                if !limits.is_empty() {
                    body.insert("limits".into(), serde_json::Value::Object(limits));
                }
                if let Some(d) = disabled {
                    body.insert("disabled".into(), serde_json::json!(d));
                }
                if body.is_empty() {
                    eprintln!("nothing to change: give --residency, --rpm, --tpm or --disabled");
                    return 2;
                }
                admin_call(
                    &admin,
                    "PATCH",
                    &format!("/admin/v1/accounts/{account}"),
                    Some(serde_json::Value::Object(body)),
                )
                .await
            }
        },
        Command::Keys { command } => match command {
            KeysCommand::Create {
                account,
                name,
                residency,
                limits,
                admin,
            } => {
                let mut body = serde_json::json!({"name": name, "residency": residency});
                if let Some(l) = limits.to_json() {
                    body["limits"] = l;
                }
                admin_call(
                    &admin,
                    "POST",
                    &format!("/admin/v1/accounts/{account}/keys"),
                    Some(body),
                )
                .await
            }
            KeysCommand::Update { key, limits, admin } => {
                let Some(l) = limits.to_json() else {
                    eprintln!("nothing to change: give --total-usd, --daily-usd, --monthly-usd, --rpm or --tpm");
                    return 2;
                };
                admin_call(
                    &admin,
                    "PATCH",
                    &format!("/admin/v1/keys/{key}"),
                    Some(serde_json::json!({ "limits": l })),
                )
                .await
            }
            KeysCommand::Show { key, admin } => {
                admin_call(&admin, "GET", &format!("/admin/v1/keys/{key}"), None).await
            }
            KeysCommand::Revoke { key_id, admin } => {
                admin_call(&admin, "DELETE", &format!("/admin/v1/keys/{key_id}"), None).await
            }
        },
        Command::Topups {
            command:
                TopupsCommand::Create {
                    account,
                    amount,
                    idempotency_key,
                    admin,
                },
        } => {
            let key = idempotency_key
                .unwrap_or_else(|| gammainfra::ledger::keys::random_id("topup-cli-"));
            eprintln!("Idempotency-Key: {key}");
            admin_call_idempotent(
                &admin,
                "POST",
                &format!("/admin/v1/accounts/{account}/topups"),
                Some(serde_json::json!({"amount_usd": amount})),
                Some(&key),
            )
            .await
        }
        Command::Grants {
            command:
                GrantsCommand::Create {
                    account,
                    amount,
                    reason,
                    idempotency_key,
                    admin,
                },
        } => {
            let key = idempotency_key
                .unwrap_or_else(|| gammainfra::ledger::keys::random_id("grant-cli-"));
            eprintln!("Idempotency-Key: {key}");
            admin_call_idempotent(
                &admin,
                "POST",
                &format!("/admin/v1/accounts/{account}/grants"),
                Some(serde_json::json!({"amount_usd": amount, "reason": reason})),
                Some(&key),
            )
            .await
        }
        Command::Stripe {
            command:
                StripeCommand::Events {
                    limit,
                    before,
                    admin,
                },
        } => {
            let mut path = format!("/admin/v1/stripe/events?limit={limit}");
            if let Some(b) = before {
                path.push_str("&before=");
                path.push_str(&percent_encode(&b));
            }
            admin_call(&admin, "GET", &path, None).await
        }
        Command::Credits {
            command: CreditsCommand::Show { account, admin },
        } => {
            admin_call(
                &admin,
                "GET",
                &format!("/admin/v1/accounts/{account}"),
                None,
            )
            .await
        }
        Command::Reload { admin } => admin_call(&admin, "POST", "/admin/v1/reload", None).await,
        Command::Db {
            command: DbCommand::MigrateTo { to, from, config },
        } => db_migrate_to(&to, from, config).await,
    }
}

fn catalog_check(file: Option<PathBuf>) -> i32 {
    let (name, result) = match &file {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => (p.display().to_string(), Catalog::from_toml(&t)),
            Err(e) => {
                eprintln!("cannot read {}: {e}", p.display());
                return 2;
            }
        },
        None => ("built-in catalog".to_owned(), Catalog::builtin()),
    };
    match result {
        Ok(c) => {
            let endpoints: usize = c.models.iter().map(|m| m.endpoints.len()).sum();
            println!(
                "{name}: OK (version {}, {} models, {endpoints} endpoints, {} geographies)",
                c.version,
                c.models.len(),
                c.geographies.len()
            );
            0
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            1
        }
    }
}

async fn catalog_verify(file: Option<PathBuf>, config_path: Option<PathBuf>, invoke: bool) -> i32 {
    let mut config = match Config::load(config_path.as_deref(), &process_env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    if file.is_some() {
        config.catalog_path = file;
    }
    let catalog = match gammainfra::gateway::load_catalog(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    match gammainfra::verify::verify(&catalog, &config, invoke).await {
        Ok(rows) => {
            print!("{}", gammainfra::verify::render(&rows));
            let bad = rows.iter().filter(|r| !r.ok).count();
            println!("{} entries checked, {bad} mismatch(es)", rows.len());
            i32::from(bad > 0)
        }
        Err(e) => {
            eprintln!("catalog verify: {e}");
            2
        }
    }
}

async fn db_migrate_to(to: &str, from: Option<String>, config_path: Option<PathBuf>) -> i32 {
    let from = match from {
        Some(f) => f,
        None => match Config::load(config_path.as_deref(), &process_env) {
            Ok(c) => c.database_url,
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        },
    };
    match gammainfra::ledger::migrate::migrate_to(&from, to).await {
        Ok(s) => {
            println!(
                "Copied {} to {}, and verified: every table's row count, and every account's ledger entries (count and sum), match the source.",
                s.source, s.target
            );
            println!("  accounts          {}", s.accounts);
            println!(
                "  keys              {} ({} revoked)",
                s.keys, s.revoked_keys
            );
            println!("  ledger entries    {}", s.entries);
            println!("  top-ups           {}", s.topups);
            println!("  idempotency keys  {}", s.idempotency_keys);
            println!("  total balance     {} USD", s.total_balance);
            0
        }
        Err(e) => {
            eprintln!("db migrate-to: {e}");
            // 1: the copy was made but did not verify (and was not committed).
            if matches!(e, gammainfra::ledger::migrate::MigrateError::Mismatch(_)) {
                1
            } else {
                2
            }
        }
    }
}

#[cfg(feature = "demo")]
use gammainfra::demo;

/// A build without the `demo` feature has no simulated providers: `serve --demo` says so.
#[cfg(not(feature = "demo"))]
mod demo {
    use std::net::SocketAddr;

    use gammainfra::config::Config;
    use gammainfra::gateway::StartError;

    pub enum Demo {}

    pub async fn prepare(_: Option<SocketAddr>) -> Result<(Demo, Config), StartError> {
        Err(StartError::NoDemo)
    }

    impl Demo {
        pub fn listening(&self, _: SocketAddr) {}

        pub fn banner(&self, _: SocketAddr, _: &str, _: &str) -> String {
            match *self {}
        }
    }
}

async fn serve(config_path: Option<PathBuf>, listen: Option<SocketAddr>, demo: bool) -> i32 {
    let source = gammainfra::reload::ConfigSource {
        file: config_path,
        listen,
    };
    // The configuration, its catalog and what depends on both are validated together:
    // every problem of all three is reported at once.
    let started = if demo {
        match demo::prepare(listen).await {
            Ok((d, c)) => {
                gammainfra::gateway::validate(Ok(c), None).map(|(c, catalog)| (Some(d), c, catalog))
            }
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        }
    } else {
        let (config, hint) = source.load();
        gammainfra::gateway::validate(config, hint).map(|(c, catalog)| (None, c, catalog))
    };
    let (demo_handle, config, catalog) = match started {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let addr = config.listen;
    let admin_token = config.admin_token.as_ref().map(|t| t.expose().to_owned());
    let state = match gammainfra::gateway::build_with(config, catalog).await {
        // The demo's configuration is made up, not read: a reload re-reads the catalog.
        Ok(s) if demo_handle.is_none() => s.reloading_from(source),
        Ok(s) => s,
        Err(e) => {
            eprintln!("gammainfra: {e}");
            return 2;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gammainfra: cannot listen on {addr}: {e}");
            return 2;
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    if let Some(d) = &demo_handle {
        d.listening(local);
    }
    if let Some(d) = &demo_handle {
        match state.ledger.create_account("demo@gammainfra.local").await {
            Ok((_, key, _)) => println!(
                "{}",
                d.banner(
                    local,
                    &key.plain,
                    admin_token.as_deref().unwrap_or_default()
                )
            ),
            Err(e) => {
                eprintln!("gammainfra: cannot create the demo account: {e}");
                return 2;
            }
        }
    }
    match gammainfra::server::raise_open_files_limit() {
        Ok(n) if n < 4096 => tracing::warn!(
            open_files = n,
            "the open-files limit is low: each connection, client or upstream, takes one (raise `ulimit -n`)"
        ),
        Ok(n) => tracing::debug!(open_files = n, "open-files limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
    tracing::info!(%local, models = state.catalog.models.len(), "gateway listening");
    let sighup = gammainfra::reload::spawn_on_sighup(state.clone());
    let result =
        gammainfra::server::serve(listener, state, gammainfra::gateway::shutdown_signal()).await;
    sighup.abort();
    // The simulated providers stop only once the gateway has.
    #[cfg(feature = "demo")]
    drop(demo_handle);
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gammainfra: {e}");
            1
        }
    }
}

async fn admin_call(
    admin: &Admin,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> i32 {
    admin_call_idempotent(admin, method, path, body, None).await
}

/// An admin API call. With an idempotency key, a call that got no answer (connection
/// refused or reset, timeout) is retried twice with the same key: the gateway applies it
/// once however many of the attempts reached it.
async fn admin_call_idempotent(
    admin: &Admin,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    idempotency_key: Option<&str>,
) -> i32 {
    if let Err(e) = admin_base_url(&admin.url) {
        eprintln!("gammainfra: {e}");
        return 2;
    }
    let attempts = if idempotency_key.is_some() { 3 } else { 1 };
    let mut code = 2;
    for attempt in 1..=attempts {
        code = admin_call_once(admin, method, path, body.as_ref(), idempotency_key).await;
        if code != 2 || attempt == attempts {
            break;
        }
        eprintln!(
            "no answer; retrying with the same Idempotency-Key ({attempt}/{})",
            attempts - 1
        );
        tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
    }
    code
}

async fn admin_call_once(
    admin: &Admin,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    idempotency_key: Option<&str>,
) -> i32 {
    // The same client as upstream calls: plain HTTP or HTTPS (rustls).
    let client = match HttpClient::new(Timeouts::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("TLS setup failed: {e}");
            return 2;
        }
    };
    let uri = format!("{}{path}", admin.url.trim_end_matches('/'));
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(&uri)
        .header("authorization", format!("Bearer {}", admin.admin_token))
        .header("content-type", "application/json");
    if let Some(k) = idempotency_key {
        req = req.header("idempotency-key", k);
    }
    let req = req.body(Full::new(Bytes::from(
        body.map(|b| b.to_string()).unwrap_or_default(),
    )));
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            eprintln!("invalid request: {e}");
            return 2;
        }
    };
    match client.send(req, "gateway").await {
        Ok(resp) => {
            let status = resp.status();
            let body = client
                .read_body(resp.into_body(), "gateway")
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body);
            let pretty = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| text.into_owned());
            if status.is_success() {
                println!("{pretty}");
                0
            } else {
                eprintln!("{status}: {pretty}");
                1
            }
        }
        Err(e) => {
            eprintln!("cannot reach the gateway at {}: {e} (is `gammainfra serve` running? set --url / GAMMAINFRA_URL)", admin.url);
            2
        }
    }
}

/// The gateway's base URL as given by `--url` / `GAMMAINFRA_URL`, checked: an http:// or
/// https:// URL with a host. Without a scheme, `127.0.0.1:8080` would otherwise be
/// refused by the HTTP library as "invalid format".
fn admin_base_url(url: &str) -> Result<&str, String> {
    let example = "such as http://127.0.0.1:8080";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "--url / GAMMAINFRA_URL must be a URL with a scheme, {example} (got {url:?})"
        ));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "--url / GAMMAINFRA_URL must be an http:// or https:// URL, {example} (got {url:?})"
        ));
    }
    if rest.trim_end_matches('/').is_empty() {
        return Err(format!(
            "--url / GAMMAINFRA_URL names no host, {example} (got {url:?})"
        ));
    }
    url.parse::<hyper::Uri>()
        .map_err(|e| format!("--url / GAMMAINFRA_URL is not a valid URL: {e} (got {url:?})"))?;
    Ok(url)
}

/// `s` as a URL query value.
fn percent_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
