//! Times each pass of the kernels on LeNet-5's layers and the classic network's (no Burn, no
//! autodiff): where a training step's convolution and pooling time goes, by im2col and by the
//! method lenet chooses for the pass on this machine (direct or dense).
//! `cargo run --example kernel_timing [BATCH]`.

use std::time::Instant;

use lenet_kernels::{conv, pool};

/// The best of 5 windows of `reps` calls, in seconds per call.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

fn time(what: &str, reps: usize, f: impl FnMut()) {
    println!("{what:<34} {:>8.3} ms", best(reps, f) * 1e3);
}

/// Times a pass by two methods (`-` for none), and names the second.
fn compare(
    what: &str,
    a: Option<conv::Method>,
    b: Option<conv::Method>,
    mut f: impl FnMut(conv::Method),
) {
    let mut cell = |m: Option<conv::Method>| match m {
        Some(m) => format!("{:>7.3} ms", best(20, || f(m)) * 1e3),
        None => format!("{:>10}", "-"),
    };
    let name = b.map_or(String::new(), |m| format!(" ({m:?})").to_lowercase());
    let (a, b) = (cell(a), cell(b));
    println!("{what:<34} {a} {b}{name}");
}

/// Deterministic pseudo-random values in [-1, 1) (branchy code must not see a pattern).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

fn main() {
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    println!("batch {batch}, {} threads", rayon::current_num_threads());
    // LeNet-5's two convolutions, the classic network's three (32×32 input, C5 with one
    // output position) and mnist-best's two.
    let convs = [
        ("lenet5 conv1", 1, 6, 28, 2),
        ("lenet5 conv2", 6, 16, 14, 0),
        ("classic C1", 1, 6, 32, 0),
        ("classic C3", 6, 16, 14, 0),
        ("classic C5", 16, 120, 5, 0),
        // mnist-best's, wider: 16 and 48 maps.
        ("mnist-best conv1", 1, 16, 28, 2),
        ("mnist-best conv2", 16, 48, 14, 2),
    ];
    println!("{:<34} {:>10} {:>10}", "", "im2col", "lenet's");
    for (name, c, o, size, pad) in convs {
        let g = conv::ConvGeometry {
            batch,
            in_channels: c,
            in_size: [size, size],
            out_channels: o,
            kernel: [5, 5],
            stride: [1, 1],
            padding: [[pad, pad], [pad, pad]],
            dilation: [1, 1],
        };
        let x = noise(batch * c * size * size, 1);
        let w = noise(o * c * 25, 2);
        let b = vec![0.1f32; o];
        let y = conv::forward(&g, &x, &w, Some(&b), conv::Activation::None, None);
        let grad = conv::OutputGrad {
            dy: &y,
            activated: None,
            pooled: None,
        };
        // The method lenet uses for each pass, against im2col (`-` where it is im2col).
        let im2col = Some(conv::Method::Im2col);
        let chosen = |m: conv::Method| (m != conv::Method::Im2col).then_some(m);
        let m = conv::Method::chosen(&g);
        compare(&format!("{name} forward"), im2col, chosen(m), |m| {
            std::hint::black_box(conv::forward_with(
                m,
                &g,
                &x,
                &w,
                Some(&b),
                conv::Activation::None,
                None,
            ));
        });
        compare(
            &format!("{name} weight+bias grad"),
            im2col,
            chosen(m),
            |m| {
                std::hint::black_box(conv::backward_weight_with(m, &g, &x, grad));
            },
        );
        let m = conv::Method::chosen_for_input_grad(&g);
        compare(&format!("{name} input grad"), im2col, chosen(m), |m| {
            std::hint::black_box(conv::backward_input_with(m, &g, &w, grad));
        });
    }
    for (name, c, size) in [("pool1", 6, 28), ("pool2", 16, 10)] {
        let g = pool::PoolGeometry {
            planes: batch * c,
            size: [size, size],
            kernel: [2, 2],
        };
        let x = noise(batch * c * size * size, 1);
        time(&format!("{name} max forward"), 20, || {
            std::hint::black_box(pool::forward(&g, pool::PoolKind::Max, &x));
        });
        let y = pool::forward(&g, pool::PoolKind::Max, &x);
        time(&format!("{name} max backward"), 20, || {
            std::hint::black_box(pool::max_backward(&g, &x, &y, &y));
        });
    }
}
