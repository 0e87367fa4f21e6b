//! Frame sources: where frames come from.
//!
//! | name | what | motion |
//! |---|---|---|
//! | `synthetic-pan` | detailed texture panned at a fixed speed | every pixel, every frame |
//! | `synthetic-local` | still background, moving squares | sparse |
//! | `static` | one image (file, or a procedural still) repeated | none |
//! | `images` | a directory of PNG/JPEG frames in name order, looping | real video |
//! | `video` | a video file FFmpeg decodes (mp4, webm, mkv, mov, ...), looping or not | real video |
//! | `camera` | a live camera (feature `camera`; Linux, through FFmpeg's Video4Linux2 input), newest frame wins | live |

#[cfg(all(feature = "camera", not(target_arch = "wasm32")))]
mod camera;
#[cfg(all(feature = "camera", not(target_arch = "wasm32")))]
mod camera_device;
mod ffmpeg;
mod image_file;
mod image_sequence;
mod pixel_format;
mod sequence;
mod synthetic_local;
mod synthetic_pan;
mod texture;
mod video;
mod video_decoder;

use std::path::PathBuf;

#[cfg(all(feature = "camera", not(target_arch = "wasm32")))]
pub use camera::{CameraInput, CameraSettings, CameraSource};
#[cfg(all(feature = "camera", not(target_arch = "wasm32")))]
pub use camera_device::{
    CameraInfo, CameraMode, DEVICE_DIR, device_nodes, find_camera_in, list_cameras, list_modes,
};
pub use ffmpeg::{FFMPEG_ENV, FFPROBE_ENV, FfmpegTools, VideoInfo, probe};
pub(crate) use image_file::is_image_path;
pub use image_file::{IMAGE_EXTENSIONS, StaticImage, decode_rgba, load_rgba};
pub use image_sequence::{
    DEFAULT_PREFETCH, DEFAULT_SEQUENCE_CACHE_BYTES, DecodeStats, ImageSequence,
};
pub use pixel_format::{
    CameraFormat, JpegSplitter, MjpegDecoder, jpeg_size, nv12_to_rgba, yuv_to_rgba, yuyv_to_rgba,
};
pub use synthetic_local::SyntheticLocal;
pub use synthetic_pan::{PanSpeed, SyntheticPan};
pub use video::{VideoSettings, VideoSource};

use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FrameSize};

/// Anything that produces frames, one per call, with increasing sequence numbers.
pub trait FrameSource: Send {
    /// Short name of the source kind (`synthetic-pan`, `static`, ...).
    fn name(&self) -> &str;

    /// Size of every frame this source produces.
    fn size(&self) -> FrameSize;

    /// The next frame. Sequence numbers start at 0 and grow by one a call.
    fn next_frame(&mut self) -> Result<Frame>;

    /// Skips `n` frames (their sequence numbers are used up). Sources that
    /// can jump without producing the frames override this.
    fn skip(&mut self, n: u64) -> Result<()> {
        for _ in 0..n {
            self.next_frame()?;
        }
        Ok(())
    }

    /// The source's own frame rate, when it has one (an image sequence with
    /// a `meta.json`, a video file).
    fn native_fps(&self) -> Option<f64> {
        None
    }

    /// Frames in one loop, for sources that repeat a finite clip.
    fn loop_len(&self) -> Option<u64> {
        None
    }

    /// Bytes the source keeps in its own buffers (pools, caches, stills).
    fn pooled_bytes(&self) -> usize {
        0
    }

    /// Decode counters, for sources that decode files.
    fn decode_stats(&self) -> Option<DecodeStats> {
        None
    }
}

crate::names::named_enum! {
    /// The kinds of source, as named on the command line.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum SourceKind ("source") {
        /// [`SyntheticPan`]: every pixel moves every frame.
        SyntheticPan => "synthetic-pan",
        /// [`SyntheticLocal`]: a still background with moving squares.
        SyntheticLocal => "synthetic-local",
        /// [`StaticImage`]: one image repeated.
        Static => "static",
        /// [`ImageSequence`]: a directory of frames, looping.
        Images => "images",
        /// [`VideoSource`]: a video file decoded by FFmpeg.
        Video => "video",
        /// A live camera (`CameraSource`, feature `camera`).
        Camera => "camera",
    }
}

/// Everything needed to open a source; one type shared by every front end
/// (CLI flags, the perf harness, later URL parameters).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceOptions {
    /// Which source.
    pub kind: SourceKind,
    /// Frame size of the synthetic sources (and of the procedural `static`).
    pub size: FrameSize,
    /// Pan speed of `synthetic-pan`.
    pub pan_speed: PanSpeed,
    /// Moving objects of `synthetic-local`.
    pub objects: u32,
    /// Image file of `static` (none: a procedural still), directory of
    /// `images`, or file of `video`.
    pub path: Option<PathBuf>,
    /// Nominal frame rate used for timestamps.
    pub fps: f64,
    /// Byte cap of the `images` decode cache.
    pub cache_bytes: usize,
    /// Frames of `images` and `video` decoded ahead on a thread (0: none
    /// for `images`; for `video`, FFmpeg then decodes while the reader
    /// waits).
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// Where `video` starts (and each of its loops), seconds.
    #[serde(default)]
    pub start: f64,
    /// Whether `video` starts again at its end (otherwise the source ends
    /// with [`AutoGazeError::EndOfStream`]).
    #[serde(default = "default_looping")]
    pub looping: bool,
    /// What to ask of the `camera` source.
    #[serde(default)]
    pub camera: CameraOptions,
}

/// The `camera` source's request: which camera, and the size, rate and
/// pixel format to ask it for (each none: the camera's current one; the
/// format: MJPEG, NV12 or YUYV, the first it offers).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CameraOptions {
    /// The camera's index (`/dev/videoN` on Linux; `--source camera:N`).
    pub index: u32,
    /// Frame size to ask for.
    pub size: Option<FrameSize>,
    /// Frame rate to ask for.
    pub fps: Option<f64>,
    /// Pixel format to ask for.
    pub format: Option<CameraFormat>,
}

fn default_looping() -> bool {
    true
}

fn default_prefetch() -> usize {
    DEFAULT_PREFETCH
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            kind: SourceKind::SyntheticPan,
            size: FrameSize {
                width: 1280,
                height: 720,
            },
            pan_speed: PanSpeed::default(),
            objects: 3,
            path: None,
            fps: 30.0,
            cache_bytes: DEFAULT_SEQUENCE_CACHE_BYTES,
            prefetch: DEFAULT_PREFETCH,
            start: 0.0,
            looping: true,
            camera: CameraOptions::default(),
        }
    }
}

/// Opens the source the options describe.
pub fn open_source(options: &SourceOptions) -> Result<Box<dyn FrameSource>> {
    let size = FrameSize::new(options.size.width, options.size.height)?;
    Ok(match options.kind {
        SourceKind::SyntheticPan => {
            Box::new(SyntheticPan::new(size, options.pan_speed, options.fps)?)
        }
        SourceKind::SyntheticLocal => {
            Box::new(SyntheticLocal::new(size, options.objects, options.fps)?)
        }
        SourceKind::Static => match &options.path {
            Some(path) => Box::new(StaticImage::open(path, options.fps)?),
            None => Box::new(StaticImage::procedural(size, options.fps)),
        },
        SourceKind::Images => {
            let dir = options.path.as_ref().ok_or_else(|| {
                AutoGazeError::setting(
                    "images source",
                    "no directory",
                    "a directory of PNG/JPEG frames (--source-path DIR)",
                )
            })?;
            Box::new(ImageSequence::open_with(
                dir,
                options.fps,
                options.cache_bytes,
                options.prefetch,
            )?)
        }
        SourceKind::Video => {
            let file = options.path.as_ref().ok_or_else(|| {
                AutoGazeError::setting(
                    "video source",
                    "no file",
                    "a video file FFmpeg can decode (--video FILE)",
                )
            })?;
            Box::new(VideoSource::open_with(
                file,
                VideoSettings {
                    fps: options.fps,
                    start: options.start,
                    looping: options.looping,
                    prefetch: options.prefetch,
                    tools: FfmpegTools::from_env(),
                },
            )?)
        }
        SourceKind::Camera => open_camera(&options.camera)?,
    })
}

/// Opens the camera the options name (feature `camera`).
#[cfg(all(feature = "camera", not(target_arch = "wasm32")))]
fn open_camera(options: &CameraOptions) -> Result<Box<dyn FrameSource>> {
    if let Some(fps) = options.fps {
        crate::limits::fps("camera fps", fps)?;
    }
    Ok(Box::new(CameraSource::open(&CameraSettings {
        index: options.index,
        size: options.size,
        fps: options.fps,
        format: options.format,
        tools: FfmpegTools::from_env(),
    })?))
}

/// Without the `camera` feature (or in the browser): a typed error.
#[cfg(not(all(feature = "camera", not(target_arch = "wasm32"))))]
fn open_camera(options: &CameraOptions) -> Result<Box<dyn FrameSource>> {
    Err(AutoGazeError::Camera {
        camera: format!("camera:{}", options.index),
        problem: crate::error::CameraProblem::Unsupported {
            reason: if cfg!(target_arch = "wasm32") {
                "the browser build has no camera source".into()
            } else {
                "built without the `camera` feature (cargo build --features camera)".into()
            },
        },
    })
}

/// Reads up to `count` frames of `source` into one clip, checking that they
/// share a size.
pub fn read_clip(source: &mut dyn FrameSource, count: usize) -> Result<Vec<Frame>> {
    if count == 0 {
        return Err(AutoGazeError::EmptyClip(source.name().to_string()));
    }
    (0..count).map(|_| source.next_frame()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_names_are_rejected() {
        for kind in SourceKind::ALL {
            assert_eq!(kind.as_str().parse::<SourceKind>().unwrap(), kind);
        }
        let err = "webcam".parse::<SourceKind>().unwrap_err().to_string();
        assert!(
            err.contains("webcam") && err.contains("synthetic-pan"),
            "{err}"
        );
    }

    #[test]
    fn images_without_a_directory_is_a_clear_error() {
        let options = SourceOptions {
            kind: SourceKind::Images,
            ..SourceOptions::default()
        };
        let err = open_source(&options).err().expect("must fail").to_string();
        assert!(err.contains("--source-path"), "{err}");
    }

    #[test]
    fn video_without_a_file_is_a_clear_error() {
        let options = SourceOptions {
            kind: SourceKind::Video,
            ..SourceOptions::default()
        };
        let err = open_source(&options).err().expect("must fail").to_string();
        assert!(err.contains("--video FILE"), "{err}");
    }

    #[test]
    fn static_procedural_frames_share_one_buffer() {
        let options = SourceOptions {
            kind: SourceKind::Static,
            size: FrameSize::new(31, 17).unwrap(),
            ..SourceOptions::default()
        };
        let mut src = open_source(&options).unwrap();
        let a = src.next_frame().unwrap();
        let b = src.next_frame().unwrap();
        assert!(a.shares_pixels_with(&b));
        assert_eq!((a.seq, b.seq), (0, 1));
        assert!(b.timestamp > a.timestamp);
    }
}
