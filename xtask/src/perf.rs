//! `cargo xtask perf`: the headless end-to-end harness on its embedded
//! default (synthetic sources at 720p and 1080p, no weights), writing one
//! perf summary per case plus `summary.json` and `summary.md`.
//!
//! Runs the core pipeline (source -> ring -> preprocessing) until the Bevy
//! viewer's headless mode exists; it grows into the bevy-perf-matrix quick
//! lane.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn_autogaze::FrameSize;
use burn_autogaze::cli::PipelineArgs;
use burn_autogaze::interframe::Dispatch;
use burn_autogaze::mask::MaskGeometry;
use burn_autogaze::perf::{PerfRecorder, PerfSummary, RunMeta, machine, revision, utc_now};
use burn_autogaze::pipeline::FramePipeline;
use burn_autogaze::source::{SourceKind, SourceOptions};
use burn_autogaze::timing::Stage;

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct PerfArgs {
    /// Measured frames per case.
    #[arg(long, default_value_t = 120, value_parser = burn_autogaze::cli::frame_count(1))]
    pub frames: usize,
    /// Warm-up frames per case (not measured).
    #[arg(long, default_value_t = 10, value_parser = burn_autogaze::cli::frame_count(0))]
    pub warmup_frames: usize,
    /// Frame sizes (WIDTHxHEIGHT, 720p, 1080p), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "720p,1080p")]
    pub sizes: Vec<FrameSize>,
    /// Sources, comma separated (synthetic-pan, synthetic-local, static,
    /// images, video).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "static,synthetic-local,synthetic-pan"
    )]
    pub sources: Vec<SourceKind>,
    /// Directory of frames for the `images` source.
    #[arg(long)]
    pub source_path: Option<PathBuf>,
    #[command(flatten)]
    pub video: burn_autogaze::cli::VideoArgs,
    /// Output directory.
    #[arg(long, default_value = "target/autogaze-perf/quick")]
    pub out: PathBuf,
    /// Only run cases whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// Measure output-vs-input PSNR every frame.
    #[arg(long)]
    pub psnr: bool,
    /// Run the mask source on a worker thread; every frame is composed at
    /// once with the newest mask (display throughput instead of model
    /// latency).
    #[arg(long)]
    pub decoupled: bool,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Facts about the run that go into every summary.
pub struct RunInfo {
    pub profile: String,
    pub adapter: String,
}

fn size_name(size: FrameSize) -> String {
    match (size.width, size.height) {
        (1280, 720) => "720p".into(),
        (1920, 1080) => "1080p".into(),
        _ => size.to_string(),
    }
}

fn run_case(
    args: &PerfArgs,
    info: &RunInfo,
    size: FrameSize,
    kind: SourceKind,
    case: String,
    common: &(String, String, String),
) -> Result<PerfSummary, String> {
    let source = args.video.apply(SourceOptions {
        kind,
        size,
        path: args.source_path.clone(),
        ..SourceOptions::default()
    });
    let options = args.pipeline.options(source, args.decoupled, args.psnr);
    let mut pipeline = FramePipeline::new(&options).map_err(|e| format!("{case}: {e}"))?;
    let mut recorder = PerfRecorder::new(args.frames, &options);
    for i in 0..args.warmup_frames + args.frames {
        if i == args.warmup_frames {
            recorder.start();
        }
        let report = pipeline
            .step()
            .map_err(|e| format!("{case}: frame {i}: {e}"))?;
        if i >= args.warmup_frames {
            recorder.record(&report, pipeline.current_frame());
            recorder.sample_memory(&pipeline, || 0);
        }
    }
    let meta = RunMeta {
        case,
        warmup_frames: args.warmup_frames,
        profile: info.profile.clone(),
        revision: common.0.clone(),
        date: common.1.clone(),
        machine: common.2.clone(),
        adapter: info.adapter.clone(),
    };
    recorder.summary(&pipeline, &options, &meta)
}

fn stage_p50(s: &PerfSummary, stage: Stage) -> f64 {
    s.stages.get(&stage).map(|l| l.p50_ms).unwrap_or(0.0)
}

/// The markdown table of a run.
pub fn summary_table(summaries: &[PerfSummary]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| case | fps | frame p50 / p95 / p99 ms | dominant stage | memcpy p50 ms | source | mask src | plan | interframe (x memcpy) | gaze ratio | dispatch | MB updated / frame |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in summaries {
        let memcpy = s.frame_memcpy_ms.p50_ms;
        let inter = stage_p50(s, Stage::Interframe);
        let ratio = if memcpy > 0.0 {
            inter / memcpy
        } else {
            f64::NAN
        };
        let dispatch: Vec<String> = s
            .dispatch_histogram
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.3} / {:.3} / {:.3} | {} ({:.0}%) | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} ({:.2}) | {:.3} | {} | {:.2} |",
            s.case,
            s.fps,
            s.frame_ms.p50_ms,
            s.frame_ms.p95_ms,
            s.frame_ms.p99_ms,
            s.dominant_stage.map(|d| d.as_str()).unwrap_or("-"),
            s.dominant_share * 100.0,
            memcpy,
            stage_p50(s, Stage::Source),
            stage_p50(s, Stage::MaskSource),
            stage_p50(s, Stage::MaskPlan),
            inter,
            ratio,
            s.gaze_ratio_mean,
            dispatch.join(", "),
            s.copied_bytes_per_frame / 1e6,
        );
    }
    md
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Runs every case in this process and writes the outputs.
pub fn run(args: &PerfArgs, info: &RunInfo) -> Result<Vec<PerfSummary>, String> {
    if args.frames == 0 {
        return Err("--frames must be at least 1".into());
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let common = (revision(), utc_now(), machine());
    let mut summaries = Vec::new();
    for &size in &args.sizes {
        for &kind in &args.sources {
            let mut case = format!(
                "core-{}-{}-{}",
                size_name(size),
                kind,
                args.pipeline.mask_source
            );
            if args.pipeline.mask_geometry != MaskGeometry::default() {
                case += &format!("-{}", args.pipeline.mask_geometry);
            }
            if args.pipeline.anyres_tiles > 0 {
                case += &format!("-anyres{}", args.pipeline.anyres_tiles);
            }
            if args.decoupled {
                case += "-decoupled";
            }
            if let Some(fps) = args.pipeline.source_fps {
                case += &format!("-paced{fps}");
            }
            if args.pipeline.dispatch != Dispatch::default() {
                case += &format!("-{}", args.pipeline.dispatch);
            }
            if args
                .filter
                .as_ref()
                .is_some_and(|f| !case.contains(f.as_str()))
            {
                continue;
            }
            eprintln!(
                "perf: {case} ({} + {} warm-up frames)",
                args.frames, args.warmup_frames
            );
            let summary = run_case(args, info, size, kind, case, &common)?;
            let json = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
            write(&args.out.join(format!("{}.json", summary.case)), &json)?;
            summaries.push(summary);
        }
    }
    if summaries.is_empty() {
        return Err("no case matched --filter".into());
    }
    let json = serde_json::to_string_pretty(&summaries).map_err(|e| e.to_string())?;
    write(&args.out.join("summary.json"), &json)?;
    let header = format!(
        "# burn_autogaze perf ({} profile)\n\nrevision {}, {}, {}, adapter {}; {} frames per case after {} warm-up.\n\n",
        info.profile, common.0, common.1, common.2, info.adapter, args.frames, args.warmup_frames
    );
    write(
        &args.out.join("summary.md"),
        &(header.clone() + &summary_table(&summaries)),
    )?;
    println!("{header}{}", summary_table(&summaries));
    println!("wrote {}", args.out.join("summary.md").display());
    Ok(summaries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: PerfArgs,
    }

    #[test]
    fn tiny_run_writes_valid_summaries() {
        let out = std::env::temp_dir().join(format!("autogaze_perf_{}", std::process::id()));
        let args = Wrap::parse_from(
            [
                "x",
                "--frames",
                "3",
                "--warmup-frames",
                "1",
                "--sizes",
                "64x36,33x17",
                "--out",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([out.display().to_string()]),
        )
        .args;
        let info = RunInfo {
            profile: "test".into(),
            adapter: "none".into(),
        };
        let summaries = run(&args, &info).unwrap();
        assert_eq!(summaries.len(), 6);
        let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
        let back: Vec<PerfSummary> = serde_json::from_str(&text).unwrap();
        assert_eq!(back.len(), 6);
        for s in &back {
            s.validate().unwrap();
            assert!(s.stages.contains_key(&Stage::Interframe));
        }
        let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(md.contains("core-64x36-synthetic-pan-patch-diff"));
        let columns: Vec<usize> = md
            .lines()
            .filter(|l| l.starts_with('|'))
            .map(|l| l.matches('|').count())
            .collect();
        assert!(
            columns.windows(2).all(|w| w[0] == w[1]),
            "ragged table: {columns:?}"
        );
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn validation_catches_inconsistent_summaries() {
        let out = std::env::temp_dir().join(format!("autogaze_perf_bad_{}", std::process::id()));
        let args = Wrap::parse_from([
            "x",
            "--frames",
            "2",
            "--warmup-frames",
            "0",
            "--sizes",
            "16x16",
            "--sources",
            "static",
            "--out",
            out.to_str().unwrap(),
        ])
        .args;
        let info = RunInfo {
            profile: "test".into(),
            adapter: "none".into(),
        };
        let mut s = run(&args, &info).unwrap().remove(0);
        s.frame_ms.p95_ms = s.frame_ms.max_ms + 1.0;
        s.fps = f64::NAN;
        s.bytes_in_per_frame = 1e9;
        let problems = s.validate().unwrap_err().join("\n");
        assert!(problems.contains("percentiles out of order"), "{problems}");
        assert!(problems.contains("fps"), "{problems}");
        assert!(problems.contains("exceeds one frame"), "{problems}");
        let _ = std::fs::remove_dir_all(&out);
    }
}
