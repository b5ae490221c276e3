//! Times each pass of the kernels on LeNet-5's layers (no Burn, no autodiff): where a training
//! step's convolution and pooling time goes. `cargo run --example kernel_timing [BATCH]`.

use std::time::Instant;

use lenet_kernels::{conv, pool};

fn time(what: &str, reps: usize, mut f: impl FnMut()) {
    f();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    println!("{what:<28} {:>8.3} ms", best * 1e3);
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
    for (name, c, o, size, pad) in [("conv1", 1, 6, 28, 2), ("conv2", 6, 16, 14, 0)] {
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
        let y = conv::forward(&g, &x, &w, Some(&b), conv::Activation::None);
        let grad = conv::OutputGrad {
            dy: &y,
            activated: None,
        };
        time(&format!("{name} forward"), 20, || {
            std::hint::black_box(conv::forward(&g, &x, &w, Some(&b), conv::Activation::None));
        });
        time(&format!("{name} weight+bias grad"), 20, || {
            std::hint::black_box(conv::backward_weight(&g, &x, grad));
        });
        time(&format!("{name} input grad"), 20, || {
            std::hint::black_box(conv::backward_input(&g, &w, grad));
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
