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
use burn_autogaze::interframe::{CompositorOptions, Dispatch};
use burn_autogaze::mask::MaskGeometry;
use burn_autogaze::mask_source::{MaskSourceKind, ModelOptions};
use burn_autogaze::patch_diff::PatchDiffOptions;
use burn_autogaze::perf::{PerfRecorder, PerfSummary, RunMeta};
use burn_autogaze::pipeline::{FramePipeline, PipelineOptions};
use burn_autogaze::source::{SourceKind, SourceOptions};
use burn_autogaze::timing::Stage;

use crate::process::first_line;

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct PerfArgs {
    /// Measured frames per case.
    #[arg(long, default_value_t = 120)]
    pub frames: usize,
    /// Warm-up frames per case (not measured).
    #[arg(long, default_value_t = 10)]
    pub warmup_frames: usize,
    /// Frame sizes (WIDTHxHEIGHT, 720p, 1080p), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "720p,1080p")]
    pub sizes: Vec<FrameSize>,
    /// Sources, comma separated (synthetic-pan, synthetic-local, static, images).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "static,synthetic-local,synthetic-pan"
    )]
    pub sources: Vec<SourceKind>,
    /// Directory of frames for the `images` source.
    #[arg(long)]
    pub source_path: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = "target/autogaze-perf/quick")]
    pub out: PathBuf,
    /// Only run cases whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// Mask geometry: native, deduplicated, effective.
    #[arg(long, default_value = "deduplicated")]
    pub mask_geometry: MaskGeometry,
    /// Compositor dispatch: adaptive, sparse, dense, full.
    #[arg(long, default_value = "adaptive")]
    pub dispatch: Dispatch,
    /// Patch-diff threshold (mean absolute RGB difference, 0..255).
    #[arg(long, default_value_t = PatchDiffOptions::default().threshold)]
    pub threshold: f32,
    /// Patch-diff grid (cells per side; one of the token grids 2, 4, 7, 14).
    #[arg(long, default_value_t = PatchDiffOptions::default().grid)]
    pub grid: u32,
    /// A keyframe every N frames (0: never).
    #[arg(long, default_value_t = 0)]
    pub keyframe_period: u64,
    /// Refresh fully when output-vs-input PSNR drops below this (dB).
    #[arg(long)]
    pub psnr_floor: Option<f64>,
    /// Measure output-vs-input PSNR every frame.
    #[arg(long)]
    pub psnr: bool,
    /// Also produce the model input every frame (the model path's cost).
    #[arg(long)]
    pub preprocess: bool,
    /// Mask source: patch-diff (weights-free) or autogaze (the model).
    #[arg(long, default_value = "patch-diff")]
    pub mask_source: MaskSourceKind,
    /// Model directory for `--mask-source autogaze` (config.json +
    /// model.safetensors); without it, seeded random weights at the released
    /// model's size.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Gazing ratio of the model source (fraction of 265 tokens, (0, 1]).
    #[arg(long, default_value_t = ModelOptions::default().gazing_ratio)]
    pub gazing_ratio: f32,
    /// Task-loss requirement of the model source (off by default: full budget).
    #[arg(long)]
    pub task_loss: Option<f32>,
    /// Frames of KV cache the model keeps (0: unbounded).
    #[arg(long, default_value_t = ModelOptions::default().horizon)]
    pub horizon: usize,
    /// AnyRes: cover the frame with up to N square model tiles (0: squash the
    /// whole frame to 224 x 224, as the reference).
    #[arg(long, default_value_t = 0)]
    pub anyres_tiles: usize,
    /// Run the model on a worker thread; every frame is composed at once
    /// with the newest mask (display throughput instead of model latency).
    #[arg(long)]
    pub decoupled: bool,
    /// Paced playback at this rate: frames a second, or `native` (an image
    /// sequence's meta.json). Frames that cannot be shown in time are dropped
    /// and counted; the summary gets the realtime factor.
    #[arg(long)]
    pub source_fps: Option<burn_autogaze::pacing::SourceRate>,
}

/// Facts about the run that go into every summary.
pub struct RunInfo {
    pub profile: String,
    pub adapter: String,
}

/// Short git revision, `-dirty` when tracked files changed.
pub fn revision() -> String {
    let rev =
        first_line("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty { format!("{rev}-dirty") } else { rev }
}

/// CPU model, cores and memory of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / (1024.0 * 1024.0))
        .unwrap_or(0.0);
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB")
}

/// The current UTC time, ISO 8601.
pub fn utc_now() -> String {
    first_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_else(|| "unknown".into())
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
    let options = PipelineOptions {
        source: SourceOptions {
            kind,
            size,
            path: args.source_path.clone(),
            ..SourceOptions::default()
        },
        ring_capacity: 2,
        preprocess: args.preprocess,
        mask_source: args.mask_source,
        model: ModelOptions {
            dir: args.model_dir.clone(),
            gazing_ratio: args.gazing_ratio,
            task_loss_requirement: args.task_loss,
            horizon: args.horizon,
            anyres_tiles: args.anyres_tiles,
            ..ModelOptions::default()
        },
        patch_diff: PatchDiffOptions {
            threshold: args.threshold,
            grid: args.grid,
        },
        geometry: args.mask_geometry,
        decoupled: args.decoupled,
        source_fps: args.source_fps,
        compositor: CompositorOptions {
            dispatch: args.dispatch,
            measure_psnr: args.psnr,
            keyframe_period: args.keyframe_period,
            psnr_floor: args.psnr_floor,
            ..CompositorOptions::default()
        },
    };
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
            stage_p50(s, Stage::Model),
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
    let date =
        first_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_else(|| "unknown".into());
    let common = (revision(), date, machine());
    let mut summaries = Vec::new();
    for &size in &args.sizes {
        for &kind in &args.sources {
            let mut case = format!("core-{}-{}-{}", size_name(size), kind, args.mask_source);
            if args.mask_geometry != MaskGeometry::default() {
                case += &format!("-{}", args.mask_geometry);
            }
            if args.anyres_tiles > 0 {
                case += &format!("-anyres{}", args.anyres_tiles);
            }
            if args.decoupled {
                case += "-decoupled";
            }
            if let Some(fps) = args.source_fps {
                case += &format!("-paced{fps}");
            }
            if args.dispatch != Dispatch::default() {
                case += &format!("-{}", args.dispatch);
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
