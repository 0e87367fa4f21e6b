//! The main-world systems that drive the core pipeline: apply settings, pull
//! (or take a pushed) frame through the pipeline, stage the display uploads.
//! Every computation is the core's; this file only schedules it.

use std::sync::Mutex;
use std::time::Instant;

use bevy::prelude::*;
use burn_autogaze::mask::render_panel;
use burn_autogaze::pipeline::{FramePipeline, StepReport};
use burn_autogaze::timing::Stage;

use crate::display::{AutoGazeImages, UploadQueue, display_image};
use crate::feed::HostFrames;
use crate::metrics::AutoGazeMetrics;
use crate::settings::{AutoGazeSettings, FrameFeed};

/// The running pipeline and what the current update produced.
#[derive(Resource, Default)]
pub struct AutoGazeRuntime {
    // The pipeline is `Send` but not `Sync` (its worker's result channel);
    // systems reach it through `get_mut`, which never locks.
    pipeline: Mutex<Option<FramePipeline>>,
    applied: Option<AutoGazeSettings>,
    /// The report of a frame stepped in this update, until recorded.
    pub(crate) report: Option<StepReport>,
    /// A setup error that stops the pipeline until the settings change
    /// (bad model directory, missing image file).
    pub(crate) setup_error: Option<String>,
}

impl AutoGazeRuntime {
    /// The pipeline, once built.
    pub fn pipeline(&mut self) -> Option<&mut FramePipeline> {
        self.pipeline
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
    }

    /// The error that keeps the pipeline from running, if any.
    pub fn setup_error(&self) -> Option<&str> {
        self.setup_error.as_deref()
    }
}

/// Builds the pipeline on the first frame and after a change that needs it;
/// applies live settings otherwise.
pub(crate) fn apply_settings(
    settings: Res<AutoGazeSettings>,
    mut runtime: ResMut<AutoGazeRuntime>,
    mut metrics: ResMut<AutoGazeMetrics>,
) {
    let rebuild = match &runtime.applied {
        None => true,
        Some(applied) => applied.needs_rebuild(&settings),
    };
    if !rebuild && runtime.applied.as_ref() == Some(&*settings) {
        return;
    }
    if rebuild {
        let built = match settings.feed {
            FrameFeed::Source => FramePipeline::new(&settings.pipeline),
            FrameFeed::Host => FramePipeline::fed(&settings.pipeline),
        };
        match built {
            Ok(p) => {
                *runtime
                    .pipeline
                    .get_mut()
                    .unwrap_or_else(|p| p.into_inner()) = Some(p);
                runtime.setup_error = None;
            }
            Err(e) => {
                let message = format!("pipeline setup: {e}");
                eprintln!("bevy_burn_autogaze: {message}");
                metrics.record_error(message.clone());
                *runtime
                    .pipeline
                    .get_mut()
                    .unwrap_or_else(|p| p.into_inner()) = None;
                runtime.setup_error = Some(message);
            }
        }
    }
    let measure_psnr = settings.psnr && (settings.overlay || metrics.recording());
    if let Some(p) = runtime.pipeline() {
        p.set_geometry(settings.pipeline.geometry);
        let mut compositor = settings.pipeline.compositor;
        compositor.measure_psnr |= measure_psnr;
        *p.compositor_options_mut() = compositor;
    }
    runtime.applied = Some(settings.clone());
}

/// Pulls a frame from the source (or takes the newest pushed one) through
/// the pipeline. A failure is reported and counted; the app keeps running.
pub(crate) fn step_pipeline(
    settings: Res<AutoGazeSettings>,
    host: Res<HostFrames>,
    mut runtime: ResMut<AutoGazeRuntime>,
    mut metrics: ResMut<AutoGazeMetrics>,
) {
    runtime.report = None;
    if settings.paused {
        return;
    }
    let Some(pipeline) = runtime.pipeline() else {
        return;
    };
    let result = match settings.feed {
        FrameFeed::Source => pipeline.step(),
        FrameFeed::Host => match host.take() {
            Some(frame) => pipeline.push(frame),
            None => return,
        },
    };
    if let Some((seq, message)) = pipeline.take_mask_error() {
        let message = format!("mask inference on frame {seq}: {message}");
        eprintln!("bevy_burn_autogaze: {message}");
        metrics.record_error(message);
    }
    match result {
        Ok(report) => runtime.report = Some(report),
        Err(e) => {
            let message = format!("frame: {e}");
            eprintln!("bevy_burn_autogaze: {message}");
            metrics.record_error(message);
        }
    }
}

/// Stages this frame's uploads: the output's dirty regions, the input frame
/// and the mask panel (when shown). A new frame size replaces the images'
/// assets (same handles) with their full content instead.
pub(crate) fn stage_display(
    settings: Res<AutoGazeSettings>,
    mut runtime: ResMut<AutoGazeRuntime>,
    mut handles: ResMut<AutoGazeImages>,
    mut images: ResMut<Assets<Image>>,
    queue: Res<UploadQueue>,
    mut metrics: ResMut<AutoGazeMetrics>,
) {
    if runtime.report.is_none() {
        return;
    }
    let Some(pipeline) = runtime.pipeline() else {
        return;
    };
    let Some(frame) = pipeline.current_frame().cloned() else {
        return;
    };
    let t = Instant::now();
    let size = frame.size();
    if handles.size != Some(size) {
        let mut panel = vec![0u8; size.rgba_len()];
        if let Err(e) = render_panel(&frame, pipeline.plan(), &mut panel) {
            metrics.record_error(format!("mask panel: {e}"));
        }
        let new = [
            (handles.input.id(), frame.rgba().to_vec()),
            (handles.mask.id(), panel),
            (handles.output.id(), pipeline.output().to_vec()),
        ];
        for (id, data) in new {
            if let Err(e) = images.insert(id, display_image(size, data)) {
                metrics.record_error(format!("display image: {e}"));
            }
        }
        handles.size = Some(size);
    } else if queue.enabled() {
        let cost = queue.cost();
        let mut staged = queue.spare();
        let dirty = pipeline.compositor().dirty_regions();
        if staged.stage(pipeline.output(), size, dirty, &cost) {
            queue.push_staged(handles.output.id(), staged, true);
        } else {
            queue.give_back(staged);
        }
        if settings.show_input {
            queue.push_frame(handles.input.id(), frame.clone());
        }
        if settings.show_mask {
            let mut staged = queue.spare();
            let plan = pipeline.plan();
            match staged.stage_full_with(size, |buf| render_panel(&frame, plan, buf)) {
                Ok(()) => queue.push_staged(handles.mask.id(), staged, false),
                Err(e) => {
                    queue.give_back(staged);
                    metrics.record_error(format!("mask panel: {e}"));
                }
            }
        }
    }
    metrics.add_stage(Stage::DisplayTransfer, t.elapsed());
}
