//! # lenet-serve
//!
//! `lenet serve`: a web page for runs (their summaries, live curves, test-set confusion matrix,
//! misclassified images and filters), a playground
//! to draw a digit and see the prediction and every layer's feature maps, and a JSON API
//! (`POST /api/predict`, `GET /api/runs`, `GET /api/runs/{id}`, `GET /healthz`).
//!
//! Safe by default: the caller binds the address (the CLI: 127.0.0.1 unless told otherwise);
//! nothing is written but the evaluations cached in [`Options::cache`]; run ids cannot leave the runs directory; bodies are limited to
//! [`MAX_BODY`] and pictures to 4096×4096 before decoding; every bad request gets a 4xx JSON
//! error. The library installs no signal handler: [`serve`] stops when `shutdown` completes.

pub mod api;
mod assets;
pub mod error;
pub mod evaluation;
pub mod predictor;
pub mod runs;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

pub use api::{router, AppState};
pub use error::ServeError;
pub use evaluation::Evaluations;
use lenet_train::BackendKind;
pub use predictor::{Batching, Predictor};
pub use runs::Runs;

/// The largest request body: 8 MiB.
pub const MAX_BODY: usize = 8 << 20;

/// What to serve.
#[derive(Debug, Clone)]
pub struct Options {
    /// The runs directory.
    pub runs: PathBuf,
    /// A run to predict with by default (and to list even outside `runs`).
    pub checkpoint: Option<PathBuf>,
    /// The backend networks run on (default: each run's own).
    pub backend: Option<BackendKind>,
    /// How prediction requests are batched.
    pub batching: Batching,
    /// Where the datasets are (`<dir>/<dataset>/`), for the runs' test-set evaluations; never
    /// downloaded into.
    pub data_dir: PathBuf,
    /// Where the evaluations are cached (default: [`DEFAULT_CACHE`] under `runs`).
    pub cache: Option<PathBuf>,
}

/// The cache directory's name under the runs directory, when none is given.
pub const DEFAULT_CACHE: &str = ".lenet-serve-cache";

impl Options {
    /// The cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache
            .clone()
            .unwrap_or_else(|| self.runs.join(DEFAULT_CACHE))
    }
}

/// The app for `options`: its state (the prediction thread starts here).
pub fn app(options: &Options) -> Result<Arc<AppState>, ServeError> {
    let runs = Runs::new(&options.runs, options.checkpoint.as_deref())?;
    Ok(Arc::new(AppState {
        runs,
        predictor: Predictor::start(options.backend, options.batching),
        evaluations: Evaluations::new(
            options.cache_dir(),
            options.data_dir.clone(),
            options.backend,
        ),
    }))
}

/// Serves `state` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
