//! Weights are portable across backends: the same initial weights and the same batches give the
//! same training steps on every backend this machine can run — flex, ndarray, and wgpu where
//! wgpu finds an adapter (on a machine without a GPU: Mesa's software Vulkan device, lavapipe,
//! which `.ci/run` installs).

use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};
use lenet_model::preset;
use lenet_train::config::OptimizerConfig;
use lenet_train::train::learner;
use lenet_train::{compiled_backends, select_one, wgpu_adapters, BackendKind, Classifier};

const BATCH: usize = 32;
const STEPS: usize = 3;

/// Deterministic images (in roughly the normalised MNIST range) and labels.
fn batch(seed: usize) -> (Vec<f32>, Vec<i64>) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (seed as u64 + 1);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let pixels = (0..BATCH * 28 * 28)
        .map(|_| (next() % 1000) as f32 / 1000.0 * 3.2 - 0.42)
        .collect();
    let labels = (0..BATCH).map(|_| (next() % 10) as i64).collect();
    (pixels, labels)
}

/// The losses of `STEPS` Adam steps on `kind`, from the weights in `init`, and the trained
/// weights of the first layer.
fn train_steps(kind: BackendKind, init: &std::path::Path) -> (Vec<f32>, Vec<f32>) {
    let selected = select_one(kind, None).unwrap_or_else(|e| panic!("{kind}: {e}"));
    let device = selected.device().clone().autodiff();
    let plan = preset("lenet5").unwrap().plan().unwrap();
    let mut model = Classifier::new(plan.build(&device))
        .try_load_file(init)
        .unwrap();
    let mut optim = learner::optimizer(&OptimizerConfig::default(), None);
    let mut losses = Vec::new();
    // The same batch each step, so that the loss must fall.
    let (pixels, labels) = batch(0);
    for _ in 0..STEPS {
        let (pixels, labels) = (pixels.clone(), labels.clone());
        let batch = lenet_train::ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels, [BATCH, 1, 28, 28]), &device),
            targets: Tensor::<1, Int>::from_data(TensorData::new(labels, [BATCH]), &device),
        };
        // The step `lenet train` takes: forward, cross-entropy, backward, Adam.
        let (next, out) = learner::step(model, &mut optim, 1e-3, batch);
        losses.push(out.loss.into_data().try_to_vec::<f32>().unwrap()[0]);
        model = next;
    }
    let (_, weights) = model.net.features[0].conv.weights().unwrap();
    (losses, weights)
}

fn initial_weights(dir: &std::path::Path) -> std::path::PathBuf {
    let device = select_one(BackendKind::Flex, None)
        .unwrap()
        .device()
        .clone();
    device.seed(7);
    let plan = preset("lenet5").unwrap().plan().unwrap();
    let path = dir.join("init.bpk");
    Classifier::new(plan.build(&device))
        .save_file(&path)
        .unwrap();
    path
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + x.abs()))
        .fold(0.0f32, f32::max);
    assert!(worst <= tol, "{what}: differ by {worst} (> {tol})");
}

/// Whether wgpu has an adapter; under CI (which installs lavapipe) a missing one is a failure.
fn wgpu_ready() -> bool {
    if !compiled_backends().contains(&BackendKind::Wgpu) {
        lenet_data::testing::unavailable("this build has no wgpu feature");
        return false;
    }
    if !wgpu_adapters().is_empty() {
        return true;
    }
    lenet_data::testing::unavailable(
        "wgpu finds no adapter; install mesa-vulkan-drivers libvulkan1",
    );
    false
}

#[test]
fn training_steps_agree_across_backends_from_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let init = initial_weights(dir);
    let (flex_losses, flex_weights) = train_steps(BackendKind::Flex, &init);
    assert!(flex_losses[STEPS - 1] < flex_losses[0], "{flex_losses:?}");

    let mut kinds = vec![BackendKind::Ndarray];
    if wgpu_ready() {
        // Kernel compilation on a software device is slow; `.ci/run` sets
        // CUBECL_AUTOTUNE_LEVEL=minimal to shorten it.
        kinds.push(BackendKind::Wgpu);
    }
    for kind in kinds {
        let (losses, weights) = train_steps(kind, &init);
        eprintln!("{kind}: losses {losses:?} (flex {flex_losses:?})");
        assert_close(&format!("{kind} losses"), &losses, &flex_losses, 1e-4);
        assert_close(
            &format!("{kind} conv1 weights"),
            &weights,
            &flex_weights,
            1e-4,
        );
    }
}
