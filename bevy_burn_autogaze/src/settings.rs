//! The plugin's settings: one resource the host app may change at runtime.

use std::sync::Arc;

use bevy::prelude::*;
use burn_autogaze::mask_source::MaskSource;
use burn_autogaze::pipeline::PipelineOptions;
use serde::{Deserialize, Serialize};

burn_autogaze::named_enum! {
    /// How composed frames reach the display texture.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum DisplayTransfer ("display transfer") {
        /// Host RGBA -> dirty-region `queue.write_texture` calls from the
        /// render world (one whole write when the learned upload cost says so).
        Cpu => "cpu",
        /// The output is composed on the device: the frame goes up once (into
        /// the input texture) and each dirty region is a texture-to-texture
        /// copy; no output bytes cross from the host.
        Gpu => "gpu",
        /// Per frame, whichever the measured costs predict cheaper.
        #[default]
        Auto => "auto",
    }
}

/// A host's own mask source for the plugin: a named factory the plugin calls
/// at each pipeline (re)build, so a rebuilt pipeline starts a fresh source.
/// It replaces `pipeline.mask_source`; decoupled or not as the pipeline
/// options say (the source then runs on the mask worker thread).
///
/// Two values are equal when they are clones of one another (the same
/// factory), so changing the settings to another source rebuilds.
#[derive(Clone)]
pub struct CustomMaskSource {
    name: String,
    factory: Arc<dyn Fn() -> Box<dyn MaskSource> + Send + Sync>,
}

impl CustomMaskSource {
    /// A source named `name` (shown in the metrics) made by `factory`.
    pub fn new<S: MaskSource + 'static>(
        name: impl Into<String>,
        factory: impl Fn() -> S + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            factory: Arc::new(move || Box::new(factory()) as Box<dyn MaskSource>),
        }
    }

    /// The name given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A fresh source from the factory.
    pub fn build(&self) -> Box<dyn MaskSource> {
        (self.factory)()
    }
}

impl PartialEq for CustomMaskSource {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.factory, &other.factory)
    }
}

impl std::fmt::Debug for CustomMaskSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CustomMaskSource").field(&self.name).finish()
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
    /// The core pipeline: source, mask source, geometry, compositor,
    /// decoupled inference, pacing.
    pub pipeline: PipelineOptions,
    /// The host's own mask source, in place of `pipeline.mask_source` (not
    /// serialized: a summary's config names the built-in one).
    #[serde(skip)]
    pub custom_mask_source: Option<CustomMaskSource>,
    /// Where frames come from.
    pub feed: FrameFeed,
    /// How composed frames reach the display texture.
    pub display_transfer: DisplayTransfer,
    /// Output-vs-input PSNR, computed only while the overlay shows it or a
    /// perf summary is being recorded.
    pub psnr: bool,
    /// The metrics overlay (F12 toggles it).
    pub overlay: bool,
    /// Upload the input and mask panels (the output is always uploaded).
    pub show_input: bool,
    /// Upload the mask panel.
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
    /// When the composed output is a whole copy of the frame (a keyframe,
    /// a full update) and the input panel is drawn scaled from the host
    /// (the CPU transfer), the input panel is not made or uploaded that
    /// frame: [`AutoGazeImages::input_view`](crate::AutoGazeImages::input_view)
    /// names the output image, which holds the frame, for the input panel
    /// instead. Off by default: a host showing `AutoGazeImages::input`
    /// itself must follow `input_view` first (the viewer does).
    #[serde(default)]
    pub input_from_output: bool,
}

impl Default for AutoGazeSettings {
    fn default() -> Self {
        Self {
            pipeline: PipelineOptions {
                // Inference never runs on the main thread.
                decoupled: true,
                ..PipelineOptions::default()
            },
            custom_mask_source: None,
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
            input_from_output: false,
        }
    }
}

impl AutoGazeSettings {
    /// Whether the device alone composes the output with `compositor` (the
    /// settings as applied), the host compositor only deciding the dirty
    /// regions: the GPU transfer (forced: `auto` may pick the host's bytes
    /// any frame), a mask source that never reads the host output (the
    /// model; patch-diff compares each frame with it, and a host app's own
    /// source may), no PSNR floor (a host refresh), and PSNR, when
    /// measured, measured on the device (`compute`: the renderer runs
    /// compute shaders).
    pub fn device_composes(
        &self,
        compositor: &burn_autogaze::interframe::CompositorOptions,
        compute: bool,
    ) -> bool {
        self.display_transfer == DisplayTransfer::Gpu
            && self.pipeline.mask_source == burn_autogaze::mask_source::MaskSourceKind::Autogaze
            && self.custom_mask_source.is_none()
            && (compute || !compositor.measure_psnr)
            && compositor.psnr_floor.is_none()
    }

    /// True when going from `self` to `next` needs a new pipeline (anything
    /// but the live-changeable geometry and compositor settings).
    pub fn needs_rebuild(&self, next: &AutoGazeSettings) -> bool {
        let mut a = self.pipeline.clone();
        let mut b = next.pipeline.clone();
        a.geometry = b.geometry;
        a.compositor = b.compositor;
        b.geometry = a.geometry;
        a != b || self.feed != next.feed || self.custom_mask_source != next.custom_mask_source
    }

    /// The mask source's name: the custom one's, else the built-in kind's.
    pub fn mask_source_name(&self) -> &str {
        match &self.custom_mask_source {
            Some(custom) => custom.name(),
            None => self.pipeline.mask_source.as_str(),
        }
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
        let err = "gpu2".parse::<DisplayTransfer>().unwrap_err().to_string();
        assert!(err.contains("cpu, gpu, auto"), "{err}");
        assert_eq!(
            "cpu".parse::<DisplayTransfer>().ok(),
            Some(DisplayTransfer::Cpu)
        );
        assert_eq!(DisplayTransfer::Gpu.to_string(), "gpu");
        // A custom mask source rebuilds when it is set or replaced, not when
        // a clone of the same one is set again.
        let custom = CustomMaskSource::new("none", || {
            burn_autogaze::patch_diff::PatchDiff::new(
                burn_autogaze::tokens::TokenLayout::release(),
                Default::default(),
            )
            .unwrap()
        });
        let mut d = a.clone();
        d.custom_mask_source = Some(custom.clone());
        assert!(a.needs_rebuild(&d));
        assert_eq!(d.mask_source_name(), "none");
        let mut e = d.clone();
        e.custom_mask_source = Some(custom);
        assert!(!d.needs_rebuild(&e));
    }
}
