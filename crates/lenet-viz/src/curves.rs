//! Training curves: loss, accuracy and learning rate against the epoch.
//!
//! # Layout
//!
//! A [`CURVES_WIDTH`] x [`CURVES_HEIGHT`] picture (the same size for PNG and SVG) with the title
//! on top. Below it, the loss panel (left) and the accuracy panel (right, shown in %) sit side
//! by side; the learning-rate panel spans the bottom, or is left out (the two upper panels then
//! take the full height) when there is no learning-rate series. Every panel shares one epoch
//! axis with integer labels, has a legend naming its series and draws each point as a dot as
//! well as joining points by lines, so a single epoch is visible too.
//!
//! # Odd values
//!
//! Points whose epoch or value is NaN, infinite or larger in magnitude than [`MAX_MAGNITUDE`]
//! (a diverged run) are skipped, and the line is broken where they were. A panel without any
//! drawable point shows empty axes over 0..1. A range whose min equals its max is padded.

use std::ops::Range;
use std::path::Path;

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::{
    ChartBuilder, Circle, DrawingArea, DrawingBackend, IntoDrawingArea, LineSeries, PathElement,
    SVGBackend, SeriesLabelPosition,
};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{Color, FontStyle, RGBColor, TextStyle, BLACK, TRANSPARENT, WHITE};

use crate::font::{ensure_fonts, FAMILY};
use crate::render::{blank, draw_on, fit_text};
use crate::VizError;

/// Width of the curves picture, in pixels.
pub const CURVES_WIDTH: u32 = 960;
/// Height of the curves picture, in pixels.
pub const CURVES_HEIGHT: u32 = 720;
/// Height of the band holding the title, in pixels.
const TITLE_BAND: u32 = 48;
/// Share of the space below the title taken by the loss and accuracy panels when the
/// learning-rate panel is drawn too.
const UPPER_SHARE: f64 = 0.6;
/// Points with a larger magnitude (epoch or value) are skipped as if they were NaN.
pub const MAX_MAGNITUDE: f64 = 1e15;

/// Series colours, in order: train (blue), valid (orange), then green, red, purple, brown.
pub(crate) const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One named line: `(epoch, value)` points, in drawing order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Legend entry, e.g. "train" or "valid".
    pub name: String,
    /// `(epoch, value)` points; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series named `name` with the given `(epoch, value)` points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// Everything one curves picture shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Curves {
    /// Title on top, e.g. "lenet5 on MNIST".
    pub title: String,
    /// Loss series (e.g. train and valid).
    pub loss: Vec<Series>,
    /// Accuracy series as fractions 0..1 (shown as %).
    pub accuracy: Vec<Series>,
    /// Learning rate per epoch; its panel is left out when `None`.
    pub learning_rate: Option<Series>,
}

/// Draws the curves as a [`CURVES_WIDTH`] x [`CURVES_HEIGHT`] RGB picture.
pub fn curves_png(c: &Curves) -> Result<RgbImage, VizError> {
    let mut image = blank(CURVES_WIDTH, CURVES_HEIGHT)?;
    draw_on(&mut image, |root| draw_curves(root, c))?;
    Ok(image)
}

/// Draws the curves as an SVG document of [`CURVES_WIDTH`] x [`CURVES_HEIGHT`].
pub fn curves_svg(c: &Curves) -> Result<String, VizError> {
    ensure_fonts()?;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (CURVES_WIDTH, CURVES_HEIGHT)).into_drawing_area();
        draw_curves(&root, c)?;
        root.present().map_err(VizError::draw)?;
    }
    Ok(svg)
}

/// Draws the curves and writes them atomically as PNG to `png` and as SVG to `svg`.
///
/// Both pictures are drawn before either file is written.
pub fn write_curves(c: &Curves, png: &Path, svg: &Path) -> Result<(), VizError> {
    let image = curves_png(c)?;
    let text = curves_svg(c)?;
    lenet_io::write_png(png, &image)?;
    Ok(lenet_io::write_atomic(svg, text.as_bytes())?)
}

/// What distinguishes the three panels.
struct Panel<'a> {
    caption: &'a str,
    y_desc: &'a str,
    series: &'a [Series],
    /// Values are multiplied by this before drawing (100 for accuracy in %).
    factor: f64,
    /// The y range never leaves these bounds when the data stays within them.
    bounds: Range<f64>,
    /// Index of the first series' colour in [`PALETTE`].
    first_colour: usize,
    legend: SeriesLabelPosition,
    y_format: fn(&f64) -> String,
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &Curves,
) -> Result<(), VizError> {
    root.fill(&WHITE).map_err(VizError::draw)?;
    let (title_area, body) = root.split_vertically(TITLE_BAND);
    let title_style = TextStyle::from((FAMILY, 22.0, FontStyle::Bold))
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    let title = fit_text(&title_area, &c.title, &title_style, CURVES_WIDTH - 20)?;
    title_area
        .draw_text(
            &title,
            &title_style,
            (CURVES_WIDTH as i32 / 2, TITLE_BAND as i32 / 2),
        )
        .map_err(VizError::draw)?;

    let x_range = epoch_range(c);
    let loss = Panel {
        caption: "loss",
        y_desc: "loss",
        series: &c.loss,
        factor: 1.0,
        bounds: 0.0..f64::INFINITY,
        first_colour: 0,
        legend: SeriesLabelPosition::UpperRight,
        y_format: short_number,
    };
    let accuracy = Panel {
        caption: "accuracy",
        y_desc: "accuracy (%)",
        series: &c.accuracy,
        factor: 100.0,
        bounds: 0.0..100.0,
        first_colour: 0,
        legend: SeriesLabelPosition::LowerRight,
        y_format: short_number,
    };
    let upper = match &c.learning_rate {
        None => body,
        Some(lr) => {
            let height = body.dim_in_pixel().1;
            let (upper, lower) = body.split_vertically((f64::from(height) * UPPER_SHARE) as u32);
            let panel = Panel {
                caption: "learning rate",
                y_desc: "learning rate",
                series: std::slice::from_ref(lr),
                factor: 1.0,
                bounds: 0.0..f64::INFINITY,
                first_colour: 2,
                legend: SeriesLabelPosition::UpperRight,
                y_format: |v| format!("{v:.1e}"),
            };
            draw_panel(&lower, &panel, &x_range)?;
            upper
        }
    };
    let (left, right) = upper.split_horizontally(CURVES_WIDTH / 2);
    draw_panel(&left, &loss, &x_range)?;
    draw_panel(&right, &accuracy, &x_range)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    x_range: &Range<f64>,
) -> Result<(), VizError> {
    let values = panel
        .series
        .iter()
        .flat_map(|s| usable_points(s, panel.factor))
        .map(|(_, y)| y);
    let y_range = padded_range(values, &panel.bounds);
    let mut chart = ChartBuilder::on(area)
        .caption(panel.caption, (FAMILY, 18.0))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.clone(), y_range)
        .map_err(VizError::draw)?;

    let span = x_range.end - x_range.start;
    let x_labels = (span.ceil() as usize).clamp(2, 12);
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(panel.y_desc)
        .x_labels(x_labels)
        .y_labels(8)
        .x_label_formatter(&integer_label)
        .y_label_formatter(&panel.y_format)
        .label_style((FAMILY, 13.0))
        .axis_desc_style((FAMILY, 14.0))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(VizError::draw)?;

    for (i, series) in panel.series.iter().enumerate() {
        let colour = PALETTE[(panel.first_colour + i) % PALETTE.len()];
        let points = usable_points(series, panel.factor);
        for segment in segments(series, panel.factor) {
            chart
                .draw_series(LineSeries::new(segment, colour.stroke_width(2)))
                .map_err(VizError::draw)?;
        }
        let dots = points
            .into_iter()
            .map(move |p| Circle::new(p, 3, colour.filled()));
        chart
            .draw_series(dots)
            .map_err(VizError::draw)?
            .label(series.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    if !panel.series.is_empty() {
        chart
            .configure_series_labels()
            .position(panel.legend.clone())
            .label_font((FAMILY, 13.0))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(VizError::draw)?;
    }
    Ok(())
}

/// A tick label without trailing zeros ("2", "1.5", "0.125"); scientific below 0.01.
fn short_number(v: &f64) -> String {
    if *v != 0.0 && v.abs() < 0.01 {
        return format!("{v:.1e}");
    }
    let fixed = format!("{v:.4}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    match trimmed {
        "-0" => "0".to_string(),
        t => t.to_string(),
    }
}

/// Labels integer epochs only: plotters may place ticks between them.
fn integer_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round())
    } else {
        String::new()
    }
}

fn usable(v: f64) -> bool {
    v.is_finite() && v.abs() <= MAX_MAGNITUDE
}

/// The drawable points of `s`, values multiplied by `factor`.
fn usable_points(s: &Series, factor: f64) -> Vec<(f64, f64)> {
    s.points
        .iter()
        .map(|&(x, y)| (x, y * factor))
        .filter(|&(x, y)| usable(x) && usable(y))
        .collect()
}

/// Runs of consecutive drawable points: lines are broken where a point was skipped.
fn segments(s: &Series, factor: f64) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![Vec::new()];
    for &(x, y) in &s.points {
        let y = y * factor;
        if usable(x) && usable(y) {
            if let Some(run) = runs.last_mut() {
                run.push((x, y));
            }
        } else if runs.last().is_some_and(|run| !run.is_empty()) {
            runs.push(Vec::new());
        }
    }
    runs.retain(|run| run.len() >= 2);
    runs
}

/// Epoch axis shared by all panels: every drawable epoch, padded by 3% of the span on each
/// side (0.5 when there is a single epoch), or 0..1 without any.
fn epoch_range(c: &Curves) -> Range<f64> {
    let epochs = c
        .loss
        .iter()
        .chain(&c.accuracy)
        .chain(&c.learning_rate)
        .flat_map(|s| usable_points(s, 1.0))
        .map(|(x, _)| x);
    let Some((lo, hi)) = min_max(epochs) else {
        return 0.0..1.0;
    };
    let pad = if hi > lo { (hi - lo) * 0.03 } else { 0.5 };
    (lo - pad)..(hi + pad)
}

/// The value axis: data min..max padded by 5% of the span (10% of the value, or 0.5 for 0,
/// when min == max), kept within `bounds` when the data is, or 0..1 without data.
fn padded_range(values: impl Iterator<Item = f64>, bounds: &Range<f64>) -> Range<f64> {
    let Some((lo, hi)) = min_max(values) else {
        return 0.0..1.0;
    };
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else if lo != 0.0 {
        lo.abs() * 0.1
    } else {
        0.5
    };
    let mut start = lo - pad;
    let mut end = hi + pad;
    if lo >= bounds.start {
        start = start.max(bounds.start);
    }
    if hi <= bounds.end {
        end = end.min(bounds.end);
    }
    if end <= start {
        end = start + 1.0;
    }
    start..end
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_range_handles_single_values_and_bounds() {
        assert_eq!(padded_range(std::iter::empty(), &(0.0..1.0)), 0.0..1.0);
        assert_eq!(
            padded_range([0.0].into_iter(), &(0.0..f64::INFINITY)),
            0.0..0.5
        );
        let r = padded_range([100.0].into_iter(), &(0.0..100.0));
        assert_eq!(r, 90.0..100.0);
        let r = padded_range([2.0, 4.0].into_iter(), &(0.0..f64::INFINITY));
        assert!(
            (r.start - 1.9).abs() < 1e-12 && (r.end - 4.1).abs() < 1e-12,
            "{r:?}"
        );
    }

    #[test]
    fn segments_break_at_skipped_points_and_drop_lone_points() {
        let s = Series::new(
            "x",
            vec![
                (1.0, 1.0),
                (2.0, 2.0),
                (3.0, f64::NAN),
                (4.0, 4.0),
                (5.0, 5.0),
                (6.0, f64::INFINITY),
                (7.0, 7.0),
            ],
        );
        assert_eq!(
            segments(&s, 1.0),
            vec![vec![(1.0, 1.0), (2.0, 2.0)], vec![(4.0, 4.0), (5.0, 5.0)]]
        );
        assert_eq!(usable_points(&s, 1.0).len(), 5);
    }

    #[test]
    fn epoch_range_pads_a_single_epoch() {
        let c = Curves {
            loss: vec![Series::new("train", vec![(1.0, 0.5)])],
            ..Curves::default()
        };
        assert_eq!(epoch_range(&c), 0.5..1.5);
        assert_eq!(epoch_range(&Curves::default()), 0.0..1.0);
    }

    #[test]
    fn integer_label_blanks_fractions() {
        assert_eq!(integer_label(&3.0), "3");
        assert_eq!(integer_label(&2.5), "");
    }

    #[test]
    fn short_number_trims_zeros() {
        assert_eq!(short_number(&2.0), "2");
        assert_eq!(short_number(&1.5), "1.5");
        assert_eq!(short_number(&0.125), "0.125");
        assert_eq!(short_number(&97.5), "97.5");
        assert_eq!(short_number(&0.0), "0");
        assert_eq!(short_number(&0.001), "1.0e-3");
    }
}
