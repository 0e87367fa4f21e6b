//! What the plugin tells the host app, as plain data: one
//! [`AutoGazeFrame`] message per processed frame, an [`AutoGazeFailure`]
//! message per failure, and the [`AutoGazeLatest`] resource holding the
//! newest of each. Game logic reads them with `MessageReader` / `Res`; no
//! system of the host needs `ResMut` or exclusive access.

use std::sync::Arc;

use bevy::prelude::*;
use burn_autogaze::FrameSize;
use burn_autogaze::interframe::ComposePath;
use burn_autogaze::mask::Rect;
use burn_autogaze::mask_source::TokenRect;
use burn_autogaze::timing::StageTimes;

use crate::settings::DisplayTransfer;

/// One processed frame: written in `Last` (set
/// [`AutoGazeSystems::Publish`](crate::AutoGazeSystems::Publish)) once its
/// stage times are complete; readable from then on and through the next
/// update.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct AutoGazeFrame {
    /// Sequence number of the frame.
    pub seq: u64,
    /// The frame whose mask was applied: this one inline, an earlier one
    /// when inference is decoupled (none before the first mask arrives).
    pub mask_seq: Option<u64>,
    /// Frame size (the token rectangles are in these pixels).
    pub size: FrameSize,
    /// The applied mask's tokens: scale, grid, row and column, the cell's
    /// pixel rectangle in the frame, and the padded flag. Shared with
    /// [`AutoGazeLatest`] (collected once a frame, never copied).
    pub tokens: Arc<[TokenRect]>,
    /// Updated pixels / frame pixels (1 on a keyframe).
    pub gaze_ratio: f64,
    /// True when the compositor refreshed the whole frame (a keyframe).
    pub keyframe: bool,
    /// The interframe compositor's dispatch: sparse, dense, full or skip.
    pub path: ComposePath,
    /// The display transfer this frame took (none when nothing went up).
    pub transfer: Option<DisplayTransfer>,
    /// Wall time of every stage: the pipeline's, display transfer, texture
    /// upload and UI.
    pub times: StageTimes,
}

impl AutoGazeFrame {
    /// The non-padded tokens whose cells overlap `region` (frame pixels).
    pub fn tokens_in(&self, region: Rect) -> impl Iterator<Item = &TokenRect> + '_ {
        self.tokens
            .iter()
            .filter(move |t| !t.padded && !t.rect.intersect(&region).is_empty())
    }
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AutoGazeFailureKind {
    /// Building the pipeline (a bad model directory, a missing image file):
    /// nothing runs until the settings change.
    Setup,
    /// A frame could not go through the pipeline (e.g. a repeated sequence
    /// number); the next one is tried.
    Frame,
    /// The mask source failed on a frame (decoupled: on the worker); the last
    /// good mask stays applied.
    MaskInference,
    /// A display panel or texture could not be written.
    Display,
    /// A device failed (lost, out of memory): the model's, or Bevy's render
    /// device. The model runs on the host since, and the host composes.
    Device,
}

/// A failure, as a message (the app keeps running).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct AutoGazeFailure {
    /// What failed.
    pub kind: AutoGazeFailureKind,
    /// The frame it concerns, when known.
    pub seq: Option<u64>,
    /// What happened, for a person.
    pub message: String,
}

/// The newest frame result and failure, and how many of each so far. Only
/// the plugin writes it; hosts read it with `Res<AutoGazeLatest>`.
#[derive(Resource, Debug, Clone, Default)]
pub struct AutoGazeLatest {
    pub(crate) frame: Option<AutoGazeFrame>,
    pub(crate) failure: Option<AutoGazeFailure>,
    pub(crate) frames: u64,
    pub(crate) failures: u64,
}

impl AutoGazeLatest {
    /// The newest processed frame.
    pub fn frame(&self) -> Option<&AutoGazeFrame> {
        self.frame.as_ref()
    }

    /// The newest failure.
    pub fn failure(&self) -> Option<&AutoGazeFailure> {
        self.failure.as_ref()
    }

    /// Frames published so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Failures published so far.
    pub fn failures(&self) -> u64 {
        self.failures
    }
}
