//! Where the time of a training step goes, layer by layer (`lenet bench --layers`).
//!
//! Each layer runs on its own, on an input of the shape it sees in the network (random values),
//! `steps` times per window, 5 windows, median: the forward pass without autodiff (as in
//! evaluation), and the forward plus backward pass (of the sum of its output) with autodiff, as in
//! a training step. The input needs a gradient for every layer but the first, as in training.
//! The two columns are measured separately (they can take different code paths), so their
//! difference is not the backward pass alone. Layer names are those of `lenet summary`.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use lenet_model::{Activation, ConvNet, FeatureMap, Plan, Stage};
use serde::Serialize;

/// One layer's times, in milliseconds per call.
#[derive(Debug, Clone, Serialize)]
pub struct LayerTime {
    /// `features.0.conv`, `hidden.0`, …
    pub layer: String,
    /// Output shape without the batch.
    pub output: Vec<usize>,
    /// Forward pass without autodiff (inference).
    pub forward_ms: f64,
    /// Forward and backward pass with autodiff (training).
    pub train_ms: f64,
}

fn random(dims: &[usize], device: &Device) -> FeatureMap {
    let d = Distribution::Normal(0.0, 1.0);
    match *dims {
        [b, c, l] => FeatureMap::D1(Tensor::random([b, c, l], d, device)),
        [b, c, h, w] => FeatureMap::D2(Tensor::random([b, c, h, w], d, device)),
        [b, c, z, h, w] => FeatureMap::D3(Tensor::random([b, c, z, h, w], d, device)),
        _ => FeatureMap::D1(Tensor::random([1, 1, 1], d, device)),
    }
}

fn require_grad(x: FeatureMap) -> FeatureMap {
    match x {
        FeatureMap::D1(t) => FeatureMap::D1(t.require_grad()),
        FeatureMap::D2(t) => FeatureMap::D2(t.require_grad()),
        FeatureMap::D3(t) => FeatureMap::D3(t.require_grad()),
    }
}

/// The sum of all values, as a one-element tensor (waits for the computation).
fn total(x: &FeatureMap) -> Tensor<1> {
    match x {
        FeatureMap::D1(t) => t.clone().sum(),
        FeatureMap::D2(t) => t.clone().sum(),
        FeatureMap::D3(t) => t.clone().sum(),
    }
}

/// Median milliseconds per call of `f` over 5 windows of `steps` calls.
fn median_ms(steps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut ms: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..steps {
                f();
            }
            start.elapsed().as_secs_f64() * 1e3 / steps as f64
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[2]
}

/// Times every layer of the network `plan` at batch `bs` on `device`.
pub fn profile(plan: &Plan, device: &Device, bs: usize, steps: usize) -> Vec<LayerTime> {
    let ad = device.clone().autodiff();
    device.seed(0);
    let net: ConvNet = plan.build(&ad);
    let inference = net.valid();
    let steps = steps.max(1);
    let mut out = Vec::new();
    let mut dims: Vec<usize> = std::iter::once(bs).chain(plan.input_shape()).collect();
    for (i, block) in net.features.iter().enumerate() {
        let mut stages = vec![(Stage::Conv, "conv".to_string())];
        stages.push((Stage::Activation, block.activation.name().to_string()));
        if block.pool.is_some() {
            stages.push((Stage::Pool, "pool".to_string()));
        }
        for (stage, name) in stages {
            let x = random(&dims, device);
            let forward_ms = median_ms(steps, || {
                let y = inference.features[i].stage(stage, x.clone());
                let _ = total(&y).into_data();
            });
            let first = i == 0 && stage == Stage::Conv;
            let xa = random(&dims, &ad);
            let xa = if first { xa } else { require_grad(xa) };
            let both = median_ms(steps, || {
                let y = block.stage(stage, xa.clone());
                let _ = total(&y).backward();
            });
            dims = inference.features[i].stage(stage, x).dims();
            out.push(LayerTime {
                layer: format!("features.{i}.{name}"),
                output: dims[1..].to_vec(),
                forward_ms,
                train_ms: both,
            });
        }
    }
    // The classifier: each dense layer with its activation, then the output layer.
    let mut width: usize = dims[1..].iter().product();
    let layers: Vec<_> = net.hidden.iter().chain(net.output.linear()).collect();
    let valid_layers: Vec<_> = inference
        .hidden
        .iter()
        .chain(inference.output.linear())
        .collect();
    for (j, (layer, valid)) in layers.iter().zip(&valid_layers).enumerate() {
        let last = j + 1 == layers.len();
        let act = match last {
            true => Activation::None,
            false => net.hidden_activation,
        };
        let x: Tensor<2> = Tensor::random([bs, width], Distribution::Normal(0.0, 1.0), device);
        let forward_ms = median_ms(steps, || {
            let _ = lenet_model::dense(valid, x.clone(), act).sum().into_data();
        });
        let xa: Tensor<2> =
            Tensor::random([bs, width], Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let both = median_ms(steps, || {
            let _ = lenet_model::dense(layer, xa.clone(), act).sum().backward();
        });
        width = valid.weight.dims()[1];
        out.push(LayerTime {
            layer: if last {
                "output".to_string()
            } else {
                format!("hidden.{j} + {}", act.name())
            },
            output: vec![width],
            forward_ms,
            train_ms: both,
        });
    }
    out
}

/// The profile as an aligned table with each layer's share of the total.
pub fn table(rows: &[LayerTime], bs: usize) -> String {
    let total: f64 = rows.iter().map(|r| r.train_ms).sum();
    let mut s = format!(
        "per layer at batch {bs} (ms per call, median of 5 windows; share of the training time):\n  {:<22} {:<14} {:>9} {:>13} {:>7}\n",
        "layer", "output", "inference", "training f+b", "share"
    );
    for r in rows {
        s += &format!(
            "  {:<22} {:<14} {:>9.3} {:>13.3} {:>6.1}%\n",
            r.layer,
            format!("{:?}", r.output),
            r.forward_ms,
            r.train_ms,
            100.0 * r.train_ms / total.max(1e-12)
        );
    }
    let inference: f64 = rows.iter().map(|r| r.forward_ms).sum();
    s += &format!(
        "  {:<22} {:<14} {:>9.3} {:>13.3} ms\n",
        "sum", "", inference, total
    );
    s
}
