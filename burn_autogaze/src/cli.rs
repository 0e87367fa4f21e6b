//! The pipeline's command-line flags, shared by every front end (the perf
//! harness, the Bevy viewer) so that a flag means the same everywhere.
//! Frame-source flags stay with each front end (a matrix of sizes in the
//! harness, one `--source` in the viewer), except the `video` source's
//! ([`VideoArgs`]), which every front end takes alike.

use std::path::PathBuf;

use crate::interframe::{CompositorOptions, Dispatch};
use crate::mask::MaskGeometry;
use crate::mask_source::{MaskSourceKind, ModelBackend, ModelOptions};
use crate::pacing::SourceRate;
use crate::patch_diff::PatchDiffOptions;
use crate::pipeline::PipelineOptions;
use crate::source::{SourceKind, SourceOptions};

/// The `video` source's flags: `--source video --video FILE`.
#[derive(Debug, Clone, clap::Args)]
pub struct VideoArgs {
    /// Video file of the `video` source (anything the system's FFmpeg
    /// decodes: mp4, webm, mkv, mov, ...).
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// Where the video starts (and each of its loops), seconds.
    #[arg(long, default_value_t = 0.0)]
    pub video_start: f64,
    /// Start the video again at its end (false: the source ends with it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub video_loop: bool,
}

impl VideoArgs {
    /// `source` with these flags applied: the file when the source is
    /// `video`, the start time and looping.
    pub fn apply(&self, source: SourceOptions) -> SourceOptions {
        let path = if source.kind == SourceKind::Video {
            self.video.clone()
        } else {
            source.path
        };
        SourceOptions {
            path,
            start: self.video_start,
            looping: self.video_loop,
            ..source
        }
    }
}

/// Mask source, model, geometry, dispatch and pacing flags.
#[derive(Debug, Clone, clap::Args)]
pub struct PipelineArgs {
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
    /// Also produce the model input every frame (the model path's cost).
    #[arg(long)]
    pub preprocess: bool,
    /// Mask source: patch-diff (weights-free) or autogaze (the model).
    #[arg(long, default_value = "patch-diff")]
    pub mask_source: MaskSourceKind,
    /// Model directory for `--mask-source autogaze` (config.json +
    /// model.safetensors).
    #[arg(long, conflicts_with = "random_weights")]
    pub model_dir: Option<PathBuf>,
    /// Seeded random weights at the released model's size (the default
    /// without `--model-dir`; for performance work without weights).
    #[arg(long)]
    pub random_weights: bool,
    /// Gazing ratio of the model source (fraction of 265 tokens, (0, 1]).
    #[arg(long, default_value_t = ModelOptions::default().gazing_ratio)]
    pub gazing_ratio: f32,
    /// Task-loss requirement of the model source (off by default: full
    /// budget). May be negative (`--task-loss-requirement -0.27`).
    #[arg(long, alias = "task-loss", allow_negative_numbers = true)]
    pub task_loss_requirement: Option<f32>,
    /// Burn backend of the model source: ndarray (CPU) or wgpu (the default
    /// adapter: a GPU where there is one).
    #[arg(long, default_value = "ndarray")]
    pub model_backend: ModelBackend,
    /// The model engine (`burn-ops`: Burn ops, the reference; `host`: fused
    /// CPU kernels). Default: the backend's (`host` on ndarray, `burn-ops`
    /// on wgpu).
    #[arg(long)]
    pub model_engine: Option<String>,
    /// Frames of KV cache the model keeps (0: every frame, up to
    /// `limits::MAX_HORIZON`; at most that).
    #[arg(long, default_value_t = ModelOptions::default().horizon,
          value_parser = ranged(crate::limits::MAX_HORIZON))]
    pub horizon: usize,
    /// AnyRes: cover the frame with up to N square model tiles (0: squash the
    /// whole frame to 224 x 224, as the reference).
    #[arg(long, default_value_t = 0, value_parser = ranged(crate::limits::MAX_ANYRES_TILES))]
    pub anyres_tiles: usize,
    /// Paced playback at this rate: frames a second, or `native` (a video's
    /// container rate, an image sequence's meta.json). Frames that cannot be shown in time are dropped
    /// and counted; the summary gets the realtime factor.
    #[arg(long)]
    pub source_fps: Option<SourceRate>,
    /// Decode cache of the `images` source, MiB (frames beyond it are
    /// decoded again when the clip loops).
    #[arg(long, default_value_t = crate::source::DEFAULT_SEQUENCE_CACHE_BYTES >> 20,
          value_parser = ranged(crate::limits::MAX_CACHE_MIB))]
    pub cache_mib: usize,
    /// Frames of the `images` and `video` sources decoded ahead on a
    /// thread (0: decode on demand).
    #[arg(long, default_value_t = crate::source::DEFAULT_PREFETCH,
          value_parser = ranged(crate::limits::MAX_PREFETCH))]
    pub prefetch: usize,
}

/// A count flag of at most `max` (a limit of [`crate::limits`]): clap
/// refuses a larger value naming the flag and the range.
pub fn ranged(max: usize) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(0..=max as u64)
}

/// A frame-count flag from `min` to [`crate::limits::MAX_RUN_FRAMES`].
pub fn frame_count(min: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(min..=crate::limits::MAX_RUN_FRAMES)
}

impl PipelineArgs {
    /// The pipeline these flags describe, reading frames from `source`.
    pub fn options(
        &self,
        source: SourceOptions,
        decoupled: bool,
        measure_psnr: bool,
    ) -> PipelineOptions {
        PipelineOptions {
            source: SourceOptions {
                cache_bytes: self.cache_mib.saturating_mul(1 << 20),
                prefetch: self.prefetch,
                ..source
            },
            ring_capacity: 2,
            preprocess: self.preprocess,
            mask_source: self.mask_source,
            model: ModelOptions {
                dir: self.model_dir.clone(),
                gazing_ratio: self.gazing_ratio,
                task_loss_requirement: self.task_loss_requirement,
                horizon: self.horizon,
                anyres_tiles: self.anyres_tiles,
                backend: self.model_backend,
                engine: self.model_engine.clone(),
                ..ModelOptions::default()
            },
            patch_diff: PatchDiffOptions {
                threshold: self.threshold,
                grid: self.grid,
            },
            geometry: self.mask_geometry,
            decoupled,
            source_fps: self.source_fps,
            compositor: CompositorOptions {
                dispatch: self.dispatch,
                measure_psnr,
                keyframe_period: self.keyframe_period,
                psnr_floor: self.psnr_floor,
                ..CompositorOptions::default()
            },
        }
    }
}
