//! Reloading the catalog and the configuration while serving (`SIGHUP`,
//! `POST /admin/v1/reload`).
//!
//! What a request reads of the catalog (the catalog, the router built from it, the
//! rendered `/v1/models`) and of the reloadable configuration is one [`Snapshot`],
//! replaced whole by a reload: each request takes the snapshot in force when it
//! arrives (one atomic load) and keeps it to its end, so a request in flight finishes,
//! and is settled, with the catalog and prices it started with.
//!
//! A reload reads the configuration again from where it came from (the file and the
//! environment, with `--listen` still applied) and the catalog file it names; both are
//! validated completely, with the checks a start makes, and a problem anywhere refuses
//! the whole reload, listing every problem, while the old snapshot keeps serving.
//! Otherwise it applies what can change while serving (the catalog, Bedrock regions,
//! default rate and concurrency limits, billing rules except credit leases, the
//! shutdown grace period) and reports the settings that changed but need a restart.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::config::{Config, ConfigError};
use crate::providers::Providers;
use crate::router::Router;
use crate::server::AppState;

/// Where `serve` read its configuration: the file (if any) and the process's
/// environment, with `--listen` applied on top.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

impl ConfigSource {
    /// The configuration as it reads now, and the catalog file it names (read leniently
    /// when the configuration is invalid, so that the catalog's problems are reported
    /// with the configuration's).
    pub fn load(&self) -> (Result<Config, ConfigError>, Option<PathBuf>) {
        let env = &crate::config::process_env;
        let config = Config::load(self.file.as_deref(), env).map(|mut c| {
            if let Some(l) = self.listen {
                c.listen = l;
            }
            c
        });
        let hint = config
            .is_err()
            .then(|| Config::catalog_path_of(self.file.as_deref(), env))
            .flatten();
        (config, hint)
    }
}

/// What a request reads of the catalog and of the configuration that reloads.
pub struct Snapshot {
    /// The configuration last applied. Only its reloadable settings are read from here;
    /// the rest is the start's ([`AppState::config`]).
    pub config: Arc<Config>,
    pub catalog: Arc<Catalog>,
    pub router: Arc<Router>,
    /// `GET /v1/models`, rendered once per catalog.
    pub models_json: Bytes,
}

impl Snapshot {
    /// The snapshot of `catalog` under `config`; `previous` hands its endpoints' circuit
    /// state and observations over to the new router.
    pub fn new(
        config: Arc<Config>,
        catalog: Arc<Catalog>,
        providers: &Providers,
        previous: Option<&Router>,
    ) -> Self {
        let configured = providers.kinds().cloned().collect();
        let regions = config.bedrock.as_ref().map(|b| b.regions.clone());
        let router = Arc::new(
            match previous {
                Some(p) => Router::reloaded(p, catalog.clone(), configured, regions),
                None => Router::new(catalog.clone(), configured, regions),
            }
            .bedrock_disabled_in_file(config.bedrock_disabled_in_file),
        );
        let models_json = crate::server::models::render_list(&catalog, &router);
        Self {
            config,
            catalog,
            router,
            models_json,
        }
    }
}

/// The snapshot in force, and how to make the next one.
pub struct Live {
    current: ArcSwap<Snapshot>,
    /// None: the configuration was not read from a file and the environment (the demo,
    /// tests); a reload then re-reads only the catalog file.
    source: Option<ConfigSource>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl Live {
    pub fn new(snapshot: Snapshot, source: Option<ConfigSource>) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot),
            source,
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The snapshot in force (cheap: no lock, no allocation).
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The configuration last applied.
    pub fn config(&self) -> Arc<Config> {
        self.current.load().config.clone()
    }
}

/// What a reload changed.
#[derive(Debug, Serialize)]
pub struct Report {
    pub object: &'static str,
    pub catalog: CatalogChange,
    /// Reloadable settings whose values changed, now in force.
    pub applied: Vec<&'static str>,
    /// Settings whose values changed but that apply only after a restart.
    pub not_applied: Vec<&'static str>,
    /// Problems met while applying that did not stop it.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CatalogChange {
    pub version_before: String,
    pub version_after: String,
    pub models_added: Vec<String>,
    pub models_removed: Vec<String>,
    pub endpoints_added: usize,
    pub endpoints_removed: usize,
}

impl CatalogChange {
    fn between(old: &Catalog, new: &Catalog) -> Self {
        let models = |c: &Catalog| -> BTreeSet<String> {
            c.models.iter().map(|m| m.id.as_str().to_owned()).collect()
        };
        let endpoints = |c: &Catalog| -> BTreeSet<String> {
            c.models
                .iter()
                .flat_map(|m| m.endpoints.iter().map(|e| e.key.clone()))
                .collect()
        };
        let (m0, m1) = (models(old), models(new));
        let (e0, e1) = (endpoints(old), endpoints(new));
        Self {
            version_before: old.version.clone(),
            version_after: new.version.clone(),
            models_added: m1.difference(&m0).cloned().collect(),
            models_removed: m0.difference(&m1).cloned().collect(),
            endpoints_added: e1.difference(&e0).count(),
            endpoints_removed: e0.difference(&e1).count(),
        }
    }
}

/// Reads the configuration and the catalog again and applies them, or refuses both
/// with every problem found (the snapshot in force keeps serving).
pub async fn reload(st: &AppState) -> Result<Report, ConfigError> {
    let live = &st.live;
    let _one = live.reloading.lock().await;
    let old = live.current.load_full();
    let (config, hint) = match &live.source {
        Some(source) => source.load(),
        None => (Ok((*old.config).clone()), None),
    };
    let (config, catalog) = crate::gateway::validate(config, hint)?;
    // Stored residency policies must stay valid: a catalog that drops a geography or
    // region one of them names would leave its keys unable to make any request.
    let refused = st.ledger.policies_refused_by(&catalog).await.map_err(|e| {
        ConfigError(vec![format!(
            "cannot check the stored residency policies: {e}"
        )])
    })?;
    if !refused.is_empty() {
        return Err(ConfigError(
            refused
                .into_iter()
                .map(|r| format!("catalog: refuses a stored policy: {r}"))
                .collect(),
        ));
    }
    let mut warnings = Vec::new();
    let not_applied = st.config.restart_only_changes(&config);
    let applied = old.config.reloadable_changes(&config);
    let catalog = Arc::new(catalog);
    let change = CatalogChange::between(&old.catalog, &catalog);
    let config = Arc::new(config);
    let next = Snapshot::new(
        config.clone(),
        catalog.clone(),
        &st.providers,
        Some(&old.router),
    );
    if let Err(e) = st.ledger.set_catalog(catalog).await {
        warnings.push(format!(
            "residency policies were not parsed again with the new catalog ({e}); they keep their previous form until the next change"
        ));
    }
    st.ledger.set_billing(config.billing.clone());
    st.ledger.set_max_concurrent(
        config.limits.key_concurrent,
        config.limits.account_concurrent,
    );
    st.limiter
        .set_defaults(config.limits.key, config.limits.account);
    live.current.store(Arc::new(next));
    let report = Report {
        object: "reload",
        catalog: change,
        applied,
        not_applied,
        warnings,
    };
    tracing::info!(
        catalog_before = %report.catalog.version_before,
        catalog_after = %report.catalog.version_after,
        models_added = report.catalog.models_added.len(),
        models_removed = report.catalog.models_removed.len(),
        applied = ?report.applied,
        "reloaded the catalog and the configuration"
    );
    if !report.not_applied.is_empty() {
        tracing::warn!(
            settings = ?report.not_applied,
            "these settings changed but apply only after a restart; they were not applied"
        );
    }
    for w in &report.warnings {
        tracing::warn!("reload: {w}");
    }
    Ok(report)
}

/// Reloads on every `SIGHUP` until the task is aborted (Unix; elsewhere, never). The
/// signal is taken over before this returns, so a `SIGHUP` sent once the gateway
/// answers reloads it rather than ending the process.
pub fn spawn_on_sighup(st: AppState) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    {
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        tokio::spawn(async move {
            let mut hup = match hup {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; reload through POST /admin/v1/reload");
                    return;
                }
            };
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the catalog and the configuration");
                if let Err(e) = reload(&st).await {
                    tracing::error!(
                        "the reload was refused; the catalog and configuration in force keep serving: {e}"
                    );
                }
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = st;
        tokio::spawn(std::future::pending::<()>())
    }
}
