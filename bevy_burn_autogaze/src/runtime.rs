//! The running pipeline, as a resource: built and stepped by the driver's
//! systems, read by metrics, results and recording.

use std::sync::Mutex;

use bevy::prelude::*;
use burn_autogaze::pipeline::{FramePipeline, StepReport};

use crate::settings::AutoGazeSettings;

/// The running pipeline and what the current update produced.
#[derive(Resource, Default)]
pub struct AutoGazeRuntime {
    // The pipeline is `Send` but not `Sync` (its worker's result channel);
    // systems reach it through `get_mut`, which never locks.
    pipeline: Mutex<Option<FramePipeline>>,
    /// The settings the pipeline was last built or updated with.
    pub(crate) applied: Option<AutoGazeSettings>,
    /// The report of a frame stepped in this update, until recorded.
    pub(crate) report: Option<StepReport>,
    /// A setup error that stops the pipeline until the settings change
    /// (bad model directory, missing image file).
    pub(crate) setup_error: Option<String>,
    /// Where the model runs, in words, when it runs on wgpu.
    pub(crate) model_placement: Option<String>,
    /// A device failed (the model's, or Bevy's render device): the model
    /// runs on the host and the host composes from then on, rebuilds
    /// included.
    pub(crate) device_failed: Option<burn_autogaze::device_fault::DeviceFault>,
    /// Apply the settings again without a rebuild (after a device fault).
    pub(crate) refresh: bool,
    /// The pipeline's fault-watch generation last read.
    pub(crate) fault_generation: u64,
    /// Where the display lends its frames to the model's device
    /// preprocessing (one upload for both), when it does.
    pub(crate) frame_share: Option<std::sync::Arc<burn_autogaze::preprocess::FrameShare>>,
}

impl AutoGazeRuntime {
    /// The pipeline, once built.
    pub fn pipeline(&mut self) -> Option<&mut FramePipeline> {
        self.slot().as_mut()
    }

    pub(crate) fn slot(&mut self) -> &mut Option<FramePipeline> {
        self.pipeline.get_mut().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the model runs, in words, when the settings put it on wgpu:
    /// Bevy's own render device, or (a renderer without compute) a second
    /// device.
    pub fn model_placement(&self) -> Option<&str> {
        self.model_placement.as_deref()
    }

    /// The device fault seen, if any: the model runs on the host since
    /// (see [`burn_autogaze::device_fault`]) and the host composes.
    pub fn device_failed(&self) -> Option<&burn_autogaze::device_fault::DeviceFault> {
        self.device_failed.as_ref()
    }

    /// The residency line of a device fault, if any.
    pub(crate) fn fault_line(&self) -> Option<String> {
        self.device_failed.as_ref().map(|f| {
            format!(
                "device fault ({}) on frame {}: the model runs on {}, the host composes",
                f.kind,
                f.seq,
                f.fallback.as_deref().unwrap_or("nothing")
            )
        })
    }

    /// The error that keeps the pipeline from running, if any.
    pub fn setup_error(&self) -> Option<&str> {
        self.setup_error.as_deref()
    }
}
