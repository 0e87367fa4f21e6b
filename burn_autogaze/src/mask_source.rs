//! Where a frame's gaze tokens come from: patch-diff (weights-free) or the
//! AutoGaze model, streaming one frame per call. Both emit tokens of the same
//! vocabulary, so everything downstream is shared.

use std::path::PathBuf;
use web_time::Instant;

use crate::error::Result;
use crate::frame::Frame;
use crate::patch_diff::PatchDiff;
use crate::timing::{Stage, StageTimes};
use crate::tokens::GazeTokens;

crate::names::named_enum! {
    /// The mask sources, as named on the command line.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum MaskSourceKind ("mask source") {
        #[default]
        PatchDiff => "patch-diff",
        Autogaze => "autogaze",
    }
}

crate::names::named_enum! {
    /// The Burn backend the model mask source runs on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum ModelBackend ("model backend") {
        /// Burn's CPU backend, on the mask worker's thread.
        #[default]
        Ndarray => "ndarray",
        /// Burn's wgpu backend on the default adapter (a GPU where there is
        /// one): selection on the device without a task-loss requirement.
        Wgpu => "wgpu",
    }
}

/// Settings of the model mask source.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelOptions {
    /// A Hugging Face model directory; none: seeded random weights at the
    /// released model's size (for performance work without weights).
    pub dir: Option<PathBuf>,
    pub gazing_ratio: f32,
    /// Task-loss stop; none decodes the full budget every frame (the worst
    /// case, and the only meaningful setting with random weights, whose task
    /// loss head predicts ~0).
    pub task_loss_requirement: Option<f32>,
    /// Frames of KV cache kept (0: unbounded).
    pub horizon: usize,
    /// AnyRes tile budget: 0 squashes the whole frame to 224 x 224 (the
    /// reference's path); n > 0 covers it with up to n square tiles.
    pub anyres_tiles: usize,
    /// Seed of the random weights.
    pub seed: u64,
    /// Where the model runs.
    #[serde(default)]
    pub backend: ModelBackend,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            dir: None,
            gazing_ratio: 0.75,
            task_loss_requirement: None,
            horizon: 16,
            anyres_tiles: 0,
            seed: 1,
            backend: ModelBackend::Ndarray,
        }
    }
}

#[cfg(any(feature = "ndarray", feature = "wgpu"))]
mod model {
    use burn::tensor::backend::Backend;

    use super::*;
    use crate::mask::Rect;
    use crate::model::{AnyResStream, AutoGaze, AutoGazeConfig, GenerateOptions, StreamState};
    use crate::preprocess::{ModelInput, Preprocessor};

    /// The model on backend `B`, streaming.
    pub struct ModelSource<B: Backend> {
        model: AutoGaze<B>,
        state: StreamState<B>,
        options: GenerateOptions,
        preprocessor: Preprocessor,
        input: ModelInput,
        horizon: usize,
        anyres_tiles: usize,
        anyres: Option<AnyResStream<B>>,
        /// Frame size of the running stream: a new size starts a new clip.
        size: Option<crate::frame::FrameSize>,
    }

    impl<B: Backend> ModelSource<B> {
        pub fn new(options: &ModelOptions, device: &B::Device) -> Result<Self> {
            let (model, preprocessor) = match &options.dir {
                Some(dir) => {
                    let model = AutoGaze::<B>::load(dir, device)?;
                    let pre_path = dir.join("preprocessor_config.json");
                    let cfg = if pre_path.exists() {
                        crate::PreprocessorConfig::from_file(&pre_path)?
                    } else {
                        crate::PreprocessorConfig::default()
                    };
                    let size = model.config().input_size;
                    (model, Preprocessor::new(cfg, size)?)
                }
                None => (
                    AutoGaze::<B>::random(AutoGazeConfig::release(), options.seed, device),
                    Preprocessor::release(),
                ),
            };
            crate::model::max_tokens(options.gazing_ratio, model.config().layout.tokens())?;
            let mut state = model.new_stream();
            state.set_horizon(options.horizon);
            Ok(Self {
                state,
                options: GenerateOptions {
                    gazing_ratio: options.gazing_ratio,
                    task_loss_requirement: options.task_loss_requirement,
                },
                input: ModelInput::new(preprocessor.model_size()),
                preprocessor,
                model,
                horizon: options.horizon,
                anyres_tiles: options.anyres_tiles,
                anyres: None,
                size: None,
            })
        }
    }

    impl<B: Backend> ModelTokens for ModelSource<B> {
        fn tokens_into(
            &mut self,
            frame: &Frame,
            out: &mut GazeTokens,
            tiles: &mut Vec<(Rect, Vec<u32>)>,
            times: &mut StageTimes,
        ) -> Result<()> {
            tiles.clear();
            if self.size != Some(frame.size()) {
                // A new size is a new clip: fresh streams.
                self.state = self.model.new_stream();
                self.state.set_horizon(self.horizon);
                self.anyres = None;
                self.size = Some(frame.size());
            }
            if self.anyres_tiles > 0 {
                if self.anyres.is_none() {
                    self.anyres = Some(AnyResStream::new(
                        &self.model,
                        self.preprocessor.clone(),
                        frame.size(),
                        self.anyres_tiles,
                        self.horizon,
                    )?);
                }
                let t = Instant::now();
                if let Some(anyres) = self.anyres.as_mut() {
                    let gaze = anyres.step(&self.model, frame, &self.options)?;
                    anyres.tile_tokens(&gaze, tiles);
                }
                out.clear();
                for (_, ids) in tiles.iter() {
                    for &id in ids {
                        out.push(id);
                    }
                }
                // Each tile's preprocessing runs inside this stage.
                times.add(Stage::MaskSource, t.elapsed());
                return Ok(());
            }
            let t = Instant::now();
            self.preprocessor
                .clip_into(std::slice::from_ref(frame), &mut self.input)?;
            times.add(Stage::Preprocess, t.elapsed());
            let t = Instant::now();
            let gaze = self
                .model
                .step_input(&mut self.state, &self.input, &self.options)?;
            out.clear();
            for id in gaze.valid() {
                out.push(id);
            }
            times.add(Stage::MaskSource, t.elapsed());
            Ok(())
        }
    }
}

/// The model mask source on one backend: a frame's tokens (AnyRes also
/// fills each tile's rectangle and tokens).
pub trait ModelTokens: Send {
    fn tokens_into(
        &mut self,
        frame: &Frame,
        out: &mut GazeTokens,
        tiles: &mut Vec<(crate::mask::Rect, Vec<u32>)>,
        times: &mut StageTimes,
    ) -> Result<()>;
}

/// The model on the backend `options` names, or an error naming the build
/// feature it needs.
fn model_source(options: &ModelOptions) -> Result<Box<dyn ModelTokens>> {
    #[cfg(not(all(feature = "ndarray", feature = "wgpu")))]
    let missing = |feature: &str| {
        crate::error::AutoGazeError::setting(
            "model backend",
            options.backend.as_str(),
            format!("a build with the `{feature}` feature"),
        )
    };
    match options.backend {
        #[cfg(feature = "ndarray")]
        ModelBackend::Ndarray => Ok(Box::new(
            model::ModelSource::<burn::backend::NdArray<f32>>::new(options, &Default::default())?,
        )),
        #[cfg(not(feature = "ndarray"))]
        ModelBackend::Ndarray => Err(missing("ndarray")),
        #[cfg(feature = "wgpu")]
        ModelBackend::Wgpu => Ok(Box::new(model::ModelSource::<burn::backend::Wgpu>::new(
            options,
            &Default::default(),
        )?)),
        #[cfg(not(feature = "wgpu"))]
        ModelBackend::Wgpu => Err(missing("wgpu")),
    }
}

/// A mask source, ready to run.
pub enum MaskSource {
    PatchDiff(PatchDiff),
    Autogaze(Box<dyn ModelTokens>),
}

impl MaskSource {
    /// Builds the source `kind` names.
    pub fn new(kind: MaskSourceKind, patch_diff: PatchDiff, model: &ModelOptions) -> Result<Self> {
        match kind {
            MaskSourceKind::PatchDiff => Ok(Self::PatchDiff(patch_diff)),
            MaskSourceKind::Autogaze => Ok(Self::Autogaze(model_source(model)?)),
        }
    }

    /// Tokens for `frame`; `reference` is the last composed output. AnyRes
    /// also fills `tiles` (each tile's source rectangle and tokens); it is
    /// left empty when the tokens describe the whole frame.
    pub fn tokens_into(
        &mut self,
        frame: &Frame,
        reference: Option<&[u8]>,
        out: &mut GazeTokens,
        tiles: &mut Vec<(crate::mask::Rect, Vec<u32>)>,
        times: &mut StageTimes,
    ) -> Result<()> {
        match self {
            Self::PatchDiff(pd) => {
                tiles.clear();
                let t = Instant::now();
                pd.tokens_into(frame, reference, out);
                times.add(Stage::MaskSource, t.elapsed());
                Ok(())
            }
            Self::Autogaze(m) => m.tokens_into(frame, out, tiles, times),
        }
    }
}
