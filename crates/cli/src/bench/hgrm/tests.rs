use std::time::Duration;

use super::*;
use crate::bench::Recorder;

/// A parsed `.hgrm`: the rows (value ms, quantile, total count) and the footer numbers.
#[derive(Debug)]
struct Parsed {
    rows: Vec<(f64, f64, u64)>,
    mean: f64,
    max: f64,
    total: u64,
    buckets: u64,
    sub_buckets: u64,
}

/// The number after `key =` in a footer line such as `#[Max     = 12.3, Total count = 4]`.
fn footer_value(line: &str, key: &str) -> f64 {
    let at = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    let rest = &line[at + key.len()..];
    let rest = rest.trim_start().strip_prefix('=').unwrap();
    let end = rest.find([',', ']']).unwrap();
    rest[..end].trim().parse().unwrap()
}

/// Parses `text` as the HdrHistogram plotter does, checking its layout on the way.
fn parse(text: &str) -> Parsed {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    assert_eq!(lines.next(), Some(""), "a blank line after the header");
    let mut rows = Vec::new();
    let mut footer = Vec::new();
    for line in lines {
        if line.starts_with("#[") {
            footer.push(line);
            continue;
        }
        assert!(footer.is_empty(), "a row after the footer: {line}");
        let cols: Vec<&str> = line.split_whitespace().collect();
        let q: f64 = cols[1].parse().unwrap();
        if q < 1.0 {
            assert_eq!(cols.len(), 4, "{line}");
            let inv: f64 = cols[3].parse().unwrap();
            assert!((inv - 1.0 / (1.0 - q)).abs() < 0.01, "{line}");
        } else {
            assert_eq!(cols.len(), 3, "the 100% row has no 1/(1-p): {line}");
        }
        rows.push((cols[0].parse().unwrap(), q, cols[2].parse().unwrap()));
    }
    assert_eq!(footer.len(), 3, "{footer:?}");
    assert!(footer[0].starts_with("#[Mean    ="), "{}", footer[0]);
    assert!(footer[1].starts_with("#[Max     ="), "{}", footer[1]);
    assert!(footer[2].starts_with("#[Buckets ="), "{}", footer[2]);
    Parsed {
        rows,
        mean: footer_value(footer[0], "Mean"),
        max: footer_value(footer[1], "Max"),
        total: footer_value(footer[1], "Total count") as u64,
        buckets: footer_value(footer[2], "Buckets") as u64,
        sub_buckets: footer_value(footer[2], "SubBuckets") as u64,
    }
}

#[test]
fn the_distribution_parses_back_to_the_histogram() {
    let r = Recorder::default();
    // 1..=2000 ms: a wide spread, so many rows.
    for ms in 1..=2000 {
        r.begin(1);
        r.ok(1, Duration::from_millis(ms));
    }
    let h = r.latency();
    let p = parse(&percentile_distribution(&h));
    assert!(p.rows.len() > 50, "{}", p.rows.len());
    for w in p.rows.windows(2) {
        assert!(w[0].0 <= w[1].0, "values rise: {w:?}");
        assert!(w[0].1 < w[1].1, "percentiles rise: {w:?}");
        assert!(w[0].2 <= w[1].2, "counts rise: {w:?}");
    }
    let first = p.rows[0];
    let last = *p.rows.last().unwrap();
    assert_eq!(first.1, 0.0);
    assert_eq!((last.1, last.2), (1.0, 2000));
    assert!((last.0 - 2000.0).abs() <= 2.0, "{last:?}");
    assert!((first.0 - 1.0).abs() <= 0.01, "{first:?}");
    // The median row is about 1000 ms.
    let median = p.rows.iter().find(|r| r.1 >= 0.5).unwrap();
    assert!((median.0 - 1000.0).abs() <= 2.0, "{median:?}");
    assert!((p.mean - 1000.5).abs() < 1.0, "{p:?}");
    assert!((p.max - 2000.0).abs() <= 2.0, "{p:?}");
    assert_eq!(p.total, 2000);
    assert_eq!((p.buckets, p.sub_buckets), (u64::from(h.buckets()), 2048));
}

#[test]
fn three_decimals_for_three_significant_digits() {
    let r = Recorder::default();
    r.begin(1);
    r.ok(1, Duration::from_micros(1234));
    let text = percentile_distribution(&r.latency());
    let row = text.lines().nth(2).unwrap();
    assert_eq!(row, "       1.234 0.000000000000          1           1.00");
    assert!(
        text.contains("#[Max     =        1.234, Total count    =            1]"),
        "{text}"
    );
}

#[test]
fn an_empty_histogram_has_a_header_and_a_footer() {
    let p = parse(&percentile_distribution(&Recorder::default().latency()));
    assert!(p.rows.is_empty());
    assert_eq!((p.total, p.max, p.mean), (0, 0.0, 0.0));
}

#[test]
fn sub_buckets_as_hdrhistogram_sizes_them() {
    for (sigfig, want) in [(1, 32), (2, 256), (3, 2048), (4, 32_768), (5, 262_144)] {
        assert_eq!(sub_buckets(sigfig), want, "sigfig {sigfig}");
    }
}
