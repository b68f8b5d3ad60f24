//! The report's two charts, drawn by `plotters` into SVG text: throughput over time, and the
//! latency percentile curve on a log scale of `1/(1-percentile)` (as the HdrHistogram plotter
//! draws it). Text is written as SVG `<text>`: no font file is read.

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::bench::hgrm::US_PER_MS;
use crate::bench::Interval;

/// The size of one chart.
pub(crate) const SIZE: (u32, u32) = (900, 420);

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);

/// Quantile steps per halving of the distance to 100 % (as in the `.hgrm`).
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Throughput (messages stored per second) at each live-line sample, as an SVG document.
pub(crate) fn throughput(samples: &[Interval]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let x_max = samples.last().map_or(1, |s| s.at_secs).max(1);
        let y_max = samples
            .iter()
            .map(|s| s.sent_per_sec)
            .fold(0.0_f64, f64::max)
            .max(1.0)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption("Throughput (messages/s)", ("sans-serif", 20))
            .margin(12)
            .margin_right(36)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0_u64..x_max, 0.0..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("messages/s")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                samples.iter().map(|s| (s.at_secs, s.sent_per_sec)),
                BLUE.stroke_width(2),
            ))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The points of the percentile curve: `(1/(1-q), latency ms)` for each quantile `q < 1` of
/// `h` (µs), as the `.hgrm` rows.
pub(crate) fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .map(|v| (v.quantile_iterated_to(), v.value_iterated_to()))
        .filter(|(q, _)| *q < 1.0)
        .map(|(q, us)| (1.0 / (1.0 - q), us as f64 / US_PER_MS))
        .collect()
}

/// The latency by percentile of `h` (µs), as an SVG document; the maximum as a dashed line.
pub(crate) fn latency(h: &Histogram<u64>) -> Result<String, String> {
    let points = percentile_points(h);
    let max_ms = if h.is_empty() {
        0.0
    } else {
        h.max() as f64 / US_PER_MS
    };
    // Whole decades on x, up to 99.999 % at least past the last point.
    let last_x = points.last().map_or(1.0, |p| p.0);
    let x_max = 10_f64.powi((last_x.log10().ceil() as i32).max(2));
    let y_max = (max_ms * 1.1).max(0.001);
    // Decimals enough to tell the y ticks apart.
    let digits: usize = match y_max {
        m if m >= 100.0 => 0,
        m if m >= 10.0 => 1,
        m if m >= 1.0 => 2,
        _ => 3,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let x = (1.0..x_max).log_scale();
        let mut chart = ChartBuilder::on(&root)
            .caption("Latency by percentile (ms)", ("sans-serif", 20))
            .margin(12)
            .margin_right(36)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x, 0.0..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|v| format!("{v:.digits$}"))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
            .map_err(err)?
            .label("latency")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        chart
            .draw_series(DashedLineSeries::new(
                [(1.0, max_ms), (x_max, max_ms)],
                6,
                4,
                ORANGE.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("max {max_ms:.3} ms"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ORANGE.stroke_width(1)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The percentile at `x = 1/(1-q)`: `90%` at 10, `99.9%` at 1000.
pub(crate) fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    // As many decimals as the nines need (at a decade: log10(x) - 2).
    let decimals = (x.log10().round() as i32 - 2).clamp(0, 6) as usize;
    format!("{p:.decimals$}%")
}

/// A drawing error, in one line.
fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}
