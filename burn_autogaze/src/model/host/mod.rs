//! The host engine: the encoder and the decoder's calls on the CPU in fused
//! kernels instead of Burn ops. Products in one packed-panel GEMM (AVX2 +
//! FMA when the CPU has them) over weights packed once, attention and
//! softmax in one pass per head, the KV cache grown in place. The default
//! on Burn's CPU backend (ndarray), where it is several times faster
//! (PERF_LOOP, 2026-11-23). On a GPU backend it reads each frame back and
//! uploads the heads: possible, rarely useful. Same tokens as the reference
//! engine (tested).

mod decoder;
mod encoder;
mod kernels;
mod key_panels;

use std::sync::Arc;

use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::config::AutoGazeConfig;
use super::engine::{
    DecoderCall, Engine, EngineCache, EngineEntry, Heads, PortableCache, is_cpu_device, own_caches,
};
use super::values::host_values;
use super::weights::ModelWeights;
use crate::error::{AutoGazeError, Result};

use decoder::{CpuDecoder, HeadRows};
use encoder::CpuEncoder;
use key_panels::KeyPanels;

/// The engine's registered name.
pub const NAME: &str = "host";

/// The registry's entry: the default on Burn's CPU backend.
pub fn entry<B: Backend>() -> EngineEntry<B> {
    EngineEntry {
        name: NAME,
        about: "the model in fused CPU kernels on the host (the ndarray default)",
        priority: |device| is_cpu_device::<B>(device).then_some(10),
        build: |w, c| Ok(Arc::new(Host::new(w, c))),
    }
}

/// The model's weights packed for the host kernels.
#[derive(Debug, Clone)]
pub struct Host {
    config: AutoGazeConfig,
    encoder: CpuEncoder,
    decoder: CpuDecoder,
    /// The token embeddings `[vocab, D]`, row-major.
    embed: Vec<f32>,
}

impl Host {
    /// Copies and packs the weights of `w`.
    pub fn new<B: Backend>(w: &ModelWeights<B>, c: &AutoGazeConfig) -> Self {
        Self {
            config: c.clone(),
            encoder: CpuEncoder::new(w, c),
            decoder: CpuDecoder::new(w, c),
            embed: host_values(w.decoder.embed.clone()),
        }
    }

    /// Appends the embedding of each of `ids` to `x`.
    fn embed_into(&self, ids: &[u32], x: &mut Vec<f32>) -> Result<()> {
        let d = self.config.hidden;
        for &id in ids {
            let row = self.embed.get(id as usize * d..(id as usize + 1) * d);
            let row = row.ok_or_else(|| {
                AutoGazeError::engine(NAME, format!("token id {id} is outside the vocabulary"))
            })?;
            x.extend_from_slice(row);
        }
        Ok(())
    }
}

/// A stream's caches as host values.
#[derive(Debug, Clone, Default)]
pub struct HostCache {
    /// The trunk's temporal context `[kt - 1, grid, grid, C]` (empty before
    /// the first frame).
    conv: Vec<f32>,
    /// Per layer: keys and values head by head.
    layers: Vec<HeadRows>,
}

impl<B: Backend> EngineCache<B> for HostCache {
    fn engine(&self) -> &'static str {
        NAME
    }

    fn truncate(&mut self, keep: usize) {
        for layer in &mut self.layers {
            layer.truncate(keep);
        }
    }

    fn evict_front(&mut self, n: usize) {
        for layer in &mut self.layers {
            layer.evict_front(n);
        }
    }

    fn conv_is_empty(&self) -> bool {
        self.conv.is_empty()
    }

    fn export(&self) -> PortableCache {
        PortableCache {
            conv: self.conv.clone(),
            keys: self
                .layers
                .first()
                .and_then(|layer| layer.keys.first())
                .map_or(0, KeyPanels::len),
            layers: self
                .layers
                .iter()
                .map(|layer| {
                    let keys = layer.keys.iter().flat_map(KeyPanels::rows).collect();
                    (keys, layer.values.concat())
                })
                .collect(),
        }
    }
}

impl<B: Backend> Engine<B> for Host {
    fn name(&self) -> &'static str {
        NAME
    }

    fn new_cache(&self) -> Box<dyn EngineCache<B>> {
        Box::new(HostCache {
            layers: vec![HeadRows::default(); self.config.layers],
            ..HostCache::default()
        })
    }

    fn import(&self, portable: &PortableCache) -> Result<Box<dyn EngineCache<B>>> {
        let c = &self.config;
        let per_head = portable.keys * c.head_dim;
        let bad = |what: &str, len: usize| {
            AutoGazeError::engine(
                NAME,
                format!("a cache's {what} of {len} values do not fit the model"),
            )
        };
        if !portable.conv.is_empty() && portable.conv.len() != self.encoder.context_len() {
            return Err(bad("temporal context", portable.conv.len()));
        }
        let mut layers = vec![HeadRows::default(); c.layers];
        for (layer, (k, v)) in layers.iter_mut().zip(&portable.layers) {
            if k.is_empty() && v.is_empty() {
                continue;
            }
            if k.len() != c.heads * per_head || v.len() != k.len() {
                return Err(bad("keys", k.len()));
            }
            layer.keys = k
                .chunks_exact(per_head.max(1))
                .map(|head| KeyPanels::from_rows(head, c.head_dim))
                .collect();
            layer.values = v
                .chunks_exact(per_head.max(1))
                .map(<[f32]>::to_vec)
                .collect();
        }
        Ok(Box::new(HostCache {
            conv: portable.conv.clone(),
            layers,
        }))
    }

    fn encode(
        &self,
        video: Tensor<B, 5>,
        caches: &mut [&mut dyn EngineCache<B>],
    ) -> Result<Tensor<B, 4>> {
        let own = own_caches::<B, HostCache>(NAME, caches)?;
        let device = video.device();
        let [n, t, _, _, _] = video.dims();
        let values = host_values(video);
        let per_stream = values.len() / n.max(1);
        let c = &self.config;
        let mut out = Vec::with_capacity(n * t * c.vision_tokens() * c.vision_out);
        for (frames, cache) in values.chunks_exact(per_stream.max(1)).zip(own) {
            out.extend(self.encoder.encode(frames, t, &mut cache.conv));
        }
        let shape = [n, t, c.vision_tokens(), c.vision_out];
        Ok(Tensor::from_data(TensorData::new(out, shape), &device))
    }

    fn decode(
        &self,
        call: DecoderCall<'_, B>,
        caches: &mut [&mut dyn EngineCache<B>],
    ) -> Result<Heads<B>> {
        let mut own = own_caches::<B, HostCache>(NAME, caches)?;
        let rows = call.rows();
        let (n, d) = (call.streams, self.config.hidden);
        let ids = call.ids.map(|ids| ids.into_host()).unwrap_or_default();
        let vision = call.vision.map(host_values).unwrap_or_default();
        let (m, nv) = (ids.len() / n.max(1), vision.len() / (n * d).max(1));
        if n == 0 || m + nv != rows || ids.len() != n * m || vision.len() != n * nv * d {
            return Err(AutoGazeError::engine(
                NAME,
                format!(
                    "a call of {n} streams with {} ids and {} vision values \
                     does not give {} rows a stream",
                    ids.len(),
                    vision.len(),
                    rows
                ),
            ));
        }
        let mut x = Vec::with_capacity(n * rows * d);
        for s in 0..n {
            self.embed_into(&ids[s * m..(s + 1) * m], &mut x)?;
            x.extend_from_slice(&vision[s * nv * d..(s + 1) * nv * d]);
        }
        let mut layers: Vec<&mut Vec<HeadRows>> = Vec::with_capacity(n);
        for cache in own.iter_mut() {
            layers.push(&mut cache.layers);
        }
        let (logits, task_loss) =
            self.decoder
                .forward(x, n, call.positions, call.key_mask, &mut layers);
        Ok(Heads::Host { logits, task_loss })
    }
}
