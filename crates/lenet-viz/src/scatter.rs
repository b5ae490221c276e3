//! A value against a setting: points (e.g. each trial of a sweep) and, optionally, lines through
//! their means, with a numeric x axis (linear or logarithmic) or named categories.

use std::path::Path;

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::{
    ChartBuilder, Circle, DrawingArea, DrawingBackend, LineSeries, SeriesLabelPosition,
};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{Color, FontStyle, TextStyle, BLACK, TRANSPARENT, WHITE};

use crate::curves::{Series, PALETTE};
use crate::font::FAMILY;
use crate::render::{blank, draw_on, fit_text};
use crate::VizError;

/// Width of a scatter picture, in pixels.
pub const SCATTER_WIDTH: u32 = 720;
/// Height of a scatter picture, in pixels.
pub const SCATTER_HEIGHT: u32 = 480;

/// The x axis.
#[derive(Debug, Clone, PartialEq)]
pub enum XAxis {
    /// Numbers on a linear scale.
    Linear,
    /// Positive numbers on a logarithmic scale.
    Log,
    /// Named values: a point's x is the index of its category.
    Categories(Vec<String>),
}

/// Everything one scatter picture shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Scatter {
    /// Title on top.
    pub title: String,
    /// The x axis' description.
    pub x_desc: String,
    /// The y axis' description.
    pub y_desc: String,
    /// How x is drawn.
    pub x_axis: XAxis,
    /// Point series (drawn as dots), each with its colour and legend entry.
    pub points: Vec<Series>,
    /// Line series (e.g. means), drawn in the colour of the point series of the same index.
    pub lines: Vec<Series>,
}

/// Draws a [`SCATTER_WIDTH`] x [`SCATTER_HEIGHT`] picture.
pub fn scatter_png(s: &Scatter) -> Result<RgbImage, VizError> {
    let mut image = blank(SCATTER_WIDTH, SCATTER_HEIGHT)?;
    draw_on(&mut image, |root| draw(root, s))?;
    Ok(image)
}

/// Draws and writes the picture atomically as PNG.
pub fn write_scatter(s: &Scatter, path: &Path) -> Result<(), VizError> {
    Ok(lenet_io::write_png(path, &scatter_png(s)?)?)
}

fn finite(points: &[(f64, f64)], log: bool) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log || *x > 0.0))
        .map(|&(x, y)| (if log { x.log10() } else { x }, y))
        .collect()
}

fn range(values: impl Iterator<Item = f64>, pad_share: f64, none: (f64, f64)) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        return none;
    }
    let pad = if hi > lo { (hi - lo) * pad_share } else { 0.5 };
    (lo - pad, hi + pad)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, s: &Scatter) -> Result<(), VizError> {
    root.fill(&WHITE).map_err(VizError::draw)?;
    let band: u32 = 40;
    let (title_area, body) = root.split_vertically(band);
    let style = TextStyle::from((FAMILY, 18.0, FontStyle::Bold))
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    let title = fit_text(&title_area, &s.title, &style, SCATTER_WIDTH - 20)?;
    title_area
        .draw_text(&title, &style, (SCATTER_WIDTH as i32 / 2, band as i32 / 2))
        .map_err(VizError::draw)?;
    let log = s.x_axis == XAxis::Log;
    let all: Vec<(f64, f64)> = s
        .points
        .iter()
        .chain(&s.lines)
        .flat_map(|series| finite(&series.points, log))
        .collect();
    let (x0, x1) = match &s.x_axis {
        XAxis::Categories(c) => (-0.5, c.len().max(1) as f64 - 0.5),
        _ => range(all.iter().map(|p| p.0), 0.05, (0.0, 1.0)),
    };
    let (y0, y1) = range(all.iter().map(|p| p.1), 0.08, (0.0, 1.0));
    let mut chart = ChartBuilder::on(&body)
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(VizError::draw)?;
    let categories = match &s.x_axis {
        XAxis::Categories(c) => c.clone(),
        _ => Vec::new(),
    };
    let x_label = move |x: &f64| -> String {
        if !categories.is_empty() {
            let i = x.round();
            return if (x - i).abs() < 1e-6 && i >= 0.0 {
                categories.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            };
        }
        let v = if log { 10f64.powf(*x) } else { *x };
        if v != 0.0 && (v.abs() < 0.01 || v.abs() >= 1e5) {
            format!("{v:.1e}")
        } else {
            let t = format!("{v:.4}");
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    };
    let x_labels = match &s.x_axis {
        XAxis::Categories(c) => c.len().max(1) * 2 + 1,
        _ => 8,
    };
    chart
        .configure_mesh()
        .x_desc(s.x_desc.as_str())
        .y_desc(s.y_desc.as_str())
        .x_labels(x_labels)
        .y_labels(8)
        .x_label_formatter(&x_label)
        .label_style((FAMILY, 13.0))
        .axis_desc_style((FAMILY, 14.0))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(VizError::draw)?;
    for (i, series) in s.lines.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let mut points = finite(&series.points, log);
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(points, colour.mix(0.6).stroke_width(2)))
            .map_err(VizError::draw)?;
    }
    for (i, series) in s.points.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let dots = finite(&series.points, log)
            .into_iter()
            .map(move |p| Circle::new(p, 4, colour.filled()));
        chart
            .draw_series(dots)
            .map_err(VizError::draw)?
            .label(series.name.as_str())
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
    }
    if !s.points.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FAMILY, 13.0))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(VizError::draw)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(x_axis: XAxis) -> Scatter {
        Scatter {
            title: "test accuracy against training.optimizer.lr".into(),
            x_desc: "training.optimizer.lr".into(),
            y_desc: "accuracy (%)".into(),
            x_axis,
            points: vec![Series::new(
                "test",
                vec![(1e-3, 97.0), (1e-3, 97.4), (1e-2, 98.1)],
            )],
            lines: vec![Series::new("mean", vec![(1e-3, 97.2), (1e-2, 98.1)])],
        }
    }

    /// Pixels of `colour` (exactly) in the picture.
    fn count(image: &RgbImage, colour: plotters::style::RGBColor) -> usize {
        image
            .pixels()
            .filter(|p| p.0 == [colour.0, colour.1, colour.2])
            .count()
    }

    #[test]
    fn points_are_drawn_on_every_kind_of_axis() {
        for axis in [
            XAxis::Linear,
            XAxis::Log,
            XAxis::Categories(vec!["relu".into(), "tanh".into()]),
        ] {
            let mut s = sample(axis.clone());
            if let XAxis::Categories(_) = axis {
                s.points[0].points = vec![(0.0, 97.0), (1.0, 98.0)];
                s.lines.clear();
            }
            let picture = scatter_png(&s).unwrap();
            assert_eq!(picture.dimensions(), (SCATTER_WIDTH, SCATTER_HEIGHT));
            // Dots of 4 px radius in the first colour (and its legend entry).
            assert!(count(&picture, PALETTE[0]) > 3 * 30, "{axis:?}");
            // Deterministic.
            assert_eq!(picture, scatter_png(&s).unwrap());
        }
    }

    #[test]
    fn a_log_axis_drops_values_it_cannot_draw() {
        let mut s = sample(XAxis::Log);
        s.points[0].points.push((0.0, 50.0));
        s.points[0].points.push((f64::NAN, 50.0));
        assert!(scatter_png(&s).is_ok());
    }
}
