//! Shape inference agrees with the shapes the built network really produces, for random valid
//! networks in 1D, 2D and 3D.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use lenet_model::{FeatureMap, ModelConfig, Stage};
use proptest::prelude::*;

/// The numbers of one random block: kernel, stride, padding, dilation, and the pool's kernel and
/// stride if it has one.
type Numbers = (usize, usize, usize, usize, Option<(usize, usize)>);

fn block() -> impl Strategy<Value = (String, Numbers)> {
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
            let pool_text = pool
                .map(|(kind, k, s)| format!("pool = {{ kind = \"{kind}\", kernel = {k}, stride = {s} }}\n"))
                .unwrap_or_default();
            let text = format!(
                "[[features]]\nout_channels = {c}\nkernel = {k}\nstride = {s}\npadding = {p}\ndilation = {d}\nactivation = \"{act}\"\nbatch_norm = {bn}\n{pool_text}"
            );
            (text, (k, s, p, d, pool.map(|(_, k, s)| (k, s))))
        })
}

fn network() -> impl Strategy<Value = (usize, usize, Vec<usize>, String, Vec<Numbers>)> {
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
            let (texts, numbers): (Vec<String>, Vec<Numbers>) = blocks.into_iter().unzip();
            let text = format!(
                "num_classes = 3\ninput = {{ channels = {channels}, size = {size:?} }}\nclassifier = {{ hidden = {hidden:?} }}\n{}",
                texts.join("\n")
            );
            (n, channels, size, text, numbers)
        })
}

/// Where the test's own walk through the sizes (written here, apart from the crate's code, with
/// the formula `O = floor((I + 2P - D·(K-1) - 1) / S) + 1`) finds the maps shrinking below 1:
/// the field a correct plan must name, or `None` for a valid network.
fn first_too_small(size: &[usize], blocks: &[Numbers]) -> Option<String> {
    let mut size = size.to_vec();
    for (i, &(k, s, p, d, pool)) in blocks.iter().enumerate() {
        for x in size.iter_mut() {
            let span = d * (k - 1) + 1;
            if *x + 2 * p < span {
                return Some(format!("features[{i}].kernel"));
            }
            *x = (*x + 2 * p - span) / s + 1;
        }
        if let Some((pk, ps)) = pool {
            for x in size.iter_mut() {
                if *x < pk {
                    return Some(format!("features[{i}].pool"));
                }
                *x = (*x - pk) / ps + 1;
            }
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn inferred_shapes_match_the_built_network((n, channels, size, text, numbers) in network()) {
        let config = ModelConfig::from_toml_str(&text, "<proptest>").unwrap();
        // Some random stacks shrink below 1×1; exactly those must be rejected, naming the layer
        // where it happens, and never built.
        let expected_error = first_too_small(&size, &numbers);
        let plan = match (config.plan(), expected_error) {
            (Ok(plan), None) => plan,
            (Err(lenet_model::ModelError::Invalid { at, .. }), Some(field)) => {
                prop_assert_eq!(at, field, "{}", text);
                return Ok(());
            }
            (result, expected) => {
                prop_assert!(false, "expected {:?}, got {:?}\n{}", expected, result.map(|_| ()), text);
                unreachable!()
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
