//! Grids of small grayscale images: misclassified digits, learned filters, feature maps.
//!
//! # Geometry
//!
//! All sizes are in pixels and exact; [`grid_size`] and [`tile_origin`] compute them.
//!
//! * Every tile shows its `width x height` values upscaled by `zoom` (nearest neighbour): an
//!   image area of `width*zoom` x `height*zoom` pixels.
//! * If any tile has a caption, every tile gets a caption band of [`CAPTION_BAND`] pixels below
//!   its image area (captions too wide for the tile are shortened with "…").
//! * Tiles are laid out row by row in `min(columns, tiles)` columns, [`PADDING`] pixels apart.
//! * If the grid has a title, a band of [`TITLE_BAND`] pixels above the tiles holds it.
//! * An outer margin of [`MARGIN`] pixels surrounds everything.
//!
//! So with `c` columns, `r = ceil(tiles / c)` rows, `cap` = [`CAPTION_BAND`] or 0 and `t` =
//! [`TITLE_BAND`] or 0:
//!
//! ```text
//! width  = 2*MARGIN + c*width*zoom + (c-1)*PADDING
//! height = 2*MARGIN + t + r*(height*zoom + cap) + (r-1)*PADDING
//! ```
//!
//! The background is white, tile pixels are gray levels (R = G = B), text is black.

use image::{Rgb, RgbImage};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{IntoFont, TextStyle, BLACK};

use crate::font::FAMILY;
use crate::render::{blank, draw_on, fit_text};
use crate::VizError;

/// Outer margin around the whole grid, in pixels.
pub const MARGIN: u32 = 8;
/// Space between neighbouring tiles (horizontally and vertically), in pixels.
pub const PADDING: u32 = 4;
/// Height of the caption band below each tile image, present when any tile has a caption.
pub const CAPTION_BAND: u32 = 16;
/// Height of the title band above the tiles, present when the grid has a title.
pub const TITLE_BAND: u32 = 24;
/// Font size of captions, in pixels.
const CAPTION_FONT: f64 = 12.0;
/// Font size of the title, in pixels.
const TITLE_FONT: f64 = 16.0;

/// Gray level of values at or below the low end of the scale, and of non-finite values.
pub const LOW_GRAY: u8 = 0;
/// Gray level of the value 0 under [`Scale::Symmetric`]: 0.5 * 255 = 127.5, rounded up.
pub const MID_GRAY: u8 = 128;

/// One small image: `values` in row-major order (`values.len() == width * height`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// Number of values per row.
    pub width: usize,
    /// Number of rows.
    pub height: usize,
    /// The values, row after row; mapped to gray levels by the grid's [`Scale`].
    pub values: Vec<f32>,
    /// Text drawn below the tile, e.g. "7 → 2" for a misclassified digit.
    pub caption: Option<String>,
}

impl Tile {
    /// A tile without a caption.
    pub fn new(width: usize, height: usize, values: Vec<f32>) -> Self {
        Tile {
            width,
            height,
            values,
            caption: None,
        }
    }

    /// The same tile with `caption` below it.
    pub fn with_caption(mut self, caption: impl Into<String>) -> Self {
        self.caption = Some(caption.into());
        self
    }
}

/// How values become gray levels, from black (0) to white (255).
///
/// A value `v` in the range `lo..=hi` maps to `round((v - lo) / (hi - lo) * 255)`; values
/// outside the range are clamped to it. Non-finite values (NaN, ±inf) always render as black
/// ([`LOW_GRAY`]) and are ignored when a range is computed from the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Each tile's own finite min..max maps to black..white (good for images and feature maps).
    /// A constant tile (no contrast, e.g. a dead feature map) renders uniformly black.
    PerTile,
    /// `-m..m` maps to black..white, with `m` the largest finite `|v|` over **all** tiles, so 0
    /// is mid-gray ([`MID_GRAY`] = 128) in every tile (good for filters, whose sign matters).
    /// When every value is 0, everything is mid-gray.
    Symmetric,
    /// The fixed range `lo..hi` maps to black..white, values outside it are clamped; `lo` and
    /// `hi` must be finite with `lo < hi`.
    Fixed(f32, f32),
}

/// A titled grid of same-sized tiles; see the [module docs](self) for the exact geometry.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Text drawn above the tiles, if any.
    pub title: Option<String>,
    /// The tiles, laid out row by row; all must have the same width and height.
    pub tiles: Vec<Tile>,
    /// Tiles per row, at least 1 (the grid uses `min(columns, tiles.len())`).
    pub columns: usize,
    /// Pixels per value along each axis, at least 1.
    pub zoom: usize,
    /// How values become gray levels.
    pub scale: Scale,
}

/// Sizes of one grid, in pixels, as u64 so that nothing overflows.
struct Layout {
    columns: u64,
    rows: u64,
    image_width: u64,
    image_height: u64,
    caption: u64,
    title: u64,
}

impl Layout {
    fn of(g: &Grid) -> Layout {
        let count = g.tiles.len() as u64;
        let columns = (g.columns as u64).clamp(1, count.max(1));
        let (width, height) = g.tiles.first().map_or((0, 0), |t| (t.width, t.height));
        let zoom = g.zoom as u64;
        let has_caption = g.tiles.iter().any(|t| t.caption.is_some());
        Layout {
            columns,
            rows: count.div_ceil(columns),
            image_width: (width as u64).saturating_mul(zoom),
            image_height: (height as u64).saturating_mul(zoom),
            caption: if has_caption { CAPTION_BAND.into() } else { 0 },
            title: if g.title.is_some() {
                TITLE_BAND.into()
            } else {
                0
            },
        }
    }

    fn cell_height(&self) -> u64 {
        self.image_height.saturating_add(self.caption)
    }

    fn size(&self) -> (u64, u64) {
        let span = |n: u64, each: u64| {
            n.saturating_mul(each)
                .saturating_add(n.saturating_sub(1).saturating_mul(PADDING.into()))
        };
        let margins = 2 * u64::from(MARGIN);
        let width = margins.saturating_add(span(self.columns, self.image_width));
        let height = (margins + self.title).saturating_add(span(self.rows, self.cell_height()));
        (width, height)
    }

    fn origin(&self, index: usize) -> (u64, u64) {
        let index = index as u64;
        let step_x = self.image_width.saturating_add(PADDING.into());
        let step_y = self.cell_height().saturating_add(PADDING.into());
        let x = u64::from(MARGIN).saturating_add((index % self.columns).saturating_mul(step_x));
        let y = (u64::from(MARGIN) + self.title)
            .saturating_add((index / self.columns).saturating_mul(step_y));
        (x, y)
    }
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The exact `(width, height)` in pixels of the picture [`grid_png`] draws for `g`.
///
/// Follows the formula in the [module docs](self); tile dimensions are taken from the first
/// tile. Never panics, even for grids that [`grid_png`] rejects (sizes saturate at `u32::MAX`).
pub fn grid_size(g: &Grid) -> (u32, u32) {
    let (w, h) = Layout::of(g).size();
    (to_u32(w), to_u32(h))
}

/// The top-left pixel `(x, y)` of the image area of tile `index` (its caption band, if any,
/// lies directly below the `width*zoom` x `height*zoom` image area).
pub fn tile_origin(g: &Grid, index: usize) -> (u32, u32) {
    let (x, y) = Layout::of(g).origin(index);
    (to_u32(x), to_u32(y))
}

/// Checks everything [`grid_png`] needs, naming the offending tile.
fn validate(g: &Grid) -> Result<(), VizError> {
    let Some(first) = g.tiles.first() else {
        return Err(VizError::invalid("the grid has no tiles"));
    };
    if g.columns == 0 {
        return Err(VizError::invalid("grid columns must be at least 1"));
    }
    if g.zoom == 0 {
        return Err(VizError::invalid("grid zoom must be at least 1"));
    }
    if first.width == 0 || first.height == 0 {
        return Err(VizError::invalid(format!(
            "tile 0 is {}x{}; tiles must not be empty",
            first.width, first.height
        )));
    }
    for (i, tile) in g.tiles.iter().enumerate() {
        if (tile.width, tile.height) != (first.width, first.height) {
            return Err(VizError::invalid(format!(
                "tile {i} is {}x{} but tile 0 is {}x{}; all tiles must have the same size",
                tile.width, tile.height, first.width, first.height
            )));
        }
        // An overflowing product can match no vector length.
        let expected = tile.width.checked_mul(tile.height);
        if expected != Some(tile.values.len()) {
            let needed = expected.map_or_else(|| "more than usize::MAX".into(), |n| n.to_string());
            return Err(VizError::invalid(format!(
                "tile {i} has {} values; a {}x{} tile needs {needed}",
                tile.values.len(),
                tile.width,
                tile.height
            )));
        }
    }
    if let Scale::Fixed(lo, hi) = g.scale {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(VizError::invalid(format!(
                "Scale::Fixed({lo}, {hi}) needs finite bounds with lo < hi"
            )));
        }
    }
    Ok(())
}

/// Value → gray level for one tile.
#[derive(Debug, Clone, Copy)]
struct GrayMap {
    lo: f64,
    hi: f64,
    /// Level of every finite value when the range is empty (`hi <= lo`).
    flat: u8,
}

impl GrayMap {
    fn level(&self, v: f32) -> u8 {
        if !v.is_finite() {
            return LOW_GRAY;
        }
        if self.hi <= self.lo {
            return self.flat;
        }
        let t = ((f64::from(v) - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        // t is in 0..=1, so the rounded product is in 0..=255.
        (t * 255.0).round() as u8
    }
}

/// The finite min and max of `values`, or `None` when there are no finite values.
fn finite_range(values: &[f32]) -> Option<(f64, f64)> {
    values
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| f64::from(v))
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

fn gray_maps(g: &Grid) -> Vec<GrayMap> {
    match g.scale {
        Scale::PerTile => g
            .tiles
            .iter()
            .map(|t| {
                let (lo, hi) = finite_range(&t.values).unwrap_or((0.0, 0.0));
                GrayMap {
                    lo,
                    hi,
                    flat: LOW_GRAY,
                }
            })
            .collect(),
        Scale::Symmetric => {
            let m = g
                .tiles
                .iter()
                .filter_map(|t| finite_range(&t.values))
                .fold(0.0f64, |m, (lo, hi)| m.max(lo.abs()).max(hi.abs()));
            let map = GrayMap {
                lo: -m,
                hi: m,
                flat: MID_GRAY,
            };
            vec![map; g.tiles.len()]
        }
        Scale::Fixed(lo, hi) => {
            let map = GrayMap {
                lo: lo.into(),
                hi: hi.into(),
                flat: LOW_GRAY,
            };
            vec![map; g.tiles.len()]
        }
    }
}

/// Draws the grid: title, captions, then the tile pixels (exactly as documented in the
/// [module docs](self)).
///
/// Errors when there are no tiles, `columns` or `zoom` is 0, a tile's `values.len()` is not
/// `width * height` or its size differs from tile 0 (the message names the tile index),
/// a [`Scale::Fixed`] range is not `lo < hi`, or the picture would be unreasonably large.
pub fn grid_png(g: &Grid) -> Result<RgbImage, VizError> {
    validate(g)?;
    let layout = Layout::of(g);
    let (width, height) = grid_size(g);
    let mut image = blank(width, height)?;

    let has_captions = layout.caption > 0;
    if g.title.is_some() || has_captions {
        draw_on(&mut image, |root| {
            if let Some(title) = &g.title {
                let style = TextStyle::from((FAMILY, TITLE_FONT).into_font())
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                let room = width.saturating_sub(2 * MARGIN);
                let text = fit_text(root, title, &style, room)?;
                let center = (to_i32(width / 2), to_i32(MARGIN + TITLE_BAND / 2));
                root.draw_text(&text, &style, center)
                    .map_err(VizError::draw)?;
            }
            let style = TextStyle::from((FAMILY, CAPTION_FONT).into_font())
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center));
            let tile_width = to_u32(layout.image_width);
            for (i, tile) in g.tiles.iter().enumerate() {
                let Some(caption) = &tile.caption else {
                    continue;
                };
                let (x, y) = layout.origin(i);
                let text = fit_text(root, caption, &style, tile_width)?;
                let center = (
                    to_i32(x + layout.image_width / 2),
                    to_i32(y + layout.image_height + layout.caption / 2),
                );
                root.draw_text(&text, &style, center)
                    .map_err(VizError::draw)?;
            }
            Ok(())
        })?;
    }

    // Tile pixels last, so that no stray text pixel can touch an image area.
    let zoom = g.zoom as u64;
    for ((i, tile), map) in g.tiles.iter().enumerate().zip(gray_maps(g)) {
        let (x0, y0) = layout.origin(i);
        for (row, values) in tile.values.chunks(tile.width).enumerate() {
            for (col, &v) in values.iter().enumerate() {
                let level = map.level(v);
                let px = x0 + col as u64 * zoom;
                let py = y0 + row as u64 * zoom;
                for dy in 0..zoom {
                    for dx in 0..zoom {
                        // In bounds: the picture size was computed from the same layout.
                        image.put_pixel(to_u32(px + dx), to_u32(py + dy), Rgb([level; 3]));
                    }
                }
            }
        }
    }
    Ok(image)
}

fn to_i32(v: impl TryInto<i32>) -> i32 {
    v.try_into().unwrap_or(i32::MAX)
}

/// Draws the grid ([`grid_png`]) and writes it atomically as PNG to `path`.
pub fn write_grid(g: &Grid, path: &std::path::Path) -> Result<(), VizError> {
    Ok(lenet_io::write_png(path, &grid_png(g)?)?)
}
