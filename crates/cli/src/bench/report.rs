//! `rmq bench --report`: one self-contained file about a run. `.svg`: the two charts (throughput
//! over time, latency by percentile) stacked in one SVG; `.html`: those charts inline, the run's
//! parameters, its summary and Java's `[Complete]` line. Nothing is loaded from elsewhere.

mod plot;

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::{Interval, Summary};

/// Everything a report shows about one run.
#[derive(Debug)]
pub(crate) struct Run<'a> {
    /// The run's parameters, as `(name, value)`.
    pub(crate) params: Vec<(&'static str, String)>,
    pub(crate) summary: &'a Summary,
    /// Java's benchmark line ([`super::java_line`]).
    pub(crate) java_line: &'a str,
    /// The whole run's latency (µs).
    pub(crate) latency: &'a Histogram<u64>,
    /// The live-line samples, one a second.
    pub(crate) samples: &'a [Interval],
}

/// The two charts, or an SVG that says why they could not be drawn.
fn charts(run: &Run<'_>) -> [String; 2] {
    [plot::throughput(run.samples), plot::latency(run.latency)].map(|chart| {
        chart.unwrap_or_else(|e| {
            format!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="40"><text x="10" y="25">chart not drawn: {}</text></svg>"#,
                plot::SIZE.0,
                escape(&e)
            )
        })
    })
}

/// The `.svg` report: both charts, one above the other.
pub(crate) fn svg(run: &Run<'_>) -> String {
    let [throughput, latency] = charts(run);
    let (w, h) = plot::SIZE;
    format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h2}" viewBox="0 0 {w} {h2}">"#,
            "\n<title>rmq bench: {title}</title>\n",
            r#"<g>{throughput}</g>"#,
            "\n",
            r#"<g transform="translate(0,{h})">{latency}</g>"#,
            "\n</svg>\n"
        ),
        w = w,
        h = h,
        h2 = 2 * h,
        title = escape(&title(run)),
        throughput = strip_prolog(&throughput),
        latency = strip_prolog(&latency),
    )
}

/// The `.html` report.
pub(crate) fn html(run: &Run<'_>) -> String {
    let [throughput, latency] = charts(run);
    let mut out = String::new();
    let title = escape(&title(run));
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        concat!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n",
            "<title>rmq bench: {title}</title>\n",
            "<style>body{{font-family:sans-serif;margin:2em;max-width:960px}}",
            "table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}",
            "pre{{background:#f4f4f4;padding:8px;overflow-x:auto}}</style>\n",
            "</head>\n<body>\n<h1>rmq bench: {title}</h1>\n"
        ),
        title = title
    );
    out.push_str("<h2>Parameters</h2>\n<table>\n");
    for (name, value) in &run.params {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(name),
            escape(value)
        );
    }
    out.push_str("</table>\n<h2>Summary</h2>\n<table>\n");
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(run.summary) {
        for (name, value) in fields {
            let value = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            let _ = writeln!(
                out,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(&name),
                escape(&value)
            );
        }
    }
    let _ = write!(
        out,
        concat!(
            "</table>\n<p>As Java's benchmark producer prints it:</p>\n<pre>{java}</pre>\n",
            "<h2>Throughput</h2>\n{throughput}\n",
            "<h2>Latency by percentile</h2>\n{latency}\n",
            "<p>The distribution as HdrHistogram's <code>.hgrm</code> is written by ",
            "<code>rmq bench --hdr FILE</code>.</p>\n</body>\n</html>\n"
        ),
        java = escape(run.java_line),
        throughput = strip_prolog(&throughput),
        latency = strip_prolog(&latency),
    );
    out
}

/// A one-line title: mode, size, concurrency.
fn title(run: &Run<'_>) -> String {
    let s = run.summary;
    format!(
        "{} sends of {} bytes, concurrency {}",
        s.mode, s.size, s.concurrency
    )
}

/// `svg` without an XML declaration, to be nested in another document.
fn strip_prolog(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(at) => &svg[at..],
        None => svg,
    }
}

/// `s` with the characters HTML and XML give a meaning escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
