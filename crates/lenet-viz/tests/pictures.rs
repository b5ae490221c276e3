//! End-to-end checks of the pictures: sizes, files, determinism, pixel values.

use std::path::Path;

use lenet_viz::grid::{CAPTION_BAND, MARGIN, MID_GRAY, PADDING, TITLE_BAND};
use lenet_viz::{
    confusion, confusion_png, confusion_size, curves, curves_png, curves_svg, grid_png, grid_size,
    tile_origin, write_confusion, write_curves, write_grid, Curves, Grid, Scale, Series, Tile,
    VizError,
};

fn sample_curves(epochs: usize) -> Curves {
    let e = |i: usize| (i + 1) as f64;
    Curves {
        title: "lenet5 on MNIST".to_string(),
        loss: vec![
            Series::new("train", (0..epochs).map(|i| (e(i), 2.0 / e(i))).collect()),
            Series::new("valid", (0..epochs).map(|i| (e(i), 2.2 / e(i))).collect()),
        ],
        accuracy: vec![
            Series::new(
                "train",
                (0..epochs).map(|i| (e(i), 1.0 - 0.3 / e(i))).collect(),
            ),
            Series::new(
                "valid",
                (0..epochs).map(|i| (e(i), 1.0 - 0.35 / e(i))).collect(),
            ),
        ],
        learning_rate: Some(Series::new(
            "learning rate",
            (0..epochs)
                .map(|i| (e(i), 0.01 * 0.9f64.powi(i as i32)))
                .collect(),
        )),
    }
}

fn decode(path: &Path) -> image::RgbImage {
    image::open(path).unwrap().to_rgb8()
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn write_curves_writes_a_png_of_the_documented_size_and_an_svg() {
    let dir = tempfile::tempdir().unwrap();
    let (png, svg) = (dir.path().join("curves.png"), dir.path().join("curves.svg"));
    write_curves(&sample_curves(10), &png, &svg).unwrap();

    let image = decode(&png);
    assert_eq!(
        image.dimensions(),
        (curves::CURVES_WIDTH, curves::CURVES_HEIGHT)
    );
    assert_eq!((curves::CURVES_WIDTH, curves::CURVES_HEIGHT), (960, 720));
    let size = std::fs::metadata(&png).unwrap().len();
    assert!(size < 200_000, "curves PNG is {size} bytes");
    // Not a blank picture: the series colours appear.
    assert!(image.pixels().any(|p| p.0 == [31, 119, 180]));
    assert!(image.pixels().any(|p| p.0 == [255, 127, 14]));

    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..40.min(text.len())]);
    for needle in [
        "lenet5 on MNIST",
        "train",
        "valid",
        "epoch",
        "accuracy (%)",
        "learning rate",
    ] {
        assert!(text.contains(needle), "SVG lacks {needle:?}");
    }
    // Only the two pictures: no temporary files left behind.
    assert_eq!(file_names(dir.path()), vec!["curves.png", "curves.svg"]);
}

#[test]
fn curves_render_deterministically() {
    let c = sample_curves(5);
    let first = lenet_viz::png_bytes(&curves_png(&c).unwrap()).unwrap();
    let second = lenet_viz::png_bytes(&curves_png(&c).unwrap()).unwrap();
    assert_eq!(first, second);
    assert_eq!(curves_svg(&c).unwrap(), curves_svg(&c).unwrap());
}

#[test]
fn curves_survive_one_epoch_nan_inf_and_empty_series() {
    let one = sample_curves(1);
    let image = curves_png(&one).unwrap();
    // The lone epoch is drawn as dots.
    assert!(image.pixels().any(|p| p.0 == [31, 119, 180]));
    curves_svg(&one).unwrap();

    let mut odd = sample_curves(4);
    odd.loss[0].points[1].1 = f64::NAN;
    odd.loss[1].points[2].1 = f64::INFINITY;
    odd.accuracy[0].points[0].0 = f64::NAN;
    odd.learning_rate = Some(Series::new("lr", vec![(1.0, f64::NAN)]));
    curves_png(&odd).unwrap();
    curves_svg(&odd).unwrap();

    let empty = Curves {
        title: String::new(),
        loss: vec![Series::new("train", vec![])],
        accuracy: vec![],
        learning_rate: None,
    };
    assert_eq!(
        curves_png(&empty).unwrap().dimensions(),
        (curves::CURVES_WIDTH, curves::CURVES_HEIGHT)
    );
    curves_svg(&empty).unwrap();
    curves_png(&Curves::default()).unwrap();

    let constant = Curves {
        title: "flat".into(),
        loss: vec![Series::new("train", vec![(1.0, 0.0), (2.0, 0.0)])],
        accuracy: vec![Series::new("train", vec![(1.0, 1.0), (2.0, 1.0)])],
        learning_rate: Some(Series::new("lr", vec![(1.0, 1e-3), (2.0, 1e-3)])),
    };
    curves_png(&constant).unwrap();
}

fn digits() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

fn perfect(n: usize) -> Vec<Vec<u64>> {
    (0..n)
        .map(|r| (0..n).map(|c| if r == c { 100 } else { 0 }).collect())
        .collect()
}

#[test]
fn confusion_size_follows_the_formula() {
    for n in [1usize, 2, 10] {
        let (w, h) = confusion_size(n);
        let side = n as u32 * confusion::CELL;
        assert_eq!(w, confusion::LEFT_BAND + side + confusion::RIGHT_MARGIN);
        assert_eq!(h, confusion::TITLE_BAND + side + confusion::BOTTOM_BAND);
        let names: Vec<String> = (0..n).map(|i| format!("class {i}")).collect();
        let image = confusion_png(&perfect(n), &names, "t").unwrap();
        assert_eq!(image.dimensions(), (w, h));
    }
    assert_eq!(confusion_size(10), (696, 668));
}

#[test]
fn confusion_rejects_mismatched_shapes_naming_them() {
    let err = confusion_png(&perfect(3), &digits(), "t").unwrap_err();
    assert!(matches!(err, VizError::Invalid(_)));
    assert!(
        err.to_string().contains("10 class names for a 3x3"),
        "{err}"
    );
    let mut ragged = perfect(3);
    ragged[2].push(1);
    let names: Vec<String> = digits()[..3].to_vec();
    let err = confusion_png(&ragged, &names, "t").unwrap_err();
    assert!(err.to_string().contains("row 2 has 4 entries"), "{err}");
}

#[test]
fn confusion_diagonal_of_a_perfect_classifier_is_darkest() {
    let image = confusion_png(&perfect(10), &digits(), "perfect").unwrap();
    let cell = |r: u32, c: u32, dx: u32, dy: u32| {
        image
            .get_pixel(
                confusion::LEFT_BAND + c * confusion::CELL + dx,
                confusion::TITLE_BAND + r * confusion::CELL + dy,
            )
            .0
    };
    for k in 0..10 {
        assert_eq!(cell(k, k, 3, 3), confusion::DARKEST);
        assert_eq!(
            cell(k, k, confusion::CELL - 3, confusion::CELL - 3),
            confusion::DARKEST
        );
        assert_eq!(cell(k, (k + 1) % 10, 3, 3), [255, 255, 255]);
    }
    // The count is written in white on the dark cells.
    let (x0, y0) = (confusion::LEFT_BAND, confusion::TITLE_BAND);
    let centre_has_white = (x0 + 18..x0 + 38)
        .flat_map(|x| (y0 + 20..y0 + 36).map(move |y| (x, y)))
        .any(|(x, y)| image.get_pixel(x, y).0.iter().all(|&v| v > 200));
    assert!(centre_has_white);
}

#[test]
fn confusion_is_deterministic_small_and_written() {
    let matrix: Vec<Vec<u64>> = (0..10)
        .map(|r| {
            (0..10)
                .map(|c| if r == c { 950 } else { (r * c % 7) as u64 })
                .collect()
        })
        .collect();
    let names: Vec<String> = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
    .map(String::from)
    .to_vec();
    let a = confusion_png(&matrix, &names, "fashion").unwrap();
    let b = confusion_png(&matrix, &names, "fashion").unwrap();
    assert_eq!(a, b);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("confusion.png");
    write_confusion(&matrix, &names, "fashion", &path).unwrap();
    assert_eq!(decode(&path), a);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 200_000, "confusion PNG is {size} bytes");
    assert_eq!(file_names(dir.path()), vec!["confusion.png"]);

    // Counts near u64::MAX neither overflow the row total nor panic.
    let huge = vec![vec![u64::MAX, u64::MAX], vec![0, 0]];
    let image = confusion_png(&huge, &names[..2], "huge").unwrap();
    assert_eq!(image.dimensions(), confusion_size(2));
}

fn tile(w: usize, h: usize, f: impl Fn(usize) -> f32) -> Tile {
    Tile::new(w, h, (0..w * h).map(f).collect())
}

#[test]
fn grid_size_matches_the_png_for_many_layouts() {
    for columns in [1usize, 3, 8] {
        for zoom in [1usize, 2, 3] {
            for captions in [false, true] {
                for title in [None, Some("filters".to_string())] {
                    let tiles: Vec<Tile> = (0..7)
                        .map(|i| {
                            let t = tile(5, 4, |k| (k + i) as f32);
                            if captions && i % 2 == 0 {
                                t.with_caption(format!("7 → {i}"))
                            } else {
                                t
                            }
                        })
                        .collect();
                    let g = Grid {
                        title: title.clone(),
                        tiles,
                        columns,
                        zoom,
                        scale: Scale::PerTile,
                    };
                    let cols = columns.min(7) as u32;
                    let rows = 7u32.div_ceil(cols);
                    let z = zoom as u32;
                    let cap = if captions { CAPTION_BAND } else { 0 };
                    let tb = if title.is_some() { TITLE_BAND } else { 0 };
                    let expected = (
                        2 * MARGIN + cols * 5 * z + (cols - 1) * PADDING,
                        2 * MARGIN + tb + rows * (4 * z + cap) + (rows - 1) * PADDING,
                    );
                    assert_eq!(
                        grid_size(&g),
                        expected,
                        "{columns} {zoom} {captions} {title:?}"
                    );

                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("grid.png");
                    write_grid(&g, &path).unwrap();
                    assert_eq!(decode(&path).dimensions(), expected);
                    let last = tile_origin(&g, 6);
                    assert_eq!(
                        last,
                        (
                            MARGIN + (6 % cols) * (5 * z + PADDING),
                            MARGIN + tb + (6 / cols) * (4 * z + cap + PADDING)
                        )
                    );
                }
            }
        }
    }
}

/// The pixels of tile `index`'s image area.
fn tile_pixels(g: &Grid, image: &image::RgbImage, index: usize) -> Vec<[u8; 3]> {
    let (x0, y0) = tile_origin(g, index);
    let t = &g.tiles[index];
    let (w, h) = ((t.width * g.zoom) as u32, (t.height * g.zoom) as u32);
    (y0..y0 + h)
        .flat_map(|y| (x0..x0 + w).map(move |x| (x, y)))
        .map(|(x, y)| image.get_pixel(x, y).0)
        .collect()
}

#[test]
fn constant_tiles_render_uniformly() {
    for scale in [Scale::PerTile, Scale::Symmetric, Scale::Fixed(-1.0, 1.0)] {
        let g = Grid {
            title: Some("feature maps".into()),
            tiles: vec![
                tile(6, 6, |_| 0.0).with_caption("dead"),
                tile(6, 6, |k| k as f32 - 10.0),
                tile(6, 6, |_| 0.25),
            ],
            columns: 2,
            zoom: 3,
            scale,
        };
        let image = grid_png(&g).unwrap();
        for index in [0, 2] {
            let pixels = tile_pixels(&g, &image, index);
            assert!(
                pixels.iter().all(|p| *p == pixels[0]),
                "{scale:?} tile {index}"
            );
            assert_eq!(pixels[0][0], pixels[0][1]);
        }
        let zero = tile_pixels(&g, &image, 0)[0][0];
        match scale {
            Scale::PerTile => assert_eq!(zero, 0),
            Scale::Symmetric | Scale::Fixed(..) => assert_eq!(zero, MID_GRAY),
        }
    }
}

#[test]
fn symmetric_scale_maps_zero_to_mid_gray_across_tiles() {
    assert_eq!(MID_GRAY, 128);
    let g = Grid {
        title: None,
        tiles: vec![
            Tile::new(3, 1, vec![-2.0, 0.0, 2.0]),
            Tile::new(3, 1, vec![0.0, 0.5, -4.0]),
        ],
        columns: 2,
        zoom: 1,
        scale: Scale::Symmetric,
    };
    let image = grid_png(&g).unwrap();
    let level = |index: usize, k: u32| {
        let (x, y) = tile_origin(&g, index);
        image.get_pixel(x + k, y).0[0]
    };
    // m = 4 over all tiles: -2 → 64 (63.75 rounded), 0 → 128, 2 → 191, 0.5 → 143, -4 → 0.
    assert_eq!([level(0, 0), level(0, 1), level(0, 2)], [64, 128, 191]);
    assert_eq!([level(1, 0), level(1, 1), level(1, 2)], [128, 143, 0]);
}

#[test]
fn per_tile_ramp_is_monotonic_from_black_to_white() {
    let g = Grid {
        title: None,
        tiles: vec![tile(16, 1, |k| k as f32 / 15.0)],
        columns: 1,
        zoom: 2,
        scale: Scale::PerTile,
    };
    let image = grid_png(&g).unwrap();
    let (x0, y0) = tile_origin(&g, 0);
    let levels: Vec<u8> = (0..32)
        .map(|x| image.get_pixel(x0 + x, y0 + 1).0[0])
        .collect();
    assert_eq!(levels[0], 0);
    assert_eq!(levels[31], 255);
    assert!(levels.windows(2).all(|w| w[0] <= w[1]), "{levels:?}");
    assert!(
        levels.chunks(2).all(|c| c[0] == c[1]),
        "zoom 2 repeats each value"
    );
}

#[test]
fn non_finite_values_render_black_and_fixed_clamps() {
    let g = Grid {
        title: None,
        tiles: vec![Tile::new(4, 1, vec![f32::NAN, f32::INFINITY, 5.0, -5.0])],
        columns: 1,
        zoom: 1,
        scale: Scale::Fixed(0.0, 1.0),
    };
    let image = grid_png(&g).unwrap();
    let (x0, y0) = tile_origin(&g, 0);
    let levels: Vec<u8> = (0..4).map(|x| image.get_pixel(x0 + x, y0).0[0]).collect();
    assert_eq!(levels, vec![0, 0, 255, 0]);
}

#[test]
fn grid_errors_name_the_tile() {
    let good = || tile(3, 3, |k| k as f32);
    let grid = |tiles: Vec<Tile>| Grid {
        title: None,
        tiles,
        columns: 2,
        zoom: 1,
        scale: Scale::PerTile,
    };
    let err = grid_png(&grid(vec![good(), good(), Tile::new(3, 3, vec![0.0; 8])])).unwrap_err();
    assert!(
        err.to_string()
            .contains("tile 2 has 8 values; a 3x3 tile needs 9"),
        "{err}"
    );
    let err = grid_png(&grid(vec![good(), tile(4, 3, |_| 0.0)])).unwrap_err();
    assert!(
        err.to_string().contains("tile 1 is 4x3 but tile 0 is 3x3"),
        "{err}"
    );
    assert!(grid_png(&grid(vec![])).is_err());
    let mut g = grid(vec![good()]);
    g.zoom = 0;
    assert!(grid_png(&g).unwrap_err().to_string().contains("zoom"));
    g.zoom = 1;
    g.columns = 0;
    assert!(grid_png(&g).unwrap_err().to_string().contains("columns"));
    g.columns = 1;
    g.scale = Scale::Fixed(1.0, 1.0);
    assert!(grid_png(&g).unwrap_err().to_string().contains("Fixed"));
}

#[test]
fn writers_create_missing_directories_and_name_the_path_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    // The workspace's one rule (lenet_io): missing parent directories are created.
    let fresh = dir.path().join("new/dir");
    let png = fresh.join("curves.png");
    write_curves(&sample_curves(2), &png, &fresh.join("curves.svg")).unwrap();
    assert!(png.is_file() && fresh.join("curves.svg").is_file());
    // A parent that cannot be a directory (a file is in the way): an error naming the file.
    let blocked = dir.path().join("plain-file");
    std::fs::write(&blocked, b"x").unwrap();
    let png = blocked.join("curves.png");
    let err = write_curves(&sample_curves(2), &png, &blocked.join("curves.svg")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot write {}", png.display())),
        "{msg}"
    );
    let g = Grid {
        title: None,
        tiles: vec![tile(2, 2, |_| 0.0)],
        columns: 1,
        zoom: 1,
        scale: Scale::PerTile,
    };
    let path = blocked.join("grid.png");
    let err = write_grid(&g, &path).unwrap_err();
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn confusion_true_label_is_vertical() {
    let image = confusion_png(&perfect(10), &digits(), "perfect").unwrap();
    // Bounding box of the ink left of the row names: the rotated word "true".
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in 0..image.height() {
        for x in 0..40 {
            if image.get_pixel(x, y).0 != [255, 255, 255] {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    assert!(x1 >= x0 && y1 - y0 > x1 - x0, "({x0}, {y0})..({x1}, {y1})");
}
