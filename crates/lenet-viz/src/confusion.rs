//! Confusion matrix heat map.
//!
//! # Layout
//!
//! Rows are true classes (y axis, labelled "true"), columns predicted classes (x axis,
//! labelled "predicted"). Each cell is a [`CELL`] x [`CELL`] square whose colour goes from white
//! to dark blue ([`DARKEST`]) with the cell's share of its row total, and which shows the count
//! in black (light cells) or white (cells more than half way to dark blue). A row without any
//! sample stays white.
//!
//! The cells start at ([`LEFT_BAND`], [`TITLE_BAND`]); the picture measures
//! `LEFT_BAND + n*CELL + RIGHT_MARGIN` by `TITLE_BAND + n*CELL + BOTTOM_BAND` for `n` classes
//! ([`confusion_size`]). Class names too wide for their place are shortened with "…"; when a
//! name is wider than a column, the column names alternate between two lines.

use std::path::Path;

use image::{Rgb, RgbImage};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, FontTransform, TextStyle, BLACK, WHITE};

use crate::font::FAMILY;
use crate::render::{blank, draw_on, fit_text};
use crate::VizError;

/// Side of one cell, in pixels.
pub const CELL: u32 = 56;
/// Height of the band above the cells, holding the title.
pub const TITLE_BAND: u32 = 40;
/// Width of the band left of the cells: the "true" axis label and the row class names.
pub const LEFT_BAND: u32 = 120;
/// Margin right of the cells.
pub const RIGHT_MARGIN: u32 = 16;
/// Height of the band below the cells: two lines of column class names and "predicted".
pub const BOTTOM_BAND: u32 = 68;
/// Colour of a cell holding its whole row (share 1).
pub const DARKEST: [u8; 3] = [8, 48, 107];
/// Colour of the lines between cells.
const GRID_LINE: [u8; 3] = [200, 200, 200];
/// Font size of counts and class names.
const FONT: f64 = 13.0;

/// The `(width, height)` in pixels of the picture [`confusion_png`] draws for `classes` classes.
pub fn confusion_size(classes: usize) -> (u32, u32) {
    let side = u32::try_from(classes)
        .unwrap_or(u32::MAX)
        .saturating_mul(CELL);
    (
        side.saturating_add(LEFT_BAND + RIGHT_MARGIN),
        side.saturating_add(TITLE_BAND + BOTTOM_BAND),
    )
}

/// Checks that `matrix` is square and has one name per class.
fn validate(matrix: &[Vec<u64>], class_names: &[String]) -> Result<(), VizError> {
    let n = matrix.len();
    if n == 0 {
        return Err(VizError::invalid("the confusion matrix is empty"));
    }
    for (i, row) in matrix.iter().enumerate() {
        if row.len() != n {
            return Err(VizError::invalid(format!(
                "confusion matrix row {i} has {} entries but there are {n} rows; it must be square",
                row.len()
            )));
        }
    }
    if class_names.len() != n {
        return Err(VizError::invalid(format!(
            "{} class names for a {n}x{n} confusion matrix",
            class_names.len()
        )));
    }
    Ok(())
}

/// The colour of a cell holding `share` (0..=1) of its row: white to [`DARKEST`].
fn cell_colour(share: f64) -> [u8; 3] {
    let share = share.clamp(0.0, 1.0);
    DARKEST.map(|dark| (255.0 + (f64::from(dark) - 255.0) * share).round() as u8)
}

/// Draws the confusion matrix (`matrix[true][predicted]` counts) as an RGB picture of
/// [`confusion_size`]`(matrix.len())`.
///
/// Errors when the matrix is empty or not square, or `class_names` does not have one name per
/// class.
pub fn confusion_png(
    matrix: &[Vec<u64>],
    class_names: &[String],
    title: &str,
) -> Result<RgbImage, VizError> {
    validate(matrix, class_names)?;
    let n = matrix.len() as u32;
    let (width, height) = confusion_size(matrix.len());
    let mut image = blank(width, height)?;

    // Cells and the lines between them, pixel by pixel.
    let shares: Vec<Vec<f64>> = matrix
        .iter()
        .map(|row| {
            // u128: a row of u64 counts cannot overflow it.
            let total: u128 = row.iter().map(|&count| u128::from(count)).sum();
            row.iter()
                .map(|&count| {
                    if total == 0 {
                        0.0
                    } else {
                        count as f64 / total as f64
                    }
                })
                .collect()
        })
        .collect();
    for (r, row) in shares.iter().enumerate() {
        for (c, &share) in row.iter().enumerate() {
            let colour = Rgb(cell_colour(share));
            let (x0, y0) = (LEFT_BAND + c as u32 * CELL, TITLE_BAND + r as u32 * CELL);
            for y in y0..y0 + CELL {
                for x in x0..x0 + CELL {
                    image.put_pixel(x, y, colour);
                }
            }
        }
    }
    for k in 0..=n {
        let offset = (k * CELL).min(n * CELL - 1);
        for t in 0..n * CELL {
            image.put_pixel(LEFT_BAND + offset, TITLE_BAND + t, Rgb(GRID_LINE));
            image.put_pixel(LEFT_BAND + t, TITLE_BAND + offset, Rgb(GRID_LINE));
        }
    }

    draw_on(&mut image, |root| {
        let centred = Pos::new(HPos::Center, VPos::Center);
        let title_style = TextStyle::from((FAMILY, 16.0, FontStyle::Bold))
            .color(&BLACK)
            .pos(centred);
        let text = fit_text(root, title, &title_style, width.saturating_sub(20))?;
        root.draw_text(&text, &title_style, (px(width / 2), px(TITLE_BAND / 2)))
            .map_err(VizError::draw)?;

        // Counts.
        for (r, row) in matrix.iter().enumerate() {
            for (c, count) in row.iter().enumerate() {
                let ink = if shares[r][c] > 0.5 { WHITE } else { BLACK };
                let style = TextStyle::from((FAMILY, FONT)).color(&ink).pos(centred);
                let centre = (
                    px(LEFT_BAND + c as u32 * CELL + CELL / 2),
                    px(TITLE_BAND + r as u32 * CELL + CELL / 2),
                );
                root.draw_text(&count.to_string(), &style, centre)
                    .map_err(VizError::draw)?;
            }
        }

        // Row names, right-aligned left of the cells, and the rotated "true" label.
        let row_style = TextStyle::from((FAMILY, FONT))
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (r, name) in class_names.iter().enumerate() {
            let text = fit_text(root, name, &row_style, LEFT_BAND - 36)?;
            let at = (
                px(LEFT_BAND - 6),
                px(TITLE_BAND + r as u32 * CELL + CELL / 2),
            );
            root.draw_text(&text, &row_style, at)
                .map_err(VizError::draw)?;
        }
        let axis_style = TextStyle::from((FAMILY, 14.0)).color(&BLACK).pos(centred);
        let true_style = axis_style.transform(FontTransform::Rotate270);
        root.draw_text("true", &true_style, (14, px(TITLE_BAND + n * CELL / 2)))
            .map_err(VizError::draw)?;

        // Column names below the cells: one line, or two alternating lines when one is wide.
        let column_style = TextStyle::from((FAMILY, FONT)).color(&BLACK).pos(centred);
        let mut stagger = false;
        for name in class_names {
            let (w, _) = root
                .estimate_text_size(name, &column_style)
                .map_err(VizError::draw)?;
            stagger |= w > CELL - 6;
        }
        let room = if stagger { 2 * CELL - 6 } else { CELL - 6 };
        let top = TITLE_BAND + n * CELL;
        for (c, name) in class_names.iter().enumerate() {
            let text = fit_text(root, name, &column_style, room)?;
            let line = if stagger && c % 2 == 1 { 30 } else { 12 };
            let at = (px(LEFT_BAND + c as u32 * CELL + CELL / 2), px(top + line));
            root.draw_text(&text, &column_style, at)
                .map_err(VizError::draw)?;
        }
        let at = (px(LEFT_BAND + n * CELL / 2), px(top + 54));
        root.draw_text("predicted", &axis_style, at)
            .map_err(VizError::draw)
    })?;
    Ok(image)
}

fn px(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Draws the confusion matrix ([`confusion_png`]) and writes it atomically as PNG to `path`.
pub fn write_confusion(
    matrix: &[Vec<u64>],
    class_names: &[String],
    title: &str,
    path: &Path,
) -> Result<(), VizError> {
    Ok(lenet_io::write_png(
        path,
        &confusion_png(matrix, class_names, title)?,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_colour_runs_from_white_to_darkest() {
        assert_eq!(cell_colour(0.0), [255, 255, 255]);
        assert_eq!(cell_colour(1.0), DARKEST);
        let mid = cell_colour(0.5);
        assert!(mid.iter().zip(DARKEST).all(|(&m, d)| m > d && m < 255));
    }

    #[test]
    fn validate_names_the_mismatch() {
        let names: Vec<String> = vec!["a".into(), "b".into()];
        let err = validate(&[vec![1, 2], vec![3]], &names).unwrap_err();
        assert!(err.to_string().contains("row 1 has 1 entries"), "{err}");
        let err = validate(&[vec![1]], &names).unwrap_err();
        assert!(err.to_string().contains("2 class names for a 1x1"), "{err}");
        assert!(validate(&[], &[]).is_err());
    }
}
