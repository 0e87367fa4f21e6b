//! burn_autogaze: real-time sparse video with NVIDIA AutoGaze in Burn.
//!
//! The frame's way: [`source`] -> [`ring`] -> [`preprocess`] -> model ->
//! mask plan -> interframe composition -> display. This crate holds every
//! computation; the Bevy plugin only wraps it.
//!
//! A pipeline over a synthetic pan with the weights-free patch-diff mask
//! source (the defaults), stepped a few frames:
//!
//! ```
//! use burn_autogaze::pipeline::{FramePipeline, PipelineOptions};
//! use burn_autogaze::timing::Stage;
//! use burn_autogaze::{FrameSize, SourceOptions};
//!
//! let options = PipelineOptions {
//!     source: SourceOptions {
//!         size: FrameSize::new(160, 96)?,
//!         ..SourceOptions::default()
//!     },
//!     ..PipelineOptions::default()
//! };
//! let mut pipeline = FramePipeline::new(&options)?;
//! // The first frame is a keyframe: copied whole.
//! assert!(pipeline.step()?.compose.keyframe);
//! for seq in 1..4 {
//!     let report = pipeline.step()?;
//!     assert_eq!(report.seq, seq);
//!     assert!(report.times.get(Stage::MaskSource) > std::time::Duration::ZERO);
//!     // A pan moves every pixel: the mask covers the whole frame.
//!     assert_eq!(report.compose.coverage, 1.0);
//! }
//! assert_eq!(pipeline.output(), pipeline.current_frame().unwrap().rgba());
//! # Ok::<(), burn_autogaze::AutoGazeError>(())
//! ```

#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
mod config;
pub mod crossover;
pub mod device_fault;
pub mod error;
pub mod export;
pub mod fail_once;
pub mod frame;
pub mod interframe;
pub mod limits;
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
pub mod wait;
pub mod worker;

pub use error::{AutoGazeError, CameraProblem, Result, VideoProblem};
pub use frame::{Frame, FramePool, FrameSize};
pub use preprocess::{ModelInput, Preprocessor, PreprocessorConfig};
pub use ring::{Admission, FrameRing, RingCounters};
pub use source::{FrameSource, SourceKind, SourceOptions, open_source};
