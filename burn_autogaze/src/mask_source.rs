//! Where a frame's gaze tokens come from: patch-diff (weights-free), the
//! AutoGaze model, or a host's own [`MaskSource`] (e.g. a detector's boxes as
//! cells), streaming one frame per call. All emit tokens of the same
//! vocabulary, so everything downstream is shared.

use std::path::PathBuf;
use web_time::Instant;

use crate::error::Result;
use crate::frame::{Frame, FrameSize};
use crate::mask::{Rect, cell_rect};
use crate::patch_diff::{PatchDiff, PatchDiffOptions};
use crate::timing::{Stage, StageTimes};
use crate::tokens::{Cell, GazeTokens, TokenLayout};
use crate::wait::Pending;

/// Tiles of a tiled (AnyRes) mask: each tile's rectangle in the frame and
/// its frame-local token ids, planned on the tile.
pub type MaskTiles = Vec<(Rect, Vec<u32>)>;

/// One token of a mask: its cell in the layout and the pixels that cell
/// covers in the frame (the cell itself, before any geometry policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRect {
    /// Scale (0 = coarsest), grid, row and column.
    pub cell: Cell,
    /// The cell's pixels in the frame, by [`cell_rect`] (a tiled mask's cell
    /// on its tile, moved to the tile's place and clipped to the frame:
    /// empty, zero wide or high at the frame's edge, for a cell of a
    /// tile's part beyond the frame).
    pub rect: Rect,
    /// True for a pad the source emitted (not an update of the frame).
    pub padded: bool,
}

/// The tokens of a mask (`tiles` when the source tiled the frame, else
/// `tokens`) with their cells and pixel rectangles in a `size` frame,
/// decoded by `layout`. Ids that name no cell (the pad id) are left out.
pub fn token_rects<'a>(
    layout: &'a TokenLayout,
    size: FrameSize,
    tokens: &'a GazeTokens,
    tiles: &'a [(Rect, Vec<u32>)],
) -> impl Iterator<Item = TokenRect> + 'a {
    let frame = Rect::full(size);
    let whole = tokens
        .ids
        .iter()
        .zip(&tokens.padded)
        .filter(move |_| tiles.is_empty())
        .map(move |(&id, &padded)| (frame, id, padded));
    let tiled = tiles
        .iter()
        .flat_map(|(tile, ids)| ids.iter().map(move |&id| (*tile, id, false)));
    whole.chain(tiled).filter_map(move |(tile, id, padded)| {
        let cell = layout.decode(id)?;
        let on_tile = FrameSize::new(tile.width(), tile.height()).ok()?;
        let r = cell_rect(on_tile, cell.grid as u32, cell.row as u32, cell.col as u32);
        let rect = Rect {
            x0: r.x0 + tile.x0,
            y0: r.y0 + tile.y0,
            x1: r.x1 + tile.x0,
            y1: r.y1 + tile.y0,
        }
        .intersect(&frame);
        // A cell beyond the frame: empty, at the frame's edge (never
        // inverted).
        let rect = Rect {
            x0: rect.x0.min(rect.x1),
            y0: rect.y0.min(rect.y1),
            ..rect
        };
        Some(TokenRect { cell, rect, padded })
    })
}

/// Appends to `out` the finest-scale tokens of `layout` whose cells overlap
/// `region` (pixels of a `size` frame): a box (a detector's, a region of
/// interest) as a mask.
pub fn push_region_tokens(
    layout: &TokenLayout,
    size: FrameSize,
    region: Rect,
    out: &mut GazeTokens,
) {
    let (Some(fine), g) = (layout.scales().len().checked_sub(1), layout.finest_grid()) else {
        return;
    };
    for row in 0..g {
        for col in 0..g {
            let overlaps = !cell_rect(size, g, row, col).intersect(&region).is_empty();
            if let Some(id) = layout.encode(fine, row, col).filter(|_| overlaps) {
                out.push(id);
            }
        }
    }
}

/// A producer of each frame's gaze tokens: patch-diff and the AutoGaze model
/// implement it, and a host app may supply its own (a mask from its own
/// detector). Tokens are frame-local ids of the release layout
/// ([`TokenLayout::release`]); the pipeline plans, composes and displays
/// whatever a source emits, exactly as for the built-in ones.
///
/// A decoupled pipeline runs the source on its mask worker thread, hence
/// `Send`.
pub trait MaskSource: Send {
    /// Fills `out` (it arrives empty) with the tokens of `frame`, adding the
    /// time spent to `times` (the token work under [`Stage::MaskSource`]).
    /// `reference` is the output composed before this frame when there is
    /// one (decoupled: only for a source that [wants it](MaskSource::wants_reference)).
    /// A source that cuts the frame into tiles (AnyRes) puts each tile's
    /// rectangle and tokens into `tiles` (it arrives empty; left empty, the
    /// tokens describe the whole frame). An error is reported for this
    /// frame; the pipeline keeps the last good mask and goes on.
    fn tokens_into(
        &mut self,
        frame: &Frame,
        reference: Option<&[u8]>,
        out: &mut GazeTokens,
        tiles: &mut MaskTiles,
        times: &mut StageTimes,
    ) -> Result<()>;

    /// [`MaskSource::tokens_into`] as a future that awaits the device
    /// instead of blocking on it: the model's frame readback (see
    /// [`crate::wait`]). A decoupled pipeline's worker runs this; in the
    /// browser it is the only way the model runs on the page's GPU. By
    /// default the synchronous call, made when the future is first polled
    /// and ready then (the host's sources).
    fn tokens_into_async<'a>(
        &'a mut self,
        frame: &'a Frame,
        reference: Option<&'a [u8]>,
        out: &'a mut GazeTokens,
        tiles: &'a mut MaskTiles,
        times: &'a mut StageTimes,
    ) -> Pending<'a, Result<()>> {
        Box::pin(async move { self.tokens_into(frame, reference, out, tiles, times) })
    }

    /// True when the source compares each frame with the composed output
    /// (patch-diff): a decoupled pipeline then hands the worker a snapshot
    /// of it (one frame copy per submission).
    fn wants_reference(&self) -> bool {
        false
    }

    /// The device a model source runs on, as its Burn device prints
    /// (None: a source with no model device).
    fn device(&self) -> Option<String> {
        None
    }
}

impl MaskSource for PatchDiff {
    fn tokens_into(
        &mut self,
        frame: &Frame,
        reference: Option<&[u8]>,
        out: &mut GazeTokens,
        _tiles: &mut MaskTiles,
        times: &mut StageTimes,
    ) -> Result<()> {
        let t = Instant::now();
        PatchDiff::tokens_into(self, frame, reference, out);
        times.add(Stage::MaskSource, t.elapsed());
        Ok(())
    }

    fn wants_reference(&self) -> bool {
        true
    }
}

crate::names::named_enum! {
    /// The mask sources, as named on the command line.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum MaskSourceKind ("mask source") {
        /// Weights-free: the cells whose pixels changed since the output.
        #[default]
        PatchDiff => "patch-diff",
        /// The AutoGaze model.
        Autogaze => "autogaze",
    }
}

crate::names::named_enum! {
    /// Where the model source makes its input.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum InputPlace ("model preprocessing") {
        /// On the host (the CPU path), then one upload of the f32 input.
        #[default]
        Host => "host",
        /// On the model's wgpu device: the frame's bytes go up and Pillow's
        /// resize and the squash run as kernels
        /// ([`DevicePreprocessor`](crate::preprocess::DevicePreprocessor)).
        Device => "device",
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

impl ModelBackend {
    /// The error for a backend this build lacks: its cargo feature (named
    /// as the backend) was off.
    #[cfg(not(all(feature = "ndarray", feature = "wgpu")))]
    pub(crate) fn not_built(self) -> crate::error::AutoGazeError {
        let feature = self.as_str();
        crate::error::AutoGazeError::setting(
            "model backend",
            feature,
            format!("a build with the `{feature}` feature"),
        )
    }
}

/// Settings of the model mask source.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelOptions {
    /// A Hugging Face model directory; none: seeded random weights at the
    /// released model's size (for performance work without weights).
    pub dir: Option<PathBuf>,
    /// Fraction of the tokens a frame may use, in (0, 1].
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
    /// The model engine by name (`burn-ops`, `host`, ...; see
    /// [`AutoGaze::engines`](crate::model::AutoGaze::engines)); none: the
    /// backend's default.
    #[serde(default)]
    pub engine: Option<String>,
    /// The reference's tiled inference: the target scales (e.g. 64, 128,
    /// 224, 448; empty: off). Each frame is resized to the largest and cut
    /// into square tiles of 14 x `target_patch_size` pixels, each its own
    /// stream. Not with `anyres_tiles`.
    #[serde(default)]
    pub target_scales: Vec<u32>,
    /// The patch size of the target scales.
    #[serde(default = "default_patch")]
    pub target_patch_size: u32,
    /// Where the model input is made (`device`: the wgpu backend, a whole
    /// frame or its AnyRes tiles per step: not with target scales).
    #[serde(default)]
    pub preprocess: InputPlace,
}

fn default_patch() -> u32 {
    16
}

impl ModelOptions {
    /// The counts of these options against [`crate::limits`]: AnyRes tiles
    /// ([`MAX_ANYRES_TILES`](crate::limits::MAX_ANYRES_TILES)) and the
    /// horizon ([`MAX_HORIZON`](crate::limits::MAX_HORIZON)).
    pub fn check_limits(&self) -> Result<()> {
        use crate::limits::{self as l, at_most};
        at_most(
            "--anyres-tiles",
            self.anyres_tiles,
            l::MAX_ANYRES_TILES,
            "MAX_ANYRES_TILES",
        )?;
        at_most("--horizon", self.horizon, l::MAX_HORIZON, "MAX_HORIZON")?;
        Ok(())
    }
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
            engine: None,
            target_scales: Vec::new(),
            target_patch_size: default_patch(),
            preprocess: InputPlace::Host,
        }
    }
}

#[cfg(any(feature = "ndarray", feature = "wgpu"))]
mod model {
    use burn::tensor::{Tensor, backend::Backend};

    use super::*;
    use crate::error::AutoGazeError;
    use crate::model::{
        AnyResStream, AutoGaze, AutoGazeConfig, GenerateOptions, ScaledTiles, StreamState, TileGrid,
    };
    use crate::preprocess::{ModelInput, Preprocessor};
    use crate::timing::ModelWork;

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
        target_scales: (Vec<u32>, u32),
        scaled: Option<ScaledTiles<B>>,
        /// Frame size of the running stream: a new size starts a new clip.
        size: Option<crate::frame::FrameSize>,
        /// The model input made on the device (`InputPlace::Device`).
        #[cfg(feature = "wgpu")]
        on_device: Option<crate::preprocess::DevicePreprocessor>,
    }

    /// The device preprocessing `options` ask for, on `device` (an error
    /// naming what is missing: the wgpu backend, a whole-frame model).
    #[cfg(feature = "wgpu")]
    fn device_input<B: Backend>(
        options: &ModelOptions,
        preprocessor: &Preprocessor,
        device: &B::Device,
    ) -> Result<Option<crate::preprocess::DevicePreprocessor>> {
        if options.preprocess == InputPlace::Host {
            return Ok(None);
        }
        check_device_input(options)?;
        let wgpu = (device as &dyn std::any::Any)
            .downcast_ref::<burn::backend::wgpu::WgpuDevice>()
            .ok_or_else(|| {
                AutoGazeError::setting(
                    "model preprocessing",
                    "device",
                    "the wgpu model backend (the kernels run on Burn's wgpu device)",
                )
            })?;
        Ok(Some(crate::preprocess::DevicePreprocessor::new(
            preprocessor.clone(),
            wgpu,
        )))
    }

    /// Device preprocessing makes whole frames and AnyRes tiles; the target
    /// scales' tiles are preprocessed on the host.
    fn check_device_input(options: &ModelOptions) -> Result<()> {
        if !options.target_scales.is_empty() {
            return Err(AutoGazeError::setting(
                "model preprocessing",
                "device with target scales",
                "host preprocessing for target scales (the device path makes whole frames and AnyRes tiles)",
            ));
        }
        Ok(())
    }

    #[cfg(not(feature = "wgpu"))]
    fn device_input<B: Backend>(
        options: &ModelOptions,
        _preprocessor: &Preprocessor,
        _device: &B::Device,
    ) -> Result<Option<()>> {
        if options.preprocess == InputPlace::Host {
            return Ok(None);
        }
        check_device_input(options)?;
        Err(ModelBackend::Wgpu.not_built())
    }

    /// `t` as a tensor of backend `B` (it is one: the device preprocessing
    /// runs only where the model's device is a wgpu one).
    #[cfg(feature = "wgpu")]
    fn on_backend<B: Backend, const D: usize>(
        t: Tensor<burn::backend::Wgpu, D>,
    ) -> Result<Tensor<B, D>> {
        let boxed: Box<dyn std::any::Any> = Box::new(t);
        boxed.downcast::<Tensor<B, D>>().map(|b| *b).map_err(|_| {
            AutoGazeError::setting("model preprocessing", "device", "the wgpu model backend")
        })
    }

    impl<B: Backend> ModelSource<B> {
        /// The model `options` describe on `device` (loaded, or seeded
        /// random weights), on the engine they name.
        pub fn new(options: &ModelOptions, device: &B::Device) -> Result<Self> {
            options.check_limits()?;
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
            let mut model = model;
            if let Some(engine) = &options.engine {
                model.set_engine(engine)?;
            }
            crate::model::max_tokens(options.gazing_ratio, model.config().layout.tokens())?;
            if !options.target_scales.is_empty() {
                if options.anyres_tiles > 0 {
                    return Err(AutoGazeError::setting(
                        "target_scales",
                        format!(
                            "{:?} with {} AnyRes tiles",
                            options.target_scales, options.anyres_tiles
                        ),
                        "either target scales or AnyRes tiles, not both",
                    ));
                }
                // Checked now, not at the first frame.
                TileGrid::new(
                    &model.config().layout,
                    &options.target_scales,
                    options.target_patch_size,
                )?;
            }
            let mut state = model.new_stream();
            state.set_horizon(options.horizon);
            #[cfg_attr(not(feature = "wgpu"), allow(unused_variables))]
            let on_device = device_input::<B>(options, &preprocessor, device)?;
            Ok(Self {
                #[cfg(feature = "wgpu")]
                on_device,
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
                target_scales: (options.target_scales.clone(), options.target_patch_size),
                scaled: None,
                size: None,
            })
        }
    }

    impl<B: Backend> ModelSource<B> {
        /// The device's queue is shared with rendering: one decoder call
        /// in flight at a time.
        #[cfg(feature = "wgpu")]
        pub fn share_the_queue(&mut self) {
            self.model.set_one_call_in_flight(true);
        }

        /// With device preprocessing, frames are asked of `share`'s
        /// renderer before they are uploaded
        /// ([`DevicePreprocessor::share_frames`](crate::preprocess::DevicePreprocessor::share_frames)).
        /// False (and nothing shared) when the input is made on the host.
        #[cfg(feature = "wgpu")]
        pub fn share_frames(
            &mut self,
            share: std::sync::Arc<crate::preprocess::FrameShare>,
        ) -> bool {
            match self.on_device.as_mut() {
                Some(pre) => {
                    pre.share_frames(share);
                    true
                }
                None => false,
            }
        }
    }

    /// Every tile's tokens, in tile order, as the frame's tokens.
    fn tile_ids(tiles: &MaskTiles, out: &mut GazeTokens) {
        out.clear();
        for (_, ids) in tiles.iter() {
            for &id in ids {
                out.push(id);
            }
        }
    }

    impl<B: Backend> MaskSource for ModelSource<B> {
        fn tokens_into(
            &mut self,
            frame: &Frame,
            reference: Option<&[u8]>,
            out: &mut GazeTokens,
            tiles: &mut MaskTiles,
            times: &mut StageTimes,
        ) -> Result<()> {
            crate::wait::block_on(
                "the model's frame",
                self.tokens_into_async(frame, reference, out, tiles, times),
            )
        }

        fn tokens_into_async<'a>(
            &'a mut self,
            frame: &'a Frame,
            _reference: Option<&'a [u8]>,
            out: &'a mut GazeTokens,
            tiles: &'a mut MaskTiles,
            times: &'a mut StageTimes,
        ) -> Pending<'a, Result<()>> {
            Box::pin(async move {
                let before = self.model.work();
                let (uploaded, lent) = self.input_counts();
                let result = self.frame_tokens(frame, out, tiles, times).await;
                let mut work = ModelWork {
                    frames: 1,
                    ..self.model.work().since(&before)
                };
                // The frame's upload when the input is made on the device
                // (none when a renderer lent the frame).
                let (uploaded_after, lent_after) = self.input_counts();
                work.upload_bytes = work.upload_bytes.map(|b| b + uploaded_after - uploaded);
                work.lent_frames = lent_after - lent;
                times.add_model_work(work);
                result
            })
        }

        fn device(&self) -> Option<String> {
            Some(format!("{:?}", self.model.device()))
        }
    }

    impl<B: Backend> ModelSource<B> {
        /// Bytes the device preprocessing uploaded so far and the frames a
        /// renderer lent it (0 without it).
        fn input_counts(&self) -> (u64, u64) {
            #[cfg(feature = "wgpu")]
            if let Some(pre) = &self.on_device {
                let c = pre.counts();
                return (c.uploaded_bytes, c.lent_frames);
            }
            (0, 0)
        }

        /// One frame's model input on the device, when it is made there.
        fn device_frame(&mut self, frame: &Frame) -> Option<Result<Tensor<B, 3>>> {
            #[cfg(feature = "wgpu")]
            if let Some(pre) = self.on_device.as_mut() {
                return Some(pre.frame_input(frame).and_then(on_backend::<B, 3>));
            }
            let _ = frame;
            None
        }

        /// One frame's tokens (and tiles), its stages timed into `times`.
        async fn frame_tokens(
            &mut self,
            frame: &Frame,
            out: &mut GazeTokens,
            tiles: &mut MaskTiles,
            times: &mut StageTimes,
        ) -> Result<()> {
            tiles.clear();
            if self.size != Some(frame.size()) {
                // A new size is a new clip: fresh streams.
                self.state = self.model.new_stream();
                self.state.set_horizon(self.horizon);
                self.anyres = None;
                self.scaled = None;
                self.size = Some(frame.size());
            }
            if !self.target_scales.0.is_empty() {
                if self.scaled.is_none() {
                    self.scaled = Some(ScaledTiles::new(
                        &self.model,
                        self.preprocessor.clone(),
                        frame.size(),
                        &self.target_scales.0,
                        self.target_scales.1,
                        self.horizon,
                    )?);
                }
                let t = Instant::now();
                if let Some(scaled) = self.scaled.as_mut() {
                    scaled
                        .step_async(&self.model, frame, &self.options, tiles)
                        .await?;
                }
                tile_ids(tiles, out);
                times.add(Stage::MaskSource, t.elapsed());
                return Ok(());
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
                    #[cfg(feature = "wgpu")]
                    let on_device = match self.on_device.as_mut() {
                        Some(pre) => {
                            let rects: Vec<_> = anyres.grid().rects().collect();
                            let x = pre.tiles_input(frame, anyres.grid().side, &rects)?;
                            Some(on_backend::<B, 4>(x)?)
                        }
                        None => None,
                    };
                    #[cfg(not(feature = "wgpu"))]
                    let on_device: Option<Tensor<B, 4>> = None;
                    let gaze = match on_device {
                        Some(x) => {
                            anyres
                                .step_tiles_async(&self.model, x, &self.options)
                                .await?
                        }
                        None => anyres.step_async(&self.model, frame, &self.options).await?,
                    };
                    anyres.tile_tokens(&gaze, tiles);
                }
                tile_ids(tiles, out);
                // Each tile's preprocessing runs inside this stage.
                times.add(Stage::MaskSource, t.elapsed());
                return Ok(());
            }
            let t = Instant::now();
            let on_device = self.device_frame(frame).transpose()?;
            if on_device.is_none() {
                self.preprocessor
                    .clip_into(std::slice::from_ref(frame), &mut self.input)?;
            }
            times.add(Stage::Preprocess, t.elapsed());
            let t = Instant::now();
            let gaze = match on_device {
                Some(x) => {
                    self.model
                        .step_async(&mut self.state, x, &self.options)
                        .await?
                }
                None => {
                    self.model
                        .step_input_async(&mut self.state, &self.input, &self.options)
                        .await?
                }
            };
            out.clear();
            for id in gaze.valid() {
                out.push(id);
            }
            times.add(Stage::MaskSource, t.elapsed());
            Ok(())
        }
    }
}

/// The model on the backend `options` names, or an error naming the build
/// feature it needs.
fn model_source(options: &ModelOptions) -> Result<Box<dyn MaskSource>> {
    match options.backend {
        #[cfg(feature = "ndarray")]
        ModelBackend::Ndarray => Ok(Box::new(
            model::ModelSource::<burn::backend::NdArray<f32>>::new(options, &Default::default())?,
        )),
        #[cfg(not(feature = "ndarray"))]
        ModelBackend::Ndarray => Err(ModelBackend::Ndarray.not_built()),
        #[cfg(feature = "wgpu")]
        ModelBackend::Wgpu => wgpu_model_source(options, &Default::default(), None),
        #[cfg(not(feature = "wgpu"))]
        ModelBackend::Wgpu => Err(ModelBackend::Wgpu.not_built()),
    }
}

/// The model mask source on `device` of Burn's wgpu backend, whatever
/// `options.backend` says: a host app's own device (Bevy's render device,
/// registered with Burn) instead of the default adapter's second one, so
/// the model's buffers live where the app renders. The queue is the app's
/// too, so the model keeps one decoder call in flight
/// ([`AutoGaze::set_one_call_in_flight`](crate::model::AutoGaze::set_one_call_in_flight)):
/// the app's rendering never queues behind a whole model frame.
///
/// With `share` and device preprocessing, the model asks the app's renderer
/// for each frame before uploading it (the renderer holds it on the device
/// already: see [`FrameShare`](crate::preprocess::FrameShare)); only where
/// the source runs on a worker (a decoupled pipeline), as each ask waits
/// for the renderer.
#[cfg(feature = "wgpu")]
pub fn wgpu_model_source(
    options: &ModelOptions,
    device: &burn::backend::wgpu::WgpuDevice,
    share: Option<std::sync::Arc<crate::preprocess::FrameShare>>,
) -> Result<Box<dyn MaskSource>> {
    let mut source = model::ModelSource::<burn::backend::Wgpu>::new(options, device)?;
    source.share_the_queue();
    if let Some(share) = share {
        source.share_frames(share);
    }
    Ok(Box::new(source))
}

impl MaskSourceKind {
    /// Builds the source this kind names, ready to run.
    pub fn build(
        self,
        patch_diff: PatchDiffOptions,
        model: &ModelOptions,
    ) -> Result<Box<dyn MaskSource>> {
        match self {
            Self::PatchDiff => Ok(Box::new(PatchDiff::new(
                TokenLayout::release(),
                patch_diff,
            )?)),
            Self::Autogaze => model_source(model),
        }
    }
}
