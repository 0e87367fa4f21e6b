//! `autogaze`: AutoGaze on real video, results written for research use.
//!
//! `autogaze gaze INPUT --out DIR` runs the model over a video file, a
//! directory of frames or one image and writes `gaze.jsonl`,
//! `interframe.mp4`, `summary.json` (and mask PNGs with `--masks`); see
//! [`burn_autogaze::export`]. `autogaze reference` is the parity tool
//! (`cargo xtask gaze` wraps the same call); see
//! [`burn_autogaze::export::reference`].

use std::io::IsTerminal;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use burn_autogaze::cli::{CameraArgs, ranged};
use burn_autogaze::export::reference::{ReferenceArgs, reference_command};
use burn_autogaze::export::{GazeJob, Progress, format_progress, run_gaze};
use burn_autogaze::mask_source::{ModelBackend, ModelOptions};
use clap::Parser;

/// AutoGaze (NVIDIA's multi-scale patch selector) on real video.
#[derive(Debug, Parser)]
#[command(name = "autogaze", version)]
struct Cli {
    /// List the cameras and their formats (feature `camera`), then exit.
    #[arg(long)]
    list_cameras: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the model over a video file, a directory of frames or one image,
    /// writing gaze.jsonl, interframe.mp4 and summary.json into --out.
    Gaze(GazeArgs),
    /// The parity tool: the model on one preprocessed case (a tensor file's
    /// `video` or a directory of frames), whole clip, streamed or tiled,
    /// printed as the reference's outputs in JSON (`gazing_pos`,
    /// `if_padded_gazing`, `num_gazing_each_frame`).
    Reference(ReferenceArgs),
}

#[derive(Debug, clap::Args)]
struct GazeArgs {
    /// A video file (anything FFmpeg decodes), a directory of PNG/JPEG
    /// frames (name order), one image, or `camera[:INDEX]` (feature
    /// `camera`; runs until --frames or Ctrl-C).
    input: PathBuf,
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
    /// Model directory (config.json + model.safetensors).
    #[arg(long, conflicts_with = "random_weights")]
    model_dir: Option<PathBuf>,
    /// Seeded random weights at the released model's size (no download;
    /// the outputs then show the pipeline, not a trained model's gaze).
    #[arg(long)]
    random_weights: bool,
    /// Fraction of the 265 tokens a frame may use, in (0, 1].
    #[arg(long, default_value_t = ModelOptions::default().gazing_ratio)]
    gazing_ratio: f32,
    /// Stop a frame once a token's predicted task loss is at or below this
    /// (may be negative; off: the full budget).
    #[arg(long, allow_negative_numbers = true)]
    task_loss_requirement: Option<f32>,
    /// AnyRes: cover the frame with up to N square model tiles (0: squash
    /// it to 224 x 224, as the reference).
    #[arg(long, default_value_t = 0,
          value_parser = ranged(burn_autogaze::limits::MAX_ANYRES_TILES))]
    anyres_tiles: usize,
    /// AnyRes with the default budget (8 tiles; `--anyres-tiles N` for
    /// another).
    #[arg(long, conflicts_with_all = ["anyres_tiles", "target_scales"])]
    anyres: bool,
    /// The reference's tiled inference: resize each frame to the largest
    /// scale, cut it into square tiles of 14 x the patch size, one stream
    /// each (e.g. 64,128,224,448 with patch 16: 2 x 2 tiles of 224).
    #[arg(long, value_delimiter = ',', conflicts_with = "anyres_tiles")]
    target_scales: Vec<u32>,
    /// The patch size of --target-scales.
    #[arg(long, default_value_t = 16, requires = "target_scales")]
    target_patch_size: u32,
    /// Burn backend: ndarray (CPU) or wgpu (needs the `wgpu` feature).
    #[arg(long, default_value = "ndarray")]
    backend: ModelBackend,
    /// Frames of KV cache the model keeps (0: every frame, up to
    /// `limits::MAX_HORIZON`; at most that).
    #[arg(long, default_value_t = ModelOptions::default().horizon,
          value_parser = ranged(burn_autogaze::limits::MAX_HORIZON))]
    horizon: usize,
    /// At most this many frames (default: the whole input; 1 for an image).
    #[arg(long)]
    frames: Option<u64>,
    /// Where a video starts, seconds.
    #[arg(long, default_value_t = 0.0)]
    start: f64,
    /// interframe.mp4 shows input | mask | output side by side.
    #[arg(long)]
    side_by_side: bool,
    /// Also write one mask PNG per frame (masks/NNNNNN.png: 255 where the
    /// frame was updated).
    #[arg(long)]
    masks: bool,
    /// Frame rate of an input without one (images), for timestamps and
    /// the mp4.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    #[command(flatten)]
    camera: CameraArgs,
}

impl GazeArgs {
    fn job(&self) -> GazeJob {
        GazeJob {
            input: self.input.clone(),
            out: self.out.clone(),
            model: ModelOptions {
                dir: self.model_dir.clone(),
                gazing_ratio: self.gazing_ratio,
                task_loss_requirement: self.task_loss_requirement,
                horizon: self.horizon,
                anyres_tiles: if self.anyres {
                    burn_autogaze::model::DEFAULT_MAX_TILES
                } else {
                    self.anyres_tiles
                },
                target_scales: self.target_scales.clone(),
                target_patch_size: self.target_patch_size,
                backend: self.backend,
                ..ModelOptions::default()
            },
            frames: self.frames,
            start: self.start,
            side_by_side: self.side_by_side,
            masks: self.masks,
            fps: self.fps,
            camera: self.camera.options(None),
        }
    }
}

/// Set by Ctrl-C: the run stops after the current frame.
static STOP: AtomicBool = AtomicBool::new(false);

#[cfg(target_os = "linux")]
extern "C" fn on_interrupt(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Ctrl-C sets [`STOP`] instead of killing the process, so the files are
/// closed complete. A second Ctrl-C kills as usual.
fn catch_interrupt() {
    #[cfg(target_os = "linux")]
    {
        let handler = on_interrupt as extern "C" fn(libc::c_int);
        // SAFETY: the handler only stores to an atomic (async-signal-safe);
        // SA_RESETHAND restores the default for a second Ctrl-C.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as libc::sighandler_t;
            action.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        }
    }
}

fn gaze(args: &GazeArgs) -> ExitCode {
    if args.model_dir.is_none() && !args.random_weights {
        eprintln!(
            "autogaze: give --model-dir DIR (a Hugging Face AutoGaze directory) or --random-weights"
        );
        return ExitCode::from(2);
    }
    catch_interrupt();
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = std::time::Instant::now();
    let mut progress = |p: &Progress| {
        if terminal {
            eprint!("\r{}", format_progress(p, true));
            let _ = std::io::stderr().flush();
        } else if last_line.elapsed() >= Duration::from_secs(2) || p.total == Some(p.done) {
            last_line = std::time::Instant::now();
            eprintln!("{}", format_progress(p, false));
        }
    };
    let result = run_gaze(&args.job(), &STOP, &mut progress);
    if terminal {
        eprintln!();
    }
    match result {
        Ok(summary) => {
            let how = if summary.interrupted {
                "interrupted after"
            } else {
                "done:"
            };
            eprintln!(
                "autogaze: {how} {} frames at {:.1} fps; wrote {}",
                summary.frames,
                summary.fps,
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("autogaze: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list_cameras {
        return match burn_autogaze::cli::camera_list() {
            Ok(list) => {
                print!("{list}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("autogaze: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match cli.command {
        Some(Command::Gaze(args)) => gaze(&args),
        Some(Command::Reference(args)) => reference_command(&args, "autogaze"),
        None => {
            eprintln!("autogaze: give a command (autogaze gaze INPUT --out DIR) or --list-cameras");
            ExitCode::from(2)
        }
    }
}
