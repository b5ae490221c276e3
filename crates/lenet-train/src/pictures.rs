//! What lenet draws, from what it computes: the curves of a run, the confusion matrix and the
//! misclassified images of an evaluation, and a network's learned filters and feature maps.
//!
//! The drawing itself is `lenet-viz` (no Burn); this module turns metric rows, evaluations,
//! weights and activations into its curves and grids. Layer names follow `lenet summary`
//! (`features.0.conv`, `features.0.relu`, `features.0.pool`, ...).

use std::path::Path;

use lenet_data::Dataset;
use lenet_model::{ConvNet, FeatureMap, ModelError, Stage};
use lenet_viz::{Curves, Grid, Scale, Series, Tile, VizError};

use crate::data::Subset;
use crate::evaluate::Evaluation;
use crate::run::metrics::MetricRow;

/// The curves of a run's `metrics.csv` rows: loss and accuracy of both splits, and the
/// training learning rate.
pub fn curves(rows: &[MetricRow], title: &str) -> Curves {
    let series = |split: Subset, column: &str| -> Vec<(f64, f64)> {
        let mut points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.split == split)
            .filter_map(|r| r.values.get(column).map(|v| (r.epoch as f64, *v)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points
    };
    let lr = series(Subset::Train, "learning_rate");
    // Both splits, or the training split alone in a run without validation.
    let both = |column: &str| -> Vec<Series> {
        let mut lines = vec![Series::new("train", series(Subset::Train, column))];
        let valid = series(Subset::Valid, column);
        if !valid.is_empty() {
            lines.push(Series::new("valid", valid));
        }
        lines
    };
    Curves {
        title: title.to_string(),
        loss: both("loss"),
        accuracy: both("accuracy"),
        learning_rate: (!lr.is_empty()).then(|| Series::new("learning rate", lr)),
    }
}

/// Writes `curves.png` and `curves.svg` into the run directory `dir`.
pub fn write_curves(dir: &Path, rows: &[MetricRow], title: &str) -> Result<(), VizError> {
    lenet_viz::write_curves(
        &curves(rows, title),
        &dir.join("curves.png"),
        &dir.join("curves.svg"),
    )
}

/// Writes `confusion.png`: the evaluation's confusion matrix, class names on the axes.
pub fn write_confusion(
    eval: &Evaluation,
    class_names: &[String],
    title: &str,
    path: &Path,
) -> Result<(), VizError> {
    let matrix: Vec<Vec<u64>> = eval
        .confusion_matrix
        .iter()
        .map(|row| row.iter().map(|&c| c as u64).collect())
        .collect();
    lenet_viz::write_confusion(&matrix, class_names, title, path)
}

/// The first `n` misclassified images of an evaluation, each captioned
/// `true → predicted (probability)`; `None` when there are none.
pub fn misclassified(eval: &Evaluation, data: &Dataset, n: usize, title: &str) -> Option<Grid> {
    let (rows, cols) = (data.images.rows, data.images.cols);
    let name = |c: usize| {
        data.class_names
            .get(c)
            .cloned()
            .unwrap_or_else(|| c.to_string())
    };
    let tiles: Vec<Tile> = eval
        .predictions
        .iter()
        .filter(|p| p.predicted != p.label)
        .take(n)
        .map(|p| {
            let values = data
                .images
                .image(p.index)
                .iter()
                .map(|&v| f32::from(v))
                .collect();
            Tile::new(cols, rows, values).with_caption(format!(
                "{} → {} ({:.2})",
                name(p.label),
                name(p.predicted),
                p.probability
            ))
        })
        .collect();
    (!tiles.is_empty()).then(|| Grid {
        title: Some(title.to_string()),
        columns: 8.min(tiles.len()),
        tiles,
        zoom: 3,
        scale: Scale::Fixed(0.0, 255.0),
    })
}

/// Pixels per value so that a tile of `size` values is about `target` pixels wide.
fn zoom_for(size: usize, target: usize) -> usize {
    (target / size.max(1)).max(1)
}

/// One tile per (output filter, input channel) of every convolution, scaled symmetrically
/// around 0 over the layer (0 is mid-gray, positive weights light, negative dark): the
/// `filters-<layer>.png` pictures, named like `lenet summary`'s rows. With a connection table,
/// only the connected kernels are drawn (each captioned with its filter and channel).
pub fn filters(net: &ConvNet) -> Result<Vec<(String, Grid)>, ModelError> {
    net.features
        .iter()
        .enumerate()
        .map(|(i, block)| {
            let (shape, values) = block.conv.weights()?;
            let (out, inp) = (shape[0], shape[1]);
            let (w, h, kernels) = pictures_of(&values, &shape[2..]);
            let connected = |k: usize| {
                block
                    .connections
                    .as_ref()
                    .is_none_or(|t| t.get(k / inp).is_some_and(|c| c.contains(&(k % inp))))
            };
            let tiles = kernels
                .into_iter()
                .enumerate()
                .filter(|(k, _)| connected(*k))
                .map(|(k, values)| {
                    let caption = if inp == 1 {
                        format!("f{}", k / inp)
                    } else {
                        format!("f{} c{}", k / inp, k % inp)
                    };
                    Tile::new(w, h, values).with_caption(caption)
                })
                .collect::<Vec<_>>();
            let dims = shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let grid = Grid {
                // The weight tensor's shape: [filters, input channels, kernel...].
                title: Some(format!("features.{i}.conv weights [{dims}]")),
                columns: if inp > 1 { inp } else { out.min(8) },
                zoom: zoom_for(w.max(h), 48),
                scale: Scale::Symmetric,
                tiles,
            };
            Ok((format!("features.{i}.conv"), grid))
        })
        .collect()
}

/// Splits row-major `values` into pictures of `spatial` values each (`[length]`, `[height,
/// width]` or `[depth, height, width]`): a 1D block as one row, a 3D block with its depth slices
/// side by side. Returns the pictures' width, height, and the pictures.
fn pictures_of(values: &[f32], spatial: &[usize]) -> (usize, usize, Vec<Vec<f32>>) {
    let size: usize = spatial.iter().product();
    let (w, h) = match *spatial {
        [len] => (len, 1),
        [h, w] => (w, h),
        [d, h, w] => (d * w, h),
        _ => (size, 1),
    };
    let pictures = values
        .chunks_exact(size.max(1))
        .map(|block| match *spatial {
            [d, h, w] => {
                let mut out = Vec::with_capacity(block.len());
                for y in 0..h {
                    for z in 0..d {
                        out.extend_from_slice(&block[z * h * w + y * w..z * h * w + y * w + w]);
                    }
                }
                out
            }
            _ => block.to_vec(),
        })
        .collect();
    (w, h, pictures)
}

/// The tiles of one feature map of a single input: one per channel, all on the layer's common
/// value range, so that channels compare (an all-zero channel after a ReLU is uniformly black).
fn map_grid(name: &str, maps: &FeatureMap) -> Result<Grid, ModelError> {
    let dims = maps.dims();
    let values = maps.to_vec()?;
    let channels = dims[1];
    let (w, h, pictures) = pictures_of(&values, &dims[2..]);
    let tiles: Vec<Tile> = pictures
        .into_iter()
        .enumerate()
        .map(|(c, v)| Tile::new(w, h, v).with_caption(format!("ch {c}")))
        .collect();
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f32::INFINITY, f32::min);
    let hi = finite.fold(f32::NEG_INFINITY, f32::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo, lo + 1.0)
    } else {
        (0.0, 1.0)
    };
    let shape = dims[1..]
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Grid {
        title: Some(format!("{name} [{shape}]")),
        columns: channels.min(8),
        zoom: zoom_for(w.max(h), 84),
        scale: Scale::Fixed(lo, hi),
        tiles,
    })
}

/// The feature maps of a single input (`[1, ...]`) after every convolution, nonlinearity and
/// pooling layer: the `maps-<layer>.png` pictures, in the order the network computes them.
pub fn feature_maps(net: &ConvNet, input: FeatureMap) -> Result<Vec<(String, Grid)>, ModelError> {
    let mut out = Vec::new();
    let _ = net.forward_observed(input, &mut |block, stage, maps| {
        let layer = match stage {
            Stage::Conv => "conv",
            Stage::Activation => net.features[block].activation.name(),
            Stage::Pool => "pool",
        };
        let name = format!("features.{block}.{layer}");
        out.push(map_grid(&name, maps).map(|grid| (name, grid)));
    });
    out.into_iter().collect()
}

/// The input as the network sees it (normalised, padded), one tile per channel.
pub fn input_grid(input: &FeatureMap) -> Result<Grid, ModelError> {
    map_grid("input", input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Tensor, TensorData};

    fn lenet5() -> ConvNet {
        let device = Device::flex();
        device.seed(3);
        lenet_model::preset("lenet5")
            .unwrap()
            .plan()
            .unwrap()
            .build(&device)
    }

    #[test]
    fn filters_have_one_tile_per_kernel_and_input_channel() {
        let grids = filters(&lenet5()).unwrap();
        assert_eq!(grids.len(), 2);
        assert_eq!(grids[0].0, "features.0.conv");
        assert_eq!(grids[0].1.tiles.len(), 6);
        assert_eq!(grids[1].1.tiles.len(), 16 * 6);
        assert_eq!(grids[1].1.columns, 6, "one row per filter");
        assert_eq!(
            (grids[1].1.tiles[0].width, grids[1].1.tiles[0].height),
            (5, 5)
        );
        assert_eq!(
            grids[1].1.title.as_deref(),
            Some("features.1.conv weights [16, 6, 5, 5]")
        );
    }

    /// With LeNet-5's C3 table (LeCun et al. 1998, Table I) only the 60 connected kernels of 96
    /// are drawn, each captioned with its filter and input channel.
    #[test]
    fn filters_of_a_connection_table_are_the_connected_kernels() {
        let device = Device::flex();
        device.seed(3);
        let net = lenet_model::preset("lenet5-1998")
            .unwrap()
            .plan()
            .unwrap()
            .build(&device);
        let grids = filters(&net).unwrap();
        let c3 = &grids[1].1;
        assert_eq!(c3.tiles.len(), 60);
        let table = lenet_model::lenet5_c3_table();
        let expected: Vec<String> = table
            .iter()
            .enumerate()
            .flat_map(|(o, inputs)| {
                (0..6)
                    .filter(|i| inputs.contains(i))
                    .map(move |i| format!("f{o} c{i}"))
            })
            .collect();
        let captions: Vec<String> = c3.tiles.iter().filter_map(|t| t.caption.clone()).collect();
        assert_eq!(captions, expected);
    }

    #[test]
    fn feature_maps_follow_every_stage_with_its_shape() {
        let net = lenet5();
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.5f32; 28 * 28], [1, 1, 28, 28]),
            &Device::flex(),
        );
        let maps = feature_maps(&net, FeatureMap::D2(x)).unwrap();
        let names: Vec<&str> = maps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "features.0.conv",
                "features.0.relu",
                "features.0.pool",
                "features.1.conv",
                "features.1.relu",
                "features.1.pool"
            ]
        );
        let (_, pool1) = &maps[2];
        assert_eq!(pool1.tiles.len(), 6);
        assert_eq!((pool1.tiles[0].width, pool1.tiles[0].height), (14, 14));
        assert_eq!(pool1.title.as_deref(), Some("features.0.pool [6, 14, 14]"));
        // After a ReLU nothing is negative, and the layer's range starts at or above 0.
        let (_, relu) = &maps[1];
        assert!(relu
            .tiles
            .iter()
            .all(|t| t.values.iter().all(|&v| v >= 0.0)));
        match relu.scale {
            Scale::Fixed(lo, hi) => assert!(lo >= 0.0 && hi > lo),
            _ => panic!("feature maps share the layer's range"),
        }
    }

    #[test]
    fn blocks_become_pictures_in_1d_2d_and_3d() {
        let v: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let (w, h, p) = pictures_of(&v, &[4]);
        assert_eq!((w, h, p.len()), (4, 1, 4));
        let (w, h, p) = pictures_of(&v, &[2, 4]);
        assert_eq!((w, h, p.len()), (4, 2, 2));
        assert_eq!(p[1], (8..16).map(|i| i as f32).collect::<Vec<_>>());
        // [depth 2, height 2, width 2]: the two depth slices side by side, row by row.
        let (w, h, p) = pictures_of(&v, &[2, 2, 2]);
        assert_eq!((w, h, p.len()), (4, 2, 2));
        assert_eq!(p[0], [0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
    }

    #[test]
    fn feature_map_tiles_follow_the_activations() {
        // A blank input: each conv channel is its bias everywhere, so every tile must render as
        // one uniform gray, ordered like the biases (the layer shares one range).
        let net = lenet5();
        let x = Tensor::<4>::zeros([1, 1, 28, 28], &Device::flex());
        let maps = feature_maps(&net, FeatureMap::D2(x)).unwrap();
        let (_, conv) = &maps[0];
        let picture = lenet_viz::grid_png(conv).unwrap();
        let bias: Vec<f32> = match &net.features[0].conv {
            lenet_model::Conv::D2(c) => c
                .bias
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .try_to_vec()
                .unwrap(),
            _ => unreachable!(),
        };
        let mut grays = Vec::new();
        for (i, tile) in conv.tiles.iter().enumerate() {
            let (x0, y0) = lenet_viz::tile_origin(conv, i);
            let side = (tile.width * conv.zoom) as u32;
            let first = picture.get_pixel(x0, y0)[0];
            for y in y0..y0 + side {
                for x in x0..x0 + side {
                    assert_eq!(picture.get_pixel(x, y)[0], first, "tile {i} is uniform");
                }
            }
            grays.push(first);
        }
        for i in 0..bias.len() {
            for j in 0..bias.len() {
                if bias[i] < bias[j] {
                    assert!(grays[i] <= grays[j], "{bias:?} → {grays:?}");
                }
            }
        }
        // After the ReLU, a channel with a negative bias is all zero: black.
        let (_, relu) = &maps[1];
        let picture = lenet_viz::grid_png(relu).unwrap();
        for (i, b) in bias.iter().enumerate() {
            let (x0, y0) = lenet_viz::tile_origin(relu, i);
            if *b <= 0.0 {
                assert_eq!(picture.get_pixel(x0 + 3, y0 + 3)[0], 0, "channel {i}");
            }
        }
    }

    #[test]
    fn curves_take_loss_accuracy_and_learning_rate_per_split() {
        let row = |epoch, split, loss, acc| MetricRow {
            epoch,
            split,
            values: [("loss".to_string(), loss), ("accuracy".to_string(), acc)]
                .into_iter()
                .chain((split == Subset::Train).then(|| ("learning_rate".to_string(), 0.01)))
                .collect(),
        };
        let rows = vec![
            row(2, Subset::Train, 0.2, 0.95),
            row(1, Subset::Train, 0.5, 0.9),
            row(1, Subset::Valid, 0.4, 0.92),
        ];
        let c = curves(&rows, "t");
        assert_eq!(c.loss[0].points, vec![(1.0, 0.5), (2.0, 0.2)]);
        assert_eq!(c.accuracy[1].points, vec![(1.0, 0.92)]);
        assert_eq!(c.learning_rate.unwrap().points.len(), 2);
        // A run without a validation split: no empty "valid" line in the legend.
        let c = curves(&rows[..2], "t");
        let names: Vec<&str> = c.loss.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["train"]);
        assert_eq!(c.accuracy.len(), 1);
    }
}
