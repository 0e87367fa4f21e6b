//! One case of the Bevy perf matrix: building the viewer, and running it
//! headless on a case with a time limit, its summary read back and checked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use burn_autogaze::perf::PerfSummary;

use crate::matrix_data::{Case, CaseRun};
use crate::process::{Outcome, run_captured};

/// Builds the viewer (once) and returns its path.
pub fn build_viewer(release: bool) -> Result<PathBuf, String> {
    let mut cmd = crate::cargo();
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "bevy_burn_autogaze",
        "--bin",
        "bevy_burn_autogaze",
    ]);
    if release {
        cmd.arg("--release");
    }
    eprintln!(
        "bevy-perf-matrix: building the viewer ({}; a cold build takes several minutes)",
        if release { "release" } else { "dev" }
    );
    let limit = Duration::from_secs(60 * 60);
    crate::process::run_checked(&mut cmd, "building the viewer (cargo build)", limit)?;
    let bin = crate::target_dir()
        .join(if release { "release" } else { "debug" })
        .join("bevy_burn_autogaze");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("the viewer is not at {}", bin.display()))
    }
}

pub fn run_one(
    bin: &Path,
    case: &Case,
    common: &[String],
    dir: &Path,
    round: usize,
    limit: Duration,
) -> (CaseRun, Option<PerfSummary>) {
    let json = dir.join(format!("{}.r{round}.json", case.name));
    let log = dir.join(format!("{}.r{round}.log", case.name));
    let _ = std::fs::remove_file(&json);
    let mut cmd = Command::new(bin);
    cmd.arg("--headless")
        .args(&case.args)
        .args(common)
        .args(["--case", &case.name, "--summary"])
        .arg(&json)
        .arg("--timeout-s")
        .arg(limit.as_secs().to_string());
    if std::env::var_os("WGPU_BACKEND").is_none() {
        cmd.env("WGPU_BACKEND", "vulkan");
    }
    let log_file = std::fs::File::create(&log).ok();
    if let Some(f) = log_file.as_ref().and_then(|f| f.try_clone().ok()) {
        cmd.stderr(f);
    }
    let t = Instant::now();
    // A little over the viewer's own limit: it reports its timeout itself.
    let outcome = run_captured(&mut cmd, limit + Duration::from_secs(30));
    let wall_s = t.elapsed().as_secs_f64();
    let mut error = match outcome {
        Ok(Outcome::Exited { status, stdout }) => {
            if let Some(mut f) = log_file {
                use std::io::Write;
                let _ = f.write_all(stdout.as_bytes());
            }
            (!status.success()).then(|| format!("exited with {status}"))
        }
        Ok(Outcome::TimedOut) => Some(format!("timed out after {} s", limit.as_secs())),
        Err(e) => Some(format!("cannot start the viewer: {e}")),
    };
    let summary = if error.is_none() {
        match std::fs::read_to_string(&json)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<PerfSummary>(&t).map_err(|e| e.to_string()))
        {
            Ok(s) => match s.validate() {
                Ok(()) => Some(s),
                Err(p) => {
                    error = Some(format!("invalid summary: {}", p.join("; ")));
                    None
                }
            },
            Err(e) => {
                error = Some(format!("no summary: {e}"));
                None
            }
        }
    } else {
        None
    };
    if let Some(e) = &error {
        // The log's last lines say why.
        let tail: Vec<String> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
            .map(str::to_string)
            .collect();
        let tail = tail[tail.len().saturating_sub(3)..].join(" | ");
        error = Some(format!("{e}: {tail}"));
    }
    (
        CaseRun {
            case: case.clone(),
            ok: error.is_none(),
            error,
            wall_s,
            log: log.display().to_string(),
            p95_rounds: Vec::new(),
        },
        summary,
    )
}

/// The quick lane's picture: one more headless run (1280x720, synthetic-pan,
/// the AutoGaze model with `model` flags, the overlay on) that writes a PNG
/// of the viewer to `png`.
pub fn screenshot(
    bin: &Path,
    dir: &Path,
    png: &Path,
    model: &[String],
    limit: Duration,
) -> Result<(), String> {
    let log = dir.join("viewer-screenshot.log");
    let _ = std::fs::remove_file(png);
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--source",
        "synthetic-pan",
        "--size",
        "1280x720",
    ])
    .args(["--mask-source", "autogaze"])
    .args(model)
    .args([
        "--target-size",
        "1280x720",
        "--frames",
        "30",
        "--warmup-frames",
        "5",
    ])
    .args(["--case", "viewer-screenshot", "--timeout-s"])
    .arg(limit.as_secs().to_string())
    .arg("--screenshot")
    .arg(png);
    if std::env::var_os("WGPU_BACKEND").is_none() {
        cmd.env("WGPU_BACKEND", "vulkan");
    }
    if let Ok(f) = std::fs::File::create(&log) {
        cmd.stderr(f);
    }
    match run_captured(&mut cmd, limit + Duration::from_secs(30)) {
        Ok(Outcome::Exited { status, .. }) if status.success() && png.is_file() => Ok(()),
        Ok(Outcome::Exited { status, .. }) => Err(format!(
            "the viewer's screenshot run exited with {status} (log: {})",
            log.display()
        )),
        Ok(Outcome::TimedOut) => Err(format!(
            "the viewer's screenshot run timed out after {} s",
            limit.as_secs()
        )),
        Err(e) => Err(format!("cannot start the viewer: {e}")),
    }
}

/// Whether `--rounds` is on the command line (the quick lane's one round
/// is only a default).
pub fn rounds_given() -> bool {
    std::env::args().any(|a| a == "--rounds" || a.starts_with("--rounds="))
}

/// The model flags of the autogaze cases (warming up until the first
/// mask).
pub fn model_flags(
    dir: Option<&Path>,
    backend: burn_autogaze::mask_source::ModelBackend,
    preprocess: burn_autogaze::mask_source::InputPlace,
) -> Vec<String> {
    let mut model: Vec<String> = match dir {
        Some(dir) => vec!["--model-dir".into(), dir.display().to_string()],
        None => vec!["--random-weights".into()],
    };
    model.extend(["--model-backend".into(), backend.to_string()]);
    model.extend(["--model-preprocess".into(), preprocess.to_string()]);
    // The window opens once the model's first mask is applied: its first
    // inference (kernel compilation on wgpu) is not what a lane measures.
    model.push("--warmup-until-mask".into());
    model
}
