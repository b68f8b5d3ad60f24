//! `rmq bench --hdr FILE --report FILE.html|.svg` against the embedded dev broker: the files are
//! written and well-formed, stdout keeps its one JSON summary, stderr gets Java's `[Complete]`
//! line; a report path of another kind is a usage error before anything is sent, a file that
//! cannot be written fails the command after the summary.

mod support;

use std::path::PathBuf;

use support::run;

/// A fresh directory for this test's files, under cargo's temporary directory for tests.
fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the test directory");
    d
}

#[test]
fn bench_writes_the_hgrm_and_the_reports() {
    let d = dir("ok");
    let (hgrm, html, svg) = (d.join("run.hgrm"), d.join("run.html"), d.join("run.svg"));
    let r = run(&[
        "bench",
        "--embedded",
        "--mode",
        "sync",
        "--concurrency",
        "4",
        "--count",
        "500",
        "--hdr",
        hgrm.to_str().unwrap(),
        "--report",
        html.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    // stdout: still the one JSON summary.
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    assert_eq!(r.json()["sent"], 500);
    let complete = r
        .stderr
        .lines()
        .find(|l| l.contains("[Complete]"))
        .unwrap_or_else(|| panic!("no [Complete] line: {r:?}"));
    assert!(
        complete.contains("[Complete] Send Total: 500 | Send TPS: ")
            && complete.contains(" | Send Failed: 0 | Response Failed: 0"),
        "{complete}"
    );

    let text = std::fs::read_to_string(&hgrm).expect("the .hgrm written");
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    let rows: Vec<(f64, f64, u64)> = lines
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (
                c[0].parse().unwrap(),
                c[1].parse().unwrap(),
                c[2].parse().unwrap(),
            )
        })
        .collect();
    assert!(rows.len() > 10, "{text}");
    assert!(
        rows.windows(2).all(|w| w[0].1 < w[1].1 && w[0].0 <= w[1].0),
        "{text}"
    );
    assert_eq!(rows.last().map(|r| (r.1, r.2)), Some((1.0, 500)), "{text}");
    assert!(
        text.contains("#[Max     = ") && text.contains("Total count    =          500]"),
        "{text}"
    );

    let page = std::fs::read_to_string(&html).expect("the .html written");
    let doc = roxmltree::Document::parse(page.trim_start_matches("<!DOCTYPE html>\n"))
        .expect("well-formed page");
    assert_eq!(
        doc.descendants().filter(|n| n.has_tag_name("svg")).count(),
        2,
        "both charts inline"
    );
    assert!(page.contains("BenchmarkTest"), "the parameters");

    // The .svg kind: one SVG document, both charts in it.
    let r = run(&[
        "bench",
        "--embedded",
        "--count",
        "50",
        "--report",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let text = std::fs::read_to_string(&svg).expect("the .svg written");
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    assert!(doc
        .root_element()
        .has_tag_name(("http://www.w3.org/2000/svg", "svg")));
    assert_eq!(
        doc.descendants().filter(|n| n.has_tag_name("svg")).count(),
        3
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_report_of_another_kind_is_a_usage_error() {
    let d = dir("kind");
    let png = d.join("run.png");
    let r = run(&[
        "bench",
        "--embedded",
        "--count",
        "5",
        "--report",
        png.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stdout.is_empty(), "nothing sent: {r:?}");
    assert!(r.stderr.contains(".html or .svg"), "{r:?}");
    assert!(!png.exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_file_not_written_fails_the_command_after_the_summary() {
    let d = dir("unwritable");
    let hgrm = d.join("no-such-dir").join("run.hgrm");
    let r = run(&[
        "bench",
        "--embedded",
        "--count",
        "5",
        "--hdr",
        hgrm.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.json()["sent"], 5, "the summary still printed: {r:?}");
    assert!(
        r.stderr.contains("cannot write the latency distribution"),
        "{r:?}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
