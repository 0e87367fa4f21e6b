//! burn_autogaze: real-time sparse video with NVIDIA AutoGaze in Burn.
//!
//! The frame's way: [`source`] -> [`ring`] -> [`preprocess`] -> model ->
//! mask plan -> interframe composition -> display. This crate holds every
//! computation; the Bevy plugin only wraps it.

#[cfg(feature = "cli")]
pub mod cli;
mod config;
pub mod crossover;
pub mod error;
pub mod frame;
pub mod interframe;
pub mod mask;
pub mod mask_source;
pub mod memory;
pub mod model;
mod names;
pub mod pacing;
pub mod patch_diff;
pub mod perf;
pub mod pipeline;
pub mod preprocess;
pub mod quality;
pub mod ring;
pub mod source;
pub mod tensor_file;
pub mod timing;
pub mod tokens;
pub mod upload;
pub mod worker;

pub use error::{AutoGazeError, Result};
pub use frame::{Frame, FramePool, FrameSize};
pub use preprocess::{ModelInput, Preprocessor, PreprocessorConfig};
pub use ring::{Admission, FrameRing, RingCounters};
pub use source::{FrameSource, SourceKind, SourceOptions, open_source};
