//! A 1D CNN defined in code and trained on a synthetic task: is a noisy sequence a sine, a
//! square or a sawtooth wave? conv1d → relu → max-pool (twice) → flatten → dense.
//!
//!     cargo run -p lenet-examples --example signal_1d
//!
//! The same `ConvNet` as for images: the input's number of spatial dimensions (here one, a
//! length) is what makes the convolutions 1D. The loop is written out, nanoGPT-style; the
//! optimizer comes from the training crate's config.

use std::f32::consts::TAU;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use lenet_model::{
    Activation, ClassifierConfig, ConvNet, Dims, FeatureBlockConfig, FeatureMap, Init, InputConfig,
    ModelConfig, OutputKind, Padding, PoolConfig, PoolKind,
};
use lenet_train::config::OptimizerConfig;
use lenet_train::train::learner::optimizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const LEN: usize = 64;
const CLASSES: [&str; 3] = ["sine", "square", "sawtooth"];

/// One noisy period-ish of waveform `class`, with random frequency, phase and amplitude.
fn waveform(class: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let freq = rng.random_range(1.0..4.0f32);
    let phase = rng.random_range(0.0..1.0f32);
    let amp = rng.random_range(0.5..1.5f32);
    (0..LEN)
        .map(|t| {
            let x = (t as f32 / LEN as f32 * freq + phase).fract();
            let v = match class {
                0 => (TAU * x).sin(),
                1 => {
                    if x < 0.5 {
                        1.0
                    } else {
                        -1.0
                    }
                }
                _ => 2.0 * x - 1.0,
            };
            amp * v + rng.random_range(-0.5..0.5f32)
        })
        .collect()
}

/// `n` examples: signals `[n · LEN]` and labels `[n]`.
fn dataset(n: usize, rng: &mut ChaCha8Rng) -> (Vec<f32>, Vec<i64>) {
    let mut x = Vec::with_capacity(n * LEN);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % CLASSES.len();
        x.extend(waveform(class, rng));
        y.push(class as i64);
    }
    (x, y)
}

fn block(out_channels: usize) -> FeatureBlockConfig {
    FeatureBlockConfig {
        out_channels,
        kernel: Dims::All(5),
        stride: Dims::All(1),
        padding: Padding::Same,
        dilation: Dims::All(1),
        groups: 1,
        connections: None,
        bias: true,
        batch_norm: false,
        activation: Activation::Relu,
        pool: Some(PoolConfig {
            kind: PoolKind::Max,
            kernel: Dims::All(2),
            stride: None,
            padding: Dims::All(0),
        }),
        dropout: 0.0,
    }
}

fn accuracy(
    net: &ConvNet,
    x: &[f32],
    y: &[i64],
    device: &Device,
) -> Result<f64, Box<dyn std::error::Error>> {
    let n = y.len();
    let input = Tensor::<3>::from_data(TensorData::new(x.to_vec(), [n, 1, LEN]), device);
    let predicted: Vec<i64> = net
        .forward(FeatureMap::D1(input))
        .argmax(1)
        .to_data()
        .convert::<i64>()
        .try_to_vec()
        .map_err(|e| format!("cannot read the predictions: {e:?}"))?;
    Ok(predicted.iter().zip(y).filter(|(p, t)| p == t).count() as f64 / n as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ModelConfig {
        preset: None,
        name: "waveforms-1d".into(),
        input: InputConfig {
            channels: 1,
            size: vec![LEN],
        },
        features: vec![block(8), block(16)],
        classifier: ClassifierConfig {
            hidden: vec![32],
            activation: Activation::Relu,
            dropout: 0.0,
            output: OutputKind::Linear,
        },
        num_classes: CLASSES.len(),
        init: Init::Default,
    };
    let plan = config.plan()?;
    print!("{}", plan.summary(&config.name).to_table());

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (train_x, train_y) = dataset(3000, &mut rng);
    let (test_x, test_y) = dataset(600, &mut rng);

    let device = Device::flex();
    device.seed(7);
    let train_device = device.clone().autodiff();
    let mut net = plan.build(&train_device);
    let lr = 2e-3;
    let mut optim = optimizer(
        &OptimizerConfig {
            lr,
            ..OptimizerConfig::default()
        },
        None,
    );
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);

    let batch = 64;
    for epoch in 1..=8 {
        let mut loss_sum = 0.0;
        for (xs, ys) in train_x.chunks(batch * LEN).zip(train_y.chunks(batch)) {
            let b = ys.len();
            let x =
                Tensor::<3>::from_data(TensorData::new(xs.to_vec(), [b, 1, LEN]), &train_device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(ys.to_vec(), [b]), &train_device);
            let loss = loss_fn.forward(net.forward(FeatureMap::D1(x)), y);
            loss_sum += f64::from(loss.clone().into_scalar::<f32>()) * b as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
        }
        let acc = accuracy(&net.valid(), &test_x, &test_y, &device)?;
        println!(
            "epoch {epoch}: train loss {:.4}, test accuracy {:.1}%",
            loss_sum / train_y.len() as f64,
            100.0 * acc
        );
    }
    let acc = accuracy(&net.valid(), &test_x, &test_y, &device)?;
    if acc < 0.95 {
        return Err(format!("test accuracy {:.1}% is below 95%", 100.0 * acc).into());
    }
    println!(
        "final test accuracy {:.1}% on {} unseen signals",
        100.0 * acc,
        test_y.len()
    );
    Ok(())
}
