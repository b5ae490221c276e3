//! Shared plumbing: drawing with plotters on an in-memory RGB picture, fitting text.

use image::RgbImage;
use plotters::backend::{BitMapBackend, RGBPixel};
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, DrawingBackend, IntoDrawingArea};
use plotters::style::TextStyle;

use crate::font::ensure_fonts;
use crate::VizError;

/// The largest picture this crate will allocate, in pixels (about 800 MB of RGB).
pub(crate) const MAX_PIXELS: u64 = 1 << 28;

/// A white `width` x `height` picture, or an error when it would be empty or absurdly large.
pub(crate) fn blank(width: u32, height: u32) -> Result<RgbImage, VizError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 || pixels > MAX_PIXELS {
        return Err(VizError::invalid(format!(
            "picture size {width}x{height} is out of range (1 to {MAX_PIXELS} pixels)"
        )));
    }
    Ok(RgbImage::from_pixel(
        width,
        height,
        image::Rgb([255, 255, 255]),
    ))
}

/// Lets `draw` paint on `image` through a plotters bitmap backend (fonts registered first).
pub(crate) fn draw_on<F>(image: &mut RgbImage, draw: F) -> Result<(), VizError>
where
    F: FnOnce(&DrawingArea<BitMapBackend<'_, RGBPixel>, Shift>) -> Result<(), VizError>,
{
    ensure_fonts()?;
    let size = image.dimensions();
    let buffer: &mut [u8] = image;
    let backend =
        BitMapBackend::<RGBPixel>::with_buffer_and_format(buffer, size).map_err(VizError::draw)?;
    let root = backend.into_drawing_area();
    draw(&root)?;
    root.present().map_err(VizError::draw)
}

/// `text`, shortened with a trailing "…" until it is at most `max_width` pixels wide in `style`.
///
/// Returns an empty string when not even "…" fits.
pub(crate) fn fit_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
    max_width: u32,
) -> Result<String, VizError> {
    let width = |s: &str| -> Result<u32, VizError> {
        Ok(area.estimate_text_size(s, style).map_err(VizError::draw)?.0)
    };
    if width(text)? <= max_width {
        return Ok(text.to_string());
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let candidate: String = chars.iter().chain(std::iter::once(&'…')).collect();
        if width(&candidate)? <= max_width {
            return Ok(candidate);
        }
    }
    Ok(String::new())
}
