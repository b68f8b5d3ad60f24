//! `rmq bench --hdr FILE` and `--report FILE.html|FILE.svg`: what the bench writes besides its
//! summary, and the writing.

use std::path::{Path, PathBuf};

use clap::Args;

use super::report::{self, Run};

/// The output files of `rmq bench`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ReportArgs {
    /// Write the latency distribution to FILE in HdrHistogram's percentile format (`.hgrm`, in
    /// milliseconds), as the HdrHistogram plotter reads it.
    #[arg(long, value_name = "FILE")]
    pub(crate) hdr: Option<PathBuf>,

    /// Write a self-contained report to FILE: throughput over time and the latency percentile
    /// curve; `.html` (the charts, the parameters and the summary) or `.svg` (the charts alone).
    #[arg(long, value_name = "FILE", value_parser = parse_report_path)]
    pub(crate) report: Option<PathBuf>,
}

/// What a report file holds, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportKind {
    Html,
    Svg,
}

impl ReportKind {
    /// The kind of `path`, by its extension (`.html`/`.htm` or `.svg`, any case).
    pub(crate) fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "html" | "htm" => Some(Self::Html),
            "svg" => Some(Self::Svg),
            _ => None,
        }
    }
}

/// Accepts a path whose extension names a report kind.
fn parse_report_path(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    match ReportKind::of(&path) {
        Some(_) => Ok(path),
        None => Err(format!("`{s}` must end in .html or .svg")),
    }
}

impl ReportArgs {
    /// Writes the files asked for about `run`; one line on stderr per file written or not
    /// written. Returns whether every file was written.
    pub(crate) fn write(&self, run: &Run<'_>) -> bool {
        let mut ok = true;
        if let Some(path) = &self.hdr {
            let text = super::hgrm::percentile_distribution(run.latency);
            ok &= announce(path, "latency distribution", std::fs::write(path, text));
        }
        if let Some(path) = &self.report {
            let text = match ReportKind::of(path) {
                Some(ReportKind::Svg) => report::svg(run),
                // Checked when parsed: html otherwise.
                _ => report::html(run),
            };
            ok &= announce(path, "report", std::fs::write(path, text));
        }
        ok
    }
}

/// Says on stderr what became of writing `what` to `path`.
fn announce(path: &Path, what: &str, written: std::io::Result<()>) -> bool {
    match written {
        Ok(()) => {
            eprintln!("rmq bench: {what} written to {}", path.display());
            true
        }
        Err(e) => {
            eprintln!(
                "rmq bench: cannot write the {what} to {}: {e}",
                path.display()
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_kind_comes_from_the_extension() {
        for (path, want) in [
            ("r.html", Some(ReportKind::Html)),
            ("dir/r.HTM", Some(ReportKind::Html)),
            ("r.svg", Some(ReportKind::Svg)),
            ("r.Svg", Some(ReportKind::Svg)),
            ("r.png", None),
            ("r", None),
            ("html", None),
        ] {
            assert_eq!(ReportKind::of(Path::new(path)), want, "{path}");
            assert_eq!(parse_report_path(path).is_ok(), want.is_some(), "{path}");
        }
    }
}
