//! bevy_burn_autogaze: a thin Bevy plugin around `burn_autogaze`.
//!
//! `App::new().add_plugins((DefaultPlugins, AutoGazePlugin::new(settings)))`
//! runs the core pipeline every frame (inference on a worker thread), keeps
//! three images up to date (input, mask panel, composed output: see
//! [`AutoGazeImages`]) by writing only what changed into their textures, and
//! shows a stage-timing overlay (F12). Every computation is the core's.

pub mod burn_bridge;
pub mod cli;
mod display;
mod driver;
mod feed;
pub mod headless;
mod metrics;
mod overlay;
pub mod recording;
mod settings;
pub mod viewer;
#[cfg(target_arch = "wasm32")]
pub mod web;

use bevy::prelude::*;
use bevy::render::{Render, RenderApp, RenderSystems};

pub use burn_bridge::{BurnDevice, TensorCopies, TensorCopy, TensorLayout, TexelMap, tensor_image};
pub use display::{AutoGazeImages, UploadQueue, UploadTotals};
pub use driver::AutoGazeRuntime;
pub use feed::{HostFeedCounters, HostFrames};
pub use metrics::{AutoGazeMetrics, FrameRecord, MetricsSnapshot, residency};
pub use overlay::{OVERLAY_WIDTH, OverlayExportPath};
pub use settings::{AutoGazeSettings, DisplayTransfer, FrameFeed};

/// The plugin's system sets, in `Update` (`Step`) and `Last` (`Record`).
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum AutoGazeSystems {
    /// Settings, pipeline step, upload staging.
    Step,
    /// Per-frame metrics.
    Record,
}

/// The adapter Bevy renders with (empty without a renderer).
#[derive(Resource, Debug, Clone, Default, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
}

/// The plugin. Settings become the [`AutoGazeSettings`] resource.
pub struct AutoGazePlugin {
    settings: AutoGazeSettings,
    overlay: bool,
}

impl AutoGazePlugin {
    pub fn new(settings: AutoGazeSettings) -> Self {
        Self {
            settings,
            overlay: true,
        }
    }

    /// Leaves out the egui overlay (and `EguiPlugin`), e.g. under
    /// `MinimalPlugins` or in an app with its own UI.
    pub fn without_overlay(mut self) -> Self {
        self.overlay = false;
        self
    }
}

impl Plugin for AutoGazePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.settings.clone())
            .init_resource::<HostFrames>()
            .init_resource::<UploadQueue>()
            .init_resource::<AutoGazeRuntime>()
            .init_resource::<driver::DisplayState>()
            .init_resource::<AutoGazeMetrics>()
            .init_resource::<AdapterSummary>()
            .init_resource::<TensorCopies>()
            .configure_sets(Update, AutoGazeSystems::Step)
            .configure_sets(Last, AutoGazeSystems::Record)
            .add_systems(
                Update,
                (
                    overlay::toggle_overlay,
                    driver::apply_settings,
                    driver::step_pipeline,
                    driver::stage_display,
                    driver::stage_model_input,
                )
                    .chain()
                    .in_set(AutoGazeSystems::Step),
            )
            .add_systems(Last, metrics::finish_frame.in_set(AutoGazeSystems::Record));
        if self.overlay {
            app.add_plugins(overlay::OverlayPlugin);
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

#[cfg(test)]
mod tests;
