//! The viewer's command line.

use std::path::PathBuf;
use std::time::Duration;

use burn_autogaze::FrameSize;
use burn_autogaze::cli::{CameraArgs, PipelineArgs, SourceArg, VideoArgs, frame_count};
use burn_autogaze::limits;
use burn_autogaze::source::{PanSpeed, SourceKind, SourceOptions};

use crate::headless::HeadlessOptions;
use crate::recording::RecordOptions;
use crate::{AutoGazeSettings, DisplayTransfer, FrameFeed};

/// `bevy_burn_autogaze`: AutoGaze sparse video viewer.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "bevy_burn_autogaze", version)]
pub struct ViewerArgs {
    /// Frame source: synthetic-pan, synthetic-local, static, images, video,
    /// camera[:INDEX] (feature `camera`).
    #[arg(long, default_value = "synthetic-pan")]
    pub source: SourceArg,
    /// Frame size of the synthetic sources (WIDTHxHEIGHT, 720p, 1080p).
    #[arg(long, default_value = "1280x720")]
    pub size: FrameSize,
    /// Pan speed of synthetic-pan: DX,DY pixels a frame (e.g. 7,3).
    #[arg(long)]
    pub pan_speed: Option<PanSpeed>,
    /// Image file of the static source.
    #[arg(long, conflicts_with = "images_dir")]
    pub image: Option<PathBuf>,
    /// Directory of frames of the images source.
    #[arg(long)]
    pub images_dir: Option<PathBuf>,
    #[command(flatten)]
    /// The video source's flags (`--video FILE`, start, looping).
    pub video: VideoArgs,
    #[command(flatten)]
    /// The camera source's flags (`--camera-size`, `--camera-fps`,
    /// `--camera-format`).
    pub camera: CameraArgs,
    /// List the cameras and their formats, then exit.
    #[arg(long)]
    pub list_cameras: bool,
    #[command(flatten)]
    /// The core pipeline's flags (mask source, model, geometry, dispatch, ...).
    pub pipeline: PipelineArgs,
    /// Display transfer: cpu (dirty-region texture writes), gpu (compose on
    /// the device by region copies from the input texture), auto (per frame,
    /// by measured cost).
    #[arg(long, default_value = "auto")]
    pub display_transfer: DisplayTransfer,
    /// Output-vs-input PSNR (computed only while shown or recorded).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub psnr: bool,
    /// The metrics overlay (F12 toggles it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub overlay: bool,
    /// Show (and upload) the input panel.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub show_input: bool,
    /// Show the output image as the input panel on frames whose output is
    /// a whole copy of the frame (no scaled input panel made or uploaded
    /// then).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub input_from_output: bool,
    /// Show (and upload) the mask panel.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub show_mask: bool,
    /// Draw the mask panel at 1/N of the frame size (1: full size). Unset:
    /// the viewer fits it to the panel's displayed width (the largest N
    /// that keeps at least one texel per displayed pixel).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub mask_panel_scale: Option<u32>,
    /// Draw the input panel at 1/N of the frame size (1: the frame itself).
    /// Unset: fitted like the mask panel.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub input_panel_scale: Option<u32>,
    /// Show what the model sees (the preprocessed frame), drawn from a Burn
    /// tensor on Bevy's device by the tensor-to-texture pass (turns on
    /// preprocessing).
    #[arg(long)]
    pub show_model_input: bool,
    /// Run the mask source on the main thread (default: a worker thread;
    /// in the browser the model runs as a task on the page's event loop,
    /// other sources inline).
    #[arg(long)]
    pub inline_inference: bool,
    /// No window: render offscreen, measure, write the summary, exit.
    #[arg(long)]
    pub headless: bool,
    /// Measured frames (headless; 1 to `limits::MAX_RUN_FRAMES`).
    #[arg(long, default_value_t = 120, value_parser = frame_count(1))]
    pub frames: usize,
    /// Warm-up frames before measuring (headless).
    #[arg(long, default_value_t = 10, value_parser = frame_count(0))]
    pub warmup_frames: usize,
    /// Keep warming up until the first mask is applied (headless; bounded
    /// by `--timeout-s`): a model lane's first inference compiles its
    /// kernels, seconds on a software adapter.
    #[arg(long)]
    pub warmup_until_mask: bool,
    /// Perf summary JSON (headless).
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Case name in the summary (headless).
    #[arg(long, default_value = "viewer")]
    pub case: String,
    /// Write a PNG of the viewer (input | mask | output with the overlay)
    /// once the frames are measured (headless).
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
    /// Size of the offscreen render target (headless).
    #[arg(long, default_value = "1920x1080")]
    pub target_size: FrameSize,
    /// Give up after this many seconds (headless; at most
    /// `limits::MAX_TIMEOUT_S`).
    #[arg(long, default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=limits::MAX_TIMEOUT_S))]
    pub timeout_s: u64,
}

impl ViewerArgs {
    /// Checks the settings these flags describe against the limits (the
    /// pipeline's counts and rates), before any window or device is opened.
    pub fn check(&self) -> Result<(), String> {
        self.settings()
            .pipeline
            .check_limits()
            .map_err(|e| e.to_string())
    }

    /// The plugin settings these flags describe.
    pub fn settings(&self) -> AutoGazeSettings {
        let mut source = self.video.apply(SourceOptions {
            kind: self.source.kind,
            size: self.size,
            path: self.image.clone().or_else(|| self.images_dir.clone()),
            camera: self.camera.options(self.source.camera_index),
            ..SourceOptions::default()
        });
        if let Some(speed) = self.pan_speed {
            source.pan_speed = speed;
        }
        // The browser gives the page no threads: the model runs as a task
        // on the page's event loop (its readback awaited), patch-diff inline.
        let worker = !self.inline_inference
            && (cfg!(not(target_arch = "wasm32"))
                || self.pipeline.mask_source
                    == burn_autogaze::mask_source::MaskSourceKind::Autogaze);
        let mut pipeline = self.pipeline.options(source, worker, false);
        pipeline.preprocess |= self.show_model_input;
        AutoGazeSettings {
            pipeline,
            show_model_input: self.show_model_input,
            feed: FrameFeed::Source,
            display_transfer: self.display_transfer,
            psnr: self.psnr,
            overlay: self.overlay,
            show_input: self.show_input,
            input_from_output: self.input_from_output,
            show_mask: self.show_mask,
            mask_panel_scale: self.mask_panel_scale.unwrap_or(2),
            input_panel_scale: self.input_panel_scale.unwrap_or(2),
            ..AutoGazeSettings::default()
        }
    }

    /// The panel scales to fit: those not given.
    pub fn panel_fit(&self) -> crate::viewer::PanelFit {
        crate::viewer::PanelFit {
            mask: self.mask_panel_scale.is_none(),
            input: self.input_panel_scale.is_none(),
        }
    }

    /// The recording these flags describe (headless, and the web page's
    /// summary).
    pub fn record_options(&self) -> RecordOptions {
        RecordOptions {
            frames: self.frames,
            warmup_frames: self.warmup_frames,
            warmup_until_mask: self.warmup_until_mask,
            case: self.case.clone(),
            timeout: Duration::from_secs(self.timeout_s),
            ..RecordOptions::default()
        }
    }

    /// The headless run these flags describe.
    pub fn headless_options(&self) -> Result<HeadlessOptions, String> {
        if self.frames == 0 {
            return Err("--frames must be at least 1".into());
        }
        Ok(HeadlessOptions {
            record: self.record_options(),
            summary: self.summary.clone(),
            target: self.target_size,
            fit: self.panel_fit(),
            screenshot: self.screenshot.clone(),
        })
    }
}

impl ViewerArgs {
    /// The flags a page's URL query describes, parsed by the same definition
    /// as the command line: `?source=static&frames=30&overlay=false` is
    /// `--source static --frames 30 --overlay false`; a key without a value
    /// is a switch (`?show-model-input`); `_` in a key reads as `-`; values
    /// are percent-decoded (`pan-speed=7%2C3`).
    pub fn from_query(query: &str) -> Result<Self, String> {
        use clap::Parser;
        if query.len() > limits::MAX_QUERY_BYTES {
            return Err(format!(
                "the URL query is {} bytes, beyond the limit: at most {} (limits::MAX_QUERY_BYTES)",
                query.len(),
                limits::MAX_QUERY_BYTES
            ));
        }
        let command = <Self as clap::CommandFactory>::command();
        let is_flag = |key: &str| {
            command
                .get_arguments()
                .find(|a| a.get_long() == Some(key))
                .is_some_and(|a| !a.get_action().takes_values())
        };
        let mut argv = vec!["bevy_burn_autogaze".to_string()];
        let mut backend_given = false;
        for pair in query.trim_start_matches('?').split('&') {
            if pair.is_empty() {
                continue;
            }
            let (key, value) = match pair.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (pair, None),
            };
            let key = percent_decode(key)?.replace('_', "-");
            if key.is_empty() || key.starts_with('-') {
                return Err(format!(
                    "query parameter {pair:?}: expected NAME or NAME=VALUE"
                ));
            }
            let value = value
                .filter(|v| !v.is_empty())
                .map(percent_decode)
                .transpose()?;
            if is_flag(&key) {
                // A flag: `NAME`, `NAME=true` or `NAME=false`.
                match value.as_deref() {
                    None | Some("true") => argv.push(format!("--{key}")),
                    Some("false") => {}
                    Some(other) => {
                        return Err(format!(
                            "query parameter {pair:?}: --{key} is a flag: {key}, {key}=true or {key}=false, not {other:?}"
                        ));
                    }
                }
                continue;
            }
            backend_given |= key == "model-backend";
            argv.push(format!("--{key}"));
            argv.extend(value);
        }
        let mut args = Self::try_parse_from(argv).map_err(|e| e.to_string())?;
        // The WebGPU bundle runs the model on the page's GPU unless told
        // otherwise (which `check_web` then refuses).
        if WEB_BUNDLE == WebBundle::WebGpu && !backend_given {
            args.pipeline.model_backend = burn_autogaze::mask_source::ModelBackend::Wgpu;
        }
        args.check_web()?;
        args.check()?;
        Ok(args)
    }

    /// The flags the browser cannot honour (files, headless), as an error
    /// naming them.
    pub fn check_web(&self) -> Result<(), String> {
        let mut refused = Vec::new();
        if self.headless {
            refused.push("headless (the page is the window)");
        }
        if self.image.is_some() || self.images_dir.is_some() {
            refused.push("image / images-dir (no file system; use a synthetic or the procedural static source)");
        }
        if self.source.kind == SourceKind::Images {
            refused.push("source=images (no file system)");
        }
        if self.source.kind == SourceKind::Video || self.video.video.is_some() {
            refused.push("source=video / video (no file system, no FFmpeg)");
        }
        if self.source.kind == SourceKind::Camera || self.list_cameras {
            refused.push("source=camera / list-cameras (not in the browser yet)");
        }
        if self.screenshot.is_some() {
            refused.push("screenshot (the page is the screenshot)");
        }
        if self.summary.is_some() {
            refused.push("summary (the page publishes it as window.__AUTOGAZE_SUMMARY__)");
        }
        if self.pipeline.model_dir.is_some() {
            refused.push("model-dir (no file system)");
        }
        refused.extend(self.model_refusal(WEB_BUNDLE));
        if refused.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "not available in the browser: {}",
                refused.join("; ")
            ))
        }
    }
}

/// The web bundle a wasm32 build is (its cargo feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebBundle {
    /// `web-webgl2`: Bevy renders with WebGL2; no compute shaders, so no
    /// model on the page.
    WebGl2,
    /// `web-webgpu`: Bevy renders with WebGPU and the model runs on the
    /// page's GPU (Burn on Bevy's device, the fused engine).
    WebGpu,
}

impl WebBundle {
    /// Its name, as the loader and the summary give it.
    pub fn name(self) -> &'static str {
        match self {
            WebBundle::WebGl2 => "webgl2",
            WebBundle::WebGpu => "webgpu",
        }
    }
}

/// This build's web bundle.
pub const WEB_BUNDLE: WebBundle = if cfg!(feature = "web-webgpu") {
    WebBundle::WebGpu
} else {
    WebBundle::WebGl2
};

impl ViewerArgs {
    /// Why the page of `bundle` cannot run the model these flags ask for
    /// (nothing when it can, or when they ask for none). The model must
    /// never block the page: it runs on WebGPU, awaited, or not at all.
    pub fn model_refusal(&self, bundle: WebBundle) -> Option<&'static str> {
        use burn_autogaze::mask_source::{MaskSourceKind, ModelBackend};
        let model = self.pipeline.mask_source == MaskSourceKind::Autogaze;
        let wgpu = self.pipeline.model_backend == ModelBackend::Wgpu;
        match bundle {
            WebBundle::WebGl2 if model => Some(
                "mask-source=autogaze (this is the WebGL2 page, picked because the browser gave \
                 no WebGPU adapter: WebGL2 has no compute shaders for the model, and the host \
                 engine would block the page; use a browser with WebGPU, or mask-source=patch-diff)",
            ),
            WebBundle::WebGl2 if wgpu => {
                Some("model-backend=wgpu (WebGL2 has no compute shaders: the WebGPU page runs it)")
            }
            WebBundle::WebGpu if model && !wgpu => Some(
                "model-backend=ndarray (the host engine would block the page's only thread: \
                 the model runs on the page's GPU, model-backend=wgpu)",
            ),
            WebBundle::WebGpu if model && self.inline_inference => Some(
                "inline-inference with the model (its readback is awaited on the page's event \
                 loop, never waited for inline)",
            ),
            _ => None,
        }
    }
}

/// `%XX` escapes and `+` (a space) of a URL query component.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("query {s:?}: bad escape at byte {i}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("query {s:?}: not UTF-8 once decoded"))
}
