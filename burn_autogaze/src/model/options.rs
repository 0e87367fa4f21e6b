//! What a caller sets for decoding, and what decoding gives back.

use crate::error::{AutoGazeError, Result};

/// Per-call decoding settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateOptions {
    /// Fraction of the 265 tokens a frame may use, in (0, 1].
    pub gazing_ratio: f32,
    /// Stop a frame once a token's predicted task loss is at or below this.
    pub task_loss_requirement: Option<f32>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            gazing_ratio: 0.75,
            task_loss_requirement: Some(0.7),
        }
    }
}

/// Where greedy selection runs. Both give the reference's tokens; the
/// default is [`AutoGaze::selection_for`]'s rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Read each decoder call's logits and task losses back and select on
    /// the host, stopping at the reference's stop: right for a CPU backend,
    /// where the "readback" is a copy, and wherever a task-loss gate ends
    /// frames early (every skipped decoder call counts).
    Host,
    /// Select on the device and decode the whole budget without a readback,
    /// then read the frame back once (see `select_on_device`): right for a
    /// GPU decoding full budgets. With a task-loss requirement that ends
    /// frames early, the calls past the stop are spent and undone.
    Device,
}

/// `max(1, trunc(f32(ratio) * tokens))`; a ratio outside (0, 1] or NaN is an error.
pub fn max_tokens(ratio: f32, tokens: u32) -> Result<usize> {
    if !(ratio > 0.0 && ratio <= 1.0) {
        return Err(AutoGazeError::setting(
            "gazing ratio",
            ratio,
            "a number in (0, 1]",
        ));
    }
    Ok(((ratio * tokens as f32) as usize).max(1))
}

/// What one frame produced: frame-local ids in generation order (pads hold
/// the pad id) and their pad flags; the same type every mask source emits.
pub type FrameGaze = crate::tokens::GazeTokens;

/// One decoder call, for parity checks and traces.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeStep {
    /// The stream's frame the call belongs to.
    pub frame: usize,
    /// The position id of each row of the call.
    pub positions: Vec<i64>,
    /// `[K * vocab]` raw last-position logits.
    pub logits: Vec<f32>,
    /// `[K]` task-loss predictions.
    pub task_loss: Vec<f32>,
}
