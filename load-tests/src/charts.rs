//! SVG charts for the experiment reports (plotters' SVG backend: no fonts, no
//! system libraries, text left to the browser that shows the file).
//!
//! Two shapes cover every report: [`line_chart`] (a time series or a CDF, one
//! line per series) and [`bar_chart`] (groups of bars, one bar per series in
//! each category, e.g. bids/s per client level for each Redis strategy).

use anyhow::{Context, anyhow};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;

/// Width and height of every chart, in pixels.
const SIZE: (u32, u32) = (800, 450);
/// Line and bar colours, in series order (wraps around).
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One named line of points `(x, y)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }

    /// A bar series: one height per category, in category order.
    pub fn bars(name: impl Into<String>, heights: impl IntoIterator<Item = f64>) -> Self {
        let points = heights.into_iter().enumerate();
        Self::new(name, points.map(|(i, h)| (i as f64, h)).collect())
    }
}

/// The chart's caption, then the titles of its x and y axes.
pub type Labels<'a> = (&'a str, &'a str, &'a str);

/// The colour of the `index`th series.
fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// `lo..hi` widened so that a flat or empty range still draws (plotters cannot map a
/// zero-width axis) and the top value is not on the frame.
fn axis_range(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    if hi > lo {
        lo..hi + (hi - lo) * 0.05
    } else {
        lo..lo + 1.0
    }
}

/// Draws `series` as lines on shared axes (x from the smallest to the largest x, y from 0)
/// and writes the SVG to `path`.
///
/// # Errors
///
/// The file cannot be written or plotters rejects the drawing.
pub fn line_chart(path: &Path, labels: Labels<'_>, series: &[Series]) -> anyhow::Result<()> {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let y_hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(f64::NEG_INFINITY, f64::max);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let (x, y) = (axis_range(x_lo, x_hi), axis_range(0.0, y_hi));
    let drawn = draw_lines(&root, labels, series, x, y).map_err(|e| anyhow!("{e}"));
    drawn.with_context(|| format!("cannot draw {}", path.display()))
}

fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    labels: Labels<'_>,
    series: &[Series],
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = plane(root, labels.0, 60, x, y)?;
    chart
        .configure_mesh()
        .x_desc(labels.1)
        .y_desc(labels.2)
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let style = colour(i).stroke_width(2);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    if series.len() > 1 || series.iter().any(|s| !s.name.is_empty()) {
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    }
    root.present()
}

/// Bars grouped by category: `series[s].points[c].1` is the height of series
/// `s` in `categories[c]` (the x of each point is ignored). Writes the SVG to `path`.
///
/// # Errors
///
/// The file cannot be written or plotters rejects the drawing.
pub fn bar_chart(
    path: &Path,
    labels: Labels<'_>,
    categories: &[String],
    series: &[Series],
) -> anyhow::Result<()> {
    let y_hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let drawn = draw_bars(&root, labels, categories, series, axis_range(0.0, y_hi));
    let drawn = drawn.map_err(|e| anyhow!("{e}"));
    drawn.with_context(|| format!("cannot draw {}", path.display()))
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    labels: Labels<'_>,
    categories: &[String],
    series: &[Series],
    y: std::ops::Range<f64>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let groups = categories.len().max(1);
    let mut chart = plane(root, labels.0, 70, 0.0..groups as f64, y)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups * 2 + 1)
        // Category names sit under the middle of their group, at x = c + 0.5.
        .x_label_formatter(&|x| {
            let c = x.floor();
            if (x - c - 0.5).abs() < 1e-6 {
                categories.get(c as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(labels.1)
        .y_desc(labels.2)
        .draw()?;
    // Each group leaves 15% empty on either side; its bars share the rest.
    let width = 0.7 / series.len().max(1) as f64;
    for (s, bars) in series.iter().enumerate() {
        let fill = colour(s).filled();
        chart
            .draw_series(bars.points.iter().take(groups).enumerate().map(|(c, p)| {
                let left = c as f64 + 0.15 + s as f64 * width;
                Rectangle::new([(left, 0.0), (left + width * 0.92, p.1)], fill)
            }))?
            .label(bars.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present()
}

/// A chart's plotting plane: f64 on both axes.
type Plane<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// What every chart starts with: a white canvas, its `title`, the label areas (the y one
/// `y_label_width` wide, for the longest tick label) and the `x` by `y` plane.
fn plane<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_label_width: u32,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> Result<Plane<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(y_label_width)
        .build_cartesian_2d(x, y)
}

/// The series' names in one box at `position`, on a nearly opaque white so lines under it
/// do not hide them.
fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Plane<'a, DB>,
    position: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_and_empty_ranges_still_have_width() {
        assert_eq!(axis_range(3.0, 3.0), 3.0..4.0);
        assert_eq!(axis_range(f64::INFINITY, f64::NEG_INFINITY), 0.0..1.05);
        assert_eq!(axis_range(0.0, 100.0), 0.0..105.0);
    }

    #[test]
    fn charts_are_svgs_with_their_titles_legends_and_categories() {
        let dir = tempfile::tempdir().unwrap();
        let (lines, bars) = (dir.path().join("cdf.svg"), dir.path().join("bars.svg"));
        let series = [
            Series::new("lua", vec![(0.0, 0.0), (1.0, 0.9), (4.0, 1.0)]),
            Series::new("optimistic", vec![(0.0, 0.0), (2.0, 0.5), (9.0, 1.0)]),
        ];
        line_chart(&lines, ("Bid latency CDF", "ms", "share of bids"), &series).unwrap();
        let svg = std::fs::read_to_string(&lines).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in ["Bid latency CDF", "optimistic", "share of bids"] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(svg.matches("<polyline").count() >= 2, "one line per series");
        let categories = ["64 users".to_owned(), "256 users".to_owned()];
        let labels = ("Bids per second", "", "bids/s");
        bar_chart(&bars, labels, &categories, &series[..2]).unwrap();
        let svg = std::fs::read_to_string(&bars).unwrap();
        for text in ["64 users", "256 users", "optimistic", "bids/s"] {
            assert!(svg.contains(text), "{text} missing");
        }
    }
}
