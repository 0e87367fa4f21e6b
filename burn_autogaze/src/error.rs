//! The one error type of the core crate.
//!
//! Every variant names what is wrong (which file, which tensor, expected versus
//! actual) so a user can act on the message without reading the source.

use std::path::PathBuf;

/// Errors returned by `burn_autogaze`. Nothing on an input path panics.
#[derive(Debug, thiserror::Error)]
pub enum AutoGazeError {
    /// A frame's width or height is zero.
    #[error("frame size {width}x{height} is invalid: width and height must be at least 1")]
    ZeroSize {
        /// The width given.
        width: u32,
        /// The height given.
        height: u32,
    },

    /// RGBA8 byte length does not match `width * height * 4`.
    #[error(
        "RGBA8 buffer for a {width}x{height} frame must hold {expected} bytes (width*height*4), got {actual}"
    )]
    PixelLength {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// Bytes the frame needs.
        expected: usize,
        /// Bytes the buffer holds.
        actual: usize,
    },

    /// Frames of one clip (or one image sequence) do not share a size.
    #[error(
        "frame {index} of {context} is {actual_w}x{actual_h}, but the clip is {expected_w}x{expected_h}"
    )]
    MismatchedFrameSize {
        /// The clip or sequence (a name or a path).
        context: String,
        /// Index of the odd frame in the clip.
        index: usize,
        /// The clip's width (its first frame's).
        expected_w: u32,
        /// The clip's height (its first frame's).
        expected_h: u32,
        /// The odd frame's width.
        actual_w: u32,
        /// The odd frame's height.
        actual_h: u32,
    },

    /// A clip with no frames was given where at least one is needed.
    #[error("{0}: a clip needs at least one frame")]
    EmptyClip(String),

    /// An image file could not be opened or decoded.
    #[error("cannot read image {path}: {reason}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },

    /// A directory that should hold frames holds none.
    #[error("directory {path} holds no frames (looked for {extensions})")]
    EmptyDirectory {
        /// The directory.
        path: PathBuf,
        /// The file extensions looked for.
        extensions: String,
    },

    /// Any other I/O failure, with the path it concerns.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config.json, preprocessor_config.json, ...) is malformed.
    #[error("cannot parse {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A setting is outside what this crate supports, with the allowed values.
    #[error("invalid {what}: {value} ({expected})")]
    InvalidSetting {
        /// The setting's name.
        what: &'static str,
        /// The value given.
        value: String,
        /// The values allowed.
        expected: String,
    },

    /// A tensor has the wrong shape.
    #[error("tensor {name}: expected shape {expected:?}, got {actual:?}")]
    TensorShape {
        /// The tensor's name.
        name: String,
        /// The shape it must have.
        expected: Vec<usize>,
        /// The shape it has.
        actual: Vec<usize>,
    },

    /// A tensor is missing from a safetensors file.
    #[error("tensor {name} is missing from {path}")]
    MissingTensor {
        /// The tensor's name.
        name: String,
        /// The safetensors file.
        path: PathBuf,
    },

    /// A safetensors file could not be read or holds an unexpected dtype.
    #[error("safetensors {path}: {reason}")]
    SafeTensors {
        /// The safetensors file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A size, count, rate or ratio is beyond its documented limit (see
    /// [`crate::limits`]): nothing is allocated or looped over for it.
    #[error("{what} {value} is beyond the limit: {limit}")]
    Limit {
        /// What the value is (a flag, a config field, a file).
        what: String,
        /// The value given.
        value: String,
        /// The limit, with its name in [`crate::limits`].
        limit: String,
    },

    /// A model engine cannot run what it was given (a stream started on
    /// another engine, a shape its kernels were not built for, an engine
    /// name not registered).
    #[error("model engine {engine}: {reason}")]
    Engine {
        /// The engine's name.
        engine: String,
        /// What it cannot run, and why.
        reason: String,
    },

    /// A video file cannot be used (missing, not a video, no frames,
    /// truncated, too large, ...).
    #[error("video {path}: {problem}")]
    Video {
        /// The video file.
        path: PathBuf,
        /// What is wrong with it.
        problem: VideoProblem,
    },

    /// An external program the crate drives (`ffmpeg`, `ffprobe`) cannot be
    /// started.
    #[error(
        "cannot run {program} ({reason}): install FFmpeg (Debian/Ubuntu: `apt-get install -y ffmpeg`), or name the program with {env}"
    )]
    ToolMissing {
        /// The program as it was looked for (a name on `PATH`, or a path).
        program: String,
        /// Why it could not be started.
        reason: String,
        /// The environment variable that names it.
        env: &'static str,
    },

    /// A camera cannot be used (none attached, no such index, the capture
    /// failed or stopped).
    #[error("camera {camera}: {problem}")]
    Camera {
        /// The camera as named (`camera:0`, a device path).
        camera: String,
        /// What is wrong.
        problem: CameraProblem,
    },

    /// A source that does not loop has given all its frames.
    #[error("{source_name} ended after {frames} frames")]
    EndOfStream {
        /// The source (a name or a path).
        source_name: String,
        /// Frames it gave.
        frames: u64,
    },
}

/// What is wrong with a video file ([`AutoGazeError::Video`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VideoProblem {
    /// The file does not exist.
    #[error("no such file")]
    Missing,
    /// The path is not a file FFmpeg can read as a video container.
    #[error("not a video FFmpeg can read ({reason})")]
    NotAVideo {
        /// What FFmpeg (or the file system) said.
        reason: String,
    },
    /// The file holds streams, none of them video (an audio-only file).
    #[error("holds no video stream (streams: {streams})")]
    NoVideoStream {
        /// The kinds of stream it holds (`audio`, ...; `none`).
        streams: String,
    },
    /// The video stream gives no frames (from the start time on).
    #[error("holds no frames{detail}")]
    NoFrames {
        /// More about it (the start time, what FFmpeg said), or empty.
        detail: String,
    },
    /// The file ends early: the frames before the damage were given.
    #[error("truncated or damaged after {decoded} of {expected} frames ({reason})")]
    Truncated {
        /// Frames decoded (and given) before the damage.
        decoded: u64,
        /// Frames the container announces (or its duration implies).
        expected: String,
        /// What FFmpeg said.
        reason: String,
    },
    /// The frames are larger than the source accepts.
    #[error("frames of {width}x{height} are beyond the limit ({limit})")]
    TooLarge {
        /// The video's width.
        width: u32,
        /// The video's height.
        height: u32,
        /// The limit, in words.
        limit: String,
    },
    /// FFmpeg failed while decoding, or gave output it should not.
    #[error("decoding failed: {reason}")]
    Decoder {
        /// What went wrong.
        reason: String,
    },
}

/// What is wrong with a camera ([`AutoGazeError::Camera`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CameraProblem {
    /// No camera is attached (none found where the platform lists them).
    #[error("no camera found ({looked})")]
    NoCamera {
        /// Where the cameras were looked for.
        looked: String,
    },
    /// Cameras exist, but not one with this index.
    #[error("no camera with index {index} (cameras: {available}; `--list-cameras` lists them)")]
    NoSuchIndex {
        /// The index asked for.
        index: u32,
        /// The indices there are.
        available: String,
    },
    /// This build or platform has no camera support.
    #[error("unsupported: {reason}")]
    Unsupported {
        /// Why (the feature is off, the platform has no capture input).
        reason: String,
    },
    /// The capture could not start, or stopped.
    #[error("capture failed: {reason}")]
    Capture {
        /// What FFmpeg (or the reader) said.
        reason: String,
    },
    /// The camera gives frames in a pixel format this crate does not
    /// convert.
    #[error(
        "pixel format {format} is not one of mjpeg, yuyv, nv12 (ask for one with --camera-format)"
    )]
    Format {
        /// The format FFmpeg named.
        format: String,
    },
    /// No frame arrived in time.
    #[error("no frame for {seconds} s")]
    Stalled {
        /// Seconds waited.
        seconds: u64,
    },
}

/// Result alias used across the crate.
pub type Result<T, E = AutoGazeError> = std::result::Result<T, E>;

impl AutoGazeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn video(path: impl Into<PathBuf>, problem: VideoProblem) -> Self {
        Self::Video {
            path: path.into(),
            problem,
        }
    }

    pub(crate) fn camera(camera: impl Into<String>, problem: CameraProblem) -> Self {
        Self::Camera {
            camera: camera.into(),
            problem,
        }
    }

    pub(crate) fn engine(engine: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Engine {
            engine: engine.into(),
            reason: reason.into(),
        }
    }

    /// A [`AutoGazeError::Limit`] (public: front ends check their own flags
    /// against [`crate::limits`] with it).
    pub fn limit(
        what: impl Into<String>,
        value: impl std::fmt::Display,
        limit: impl Into<String>,
    ) -> Self {
        Self::Limit {
            what: what.into(),
            value: value.to_string(),
            limit: limit.into(),
        }
    }

    pub(crate) fn setting(
        what: &'static str,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Self::InvalidSetting {
            what,
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}
