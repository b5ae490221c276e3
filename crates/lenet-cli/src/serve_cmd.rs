//! `lenet serve`: the runs page, the drawing playground and the prediction API over HTTP.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lenet_serve::{app, serve, Batching, Options};
use lenet_train::BackendKind;

/// Arguments of `lenet serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The runs directory to show.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// The run the API predicts with by default (else the newest run with weights).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The address to listen on (only this machine by default).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Backend the networks run on: flex, ndarray, wgpu, cuda, auto (default: each run's).
    #[arg(long)]
    backend: Option<BackendKind>,
    /// How long the server gathers concurrent prediction requests into one batch, in
    /// milliseconds (0: no batching).
    #[arg(long, default_value_t = 2.0, value_name = "MS")]
    batch_window: f64,
    /// Dataset root for the runs' test-set evaluations (default: $LENET_DATA_DIR, else
    /// ./data); the server never downloads.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where evaluations are cached (default: RUNS/.lenet-serve-cache): the only thing the
    /// server writes.
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

/// Runs `lenet serve` until Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if !(0.0..=1000.0).contains(&args.batch_window) {
        return Err(crate::UsageError("--batch-window: 0 to 1000 milliseconds".into()).into());
    }
    let options = Options {
        runs: args.runs.clone(),
        checkpoint: args.checkpoint.clone(),
        backend: args.backend,
        batching: Batching {
            window: Duration::from_secs_f64(args.batch_window / 1000.0),
            ..Batching::default()
        },
        data_dir: lenet_data::resolve_data_root(args.data_dir.as_deref()),
        cache: args.cache.clone(),
    };
    let state = app(&options)?;
    let interrupter = crate::process::ctrl_c_interrupter();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async move {
        let address = format!("{}:{}", args.host, args.port);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|e| crate::UsageError(format!("cannot listen on {address}: {e}")))?;
        let local = listener.local_addr()?;
        println!(
            "serving {} on http://{local}/ (Ctrl-C to stop); evaluations cached in {}",
            args.runs.display(),
            options.cache_dir().display()
        );
        let shutdown = async move {
            while !interrupter.should_stop() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        serve(listener, state, shutdown).await?;
        anyhow::Ok(())
    })
}
