//! The registered engines. An engine is added here, once: its folder gives
//! an [`EngineEntry`], and models can then be built on it by name or pick
//! it as their default by its priority.

use burn::tensor::backend::Backend;

use super::engine::EngineEntry;
use super::{burn_ops, host};

/// Every engine, in the order they are listed.
pub fn registry<B: Backend>() -> Vec<EngineEntry<B>> {
    vec![
        burn_ops::entry(),
        host::entry(),
        #[cfg(feature = "wgpu")]
        super::fused_gpu::entry(),
    ]
}
