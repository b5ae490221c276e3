//! Helpers shared by the server's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::tensor::Device;
use lenet_serve::{app, serve, Batching, Options};
use lenet_train::{RunConfig, RunDir};

/// A run directory `root/id` with LeNet-5 and the weights PyTorch trained for the import tests
/// (97.9 % on MNIST's test set, so a drawn digit must come back right).
pub fn pytorch_run(root: &Path, id: &str) -> RunDir {
    let config = RunConfig::parse("[model]\npreset = \"lenet5\"\n", "test", &[]).unwrap();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../lenet-cli/tests/fixtures/pytorch/lenet5-sequential.pt");
    let weights = lenet_exchange::read_weights(&fixture, None).unwrap();
    let net = config.model.init(&Device::flex()).unwrap();
    let (net, _) = lenet_exchange::import_into(net, &weights.tensors, &[]).unwrap();
    let run = RunDir::create(&root.join(id)).unwrap();
    run.write_config(&config).unwrap();
    run.write_model(net).unwrap();
    run
}

/// Serving `root` with a batching window of `window_ms`, on the real datasets.
pub fn options(root: &Path, window_ms: u64) -> Options {
    Options {
        runs: root.to_path_buf(),
        checkpoint: None,
        backend: None,
        batching: Batching {
            window: Duration::from_millis(window_ms),
            ..Batching::default()
        },
        data_dir: lenet_data::testing::real_data_root(),
        cache: None,
    }
}

/// Starts a server on a free loopback port; returns its base URL.
pub fn start(options: Options) -> String {
    let state = app(&options).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, state, std::future::pending())
                .await
                .unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}
