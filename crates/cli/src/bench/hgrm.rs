//! `rmq bench --hdr FILE`: the run's latency as HdrHistogram's percentile distribution (the
//! `.hgrm` text Java's `AbstractHistogram.outputPercentileDistribution` writes, which the
//! HdrHistogram plotter reads), in milliseconds.
//!
//! ```text
//!        Value     Percentile TotalCount 1/(1-Percentile)
//!
//!        0.101 0.000000000000          1           1.00
//!        ...
//!       12.479 1.000000000000      10000
//! #[Mean    =        0.412, StdDeviation   =        0.301]
//! #[Max     =       12.479, Total count    =        10000]
//! #[Buckets =           16, SubBuckets     =         2048]
//! ```
//!
//! The percentiles are hdrhistogram's own quantile iteration (5 ticks per half distance, as
//! Java's default); only the text layout is written here.

use std::fmt::Write;

use hdrhistogram::Histogram;

/// Recorded values (µs) per unit written (ms).
pub(crate) const US_PER_MS: f64 = 1000.0;

/// Quantile steps per halving of the distance to 100 % (Java's default).
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The percentile distribution of `h` (values in µs), written in ms.
pub(crate) fn percentile_distribution(h: &Histogram<u64>) -> String {
    let digits = usize::from(h.sigfig());
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0_u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / US_PER_MS;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.digits$} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.digits$} {q:2.12} {total:10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.digits$}, StdDeviation   = {:12.digits$}]",
        h.mean() / US_PER_MS,
        h.stdev() / US_PER_MS
    );
    let max = if h.is_empty() { 0 } else { h.max() };
    let _ = writeln!(
        out,
        "#[Max     = {:12.digits$}, Total count    = {:12}]",
        max as f64 / US_PER_MS,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets(h.sigfig())
    );
    out
}

/// The sub-buckets per bucket of a histogram with `sigfig` significant digits (as hdrhistogram
/// sizes them: the power of two that resolves `2 * 10^sigfig` values).
fn sub_buckets(sigfig: u8) -> u64 {
    let largest_single_unit = 2 * 10_u64.pow(u32::from(sigfig));
    largest_single_unit.next_power_of_two()
}

#[cfg(test)]
mod tests;
