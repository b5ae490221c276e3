//! The examples worked out by hand in the document this project comes from, computed by the
//! layers the model crate builds.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use lenet_model::{Conv, ConvNet, FeatureMap, ModelConfig, Stage};

fn device() -> Device {
    Device::flex()
}

/// A one-block network: `[1, h, w]` input, one conv filter of `k×k` without bias, no
/// nonlinearity, and an optional pool.
fn single_filter(h: usize, w: usize, k: usize, pool: &str) -> ConvNet {
    let text = format!(
        r#"
        num_classes = 2
        input = {{ channels = 1, size = [{h}, {w}] }}
        [[features]]
        out_channels = 1
        kernel = {k}
        bias = false
        activation = "none"
        {pool}
        "#
    );
    ModelConfig::from_toml_str(&text, "<test>")
        .unwrap()
        .init(&device())
        .unwrap()
}

fn set_kernel(net: &mut ConvNet, values: Vec<f32>, k: usize) {
    let Conv::D2(conv) = &mut net.features[0].conv else {
        panic!("expected a 2D convolution")
    };
    conv.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(values, [1, 1, k, k]),
        &device(),
    ));
}

fn image(values: Vec<f32>, h: usize, w: usize) -> FeatureMap {
    FeatureMap::D2(Tensor::from_data(
        TensorData::new(values, [1, 1, h, w]),
        &device(),
    ))
}

/// Runs the network and returns the maps after `stage` of block 0.
fn maps_after(net: &ConvNet, x: FeatureMap, stage: Stage) -> Vec<f32> {
    let mut seen = Vec::new();
    net.forward_observed(x, &mut |_, s, maps| {
        if s == stage {
            seen = maps.to_vec().unwrap();
        }
    });
    seen
}

const W: [f32; 9] = [1., -1., -1., -1., 1., -1., -1., -1., 1.];

#[test]
fn cross_correlation_of_the_x_pattern_is_seven_ninths() {
    // X = [[-1,-1,-1],[-1,1,-1],[-1,-1,1]] against W: the products sum to 7, the mean is 0.77.
    let mut net = single_filter(3, 3, 3, "");
    set_kernel(&mut net, W.iter().map(|w| w / 9.0).collect(), 3);
    let x = vec![-1., -1., -1., -1., 1., -1., -1., -1., 1.];
    let out = maps_after(&net, image(x, 3, 3), Stage::Conv);
    assert_eq!(out.len(), 1);
    assert!((out[0] - 7.0 / 9.0).abs() < 1e-6, "{out:?}");
    assert_eq!(format!("{:.2}", out[0]), "0.78"); // 0.777…, which the document truncates to 0.77
}

#[test]
fn cross_correlation_of_the_second_example_is_minus_one_ninth() {
    // The document's term-by-term sum (-1/9) belongs to X = [[-1,-1,-1],[1,-1,-1],[-1,1,-1]].
    let mut net = single_filter(3, 3, 3, "");
    set_kernel(&mut net, W.iter().map(|w| w / 9.0).collect(), 3);
    let x = vec![-1., -1., -1., 1., -1., -1., -1., 1., -1.];
    let out = maps_after(&net, image(x, 3, 3), Stage::Conv);
    assert!((out[0] + 1.0 / 9.0).abs() < 1e-6, "{out:?}");
}

#[test]
fn the_layer_does_not_flip_the_kernel() {
    // An impulse at the centre: cross-correlation returns the kernel rotated by 180°,
    // a (flipped) convolution would return the kernel itself.
    let mut net = single_filter(3, 3, 3, "");
    set_kernel(&mut net, (1..=9).map(|v| v as f32).collect(), 3);
    let text = r#"
        num_classes = 2
        input = { channels = 1, size = [3, 3] }
        [[features]]
        out_channels = 1
        kernel = 3
        padding = 1
        bias = false
        activation = "none"
    "#;
    let mut padded = ModelConfig::from_toml_str(text, "<test>")
        .unwrap()
        .init(&device())
        .unwrap();
    set_kernel(&mut padded, (1..=9).map(|v| v as f32).collect(), 3);
    let impulse = vec![0., 0., 0., 0., 1., 0., 0., 0., 0.];
    let out = maps_after(&padded, image(impulse, 3, 3), Stage::Conv);
    assert_eq!(out, vec![9., 8., 7., 6., 5., 4., 3., 2., 1.]);
    // Without padding the single output is the sum of kernel × input at the same positions.
    let ramp: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let out = maps_after(&net, image(ramp, 3, 3), Stage::Conv);
    let same_position: f32 = (1..=9).map(|v| (v * v) as f32).sum();
    assert_eq!(out, vec![same_position]);
}

#[test]
fn output_sizes_of_a_7x7_input() {
    for (stride, expected) in [(1, 5), (2, 3)] {
        let text = format!(
            "num_classes = 2\ninput = {{ channels = 1, size = [7, 7] }}\n[[features]]\nout_channels = 1\nkernel = 3\nstride = {stride}\n"
        );
        let net = ModelConfig::from_toml_str(&text, "<test>")
            .unwrap()
            .init(&device())
            .unwrap();
        let mut dims = Vec::new();
        net.forward_observed(image(vec![0.5; 49], 7, 7), &mut |_, s, m| {
            if s == Stage::Conv {
                dims = m.dims();
            }
        });
        assert_eq!(dims, vec![1, 1, expected, expected], "stride {stride}");
    }
}

/// The 4×4 input made of the document's four 2×2 regions.
fn pooling_input() -> Vec<f32> {
    vec![
        32., 10., 11., 17., //
        4., 14., 9., 19., //
        20., 4., 16., 27., //
        8., 12., 7., 14.,
    ]
}

#[test]
fn max_and_average_pooling_of_the_four_regions() {
    for (kind, expected) in [("max", [32., 19., 20., 27.]), ("avg", [15., 14., 11., 16.])] {
        let mut net = single_filter(
            4,
            4,
            1,
            &format!("pool = {{ kind = \"{kind}\", kernel = 2 }}"),
        );
        set_kernel(&mut net, vec![1.0], 1);
        let out = maps_after(&net, image(pooling_input(), 4, 4), Stage::Pool);
        assert_eq!(out, expected.to_vec(), "{kind} pooling");
    }
}

#[test]
fn weight_sharing_versus_a_dense_layer() {
    // A 3×3 image through one 2×2 filter: 4 shared weights give a 2×2 feature map.
    let net = single_filter(3, 3, 2, "");
    assert_eq!(net.features[0].num_params(), 4);
    // A dense layer from the same 9 pixels to the same 4 outputs needs 9·4 = 36 weights.
    let dense = burn::nn::LinearConfig::new(9, 4)
        .with_bias(false)
        .init(&device());
    assert_eq!(dense.num_params(), 36);
    // And the guide's comparison: a 3×3 kernel has 9 weights, one dense unit on a 9×9 input 81.
    let k3 = single_filter(9, 9, 3, "");
    assert_eq!(k3.features[0].num_params(), 9);
    assert_eq!(
        burn::nn::LinearConfig::new(81, 1)
            .with_bias(false)
            .init(&device())
            .num_params(),
        81
    );
}

#[test]
fn input_channels_are_summed_per_filter_one_map_per_filter() {
    // 2 input channels, 3 filters of 1×1 with all weights 1: each output map is the channel sum.
    let text = r#"
        num_classes = 2
        input = { channels = 2, size = [2, 2] }
        [[features]]
        out_channels = 3
        kernel = 1
        bias = false
        activation = "none"
    "#;
    let mut net = ModelConfig::from_toml_str(text, "<test>")
        .unwrap()
        .init(&device())
        .unwrap();
    let Conv::D2(conv) = &mut net.features[0].conv else {
        panic!()
    };
    conv.weight = Param::from_tensor(Tensor::ones([3, 2, 1, 1], &device()));
    let x = vec![1., 2., 3., 4., 10., 20., 30., 40.];
    let mut dims = Vec::new();
    let mut vals = Vec::new();
    net.forward_observed(
        FeatureMap::D2(Tensor::from_data(
            TensorData::new(x, [1, 2, 2, 2]),
            &device(),
        )),
        &mut |_, s, m| {
            if s == Stage::Conv {
                dims = m.dims();
                vals = m.to_vec().unwrap();
            }
        },
    );
    assert_eq!(dims, vec![1, 3, 2, 2]);
    assert_eq!(vals, [11., 22., 33., 44.].repeat(3));
}
