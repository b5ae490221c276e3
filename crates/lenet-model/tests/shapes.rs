//! Shape inference agrees with the shapes the built network really produces, for random valid
//! networks in 1D, 2D and 3D.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use lenet_model::{FeatureMap, ModelConfig, Stage};
use proptest::prelude::*;

fn block() -> impl Strategy<Value = String> {
    (
        1usize..5,                                   // out_channels
        1usize..4,                                   // kernel
        1usize..3,                                   // stride
        0usize..2,                                   // padding
        1usize..3,                                   // dilation
        prop_oneof![Just("relu"), Just("tanh"), Just("lecun_tanh"), Just("none")],
        prop::option::of((prop_oneof![Just("max"), Just("avg")], 1usize..3, 1usize..3)),
        any::<bool>(),                               // batch norm
    )
        .prop_map(|(c, k, s, p, d, act, pool, bn)| {
            let pool = pool
                .map(|(kind, k, s)| format!("pool = {{ kind = \"{kind}\", kernel = {k}, stride = {s} }}\n"))
                .unwrap_or_default();
            format!(
                "[[features]]\nout_channels = {c}\nkernel = {k}\nstride = {s}\npadding = {p}\ndilation = {d}\nactivation = \"{act}\"\nbatch_norm = {bn}\n{pool}"
            )
        })
}

fn network() -> impl Strategy<Value = (usize, usize, Vec<usize>, String)> {
    (1usize..=3)
        .prop_flat_map(|n| {
            let side = match n {
                1 => 8usize..40,
                2 => 6usize..16,
                _ => 4usize..8,
            };
            (
                Just(n),
                1usize..3,
                prop::collection::vec(side, n),
                prop::collection::vec(block(), 1..4),
                prop::collection::vec(1usize..8, 0..3),
            )
        })
        .prop_map(|(n, channels, size, blocks, hidden)| {
            let text = format!(
                "num_classes = 3\ninput = {{ channels = {channels}, size = {size:?} }}\nclassifier = {{ hidden = {hidden:?} }}\n{}",
                blocks.join("\n")
            );
            (n, channels, size, text)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn inferred_shapes_match_the_built_network((n, channels, size, text) in network()) {
        let config = ModelConfig::from_toml_str(&text, "<proptest>").unwrap();
        // Some random stacks shrink below 1×1; those must be rejected, never built.
        let plan = match config.plan() {
            Ok(plan) => plan,
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with("features["), "{}", msg);
                return Ok(());
            }
        };
        let device = Device::flex();
        let net = plan.build(&device);
        // Burn also counts batch norm's running mean and variance (not trainable) as parameters.
        let running: usize = plan.blocks.iter().filter(|b| b.batch_norm).map(|b| 2 * b.conv.out_channels).sum();
        prop_assert_eq!(net.num_params(), plan.parameters() + running);

        let batch = 2;
        let mut shape = vec![batch, channels];
        shape.extend(&size);
        let x = match n {
            1 => FeatureMap::D1(Tensor::random([shape[0], shape[1], shape[2]], Distribution::Default, &device)),
            2 => FeatureMap::D2(Tensor::random([shape[0], shape[1], shape[2], shape[3]], Distribution::Default, &device)),
            _ => FeatureMap::D3(Tensor::random([shape[0], shape[1], shape[2], shape[3], shape[4]], Distribution::Default, &device)),
        };
        net.check_input(&x.dims()).unwrap();
        let mut seen: Vec<(usize, Stage, Vec<usize>)> = Vec::new();
        let logits = net.forward_observed(x, &mut |i, s, m| seen.push((i, s, m.dims())));
        prop_assert_eq!(logits.dims(), [batch, 3]);
        for (i, stage, dims) in seen {
            let b = &plan.blocks[i];
            let spatial = match stage {
                Stage::Conv | Stage::Activation => &b.conv.output,
                Stage::Pool => &b.pool.as_ref().unwrap().output,
            };
            let mut expected = vec![batch, b.conv.out_channels];
            expected.extend(spatial);
            prop_assert_eq!(dims, expected, "block {} {:?}\n{}", i, stage, text);
        }
    }
}
