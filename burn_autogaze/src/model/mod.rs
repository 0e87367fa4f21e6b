//! AutoGaze in Burn: configuration, weights, vision encoder, gaze decoder and
//! greedy multi-token generation (full clip or streaming).

mod anyres;
mod config;
mod decoder;
mod generate;
mod tiling;
mod vision;
mod weights;

use std::path::Path;

use burn::tensor::backend::Backend;

pub use anyres::{AnyResGrid, AnyResStream, DEFAULT_MAX_TILES};
pub use config::{AutoGazeConfig, RopeScaling};
pub use decoder::{KvCache, inv_freq};
pub use generate::{
    DecodeStep, FrameGaze, GenerateOptions, Selection, StreamState, lockstep, max_tokens,
};
pub use tiling::{TileGrid, TiledGaze};
pub use vision::ConvCache;
pub use weights::{ModelWeights, expected_tensors, load_weights, random_weights};

/// A loaded model on one device.
#[derive(Debug, Clone)]
pub struct AutoGaze<B: Backend> {
    config: AutoGazeConfig,
    weights: ModelWeights<B>,
    rope: decoder::Rope<B>,
    selection: Selection,
    /// Share decoder calls between streams in lockstep (None: on `Device`
    /// selection only).
    batch_streams: Option<bool>,
}

impl<B: Backend> AutoGaze<B> {
    /// Loads a Hugging Face model directory (`config.json` + `model.safetensors`).
    pub fn load(dir: &Path, device: &B::Device) -> crate::Result<Self> {
        let config = AutoGazeConfig::from_file(&dir.join("config.json"))?;
        let weights = load_weights(&config, &dir.join("model.safetensors"), device)?;
        Ok(Self::from_parts(config, weights))
    }

    /// A seeded random model of `config`'s size (no weights file needed).
    pub fn random(config: AutoGazeConfig, seed: u64, device: &B::Device) -> Self {
        let weights = random_weights(&config, seed, device);
        Self::from_parts(config, weights)
    }

    fn from_parts(config: AutoGazeConfig, weights: ModelWeights<B>) -> Self {
        let device = weights.decoder.embed.device();
        let rope = decoder::Rope::new(&config, &device);
        Self {
            config,
            weights,
            rope,
            selection: Selection::default_for::<B>(&device),
            batch_streams: None,
        }
    }

    /// Where untraced decoding selects tokens (default: [`Selection::default_for`]).
    pub fn selection(&self) -> Selection {
        self.selection
    }

    /// Chooses where untraced decoding selects tokens; both give the same tokens.
    pub fn set_selection(&mut self, selection: Selection) {
        self.selection = selection;
    }

    /// Whether [`AutoGaze::decode_frames`] shares decoder calls between
    /// streams in lockstep. By default it does with `Device` selection (a
    /// GPU: one chain of kernels for all tiles) and not with `Host` (on
    /// burn-ndarray the batched calls measured slower than one stream after
    /// another: PERF_LOOP, 2026-11-23). Same tokens either way.
    pub fn batches_streams(&self) -> bool {
        self.batch_streams
            .unwrap_or(self.selection == Selection::Device)
    }

    /// Overrides [`AutoGaze::batches_streams`].
    pub fn set_batch_streams(&mut self, on: bool) {
        self.batch_streams = Some(on);
    }

    /// The configuration.
    pub fn config(&self) -> &AutoGazeConfig {
        &self.config
    }
}
