use std::time::Duration;

use super::*;
use crate::bench::Recorder;

/// A run of `n` sends with latencies 1..=n ms over `secs` samples, its topic `topic`.
fn with_run<R>(n: u64, secs: u64, topic: &str, f: impl FnOnce(&Run<'_>) -> R) -> R {
    let r = Recorder::default();
    for ms in 1..=n {
        r.begin(1);
        r.ok(1, Duration::from_millis(ms));
    }
    let samples: Vec<Interval> = (1..=secs)
        .map(|at| r.interval(at, 0, Duration::from_secs(1)))
        .map(|mut i| {
            i.sent_per_sec = 100.0 * i.at_secs as f64;
            i
        })
        .collect();
    let summary = r.summary("sync", 128, 4, Duration::from_secs(secs.max(1)));
    let latency = r.latency();
    f(&Run {
        params: vec![("topic", topic.to_owned()), ("mode", "sync".to_owned())],
        summary: &summary,
        java_line: "[Complete] Send Total: 1 | Send TPS: 1",
        latency: &latency,
        samples: &samples,
    })
}

/// The `<svg>` elements of `doc` (an XML document), at any depth.
fn svgs<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.tag_name().name() == "svg")
        .collect()
}

/// The text of every `<text>` element under `doc`.
fn texts(doc: &roxmltree::Document<'_>) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.tag_name().name() == "text")
        .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
        .collect()
}

#[test]
fn the_svg_report_is_well_formed_with_both_charts() {
    with_run(1000, 5, "BenchmarkTest", |run| {
        let text = svg(run);
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        // The outer document and the two charts.
        assert_eq!(svgs(&doc).len(), 3);
        let texts = texts(&doc);
        for want in [
            "Throughput (messages/s)",
            "Latency by percentile (ms)",
            "90%",
            "99%",
        ] {
            assert!(texts.iter().any(|t| t == want), "no {want} in {texts:?}");
        }
        // The curves: one polyline per series at least, with many points for the latency.
        let lines: Vec<usize> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "polyline")
            .map(|n| {
                n.attribute("points")
                    .unwrap_or("")
                    .split_whitespace()
                    .count()
            })
            .collect();
        assert!(lines.contains(&5), "the 5 samples: {lines:?}");
        assert!(
            lines.iter().any(|&n| n > 30),
            "the percentile curve: {lines:?}"
        );
    });
}

#[test]
fn the_html_report_embeds_the_charts_params_and_summary() {
    with_run(200, 3, "T<&>\"'", |run| {
        let text = html(run);
        assert!(text.starts_with("<!DOCTYPE html>"));
        // Self-contained: nothing fetched.
        for outside in ["<script", "src=", "<link", "http://", "https://"] {
            let outside_ok = outside == "http://"
                && text.matches(outside).count() == text.matches("http://www.w3.org/").count();
            assert!(
                !text.contains(outside) || outside_ok,
                "{outside} in the page"
            );
        }
        // The body after the doctype is well-formed XML (XHTML-like), the SVGs inline.
        let body = text.trim_start_matches("<!DOCTYPE html>\n");
        let doc = roxmltree::Document::parse(body).expect("well-formed markup");
        assert_eq!(svgs(&doc).len(), 2);
        let cells: Vec<String> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "td")
            .filter_map(|n| n.text().map(str::to_owned))
            .collect();
        assert!(
            cells.iter().any(|c| c == "T<&>\"'"),
            "the topic, escaped: {cells:?}"
        );
        assert!(
            cells.iter().any(|c| c == "200"),
            "the summary's sent: {cells:?}"
        );
        assert!(text.contains("[Complete] Send Total: 1 | Send TPS: 1"));
    });
}

#[test]
fn an_empty_run_still_draws() {
    with_run(0, 0, "T", |run| {
        let text = svg(run);
        roxmltree::Document::parse(&text).expect("well-formed XML");
        let page = html(run);
        roxmltree::Document::parse(page.trim_start_matches("<!DOCTYPE html>\n"))
            .expect("well-formed markup");
        assert!(!text.contains("chart not drawn"), "{text}");
    });
}

#[test]
fn the_curve_runs_along_the_hgrm_rows() {
    let r = Recorder::default();
    for ms in 1..=1000 {
        r.begin(1);
        r.ok(1, Duration::from_millis(ms));
    }
    let points = plot::percentile_points(&r.latency());
    assert_eq!(points[0].0, 1.0);
    for w in points.windows(2) {
        assert!(w[0].0 < w[1].0 && w[0].1 <= w[1].1, "{w:?}");
    }
    // At x = 10 (90%), about 900 ms.
    let p90 = points.iter().find(|p| p.0 >= 10.0).unwrap();
    assert!((p90.1 - 900.0).abs() < 5.0, "{p90:?}");
}

#[test]
fn percentile_labels_show_the_nines() {
    for (x, want) in [
        (1.0, "0%"),
        (10.0, "90%"),
        (100.0, "99%"),
        (1000.0, "99.9%"),
        (10_000.0, "99.99%"),
        (100_000.0, "99.999%"),
    ] {
        assert_eq!(plot::percentile_label(x), want, "{x}");
    }
}

#[test]
fn escape_covers_markup() {
    assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&#39;");
}
