//! Bevy's render device failing. Bevy's default [`RenderErrorHandler`]
//! quits the app on any render error; the plugin's keeps it running on a
//! lost device or an out-of-memory error: the fault is reported (failure
//! message, overlay, summary), the model runs on the host (on Bevy's device
//! it fails and hands over, see [`burn_autogaze::device_fault`]) and the host
//! composes. A lost device stops rendering (nothing can draw on it); after an
//! out-of-memory error rendering goes on. A validation or internal error is a
//! bug, and quits as Bevy's default does.
//!
//! An app with a handler of its own inserts it after adding the plugin.

use bevy::prelude::*;
use bevy::render::error_handler::{ErrorType, RenderError, RenderErrorPolicy};
use burn_autogaze::device_fault::{DeviceFault, FaultKind};

use crate::metrics::AutoGazeMetrics;
use crate::runtime::AutoGazeRuntime;

/// Polls of a render error that is not (yet) a lost device.
#[derive(Resource, Default)]
struct ErrorPolls(u32);

/// Polls (one a frame) before a validation or internal error quits the app.
const QUIT_AFTER_POLLS: u32 = 3;

/// The plugin's render error handler (see the module docs).
pub(crate) fn on_render_error(
    error: &RenderError,
    main: &mut World,
    _render: &mut World,
) -> RenderErrorPolicy {
    let kind = match error.ty {
        ErrorType::DeviceLost => FaultKind::Lost,
        ErrorType::OutOfMemory => FaultKind::OutOfMemory,
        _ => {
            // A lost device first shows as validation errors (its buffers
            // are invalid); wgpu's lost callback, which takes precedence,
            // comes a poll or two later. Quit only when it does not.
            let polls = main.get_resource_or_init::<ErrorPolls>().into_inner();
            polls.0 += 1;
            if polls.0 == QUIT_AFTER_POLLS {
                eprintln!(
                    "bevy_burn_autogaze: quitting on a {:?} render error: {}",
                    error.ty, error.description
                );
                main.write_message(AppExit::error());
            }
            return RenderErrorPolicy::StopRendering;
        }
    };
    let policy = match kind {
        FaultKind::Lost => RenderErrorPolicy::StopRendering,
        _ => RenderErrorPolicy::Ignore,
    };
    let report = format!(
        "Bevy's render device: {kind} ({})",
        error.description.trim()
    );
    let bevy_device = main
        .get_resource::<crate::BurnDevice>()
        .map(|d| format!("{:?}", d.0));
    main.resource_scope(|main, mut runtime: Mut<AutoGazeRuntime>| {
        let reported = runtime.device_failed.is_some();
        let Some(pipeline) = runtime.pipeline() else {
            return;
        };
        // The model on Bevy's device fails on its next call and hands over
        // to the host, naming this report (or, failed already, takes its
        // kind); any other mask source is told here, once (stopped
        // rendering asks again every frame).
        pipeline.fault_watch().report(kind, report.clone());
        let model_here = bevy_device.is_some()
            && pipeline.mask_source_device().map(str::to_string) == bevy_device;
        if model_here || reported || pipeline.device_fault().is_some() {
            return;
        }
        let fault = DeviceFault {
            kind,
            seq: pipeline.current_frame().map_or(0, |f| f.seq),
            message: report,
            fallback: Some(
                pipeline
                    .mask_source_device()
                    .unwrap_or("the host")
                    .to_string(),
            ),
        };
        let mut metrics = main.resource_mut::<AutoGazeMetrics>();
        crate::driver::note_device_fault(&mut runtime, &mut metrics, fault);
    });
    policy
}
