//! Presets, TOML parsing with preset overrides, and the shipped config files.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::Device;
use lenet_model::{preset, ModelConfig, ModelError, PRESETS};

#[test]
fn preset_parameter_counts_match_hand_computation() {
    // conv: out·in·k² + out; dense: in·out + out.
    let lenet5 =
        (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10);
    assert_eq!(lenet5, 61_706);
    let classic = (6 * 25 + 6)
        + (16 * 6 * 25 + 16)
        + (120 * 16 * 25 + 120)
        + (120 * 84 + 84)
        + (84 * 10 + 10);
    let lenet1 = (4 * 25 + 4) + (12 * 4 * 25 + 12) + (12 * 4 * 4 * 10 + 10);
    let lenet4 = (4 * 25 + 4) + (16 * 4 * 25 + 16) + (16 * 5 * 5 * 120 + 120) + (120 * 10 + 10);
    // The 1998 paper's own counts (Section II-B): C1 156, S2 12 (a coefficient and a bias per
    // map), C3 1,516 (60 of 96 kernels), S4 32, C5 48,120, F6 10,164; the RBF weights are fixed.
    let lenet1998 = (6 * 25 + 6)
        + (2 * 6)
        + (60 * 25 + 16)
        + (2 * 16)
        + (120 * 16 * 25 + 120)
        + (120 * 84 + 84);
    let expected = [
        ("lenet5", lenet5),
        ("lenet5-classic", classic),
        ("lenet5-1998", lenet1998),
        ("lenet1", lenet1),
        ("lenet4", lenet4),
    ];
    assert_eq!(
        expected.map(|e| e.1),
        [61_706, 61_706, 60_000, 3_246, 51_050]
    );
    let device = Device::flex();
    for (name, params) in expected {
        let plan = preset(name).unwrap().plan().unwrap();
        assert_eq!(plan.parameters(), params, "{name}");
        // Burn counts every stored weight: the 36 kernels C3's table leaves out are stored as
        // zeros (they never train), 900 values.
        let stored_zeros = if name == "lenet5-1998" { 36 * 25 } else { 0 };
        assert_eq!(
            plan.build(&device).num_params(),
            params + stored_zeros,
            "{name} built"
        );
    }
    assert_eq!(PRESETS.len(), expected.len());
}

/// `lenet summary --preset lenet5-1998` shows the paper's counts layer by layer.
#[test]
fn the_1998_network_has_the_papers_parameters_layer_by_layer() {
    let summary = preset("lenet5-1998")
        .unwrap()
        .plan()
        .unwrap()
        .summary("lenet5-1998");
    let params = |name: &str| {
        summary
            .layers
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.parameters)
            .unwrap_or_else(|| panic!("no layer {name}"))
    };
    assert_eq!(params("features.0.conv"), 156, "C1");
    assert_eq!(params("features.0.pool"), 12, "S2");
    assert_eq!(params("features.1.conv"), 1_516, "C3");
    assert_eq!(params("features.1.pool"), 32, "S4");
    assert_eq!(params("features.2.conv"), 48_120, "C5");
    assert_eq!(params("hidden.0"), 10_164, "F6");
    assert_eq!(params("output"), 0, "RBF");
    assert_eq!(summary.total_parameters, 60_000);
    let table = summary.to_table();
    assert!(
        table.contains("rbf 84→10 (fixed 7×12 digit bitmaps: 840 weights, not trained)"),
        "{table}"
    );
    assert!(
        table.contains("subsample2d k2×2 s2×2 p0×0 (sum × coef + bias, lecun_tanh)"),
        "{table}"
    );
}

#[test]
fn an_rbf_output_needs_ten_classes_and_84_inputs() {
    let mut cfg = preset("lenet5-1998").unwrap();
    cfg.classifier.hidden = vec![100];
    match cfg.plan() {
        Err(ModelError::Invalid { at, message }) => {
            assert_eq!(at, "classifier.output");
            assert!(
                message.contains("84 inputs")
                    && message.contains("found 10 classes and 100 inputs"),
                "{message}"
            );
        }
        other => panic!("expected an invalid-config error, got {other:?}"),
    }
}

#[test]
fn classic_lenet5_sees_32x32_and_ends_c5_at_1x1() {
    let plan = preset("lenet5-classic").unwrap().plan().unwrap();
    assert_eq!(plan.input_shape(), vec![1, 32, 32]);
    assert_eq!(plan.blocks[2].output_shape(), vec![120, 1, 1]);
}

#[test]
fn a_preset_can_be_overridden() {
    let text = r#"
        preset = "lenet5"
        name = "wide-lenet5"
        classifier = { hidden = [200] }
        num_classes = 47
    "#;
    let cfg = ModelConfig::from_toml_str(text, "wide.toml").unwrap();
    assert_eq!(cfg.name, "wide-lenet5");
    assert_eq!(cfg.features.len(), 2);
    let plan = cfg.plan().unwrap();
    assert_eq!(plan.dense_layers(), vec![(400, 200), (200, 47)]);
    // The input table merges key by key: only the size changes.
    let cfg = ModelConfig::from_toml_str("preset = \"lenet5\"\ninput = { size = [32, 32] }", "x")
        .unwrap();
    assert_eq!(cfg.input.channels, 1);
    assert_eq!(cfg.plan().unwrap().flat_features, 16 * 6 * 6);
}

fn parse_error(text: &str) -> String {
    match ModelConfig::from_toml_str(text, "bad.toml") {
        Err(e @ ModelError::Parse { .. }) => e.to_string(),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn unknown_keys_activations_and_presets_are_named() {
    let msg = parse_error(
        "preset = \"lenet5\"\n[[features]]\nout_channels = 6\nkernel = 5\nkernal_size = 3\n",
    );
    assert!(msg.starts_with("bad.toml: features[0]"), "{msg}");
    assert!(msg.contains("kernal_size"), "{msg}");

    let msg = parse_error("num_classes = 10\ninput = { channels = 1, size = [28, 28] }\n[[features]]\nout_channels = 6\nkernel = 5\nactivation = \"relux\"\n");
    assert!(
        msg.contains("features[0].activation") && msg.contains("relux"),
        "{msg}"
    );
    assert!(msg.contains("lecun_tanh"), "lists the valid names: {msg}");

    let msg = parse_error("preset = \"lenet9\"\n");
    assert!(
        msg.contains("preset") && msg.contains("lenet9") && msg.contains("lenet5-classic"),
        "{msg}"
    );

    let msg = parse_error("num_classes = \"ten\"\ninput = { channels = 1, size = [28, 28] }\n");
    assert!(msg.contains("num_classes"), "{msg}");

    let msg = parse_error("num_classes = 10\ninput = { channels = 1, size = [28, 28] }\n[[features]]\nout_channels = 6\nkernel = 5\npadding = \"full\"\n");
    assert!(
        msg.contains("features[0].padding") && msg.contains("full"),
        "{msg}"
    );

    let msg = parse_error("num_classes = 10\ninput = { channels = 1, size = [28, 28] }\n[[features]]\nout_channels = 6\nkernel = -5\n");
    assert!(msg.contains("features[0].kernel"), "{msg}");

    let msg = parse_error("num_classes = 10\ninput = { channels = 1, size = [28, 28]\n");
    assert!(msg.starts_with("bad.toml"), "{msg}");
}

#[test]
fn round_trip_through_toml() {
    for name in PRESETS {
        let cfg = preset(name).unwrap();
        let back = ModelConfig::from_toml_str(&cfg.to_toml_string().unwrap(), name).unwrap();
        assert_eq!(back, cfg, "{name}");
    }
}

#[test]
fn every_shipped_config_validates() {
    let dir = // At run time: a target directory shared between checkouts can hold a test binary
        // built from another one.
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into())).join("../../configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = ModelConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            cfg.plan()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 1, "no configs found in {}", dir.display());
}
