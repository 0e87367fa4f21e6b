//! The matrix's report: the drop ratios it checks and the markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use burn_autogaze::perf::PerfSummary;
use burn_autogaze::timing::Stage;
use serde::Serialize;

use crate::matrix::{Case, CaseRun};

/// Pan/static p95 limit and adaptive/best-forced limit.
pub const PAN_LIMIT: f64 = 1.25;
pub const FORCED_LIMIT: f64 = 1.05;

/// The interval (what a user sees) of a viewer summary, the stage sum
/// otherwise.
pub fn interval(s: &PerfSummary) -> burn_autogaze::timing::LatencySummary {
    s.display
        .as_ref()
        .map(|d| d.frame_interval_ms)
        .unwrap_or(s.frame_ms)
}

/// A disproportionate-drop ratio.
#[derive(Debug, Clone, Serialize)]
pub struct DropRatio {
    pub check: String,
    pub size: String,
    pub mask_source: String,
    pub ratio: f64,
    pub limit: f64,
    pub detail: String,
}

/// p95(pan)/p95(static) per size and mask source (cpu transfer), and
/// p95(pan adaptive)/min p95(pan forced).
pub fn drop_ratios(summaries: &[(Case, PerfSummary)]) -> Vec<DropRatio> {
    let find = |size: &str, source: &str, mask: &str, dispatch: &str| {
        summaries.iter().find(|(c, _)| {
            c.size == size
                && c.source == source
                && c.mask_source == mask
                && c.transfer == "cpu"
                && c.geometry == "deduplicated"
                && c.dispatch == dispatch
        })
    };
    let mut out = Vec::new();
    for size in ["720p", "1080p"] {
        for mask in ["patch-diff", "autogaze"] {
            let pan = find(size, "synthetic-pan", mask, "adaptive");
            if let (Some((_, pan)), Some((_, still))) =
                (pan, find(size, "static", mask, "adaptive"))
            {
                let (a, b) = (interval(pan).p95_ms, interval(still).p95_ms);
                out.push(DropRatio {
                    check: "pan/static p95".into(),
                    size: size.into(),
                    mask_source: mask.into(),
                    ratio: a / b,
                    limit: PAN_LIMIT,
                    detail: format!("{a:.2} / {b:.2} ms"),
                });
            }
            let forced: Vec<(&str, f64)> = ["sparse", "dense", "full"]
                .into_iter()
                .filter_map(|d| {
                    find(size, "synthetic-pan", mask, d).map(|(_, s)| (d, interval(s).p95_ms))
                })
                .collect();
            if let (Some((_, pan)), Some(best)) =
                (pan, forced.iter().min_by(|a, b| a.1.total_cmp(&b.1)))
            {
                let a = interval(pan).p95_ms;
                out.push(DropRatio {
                    check: "pan adaptive/best forced p95".into(),
                    size: size.into(),
                    mask_source: mask.into(),
                    ratio: a / best.1,
                    limit: FORCED_LIMIT,
                    detail: format!("{a:.2} / {:.2} ms ({})", best.1, best.0),
                });
            }
        }
    }
    out
}

/// The summary table and the drop ratios, as markdown.
pub fn summary_md(
    runs: &[CaseRun],
    summaries: &[(Case, PerfSummary)],
    ratios: &[DropRatio],
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| case | fps | frame p50 / p95 / p99 ms | p95 of each round | dominant stage | gaze ratio | PSNR dB | MB up / frame | transfer | dispatch |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for (c, s) in summaries {
        let rounds = runs
            .iter()
            .find(|r| r.case.name == c.name)
            .map(|r| {
                r.p95_rounds
                    .iter()
                    .map(|p| format!("{p:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let f = interval(s);
        let d = s.display.as_ref();
        let hist = |h: &BTreeMap<String, u64>| {
            h.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} / {:.1} / {:.1} | {rounds} | {} ({:.0}%) | {:.3} | {} | {:.2} | {} | {} |",
            c.name,
            s.fps,
            f.p50_ms,
            f.p95_ms,
            f.p99_ms,
            s.dominant_stage.map(Stage::as_str).unwrap_or("-"),
            100.0 * s.dominant_share,
            s.gaze_ratio_mean,
            s.psnr_db_mean
                .map(|p| format!("{p:.1}"))
                .unwrap_or_else(|| "-".into()),
            d.map(|d| d.bytes_uploaded_per_frame / 1e6).unwrap_or(0.0),
            d.map(|d| hist(&d.transfer_histogram)).unwrap_or_default(),
            hist(&s.dispatch_histogram),
        );
    }
    for r in runs.iter().filter(|r| !r.ok) {
        let _ = writeln!(
            md,
            "| {} | failed | {} | | | | | | | |",
            r.case.name,
            r.error.as_deref().unwrap_or("").replace('|', "/")
        );
    }
    let _ = writeln!(md, "\n| check | size | mask source | ratio | limit | p95 |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for r in ratios {
        let verdict = if r.ratio <= r.limit { "ok" } else { "OVER" };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.3} ({verdict}) | {:.2} | {} |",
            r.check, r.size, r.mask_source, r.ratio, r.limit, r.detail
        );
    }
    md
}
