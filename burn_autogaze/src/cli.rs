//! The pipeline's command-line flags, shared by every front end (the perf
//! harness, the Bevy viewer) so that a flag means the same everywhere.
//! Frame-source flags stay with each front end (a matrix of sizes in the
//! harness, one `--source` in the viewer), except the `video` source's
//! ([`VideoArgs`]) and the `camera` source's ([`SourceArg`]'s
//! `camera:INDEX`, [`CameraArgs`], [`camera_list`]), which every front end
//! takes alike.

use std::path::PathBuf;

use crate::frame::FrameSize;
use crate::interframe::{CompositorOptions, Dispatch};
use crate::mask::MaskGeometry;
use crate::mask_source::{InputPlace, MaskSourceKind, ModelBackend, ModelOptions};
use crate::pacing::SourceRate;
use crate::patch_diff::PatchDiffOptions;
use crate::pipeline::PipelineOptions;
use crate::source::{CameraFormat, CameraOptions, SourceKind, SourceOptions};

/// `--source NAME`: a [`SourceKind`], or `camera:INDEX` (a camera by its
/// index; `camera` alone is camera 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceArg {
    /// The source.
    pub kind: SourceKind,
    /// The camera's index, when given as `camera:INDEX`.
    pub camera_index: Option<u32>,
}

impl std::str::FromStr for SourceArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, index) = match s.split_once(':') {
            Some((name, index)) => (name, Some(index)),
            None => (s, None),
        };
        let kind: SourceKind = name
            .parse()
            .map_err(|e: crate::AutoGazeError| e.to_string())?;
        let camera_index = match (kind, index) {
            (_, None) => None,
            (SourceKind::Camera, Some(i)) => Some(i.parse().map_err(|_| {
                format!("camera index {i:?}: expected a number (camera:0, camera:1, ...)")
            })?),
            (kind, Some(_)) => {
                return Err(format!(
                    "source {s:?}: only camera takes an index (camera:INDEX), not {kind}"
                ));
            }
        };
        Ok(Self { kind, camera_index })
    }
}

impl std::fmt::Display for SourceArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.camera_index {
            Some(i) => write!(f, "{}:{i}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// The `camera` source's flags: what to ask the camera for.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CameraArgs {
    /// Frame size to ask the camera for (WIDTHxHEIGHT; default: its
    /// current size; the driver may give the nearest it has).
    #[arg(long)]
    pub camera_size: Option<FrameSize>,
    /// Frame rate to ask the camera for (default: its current rate).
    #[arg(long)]
    pub camera_fps: Option<f64>,
    /// Pixel format to ask the camera for: mjpeg, yuyv, nv12 (default: the
    /// first of these it offers).
    #[arg(long)]
    pub camera_format: Option<CameraFormat>,
}

impl CameraArgs {
    /// The camera request these flags and `index` describe.
    pub fn options(&self, index: Option<u32>) -> CameraOptions {
        CameraOptions {
            index: index.unwrap_or(0),
            size: self.camera_size,
            fps: self.camera_fps,
            format: self.camera_format,
        }
    }
}

/// `--list-cameras`: the cameras and their formats as text (an error
/// without the `camera` feature).
pub fn camera_list() -> Result<String, String> {
    #[cfg(all(feature = "camera", not(target_arch = "wasm32")))]
    {
        use std::fmt::Write;
        let tools = crate::source::FfmpegTools::from_env();
        let cameras = crate::source::list_cameras(&tools).map_err(|e| e.to_string())?;
        if cameras.is_empty() {
            return Ok(format!(
                "no camera found (no video device nodes in {})\n",
                crate::source::DEVICE_DIR
            ));
        }
        let mut out = String::new();
        for c in cameras {
            let _ = writeln!(
                out,
                "camera:{}  {}  {}",
                c.index,
                c.device.display(),
                c.name
            );
            if c.modes.is_empty() {
                let _ = writeln!(out, "    (no capture formats: a metadata node, or busy)");
            }
            for m in c.modes {
                let note = if m.supported { "" } else { "  (not converted)" };
                let _ = writeln!(out, "    {:<8} {}{note}", m.format, m.sizes);
            }
        }
        Ok(out)
    }
    #[cfg(not(all(feature = "camera", not(target_arch = "wasm32"))))]
    Err("built without the `camera` feature (build with --features camera)".into())
}

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
    /// CPU kernels; `fused-gpu`: fused CubeCL kernels). Default: the
    /// backend's (`host` on ndarray, `fused-gpu` on wgpu where the adapter
    /// runs it).
    #[arg(long)]
    pub model_engine: Option<String>,
    /// Where the model input is made: `host` (the CPU path, then one upload
    /// of the f32 input) or `device` (the frame's bytes go up and the
    /// resize and squash run as kernels: the wgpu backend, not with AnyRes
    /// tiles).
    #[arg(long, default_value = "host")]
    pub model_preprocess: InputPlace,
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
                preprocess: self.model_preprocess,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_with_a_camera_index_only_for_the_camera() {
        let arg: SourceArg = "camera:2".parse().unwrap();
        assert_eq!((arg.kind, arg.camera_index), (SourceKind::Camera, Some(2)));
        assert_eq!(arg.to_string(), "camera:2");
        let arg: SourceArg = "camera".parse().unwrap();
        assert_eq!((arg.kind, arg.camera_index), (SourceKind::Camera, None));
        let arg: SourceArg = "video".parse().unwrap();
        assert_eq!((arg.kind, arg.camera_index), (SourceKind::Video, None));
        let err = "camera:x".parse::<SourceArg>().unwrap_err();
        assert!(err.contains("camera index \"x\""), "{err}");
        let err = "video:1".parse::<SourceArg>().unwrap_err();
        assert!(err.contains("only camera takes an index"), "{err}");
        let err = "webcam:1".parse::<SourceArg>().unwrap_err();
        assert!(err.contains("webcam") && err.contains("camera"), "{err}");
        let options = CameraArgs {
            camera_fps: Some(15.0),
            ..CameraArgs::default()
        }
        .options(Some(3));
        assert_eq!((options.index, options.fps), (3, Some(15.0)));
    }
}
