//! The LLaMA gaze decoder: RMSNorm, llama3 RoPE, causal attention over a KV
//! cache with per-key masks and explicit position ids, SiLU MLP, and the
//! K-head logits and task-loss heads at the last position.

use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::config::AutoGazeConfig;
use super::cpu_decoder::{CpuDecoder, CpuLayers, HeadRows};
use super::host_values;
use super::key_panels::KeyPanels;
use super::weights::ModelWeights;

/// RoPE inverse frequencies in f32, llama3-scaled, computed as the reference
/// does (f32 arithmetic throughout).
pub fn inv_freq(c: &AutoGazeConfig) -> Vec<f32> {
    let dim = c.head_dim;
    let base = c.rope_theta as f32;
    let mut inv: Vec<f32> = (0..dim / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
        .collect();
    if let Some(s) = c.rope_scaling {
        let factor = s.factor as f32;
        let low = s.low_freq_factor as f32;
        let high = s.high_freq_factor as f32;
        let old = s.original_max_position_embeddings as f32;
        let low_wavelen = old / low;
        let high_wavelen = old / high;
        for f in &mut inv {
            let wavelen = 2.0 * std::f32::consts::PI / *f;
            if wavelen < high_wavelen {
                continue;
            }
            if wavelen > low_wavelen {
                *f /= factor;
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                *f = (1.0 - smooth) * *f / factor + smooth * *f;
            }
        }
    }
    inv
}

/// Keys and values of every layer so far, with each key's attention mask bit.
///
/// The keys live where the decoder that wrote them runs: as Burn tensors
/// ([`forward`]) or as host rows ([`forward_cpu`]). A cache written by one
/// and read by the other is converted once, on first use.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    /// Per layer: keys and values `[1, heads, keys, head_dim]` (the batch
    /// axis lets streams decoded together be stacked without a reshape).
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    /// Per layer: keys and values head by head (the CPU decoder's).
    rows: CpuLayers,
    key_mask: Vec<bool>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `layers` layers.
    pub fn new(layers: usize) -> Self {
        Self {
            layers: vec![None; layers],
            rows: vec![HeadRows::default(); layers],
            key_mask: Vec::new(),
        }
    }

    /// Whether later tokens may attend to each held key.
    pub fn key_mask(&self) -> &[bool] {
        &self.key_mask
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.key_mask.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.key_mask.is_empty()
    }

    /// Keeps the first `keep` keys of every layer (drops keys appended by
    /// decoder calls that turned out to be past a frame's stop).
    pub fn truncate(&mut self, keep: usize) {
        if keep >= self.len() {
            return;
        }
        let total = self.len();
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = keys_range(k, 0..keep);
            *v = keys_range(v, 0..keep);
        }
        for layer in &mut self.rows {
            for keys in &mut layer.keys {
                keys.truncate(keep);
            }
            for head in &mut layer.values {
                let hd = head.len() / total;
                head.truncate(keep * hd);
            }
        }
        self.key_mask.truncate(keep);
    }

    /// Drops the oldest `n` keys of every layer (bounded-memory streaming).
    pub fn evict_front(&mut self, n: usize) {
        let n = n.min(self.len());
        if n == 0 {
            return;
        }
        let total = self.len();
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = keys_range(k, n..total);
            *v = keys_range(v, n..total);
        }
        for layer in &mut self.rows {
            for keys in &mut layer.keys {
                keys.drain_front(n);
            }
            for head in &mut layer.values {
                let hd = head.len() / total;
                head.drain(..n * hd);
            }
        }
        self.key_mask.drain(..n);
    }

    /// The keys as Burn tensors on `device` (converting host rows).
    fn as_tensors(&mut self, c: &AutoGazeConfig, device: &B::Device) {
        let keys = self.len();
        for (slot, rows) in self.layers.iter_mut().zip(&mut self.rows) {
            if rows.keys.iter().all(KeyPanels::is_empty) {
                continue;
            }
            let shape = [1, c.heads, keys, c.head_dim];
            let t = |values: Vec<f32>| {
                Tensor::<B, 4>::from_data(TensorData::new(values, shape), device)
            };
            let k: Vec<f32> = std::mem::take(&mut rows.keys)
                .iter()
                .flat_map(KeyPanels::rows)
                .collect();
            *slot = Some((t(k), t(std::mem::take(&mut rows.values).concat())));
        }
    }

    /// The keys as host rows (converting Burn tensors).
    fn as_rows(&mut self) -> &mut CpuLayers {
        for (slot, rows) in self.layers.iter_mut().zip(&mut self.rows) {
            if let Some((kt, vt)) = slot.take() {
                let heads = |t: Tensor<B, 4>| -> Vec<Vec<f32>> {
                    let [_, h, _, _] = t.dims();
                    let values = host_values(t);
                    let per_head = values.len() / h.max(1);
                    values
                        .chunks(per_head.max(1))
                        .map(<[f32]>::to_vec)
                        .collect()
                };
                let hd = kt.dims()[3];
                rows.keys = heads(kt)
                    .iter()
                    .map(|k| KeyPanels::from_rows(k, hd))
                    .collect();
                rows.values = heads(vt);
            }
        }
        &mut self.rows
    }
}

/// The keys `range` of a cached `[1, heads, keys, head_dim]` tensor.
fn keys_range<B: Backend>(t: &Tensor<B, 4>, range: std::ops::Range<usize>) -> Tensor<B, 4> {
    let [b, h, _, hd] = t.dims();
    t.clone().slice([0..b, 0..h, range, 0..hd])
}

fn rms_norm<B: Backend>(x: Tensor<B, 2>, weight: &Tensor<B, 1>, eps: f64) -> Tensor<B, 2> {
    let d = weight.dims()[0];
    let var = x.clone().powi_scalar(2).mean_dim(1);
    let x = x * (var + eps).sqrt().recip();
    x * weight.clone().reshape([1, d])
}

/// RoPE tables of a model: llama3-scaled inverse frequencies and the
/// `rotate_half` matrix.
#[derive(Debug, Clone)]
pub struct Rope<B: Backend> {
    pub inv_freq: Vec<f32>,
    pub rotate: Tensor<B, 2>,
}

impl<B: Backend> Rope<B> {
    /// The tables of `c` on `device`.
    pub fn new(c: &AutoGazeConfig, device: &B::Device) -> Self {
        Self {
            inv_freq: inv_freq(c),
            rotate: rotate_half_matrix(c.head_dim, device),
        }
    }
}

/// `rotate_half` as a signed permutation matrix `[hd, hd]`:
/// `x @ R = cat(-x[hd/2..], x[..hd/2])`, exactly (entries are 0 and +-1).
pub fn rotate_half_matrix<B: Backend>(hd: usize, device: &B::Device) -> Tensor<B, 2> {
    let half = hd / 2;
    let mut r = vec![0f32; hd * hd];
    for i in 0..half {
        r[(i + half) * hd + i] = -1.0;
        r[i * hd + i + half] = 1.0;
    }
    Tensor::from_data(TensorData::new(r, [hd, hd]), device)
}

/// Runs the decoder on `x` (`[N, L, D]`: N streams decoded together, each
/// with `L` input embeddings) at `positions`, with `mask[i]` telling whether
/// later tokens may attend to token `i`; appends the new keys to each
/// stream's cache. The streams move in lockstep: the same positions, the
/// same mask, and caches holding the same key count and key mask (what
/// differs is their contents). Returns the final-normed hidden states
/// `[N, L, D]`. One stream is `N = 1`.
pub fn forward<B: Backend>(
    w: &ModelWeights<B>,
    c: &AutoGazeConfig,
    x: Tensor<B, 3>,
    positions: &[i64],
    mask: &[bool],
    caches: &mut [&mut KvCache<B>],
    rope: &Rope<B>,
) -> Tensor<B, 3> {
    let (inv_freq, rotate) = (&rope.inv_freq, &rope.rotate);
    let device = x.device();
    let [n, l, d] = x.dims();
    let (h, hd) = (c.heads, c.head_dim);
    let past = caches[0].len();
    debug_assert!(caches.iter().all(|k| k.key_mask == caches[0].key_mask));
    for cache in caches.iter_mut() {
        cache.as_tensors(c, &device);
        cache.key_mask.extend_from_slice(mask);
    }
    let keys = past + l;
    // Cos/sin tables: emb = cat(freqs, freqs), freqs = pos * inv_freq (f32).
    let mut cos = Vec::with_capacity(l * hd);
    let mut sin = Vec::with_capacity(l * hd);
    for &p in positions {
        for _ in 0..2 {
            for f in inv_freq {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
    }
    let cos = Tensor::<B, 4>::from_data(TensorData::new(cos, [1, l, 1, hd]), &device);
    let sin = Tensor::<B, 4>::from_data(TensorData::new(sin, [1, l, 1, hd]), &device);
    let rotate = rotate.clone().unsqueeze::<4>();
    // Additive mask: query i (absolute past + i) sees key j iff j <= past + i
    // and key j is unmasked.
    let mut bias = vec![0f32; l * keys];
    for i in 0..l {
        for (j, &m) in caches[0].key_mask.iter().enumerate() {
            if j > past + i || !m {
                bias[i * keys + j] = f32::NEG_INFINITY;
            }
        }
    }
    let bias = Tensor::<B, 4>::from_data(TensorData::new(bias, [1, 1, l, keys]), &device);
    let scale = 1.0 / (hd as f64).sqrt();
    // Rows of every stream together through the projections.
    let mut x = x.reshape([n * l, d]);
    for (layer, lw) in w.decoder.layers.iter().enumerate() {
        let hn = rms_norm(x.clone(), &lw.input_norm, c.rms_eps);
        // One projection for q, k, v; RoPE on q and k together.
        let qkv = hn.matmul(lw.qkv.clone());
        let qk = qkv
            .clone()
            .slice([0..n * l, 0..2 * d])
            .reshape([n, l, 2 * h, hd]);
        let qk = qk.clone() * cos.clone() + qk.matmul(rotate.clone()) * sin.clone();
        let q = qk.clone().slice([0..n, 0..l, 0..h, 0..hd]).swap_dims(1, 2);
        let k = qk.slice([0..n, 0..l, h..2 * h, 0..hd]).swap_dims(1, 2);
        let v = qkv
            .slice([0..n * l, 2 * d..3 * d])
            .reshape([n, l, h, hd])
            .swap_dims(1, 2);
        let past_kv: Vec<(Tensor<B, 4>, Tensor<B, 4>)> = caches
            .iter_mut()
            .filter_map(|cache| cache.layers[layer].take())
            .collect();
        let (k_all, v_all) = if past_kv.is_empty() {
            (k, v)
        } else {
            let (mut ks, mut vs): (Vec<_>, Vec<_>) = past_kv.into_iter().unzip();
            let (pk, pv) = if n == 1 {
                (ks.remove(0), vs.remove(0))
            } else {
                (Tensor::cat(ks, 0), Tensor::cat(vs, 0))
            };
            (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2))
        };
        let scores = q.matmul(k_all.clone().swap_dims(2, 3)) * scale + bias.clone();
        let attn = softmax(scores, 3).matmul(v_all.clone());
        if n == 1 {
            caches[0].layers[layer] = Some((k_all, v_all));
        } else {
            for (i, cache) in caches.iter_mut().enumerate() {
                cache.layers[layer] =
                    Some((k_all.clone().narrow(0, i, 1), v_all.clone().narrow(0, i, 1)));
            }
        }
        let attn = attn
            .swap_dims(1, 2)
            .reshape([n * l, d])
            .matmul(lw.o.clone());
        x = x + attn;
        let hn = rms_norm(x.clone(), &lw.post_norm, c.rms_eps);
        let inter = c.intermediate;
        let gu = hn.matmul(lw.gate_up.clone());
        let gate = gu.clone().slice([0..n * l, 0..inter]);
        let up = gu.slice([0..n * l, inter..2 * inter]);
        let mlp = (silu(gate) * up).matmul(lw.down.clone());
        x = x + mlp;
    }
    rms_norm(x, &w.decoder.norm, c.rms_eps).reshape([n, l, d])
}

/// [`forward`] then [`heads`] on the host with the CPU decoder: `x` is the
/// rows `[N, L, D]` (row-major); returns the logits `[N * K * vocab]` and
/// task losses `[N * K]`.
pub fn forward_cpu<B: Backend>(
    cpu: &CpuDecoder,
    x: Vec<f32>,
    positions: &[i64],
    mask: &[bool],
    caches: &mut [&mut KvCache<B>],
) -> (Vec<f32>, Vec<f32>) {
    debug_assert!(caches.iter().all(|k| k.key_mask == caches[0].key_mask));
    for cache in caches.iter_mut() {
        cache.key_mask.extend_from_slice(mask);
    }
    let key_mask = caches[0].key_mask.clone();
    let n = caches.len();
    let mut rows: Vec<&mut CpuLayers> = caches.iter_mut().map(|c| c.as_rows()).collect();
    cpu.forward(x, n, positions, &key_mask, &mut rows)
}

/// Logits `[N, K * vocab]` and task-loss predictions `[N, K]` of each
/// stream's last row of `hidden` (`[N, L, D]`).
pub fn heads<B: Backend>(
    w: &ModelWeights<B>,
    hidden: Tensor<B, 3>,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let [n, l, d] = hidden.dims();
    let last = hidden.slice([0..n, l - 1..l, 0..d]).reshape([n, d]);
    (
        last.clone().matmul(w.decoder.lm_head.clone()),
        last.matmul(w.decoder.task_loss.clone()),
    )
}

/// Embeddings of token ids `[n, D]`.
pub fn embed_ids<B: Backend>(w: &ModelWeights<B>, ids: &[u32]) -> Tensor<B, 2> {
    let device = w.decoder.embed.device();
    let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let n = ids.len();
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [n]), &device);
    embed_index(w, index)
}

/// Embeddings `[n, D]` of ids already on the device (`[n]`).
pub fn embed_index<B: Backend>(w: &ModelWeights<B>, ids: Tensor<B, 1, Int>) -> Tensor<B, 2> {
    w.decoder.embed.clone().select(0, ids)
}
