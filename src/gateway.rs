//! Wiring: configuration + catalog + providers + ledger → a running gateway.

use std::sync::Arc;

use crate::catalog::{Catalog, CatalogError, ProviderKind};
use crate::config::{Config, ConfigError};
use crate::ledger::{Ledger, Store, StoreError};
use crate::providers::anthropic::Anthropic;
use crate::providers::http::HttpClient;
use crate::providers::openai::OpenAi;
use crate::providers::Providers;
use crate::server::AppState;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("provider configuration: {0}")]
    Provider(String),
    #[error("rate limits: {0}")]
    Limits(String),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// `serve --demo` on a binary built without the `demo` feature.
    #[error("this binary was built without the demo (the `demo` feature, on by default); build it with `--features demo` to run `serve --demo`")]
    NoDemo,
}

/// The catalog named by the configuration, or the built-in one.
pub fn load_catalog(config: &Config) -> Result<Catalog, CatalogError> {
    load_catalog_at(config.catalog_path.as_deref())
}

/// The catalog file `path`, or the built-in catalog.
pub fn load_catalog_at(path: Option<&std::path::Path>) -> Result<Catalog, CatalogError> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| CatalogError::Read {
                path: p.display().to_string(),
                source,
            })?;
            Catalog::from_toml(&text)
        }
        None => Catalog::builtin(),
    }
}

/// One provider adapter per configured upstream, sharing one connection pool.
pub async fn providers(config: &Config) -> Result<Providers, StartError> {
    let client = HttpClient::new(config.timeouts)?;
    let mut p = Providers::default();
    p.upstream_connections = Some(client.connections.clone());
    if let Some(b) = &config.bedrock {
        if b.auth == crate::providers::bedrock::auth::BedrockAuthConfig::CredentialChain {
            if let Some(why) = crate::providers::bedrock::auth::profile_problem().await {
                tracing::warn!(
                    "Bedrock: {why}; its requests fail with 502 upstream_auth_failed until then"
                );
            }
        }
        let signer = crate::providers::bedrock::auth::Signer::from_config(
            &b.auth,
            b.regions.first().map_or("us-east-1", String::as_str),
        )
        .await;
        let images =
            crate::providers::bedrock::images::ImageFetcher::new(b.allow_private_image_urls)?;
        p.insert(
            ProviderKind::Bedrock,
            Arc::new(
                crate::providers::bedrock::Bedrock::new(
                    signer,
                    b.endpoint_url.as_deref(),
                    client.clone(),
                    images,
                )
                .map_err(StartError::Provider)?,
            ),
        );
    }
    if let Some(a) = &config.anthropic {
        let key = a
            .api_key
            .clone()
            .ok_or_else(|| StartError::Provider("ANTHROPIC_API_KEY is required".into()))?;
        p.insert(
            ProviderKind::Anthropic,
            Arc::new(
                Anthropic::new(&a.base_url, key, client.clone()).map_err(StartError::Provider)?,
            ),
        );
    }
    if let Some(o) = &config.openai {
        p.insert(
            ProviderKind::OpenAi,
            Arc::new(
                OpenAi::new("openai", &o.base_url, o.api_key.as_ref(), client.clone())
                    .map_err(StartError::Provider)?,
            ),
        );
    }
    for (name, c) in &config.openai_compatible {
        let kind = ProviderKind::OpenAiCompatible(name.clone());
        p.insert(
            kind.clone(),
            Arc::new(
                OpenAi::new(
                    &kind.to_string(),
                    &c.base_url,
                    c.api_key.as_ref(),
                    client.clone(),
                )
                .map_err(StartError::Provider)?,
            ),
        );
    }
    Ok(p)
}

/// Validates a configuration (as loaded: valid, or its problems) together with the
/// catalog it names and what depends on both, as a start and a reload do, reporting
/// every problem of all three at once. `catalog_hint` names the catalog file when the
/// configuration is invalid (see [`Config::catalog_path_of`]).
pub fn validate(
    config: Result<Config, ConfigError>,
    catalog_hint: Option<std::path::PathBuf>,
) -> Result<(Config, Catalog), ConfigError> {
    let (config, mut errs) = match config {
        Ok(c) => (Some(c), Vec::new()),
        Err(ConfigError(e)) => (None, e),
    };
    let path = match &config {
        Some(c) => c.catalog_path.clone(),
        None => catalog_hint,
    };
    let catalog = match load_catalog_at(path.as_deref()) {
        Ok(c) => Some(c),
        Err(e) => {
            errs.extend(catalog_problems(path.as_deref(), e));
            None
        }
    };
    if let (Some(config), Some(catalog)) = (&config, &catalog) {
        errs.extend(deployment_problems(config, catalog));
    }
    match (config, catalog) {
        (Some(config), Some(catalog)) if errs.is_empty() => Ok((config, catalog)),
        _ => Err(ConfigError(errs)),
    }
}

/// A catalog's problems, one line each, naming the file.
fn catalog_problems(path: Option<&std::path::Path>, e: CatalogError) -> Vec<String> {
    let name = path.map_or_else(
        || "the built-in catalog".to_owned(),
        |p| format!("catalog {}", p.display()),
    );
    match e {
        CatalogError::Invalid(problems) => problems
            .into_iter()
            .map(|p| format!("{name}: {p}"))
            .collect(),
        CatalogError::Read { source, .. } => vec![format!("{name}: cannot read it: {source}")],
        e @ CatalogError::Parse(_) => vec![format!("{name}: {e}")],
    }
}

/// What the configuration asks of the catalog, and settings checked only when used.
fn deployment_problems(config: &Config, catalog: &Catalog) -> Vec<String> {
    let mut errs = Vec::new();
    if let Some(b) = &config.bedrock {
        let unknown: Vec<&str> = b
            .regions
            .iter()
            .filter(|r| !catalog.is_known_region(r))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            errs.push(format!(
                "bedrock.regions / GAMMAINFRA_BEDROCK_REGIONS: regions in no geography of the catalog: {}",
                unknown.join(", ")
            ));
        }
    }
    if let Some(u) = &config.limits.redis_url {
        if let Err(e) = redis::Client::open(u.expose()) {
            errs.push(format!("limits.redis_url / GAMMAINFRA_REDIS_URL: {e}"));
        }
    }
    errs
}

/// Builds the application state: catalog, providers, database (migrated) and ledger,
/// after validating the configuration with its catalog (every problem at once).
pub async fn build(config: Config) -> Result<AppState, StartError> {
    let (config, catalog) = validate(Ok(config), None)?;
    build_with(config, catalog).await
}

/// [`build`] with a configuration and catalog already validated by [`validate`].
pub async fn build_with(config: Config, catalog: Catalog) -> Result<AppState, StartError> {
    let catalog = Arc::new(catalog);
    let providers = providers(&config).await?;
    let store = Store::open_replica(&config.database_url, config.replica_id.as_deref()).await?;
    let ledger = Ledger::open(store, config.billing.clone(), catalog.clone()).await?;
    ledger.set_max_concurrent(
        config.limits.key_concurrent,
        config.limits.account_concurrent,
    );
    let limiter = crate::ratelimit::RateLimiter::new(&config.limits).map_err(StartError::Limits)?;
    Ok(AppState::new(config, catalog, providers, ledger, limiter))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
