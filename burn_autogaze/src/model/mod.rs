//! AutoGaze in Burn: configuration, weights, the engines that run the
//! model, and greedy multi-token generation (full clip or streaming).
//!
//! The seam: [`Engine`] is what runs the arithmetic (the encoder over a
//! batch of streams' frames, one decoder call over a batch of streams);
//! streams, selection, the task-loss gate, horizons and tiling sit above
//! it, written once. Registered engines: `burn-ops` (Burn tensor ops on any
//! backend, the reference), `host` (fused CPU kernels, the ndarray
//! default) and, with the `wgpu` feature, `fused-gpu` (the decoder in one
//! CubeCL kernel a call, the wgpu default); see `docs/architecture.md` for
//! adding one.

mod anyres;
mod autogaze;
mod burn_ops;
mod config;
mod engine;
#[cfg(feature = "wgpu")]
mod fused_gpu;
mod generate;
mod host;
mod options;
mod registry;
mod rope;
mod scaled_tiles;
mod select;
mod stream;
mod tiling;
mod values;
mod weights;

#[cfg(test)]
mod tests;

pub use anyres::{AnyResGrid, AnyResStream, DEFAULT_MAX_TILES, crop_tile};
pub use autogaze::AutoGaze;
pub use config::{AutoGazeConfig, RopeScaling};
pub use engine::{
    CacheObject, ChunkIds, DecoderCall, Engine, EngineBuilder, EngineCache, EngineEntry, Heads,
    PortableCache, Transfers, is_cpu_device, own_caches,
};
pub use options::{DecodeStep, FrameGaze, GenerateOptions, Selection, max_tokens};
pub use registry::registry;
pub use rope::inv_freq;
pub use scaled_tiles::ScaledTiles;
pub use stream::{StreamState, lockstep};
pub use tiling::{TileGrid, TiledGaze};
pub use values::host_values;
pub use weights::{
    ModelWeights, expected_tensors, load_weights, load_weights_from, random_weights,
};

/// The registered engines' names, as [`AutoGaze::set_engine`] takes them.
pub mod engines {
    pub use super::burn_ops::NAME as BURN_OPS;
    #[cfg(feature = "wgpu")]
    pub use super::fused_gpu::NAME as FUSED_GPU;
    pub use super::host::NAME as HOST;
}
