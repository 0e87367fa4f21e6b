//! The plugin's settings: one resource the host app may change at runtime.

use bevy::prelude::*;
use burn_autogaze::pipeline::PipelineOptions;
use serde::{Deserialize, Serialize};

/// How composed frames reach the display texture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DisplayTransfer {
    /// Host RGBA -> dirty-region `queue.write_texture` calls from the render
    /// world (one whole write when the learned upload cost says so).
    Cpu,
    /// The output is composed on the device: the frame goes up once (into
    /// the input texture) and each dirty region is a texture-to-texture
    /// copy; no output bytes cross from the host.
    Gpu,
    /// Per frame, whichever the measured costs predict cheaper.
    #[default]
    Auto,
}

impl DisplayTransfer {
    pub const ALL: [DisplayTransfer; 3] = [
        DisplayTransfer::Cpu,
        DisplayTransfer::Gpu,
        DisplayTransfer::Auto,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DisplayTransfer::Cpu => "cpu",
            DisplayTransfer::Gpu => "gpu",
            DisplayTransfer::Auto => "auto",
        }
    }
}

impl std::fmt::Display for DisplayTransfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DisplayTransfer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "display transfer {s:?}: expected one of {}",
                    Self::ALL.map(|d| d.as_str()).join(", ")
                )
            })
    }
}

/// Where frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrameFeed {
    /// The core source named in [`PipelineOptions::source`].
    #[default]
    Source,
    /// Frames pushed by the host app through [`crate::HostFrames`] (a camera
    /// crate, a decoder); the newest pushed frame wins.
    Host,
}

/// Everything the plugin does, as a resource. Geometry, dispatch, keyframe
/// and PSNR settings and the overlay apply from the next frame; a change of
/// source, feed or mask source rebuilds the pipeline.
#[derive(Resource, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoGazeSettings {
    pub pipeline: PipelineOptions,
    pub feed: FrameFeed,
    pub display_transfer: DisplayTransfer,
    /// Output-vs-input PSNR, computed only while the overlay shows it or a
    /// perf summary is being recorded.
    pub psnr: bool,
    /// The metrics overlay (F12 toggles it).
    pub overlay: bool,
    /// Upload the input and mask panels (the output is always uploaded).
    pub show_input: bool,
    pub show_mask: bool,
    /// The mask panel is drawn at 1/`mask_panel_scale` of the frame size
    /// (it is shown smaller than the frame; 2 uploads a quarter of the
    /// bytes). The output is always full size.
    pub mask_panel_scale: u32,
    /// The input panel likewise (1: the frame itself, which then also serves
    /// as the GPU transfer's copy source).
    pub input_panel_scale: u32,
    /// Show the model input (what the model sees: the preprocessed
    /// 224 x 224 frame) in the `model_input` image, through a Burn tensor on
    /// Bevy's device and the tensor-to-texture pass. Needs
    /// `pipeline.preprocess`.
    #[serde(default)]
    pub show_model_input: bool,
    /// Stop pulling frames (the display keeps the last one).
    pub paused: bool,
}

impl Default for AutoGazeSettings {
    fn default() -> Self {
        Self {
            pipeline: PipelineOptions {
                // Inference never runs on the main thread.
                decoupled: true,
                ..PipelineOptions::default()
            },
            feed: FrameFeed::Source,
            display_transfer: DisplayTransfer::Auto,
            psnr: true,
            overlay: true,
            show_input: true,
            show_mask: true,
            mask_panel_scale: 2,
            input_panel_scale: 2,
            show_model_input: false,
            paused: false,
        }
    }
}

impl AutoGazeSettings {
    /// True when going from `self` to `next` needs a new pipeline (anything
    /// but the live-changeable geometry and compositor settings).
    pub fn needs_rebuild(&self, next: &AutoGazeSettings) -> bool {
        let mut a = self.pipeline.clone();
        let mut b = next.pipeline.clone();
        a.geometry = b.geometry;
        a.compositor = b.compositor;
        b.geometry = a.geometry;
        a != b || self.feed != next.feed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_autogaze::mask::MaskGeometry;
    use burn_autogaze::mask_source::MaskSourceKind;

    #[test]
    fn live_settings_do_not_rebuild_and_the_rest_does() {
        let a = AutoGazeSettings::default();
        let mut b = a.clone();
        b.pipeline.geometry = MaskGeometry::Native;
        b.pipeline.compositor.keyframe_period = 30;
        b.overlay = false;
        assert!(!a.needs_rebuild(&b));
        b.pipeline.mask_source = MaskSourceKind::Autogaze;
        assert!(a.needs_rebuild(&b));
        let mut c = a.clone();
        c.feed = FrameFeed::Host;
        assert!(a.needs_rebuild(&c));
        assert!("gpu2".parse::<DisplayTransfer>().is_err());
        assert_eq!("cpu".parse::<DisplayTransfer>(), Ok(DisplayTransfer::Cpu));
    }
}
