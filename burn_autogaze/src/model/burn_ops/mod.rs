//! The reference engine: the model in Burn tensor ops, generic over the
//! backend (burn-ndarray, wgpu, any other). Every other engine is tested
//! against it.

mod decoder;
mod encoder;

use std::sync::Arc;

use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::config::AutoGazeConfig;
use super::engine::{
    DecoderCall, Engine, EngineCache, EngineEntry, Heads, PortableCache, own_caches,
};
use super::values::host_values;
use super::weights::ModelWeights;
use crate::error::Result;

use decoder::{LayerKv, Rope};

/// The engine's registered name.
pub const NAME: &str = "burn-ops";

/// The registry's entry: the default wherever no other engine ranks.
pub fn entry<B: Backend>() -> EngineEntry<B> {
    EngineEntry {
        name: NAME,
        about: "the model in Burn tensor ops on any backend (the reference)",
        priority: |_| Some(0),
        build: |w, c| Ok(Arc::new(BurnOps::new(w, c))),
    }
}

/// The model in Burn ops over the model's own weights.
#[derive(Debug, Clone)]
pub struct BurnOps<B: Backend> {
    weights: ModelWeights<B>,
    config: AutoGazeConfig,
    rope: Rope<B>,
}

impl<B: Backend> BurnOps<B> {
    /// The engine over `w` (tensors shared, not copied).
    pub fn new(w: &ModelWeights<B>, c: &AutoGazeConfig) -> Self {
        let device = w.decoder.embed.device();
        Self {
            weights: w.clone(),
            config: c.clone(),
            rope: Rope::new(c, &device),
        }
    }
}

/// A stream's caches as Burn tensors.
#[derive(Debug, Clone)]
pub struct BurnOpsCache<B: Backend> {
    /// The trunk's temporal context `[kt - 1, grid, grid, C]`.
    conv: Option<Tensor<B, 4>>,
    /// Per layer: keys and values `[1, heads, keys, head_dim]`.
    layers: Vec<Option<LayerKv<B>>>,
}

/// The keys `from..to` of a cached `[1, heads, keys, head_dim]` tensor
/// (`to`: None for all the rest).
fn keys_range<B: Backend>(t: &Tensor<B, 4>, from: usize, to: Option<usize>) -> Tensor<B, 4> {
    let [b, h, keys, hd] = t.dims();
    t.clone()
        .slice([0..b, 0..h, from..to.unwrap_or(keys), 0..hd])
}

impl<B: Backend> EngineCache<B> for BurnOpsCache<B> {
    fn engine(&self) -> &'static str {
        NAME
    }

    fn truncate(&mut self, keep: usize) {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = keys_range(k, 0, Some(keep));
            *v = keys_range(v, 0, Some(keep));
        }
    }

    fn evict_front(&mut self, n: usize) {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = keys_range(k, n, None);
            *v = keys_range(v, n, None);
        }
    }

    fn conv_is_empty(&self) -> bool {
        self.conv.is_none()
    }

    fn export(&self) -> PortableCache {
        PortableCache {
            conv: self.conv.clone().map(host_values).unwrap_or_default(),
            keys: self
                .layers
                .iter()
                .flatten()
                .next()
                .map_or(0, |(k, _)| k.dims()[2]),
            layers: self
                .layers
                .iter()
                .map(|layer| match layer {
                    Some((k, v)) => (host_values(k.clone()), host_values(v.clone())),
                    None => (Vec::new(), Vec::new()),
                })
                .collect(),
        }
    }
}

/// The reference encoder over `caches` of engine `engine`'s cache type
/// `C`, whose temporal context `conv` reaches (for engines that encode in
/// Burn ops).
pub(super) fn encode_with<B: Backend, C: EngineCache<B>>(
    engine: &str,
    weights: &ModelWeights<B>,
    config: &AutoGazeConfig,
    video: Tensor<B, 5>,
    caches: &mut [&mut dyn EngineCache<B>],
    conv: fn(&mut C) -> &mut Option<Tensor<B, 4>>,
) -> Result<Tensor<B, 4>> {
    let own = own_caches::<B, C>(engine, caches)?;
    let mut contexts: Vec<&mut Option<Tensor<B, 4>>> = own.into_iter().map(conv).collect();
    Ok(encoder::encode_streams(
        weights,
        config,
        video,
        &mut contexts,
    ))
}

impl<B: Backend> Engine<B> for BurnOps<B> {
    fn name(&self) -> &'static str {
        NAME
    }

    fn new_cache(&self) -> Box<dyn EngineCache<B>> {
        Box::new(BurnOpsCache::<B> {
            conv: None,
            layers: vec![None; self.config.layers],
        })
    }

    fn import(&self, portable: &PortableCache) -> Result<Box<dyn EngineCache<B>>> {
        let c = &self.config;
        let device = self.weights.decoder.embed.device();
        let conv_shape = [c.trunk_temporal - 1, c.grid(), c.grid(), c.vision_hidden];
        let kv_shape = [1, c.heads, portable.keys, c.head_dim];
        let tensor = |values: &[f32], shape: [usize; 4]| -> Result<Tensor<B, 4>> {
            if values.len() != shape.iter().product::<usize>() {
                return Err(crate::AutoGazeError::engine(
                    NAME,
                    format!("a cache of {} values does not fill {shape:?}", values.len()),
                ));
            }
            Ok(Tensor::from_data(
                TensorData::new(values.to_vec(), shape),
                &device,
            ))
        };
        let conv = if portable.conv.is_empty() {
            None
        } else {
            Some(tensor(&portable.conv, conv_shape)?)
        };
        let mut layers = vec![None; c.layers];
        for (slot, (k, v)) in layers.iter_mut().zip(&portable.layers) {
            if portable.keys > 0 && !k.is_empty() {
                *slot = Some((tensor(k, kv_shape)?, tensor(v, kv_shape)?));
            }
        }
        Ok(Box::new(BurnOpsCache { conv, layers }))
    }

    fn encode(
        &self,
        video: Tensor<B, 5>,
        caches: &mut [&mut dyn EngineCache<B>],
    ) -> Result<Tensor<B, 4>> {
        encode_with(
            NAME,
            &self.weights,
            &self.config,
            video,
            caches,
            |c: &mut BurnOpsCache<B>| &mut c.conv,
        )
    }

    fn decode(
        &self,
        call: DecoderCall<'_, B>,
        caches: &mut [&mut dyn EngineCache<B>],
    ) -> Result<Heads<B>> {
        let own = own_caches::<B, BurnOpsCache<B>>(NAME, caches)?;
        let (n, d) = (call.streams, self.config.hidden);
        let mut parts = Vec::with_capacity(2);
        if let Some(ids) = call.ids {
            let device = self.weights.decoder.embed.device();
            let ids = ids.into_device(&device);
            let m = ids.dims()[0] / n.max(1);
            parts.push(decoder::embed_index(&self.weights, ids).reshape([n, m, d]));
        }
        parts.extend(call.vision);
        let x = match parts.len() {
            0 => {
                return Err(crate::AutoGazeError::engine(
                    NAME,
                    "a decoder call without rows",
                ));
            }
            1 => parts.remove(0),
            _ => Tensor::cat(parts, 1),
        };
        let mut layers: Vec<&mut [Option<LayerKv<B>>]> = Vec::with_capacity(own.len());
        for cache in own {
            layers.push(&mut cache.layers);
        }
        let hidden = decoder::forward(
            &self.weights,
            &self.config,
            x,
            call.positions,
            call.key_mask,
            &mut layers,
            &self.rope,
        );
        let (logits, task_loss) = decoder::heads(&self.weights, hidden);
        Ok(Heads::Device { logits, task_loss })
    }
}
