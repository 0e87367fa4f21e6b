//! The matrix's report: the drop ratios it checks and the markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use burn_autogaze::perf::PerfSummary;
use burn_autogaze::timing::Stage;
use serde::Serialize;

use crate::gate::{CaseDelta, cell};
use crate::matrix_data::{Case, CaseRun, interval};
use crate::stats::median;

/// Pan/static p95 limit and adaptive/best-forced limit.
pub const PAN_LIMIT: f64 = 1.25;
pub const FORCED_LIMIT: f64 = 1.05;

/// A disproportionate-drop ratio, paired per round: round r of one case
/// against round r of the other (they ran minutes apart at most, under the
/// same load), so the machine's drift over the run cancels.
#[derive(Debug, Clone, Serialize)]
pub struct DropRatio {
    pub check: String,
    pub size: String,
    pub mask_source: String,
    /// Median of the per-round ratios.
    pub ratio: f64,
    /// The ratio of each round both cases completed.
    pub rounds: Vec<f64>,
    pub limit: f64,
    pub detail: String,
}

/// What a ratio says against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatioVerdict {
    /// The median ratio is within the limit.
    Ok,
    /// The median is over, but some round is within: the excess is inside
    /// the run-to-run noise (reported, not failed by `--strict`).
    Noisy,
    /// Every round is over the limit: a real, repeatable excess.
    Over,
}

impl DropRatio {
    pub fn verdict(&self) -> RatioVerdict {
        let min = self.rounds.iter().copied().fold(f64::MAX, f64::min);
        if self.ratio <= self.limit {
            RatioVerdict::Ok
        } else if min <= self.limit {
            RatioVerdict::Noisy
        } else {
            RatioVerdict::Over
        }
    }
}

/// One case's frame-interval p95 in each round (None: that round failed).
pub type RoundP95 = (Case, Vec<Option<f64>>);

fn paired(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter_map(|(a, b)| Some(((*a)?, (*b)?)))
        .filter(|(_, b)| *b > 0.0)
        .map(|(a, b)| a / b)
        .collect()
}

fn ratio(
    check: &str,
    size: &str,
    mask: &str,
    limit: f64,
    a: &[Option<f64>],
    b: &[Option<f64>],
    what: &str,
) -> Option<DropRatio> {
    let rounds = paired(a, b);
    if rounds.is_empty() {
        return None;
    }
    let med = |v: &[Option<f64>]| median(&v.iter().flatten().copied().collect::<Vec<_>>());
    Some(DropRatio {
        check: check.into(),
        size: size.into(),
        mask_source: mask.into(),
        ratio: median(&rounds),
        rounds,
        limit,
        detail: format!("{:.2} / {:.2} ms{what}", med(a), med(b)),
    })
}

/// p95(pan)/p95(static) per size and mask source (cpu transfer), and
/// p95(pan adaptive)/p95(best forced path), each paired per round. The best
/// forced path is the one with the lowest median p95 over the rounds (a
/// per-round minimum over three noisy paths would be biased low).
pub fn drop_ratios(cases: &[RoundP95]) -> Vec<DropRatio> {
    let find = |size: &str, source: &str, mask: &str, dispatch: &str| {
        cases
            .iter()
            .find(|(c, _)| {
                c.size == size
                    && c.source == source
                    && c.mask_source == mask
                    && c.transfer == "cpu"
                    && c.geometry == "deduplicated"
                    && c.dispatch == dispatch
            })
            .map(|(_, r)| r.as_slice())
    };
    let mut out = Vec::new();
    for size in ["720p", "1080p"] {
        for mask in ["patch-diff", "autogaze"] {
            let pan = find(size, "synthetic-pan", mask, "adaptive");
            if let (Some(pan), Some(still)) = (pan, find(size, "static", mask, "adaptive")) {
                out.extend(ratio(
                    "pan/static p95",
                    size,
                    mask,
                    PAN_LIMIT,
                    pan,
                    still,
                    "",
                ));
            }
            let best = ["sparse", "dense", "full"]
                .into_iter()
                .filter_map(|d| {
                    let r = find(size, "synthetic-pan", mask, d)?;
                    let m = median(&r.iter().flatten().copied().collect::<Vec<_>>());
                    (m > 0.0).then_some((d, r, m))
                })
                .min_by(|a, b| a.2.total_cmp(&b.2));
            if let (Some(pan), Some((name, forced, _))) = (pan, best) {
                out.extend(ratio(
                    "pan adaptive/best forced p95",
                    size,
                    mask,
                    FORCED_LIMIT,
                    pan,
                    forced,
                    &format!(" ({name})"),
                ));
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
    deltas: &[CaseDelta],
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| case | fps | frame p50 / p95 / p99 ms | p95 of each round | dominant stage | gaze ratio | PSNR dB | MB up / frame | transfer | dispatch | vs baseline: p50 / p95 / dominant |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
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
        let delta = deltas
            .iter()
            .find(|d| d.case == c.name)
            .map(|d| {
                let dom = d
                    .dominant
                    .map(|(stage, c)| format!("{} {}", stage.as_str(), cell(&c)))
                    .unwrap_or_else(|| "-".into());
                format!("{} / {} / {dom}", cell(&d.p50), cell(&d.p95))
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} / {:.1} / {:.1} | {rounds} | {} ({:.0}%) | {:.3} | {} | {:.2} | {} | {} | {delta} |",
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
            "| {} | failed | {} | | | | | | | | |",
            r.case.name,
            r.error.as_deref().unwrap_or("").replace('|', "/")
        );
    }
    model_md(&mut md, summaries);
    gpu_md(&mut md, summaries);
    let _ = writeln!(
        md,
        "\n| check | size | mask source | ratio (median of rounds) | each round | limit | median p95 |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for r in ratios {
        let verdict = match r.verdict() {
            RatioVerdict::Ok => "ok",
            RatioVerdict::Noisy => "over in some rounds: noise",
            RatioVerdict::Over => "OVER in every round",
        };
        let each = r
            .rounds
            .iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.3} ({verdict}) | {each} | {:.2} | {} |",
            r.check, r.size, r.mask_source, r.ratio, r.limit, r.detail
        );
    }
    md
}

/// The model lanes' own table: the engine, its mask updates and latency,
/// and what it launched and read back per model frame.
fn model_md(md: &mut String, summaries: &[(Case, PerfSummary)]) {
    let lanes: Vec<_> = summaries
        .iter()
        .filter(|(_, s)| s.mask_source == "autogaze")
        .collect();
    if lanes.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n| model lane | engine | mask updates | mask latency p50 / p95 ms | decoder calls / frame | dispatches / frame | dispatches / call | readbacks / frame | model KiB up / back a model frame | inputs lent / model frames | host up / frame, in frames | KiB back / frame |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    let num = |x: Option<f64>| x.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
    for (c, s) in lanes {
        let latency = s
            .mask_latency_ms
            .map(|l| format!("{:.0} / {:.0}", l.p50_ms, l.p95_ms))
            .unwrap_or_else(|| "-".into());
        let m = s.model.as_ref();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {latency} | {} | {} | {} | {} | {} / {} | {} | {} | {} |",
            c.name,
            m.map(|m| m.engine.as_str())
                .unwrap_or("no model frame in the window"),
            s.mask_updates,
            num(m.map(|m| m.decoder_calls_per_frame)),
            num(m.and_then(|m| m.dispatches_per_frame)),
            num(m.and_then(|m| m.dispatches_per_call)),
            num(m.map(|m| m.readbacks_per_frame)),
            num(m.and_then(|m| m.upload_bytes_per_frame).map(|b| b / 1024.0)),
            num(m
                .and_then(|m| m.readback_bytes_per_frame)
                .map(|b| b / 1024.0)),
            m.map(|m| format!("{} / {}", m.lent_frames, m.frames))
                .unwrap_or_else(|| "-".into()),
            s.transfers
                .as_ref()
                .map(|t| format!("{:.3}", t.upload_frames))
                .unwrap_or_else(|| "-".into()),
            num(s
                .transfers
                .as_ref()
                .map(|t| t.readback_bytes_per_frame / 1024.0)),
        );
    }
}

/// The GPU stages' device times per lane (timestamp queries) and the
/// dominant one, or why they are untimed.
fn gpu_md(md: &mut String, summaries: &[(Case, PerfSummary)]) {
    let displays = summaries
        .iter()
        .filter_map(|(c, s)| Some((c, s.display.as_ref()?)));
    let mut rows = Vec::new();
    let mut untimed = None;
    for (c, d) in displays {
        if d.gpu_stages_ms.is_empty() {
            if d.gpu_timing.as_deref() != Some("timestamp queries") {
                untimed = untimed.or(d.gpu_timing.clone());
            }
            continue;
        }
        let stages = d
            .gpu_stages_ms
            .iter()
            .map(|(k, l)| format!("{k} {:.3} / {:.3}", l.p50_ms, l.p95_ms))
            .collect::<Vec<_>>()
            .join(", ");
        let dominant = d
            .gpu_stages_ms
            .iter()
            .max_by(|a, b| (a.1.mean_ms).total_cmp(&b.1.mean_ms))
            .map(|(k, _)| k.as_str())
            .unwrap_or("-");
        rows.push(format!("| {} | {stages} | {dominant} |", c.name));
    }
    if !rows.is_empty() {
        let _ = writeln!(
            md,
            "\n| lane | GPU stages: device ms p50 / p95 | dominant GPU stage |\n|---|---|---|"
        );
        for r in rows {
            let _ = writeln!(md, "{r}");
        }
    } else if let Some(why) = untimed {
        let _ = writeln!(md, "\nGPU stages untimed: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(source: &str, dispatch: &str) -> Case {
        Case {
            name: format!("{source}-{dispatch}"),
            size: "720p".into(),
            source: source.into(),
            mask_source: "patch-diff".into(),
            transfer: "cpu".into(),
            geometry: "deduplicated".into(),
            dispatch: dispatch.into(),
            args: Vec::new(),
            group: 0,
        }
    }

    #[test]
    fn ratios_pair_rounds_and_only_a_repeatable_excess_is_over() {
        let cases: Vec<RoundP95> = vec![
            // Round 2 ran while the machine was busy: both cases slowed.
            (
                case("synthetic-pan", "adaptive"),
                vec![Some(60.0), Some(90.0), Some(61.0)],
            ),
            (
                case("static", "adaptive"),
                vec![Some(50.0), Some(75.0), Some(47.0)],
            ),
            // Forced paths: `full` has the lowest median; `sparse` the
            // lowest single round (a per-round minimum would pick it).
            (
                case("synthetic-pan", "sparse"),
                vec![Some(40.0), Some(95.0), Some(70.0)],
            ),
            (
                case("synthetic-pan", "full"),
                vec![Some(58.0), None, Some(60.0)],
            ),
        ];
        let r = drop_ratios(&cases);
        assert_eq!(r.len(), 2, "{r:?}");
        // pan/static: 1.2, 1.2, 1.298 -> median 1.2 (ok at 1.25).
        assert_eq!(r[0].rounds.len(), 3);
        assert!((r[0].ratio - 1.2).abs() < 1e-9, "{:?}", r[0]);
        assert_eq!(r[0].verdict(), RatioVerdict::Ok);
        // adaptive/full, rounds 1 and 3 only (round 2 of full failed):
        // 60/58 = 1.034, 61/60 = 1.017.
        assert!(r[1].detail.contains("(full)"), "{:?}", r[1]);
        assert_eq!(r[1].rounds.len(), 2);
        assert_eq!(r[1].verdict(), RatioVerdict::Ok);

        let over = DropRatio {
            rounds: vec![1.3, 1.4, 1.2],
            ratio: 1.3,
            ..r[0].clone()
        };
        assert_eq!(over.verdict(), RatioVerdict::Noisy);
        let over = DropRatio {
            rounds: vec![1.3, 1.4, 1.26],
            ..over
        };
        assert_eq!(over.verdict(), RatioVerdict::Over);
        let md = summary_md(&[], &[], std::slice::from_ref(&over), &[]);
        assert!(md.contains("OVER in every round") && md.contains("1.300, 1.400, 1.260"));
    }

    /// A summary of two patch-diff frames with a display section whose GPU
    /// stages are `stages` (stage, p50 = mean ms) or untimed for `timing`.
    fn with_gpu(stages: &[(&str, f64)], timing: &str) -> PerfSummary {
        use burn_autogaze::perf::{PerfRecorder, RunMeta};
        use burn_autogaze::pipeline::{FramePipeline, PipelineOptions};
        let mut options = PipelineOptions::default();
        options.source.size = burn_autogaze::FrameSize::new(32, 16).unwrap();
        let mut pipeline = FramePipeline::new(&options).unwrap();
        let mut recorder = PerfRecorder::new(2, &options);
        for _ in 0..2 {
            let r = pipeline.step().unwrap();
            recorder.record(&r, pipeline.current_frame());
        }
        let mut s = recorder
            .summary(&pipeline, &options, &RunMeta::default())
            .unwrap();
        let lat = |ms: f64| {
            serde_json::json!({"count": 2, "mean_ms": ms, "p50_ms": ms, "p95_ms": ms,
                "p99_ms": ms, "max_ms": ms})
        };
        let stages: serde_json::Map<String, serde_json::Value> = stages
            .iter()
            .map(|(k, ms)| (k.to_string(), lat(*ms)))
            .collect();
        s.display = Some(
            serde_json::from_value(serde_json::json!({
                "transfer": "gpu", "frame_interval_ms": lat(30.0),
                "bytes_uploaded_per_frame": 0.0, "upload_calls_per_frame": 0.0,
                "full_uploads": 0, "readbacks": 0, "residency": [],
                "adapter_backend": "vulkan", "adapter_type": "cpu", "config": null,
                "gpu_timing": timing, "gpu_stages_ms": stages,
            }))
            .unwrap(),
        );
        s
    }

    #[test]
    fn the_gpu_table_names_each_lanes_dominant_gpu_stage() {
        let timed = with_gpu(
            &[("device_compose", 0.9), ("mask_panel", 8.05)],
            "timestamp queries",
        );
        let lanes = [(case("synthetic-pan", "adaptive"), timed)];
        let md = summary_md(&[], &lanes, &[], &[]);
        assert!(
            md.contains("| synthetic-pan-adaptive | device_compose 0.900 / 0.900, mask_panel 8.050 / 8.050 | mask_panel |"),
            "{md}"
        );
        let untimed = with_gpu(&[], "unavailable: the device lacks TIMESTAMP_QUERY");
        let lanes = [(case("static", "adaptive"), untimed)];
        let md = summary_md(&[], &lanes, &[], &[]);
        assert!(
            md.contains("GPU stages untimed: unavailable: the device lacks"),
            "{md}"
        );
        assert!(!md.contains("dominant GPU stage"), "{md}");
    }
}
