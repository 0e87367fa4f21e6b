//! bevy_burn_autogaze: a thin Bevy plugin around `burn_autogaze`.
//!
//! `App::new().add_plugins((DefaultPlugins, AutoGazePlugin::new(settings)))`
//! runs the core pipeline every frame (inference on a worker thread), keeps
//! three images up to date (input, mask panel, composed output: see
//! [`AutoGazeImages`]) by writing only what changed into their textures, and
//! shows a stage-timing overlay (F12). Every computation is the core's.
//!
//! Game logic reads each processed frame as an [`AutoGazeFrame`] message
//! (tokens with their pixel rectangles, gaze ratio, dispatch path, stage
//! times), failures as [`AutoGazeFailure`] messages, and the newest of both
//! from the [`AutoGazeLatest`] resource. A host's own mask source (any
//! [`MaskSource`](burn_autogaze::mask_source::MaskSource)) plugs in through
//! [`AutoGazeSettings::custom_mask_source`].
//!
//! Features: `overlay` (default) is the egui metrics overlay; `viewer`
//! (default) is the viewer binary's modules (command line, window and
//! headless modes, perf recording, the web entry), with clap and winit. A
//! library user with `default-features = false` gets neither.
#![warn(missing_docs)]

pub mod alloc_count;
pub mod burn_bridge;
#[cfg(feature = "viewer")]
pub mod cli;
mod compute_pass;
mod device_errors;
mod display;
mod driver;
mod feed;
mod gpu_timing;
#[cfg(feature = "viewer")]
pub mod headless;
mod lend_pass;
mod messages;
mod metrics;
#[cfg(feature = "overlay")]
mod overlay;
mod panel_pass;
mod psnr_pass;
#[cfg(feature = "viewer")]
pub mod recording;
mod results;
mod runtime;
mod settings;
#[cfg(feature = "viewer")]
pub mod viewer;
#[cfg(all(feature = "viewer", target_arch = "wasm32"))]
pub mod web;

use bevy::prelude::*;
use bevy::render::{Render, RenderApp, RenderSystems};

pub use burn_bridge::{BurnDevice, TensorCopies, TensorCopy, TensorLayout, TexelMap, tensor_image};
pub use display::{AutoGazeImages, UploadQueue, UploadTotals};
pub use feed::{HostFeedCounters, HostFrames};
pub use messages::{AutoGazeFailure, AutoGazeFailureKind, AutoGazeFrame, AutoGazeLatest};
pub use metrics::{
    AutoGazeMetrics, FrameRecord, LONG_WINDOW, MetricsSnapshot, SHORT_WINDOW, StageWindow,
    residency,
};
#[cfg(feature = "overlay")]
pub use overlay::{OVERLAY_WIDTH, OverlayExportPath};
pub use runtime::AutoGazeRuntime;
pub use settings::{AutoGazeSettings, CustomMaskSource, DisplayTransfer, FrameFeed};

/// The plugin's system sets, in `Update` (`Step`) and `Last` (`Record`,
/// then `Publish`).
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum AutoGazeSystems {
    /// Settings, pipeline step, upload staging.
    Step,
    /// Per-frame metrics.
    Record,
    /// The [`AutoGazeFrame`] and [`AutoGazeFailure`] messages and
    /// [`AutoGazeLatest`]: a host system in `Last` that reads this frame's
    /// message runs after it.
    Publish,
}

/// The adapter Bevy renders with (empty without a renderer).
#[derive(Resource, Debug, Clone, Default, serde::Serialize)]
pub struct AdapterSummary {
    /// The adapter's name.
    pub name: String,
    /// The graphics API (vulkan, metal, dx12, gl, ...).
    pub backend: String,
    /// Discrete, integrated, virtual or CPU.
    pub device_type: String,
}

/// The plugin. Settings become the [`AutoGazeSettings`] resource.
pub struct AutoGazePlugin {
    settings: AutoGazeSettings,
    // Read only with the `overlay` feature.
    #[cfg_attr(not(feature = "overlay"), allow(dead_code))]
    overlay: bool,
}

impl AutoGazePlugin {
    /// The plugin with these settings (and the overlay, when built with it).
    pub fn new(settings: AutoGazeSettings) -> Self {
        Self {
            settings,
            overlay: true,
        }
    }

    /// Leaves out the egui overlay (and `EguiPlugin`), e.g. under
    /// `MinimalPlugins` or in an app with its own UI. Without the `overlay`
    /// feature there is none to leave out.
    pub fn without_overlay(mut self) -> Self {
        self.overlay = false;
        self
    }
}

impl Plugin for AutoGazePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.settings.clone())
            // A lost render device is reported, not a reason to quit (an
            // app's own handler, inserted after the plugin, wins).
            .insert_resource(bevy::render::error_handler::RenderErrorHandler(
                device_errors::on_render_error,
            ))
            .init_resource::<HostFrames>()
            .init_resource::<UploadQueue>()
            .init_resource::<AutoGazeRuntime>()
            .init_resource::<AutoGazeLatest>()
            .add_message::<AutoGazeFrame>()
            .add_message::<AutoGazeFailure>()
            .init_resource::<driver::DisplayState>()
            .init_resource::<AutoGazeMetrics>()
            .init_resource::<AdapterSummary>()
            .init_resource::<TensorCopies>()
            .configure_sets(Update, AutoGazeSystems::Step)
            .configure_sets(
                Last,
                (AutoGazeSystems::Record, AutoGazeSystems::Publish).chain(),
            )
            .add_systems(
                Update,
                (
                    driver::apply_settings,
                    driver::step_pipeline,
                    driver::stage_display,
                    driver::stage_model_input,
                )
                    .chain()
                    .in_set(AutoGazeSystems::Step),
            )
            .add_systems(Last, metrics::finish_frame.in_set(AutoGazeSystems::Record))
            .add_systems(Last, results::publish.in_set(AutoGazeSystems::Publish));
        #[cfg(feature = "overlay")]
        if self.overlay {
            app.add_plugins(overlay::OverlayPlugin).add_systems(
                Update,
                overlay::toggle_overlay
                    .in_set(AutoGazeSystems::Step)
                    .before(driver::apply_settings),
            );
        }
    }

    fn finish(&self, app: &mut App) {
        let images = {
            let mut assets = app.world_mut().resource_mut::<Assets<Image>>();
            AutoGazeImages::new(&mut assets)
        };
        app.insert_resource(images);
        let queue = app.world().resource::<UploadQueue>().clone();
        let copies = app.world().resource::<TensorCopies>().clone();
        let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
            // No renderer (MinimalPlugins, or no GPU): nothing is uploaded.
            return;
        };
        queue.enable();
        let adapter = render_app
            .world()
            .get_resource::<bevy::render::renderer::RenderAdapterInfo>()
            .map(|info| AdapterSummary {
                name: info.name.clone(),
                backend: format!("{:?}", info.backend).to_lowercase(),
                device_type: format!("{:?}", info.device_type).to_lowercase(),
            })
            .unwrap_or_default();
        // Burn on Bevy's own device (cheap: no kernel is compiled until a
        // tensor op runs), and the tensor-to-texture pass.
        let burn = BurnDevice::from_render_world(render_app.world());
        render_app
            .insert_resource(queue)
            .init_resource::<display::RenderClock>()
            .add_systems(
                Render,
                (
                    display::render_begin.before(RenderSystems::ExtractCommands),
                    display::write_uploads.in_set(RenderSystems::PrepareResources),
                    display::render_end.after(RenderSystems::Render),
                ),
            );
        burn_bridge::add_render_systems(render_app, copies);
        if let Some(device) = burn {
            app.insert_resource(device);
        }
        app.insert_resource(adapter);
    }
}

/// The workspace README's code blocks (the plugin and pipeline examples),
/// compiled and run as this crate's doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "viewer"))]
mod viewer_tests;
