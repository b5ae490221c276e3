//! Pictures from the command line: the curves `lenet train` leaves in a run, `lenet eval
//! --plots`, and `lenet viz` — files that exist, decode as PNG and have the size the model's
//! shapes give.

mod common;
use std::path::Path;

use common::{configs, data_root, lenet, run, scratch, SMALL};

fn png_size(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

/// Width and height of a grid of `n` equal tiles, as documented by lenet-viz: margins 8,
/// padding 4, a caption band of 16 and a title band of 24.
fn grid(n: u32, columns: u32, tile_w: u32, tile_h: u32) -> (u32, u32) {
    let c = columns.min(n);
    let r = n.div_ceil(c);
    (
        2 * 8 + c * tile_w + (c - 1) * 4,
        2 * 8 + 24 + r * (tile_h + 16) + (r - 1) * 4,
    )
}

#[test]
fn a_run_draws_its_curves_and_eval_and_viz_draw_what_the_network_does() {
    let Some(root) = data_root() else { return };
    let dir = scratch("pictures");
    let run_dir = dir.join("run");
    let (code, out, err) = run(lenet()
        .args(["train", "--quiet", "--offline", "--epochs", "2", "--config"])
        .arg(configs().join("lenet5.toml"))
        .args(SMALL)
        .arg("--data-dir")
        .arg(&root)
        .arg("--run-dir")
        .arg(&run_dir));
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(png_size(&run_dir.join("curves.png")), (960, 720));
    let svg = std::fs::read_to_string(run_dir.join("curves.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("lenet5 on mnist"),
        "{svg:.200}"
    );

    // eval --plots: the confusion matrix and the misclassified digits.
    let plots = dir.join("plots");
    let (code, _, err) = run(lenet()
        .args([
            "eval",
            "--offline",
            "--limit",
            "500",
            "--misclassified",
            "12",
        ])
        .arg("--checkpoint")
        .arg(&run_dir)
        .arg("--data-dir")
        .arg(&root)
        .arg("--plots")
        .arg(&plots));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        png_size(&plots.join("confusion.png")),
        (120 + 10 * 56 + 16, 40 + 10 * 56 + 68)
    );
    // A 2-epoch model on 2,048 images gets more than 12 of 500 wrong: a full grid of 28×28
    // images at zoom 3, 8 per row.
    assert_eq!(
        png_size(&plots.join("misclassified.png")),
        grid(12, 8, 84, 84)
    );

    // viz: filters, feature maps after each layer, and the input, for a test image.
    let viz = dir.join("viz");
    let (code, out, err) = run(lenet()
        .args(["viz", "--offline", "--index", "3", "--checkpoint"])
        .arg(&run_dir)
        .arg("--data-dir")
        .arg(&root)
        .arg("--out")
        .arg(&viz));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mnist test image 3: predicted "), "{out}");
    // LeNet-5: conv1 6 filters 5×5 (zoom 9 → 45 px), conv2 16×6 kernels of 5×5 (one row per
    // filter); maps 6×28×28 (zoom 3), 6×14×14 (zoom 6), 16×10×10 (zoom 8), 16×5×5 (zoom 16).
    let expected = [
        ("input.png", grid(1, 1, 84, 84)),
        ("filters-features.0.conv.png", grid(6, 6, 45, 45)),
        ("filters-features.1.conv.png", grid(96, 6, 45, 45)),
        ("maps-features.0.conv.png", grid(6, 8, 84, 84)),
        ("maps-features.0.relu.png", grid(6, 8, 84, 84)),
        ("maps-features.0.pool.png", grid(6, 8, 84, 84)),
        ("maps-features.1.conv.png", grid(16, 8, 80, 80)),
        ("maps-features.1.relu.png", grid(16, 8, 80, 80)),
        ("maps-features.1.pool.png", grid(16, 8, 80, 80)),
    ];
    for (file, size) in expected {
        assert_eq!(png_size(&viz.join(file)), size, "{file}");
    }
    // Deterministic: the same pictures again, byte for byte.
    let again = dir.join("viz2");
    let (code, _, _) = run(lenet()
        .args(["viz", "--offline", "--index", "3", "--checkpoint"])
        .arg(&run_dir)
        .arg("--data-dir")
        .arg(&root)
        .arg("--out")
        .arg(&again));
    assert_eq!(code, 0);
    for (file, _) in expected {
        assert_eq!(
            std::fs::read(viz.join(file)).unwrap(),
            std::fs::read(again.join(file)).unwrap(),
            "{file}"
        );
    }
    // Your own picture works too; an index past the split is a clear error.
    let digit = dir.join("digit.png");
    let (code, _, err) = run(lenet()
        .args([
            "data", "show", "mnist", "--split", "test", "--index", "0", "--png",
        ])
        .arg(&digit)
        .arg("--data-dir")
        .arg(&root));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(lenet()
        .args(["viz", "--image"])
        .arg(&digit)
        .arg("--checkpoint")
        .arg(&run_dir)
        .arg("--out")
        .arg(dir.join("viz3")));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("digit.png: predicted 7"), "{out}");
    let (code, _, err) = run(lenet()
        .args(["viz", "--offline", "--index", "10000", "--checkpoint"])
        .arg(&run_dir)
        .arg("--data-dir")
        .arg(&root)
        .arg("--out")
        .arg(dir.join("viz4")));
    assert_eq!(code, 2);
    assert!(
        err.contains("--index 10000") && err.contains("10000 images"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
