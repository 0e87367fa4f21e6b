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
    ZeroSize { width: u32, height: u32 },

    /// RGBA8 byte length does not match `width * height * 4`.
    #[error(
        "RGBA8 buffer for a {width}x{height} frame must hold {expected} bytes (width*height*4), got {actual}"
    )]
    PixelLength {
        width: u32,
        height: u32,
        expected: usize,
        actual: usize,
    },

    /// Frames of one clip (or one image sequence) do not share a size.
    #[error(
        "frame {index} of {context} is {actual_w}x{actual_h}, but the clip is {expected_w}x{expected_h}"
    )]
    MismatchedFrameSize {
        context: String,
        index: usize,
        expected_w: u32,
        expected_h: u32,
        actual_w: u32,
        actual_h: u32,
    },

    /// A clip with no frames was given where at least one is needed.
    #[error("{0}: a clip needs at least one frame")]
    EmptyClip(String),

    /// An image file could not be opened or decoded.
    #[error("cannot read image {path}: {reason}")]
    Image { path: PathBuf, reason: String },

    /// A directory that should hold frames holds none.
    #[error("directory {path} holds no frames (looked for {extensions})")]
    EmptyDirectory { path: PathBuf, extensions: String },

    /// Any other I/O failure, with the path it concerns.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config.json, preprocessor_config.json, ...) is malformed.
    #[error("cannot parse {path}: {reason}")]
    Config { path: PathBuf, reason: String },

    /// A setting is outside what this crate supports, with the allowed values.
    #[error("invalid {what}: {value} ({expected})")]
    InvalidSetting {
        what: &'static str,
        value: String,
        expected: String,
    },

    /// A tensor has the wrong shape.
    #[error("tensor {name}: expected shape {expected:?}, got {actual:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },

    /// A tensor is missing from a safetensors file.
    #[error("tensor {name} is missing from {path}")]
    MissingTensor { name: String, path: PathBuf },

    /// A safetensors file could not be read or holds an unexpected dtype.
    #[error("safetensors {path}: {reason}")]
    SafeTensors { path: PathBuf, reason: String },

    /// A model engine cannot run what it was given (a stream started on
    /// another engine, a shape its kernels were not built for, an engine
    /// name not registered).
    #[error("model engine {engine}: {reason}")]
    Engine { engine: String, reason: String },
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

    pub(crate) fn engine(engine: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Engine {
            engine: engine.into(),
            reason: reason.into(),
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
