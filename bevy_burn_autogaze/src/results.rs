//! Publishes each processed frame as an [`AutoGazeFrame`] message and each
//! failure as an [`AutoGazeFailure`], and keeps [`AutoGazeLatest`] current.
//! Everything comes from what the pipeline and the metrics already hold:
//! the only per-frame allocation is the message's token list (collected
//! once, shared with the resource).

use std::sync::Arc;

use bevy::prelude::*;
use burn_autogaze::mask_source::TokenRect;

use crate::messages::{AutoGazeFailure, AutoGazeFrame, AutoGazeLatest};
use crate::metrics::AutoGazeMetrics;
use crate::runtime::AutoGazeRuntime;

/// Last, after the metrics: the frame recorded in this update (if any) and
/// the failures since the previous update.
pub(crate) fn publish(
    mut runtime: ResMut<AutoGazeRuntime>,
    mut metrics: ResMut<AutoGazeMetrics>,
    mut latest: ResMut<AutoGazeLatest>,
    mut frames: MessageWriter<AutoGazeFrame>,
    mut failures: MessageWriter<AutoGazeFailure>,
) {
    let metrics = &mut *metrics;
    for failure in metrics.unpublished.drain(..) {
        latest.failures += 1;
        latest.failure = Some(failure.clone());
        failures.write(failure);
    }
    if !std::mem::take(&mut metrics.fresh) {
        return;
    }
    let (Some(last), Some(pipeline)) = (metrics.last, runtime.pipeline()) else {
        return;
    };
    let Some(size) = pipeline.current_frame().map(|f| f.size()) else {
        return;
    };
    let tokens: Arc<[TokenRect]> = pipeline.token_rects().collect();
    let report = last.report;
    let message = AutoGazeFrame {
        seq: report.seq,
        mask_seq: report.mask_seq,
        size,
        tokens,
        gaze_ratio: report.compose.coverage,
        keyframe: report.compose.keyframe,
        path: report.compose.path,
        transfer: last.transfer,
        times: report.times,
    };
    latest.frames += 1;
    latest.frame = Some(message.clone());
    frames.write(message);
}
