//! The composition root: builds the store, the metrics registry and the HTTP server from a
//! [`Config`], binds the listener (port 0 allowed) and owns shutdown. `main` and the test
//! harness both start idbridge through [`App`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::ScimAuthenticator;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::http::{self, AppState, Metrics};
use crate::store::{Store, StoreError};

/// Why idbridge could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The audit key cannot be read or created.
    #[error(transparent)]
    AuditKey(#[from] crate::engine::audit::AuditError),
}

/// Builds an [`App`].
#[derive(Debug)]
pub struct AppBuilder {
    config: Config,
    clock: SharedClock,
    extra_routes: Router,
}

impl AppBuilder {
    /// Uses `clock` instead of the system clock.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Serves `routes` beside idbridge's own, behind the same middleware.
    pub fn routes(mut self, routes: Router) -> Self {
        self.extra_routes = routes;
        self
    }

    /// Binds the listener, then opens the store (migrating it if configured to).
    pub async fn build(self) -> Result<App, AppError> {
        let config = Arc::new(self.config);
        // Bind first: a taken port is the cheapest failure to report.
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| AppError::Bind { addr, source })?;
        let store = Store::connect(&config.database, self.clock.clone()).await?;
        // After the database answered: an unreachable database is reported on its own.
        let audit_key = crate::engine::audit::load_key_at_startup(&config.audit)?;
        let store = store.with_audit_key(audit_key);
        if config.database.migrate_on_start {
            let applied = store.migrate().await?;
            if applied > 0 {
                tracing::info!(migrations.applied = applied, "applied database migrations");
            }
        }
        for (name, source) in &config.sources {
            store.ensure_source(name, source.kind).await?;
        }
        let authenticator = ScimAuthenticator::new(
            store.clone(),
            self.clock.clone(),
            config.scim.rate_limit_per_second,
            config.scim.rate_limit_burst,
        );
        let state = AppState {
            config: config.clone(),
            store: store.clone(),
            metrics: Arc::new(Metrics::new()),
            clock: self.clock,
            authenticator,
        };
        Ok(App {
            router: http::router(state, self.extra_routes),
            listener,
            local_addr,
            store,
            shutdown: CancellationToken::new(),
            grace: config.server.shutdown_grace(),
            config,
        })
    }
}

/// A built idbridge, bound and ready to serve.
#[derive(Debug)]
pub struct App {
    router: Router,
    listener: TcpListener,
    local_addr: SocketAddr,
    store: Store,
    shutdown: CancellationToken,
    grace: Duration,
    config: Arc<Config>,
}

impl App {
    /// Starts building an app from `config`.
    pub fn builder(config: Config) -> AppBuilder {
        AppBuilder {
            config,
            clock: Arc::new(SystemClock),
            extra_routes: Router::new(),
        }
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The store the app uses.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Cancelling this token starts a graceful shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then stops accepting connections and
    /// lets in-flight requests finish for up to `server.shutdown_grace_secs`.
    pub async fn run(self) -> Result<(), AppError> {
        let App {
            router,
            listener,
            local_addr,
            store,
            shutdown,
            grace,
            config,
        } = self;
        let background = background(&store, &config, &shutdown);
        tracing::info!(address = %local_addr, "listening on http://{local_addr}");
        let serve = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future();
        tokio::pin!(serve);
        let result = tokio::select! {
            result = &mut serve => result,
            () = shutdown.cancelled() => {
                tracing::info!(grace_secs = grace.as_secs(), "shutting down; letting in-flight requests finish");
                match tokio::time::timeout(grace, &mut serve).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(grace_secs = grace.as_secs(), "grace period over; closing remaining connections");
                        Ok(())
                    }
                }
            }
        };
        // The scheduler and executor stop with the server (the scheduler gives its lease up).
        shutdown.cancel();
        for task in background {
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!("a background task did not stop within the grace period");
            }
        }
        store.close().await;
        result.map_err(AppError::Serve)?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Starts the scheduler and the executor loop (when `scheduler.enabled`), which stop when
/// `shutdown` is cancelled.
fn background(
    store: &Store,
    config: &Arc<Config>,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let holder = format!(
        "{}:{}:{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "idbridge".into()),
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    if !config.scheduler.enabled {
        tracing::info!("scheduler.enabled is off: no schedules, no background executor");
        return Vec::new();
    }
    let scheduler = {
        let (store, config, token, holder) = (
            store.clone(),
            config.clone(),
            shutdown.clone(),
            holder.clone(),
        );
        tokio::spawn(async move {
            match crate::engine::scheduler::Scheduler::new(&store, &config, &holder) {
                Ok(scheduler) => scheduler.run(token).await,
                Err(e) => tracing::error!(error = %e, "the scheduler does not start"),
            }
        })
    };
    let (store, config, token) = (store.clone(), config.clone(), shutdown.clone());
    let executor = tokio::spawn(async move {
        crate::engine::scheduler::executor_loop(&store, &config, &holder, token).await;
    });
    vec![scheduler, executor]
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => tracing::info!(signal = "SIGINT", "received shutdown signal"),
            () = terminate => tracing::info!(signal = "SIGTERM", "received shutdown signal"),
        }
        token.cancel();
    });
}
