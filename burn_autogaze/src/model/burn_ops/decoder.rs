//! The LLaMA gaze decoder: RMSNorm, llama3 RoPE, causal attention over a KV
//! cache with per-key masks and explicit position ids, SiLU MLP, and the
//! K-head logits and task-loss heads at the last position.

use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::super::config::AutoGazeConfig;
use super::super::rope::{inv_freq, rope_tables};
use super::super::weights::ModelWeights;

/// Keys and values of one layer, `[1, heads, keys, head_dim]` each (the
/// batch axis lets streams decoded together be stacked without a reshape).
pub type LayerKv<B> = (Tensor<B, 4>, Tensor<B, 4>);

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
/// with `L` input embeddings) at `positions`, with `key_mask[j]` telling
/// whether later tokens may attend to key `j` (the cached keys', then the
/// `L` new rows'); appends the new keys to each stream's layers. The streams move in lockstep: the same positions, the
/// same mask, and caches holding the same key count and key mask (what
/// differs is their contents). Returns the final-normed hidden states
/// `[N, L, D]`. One stream is `N = 1`.
pub fn forward<B: Backend>(
    w: &ModelWeights<B>,
    c: &AutoGazeConfig,
    x: Tensor<B, 3>,
    positions: &[i64],
    key_mask: &[bool],
    caches: &mut [&mut [Option<LayerKv<B>>]],
    rope: &Rope<B>,
) -> Tensor<B, 3> {
    let (inv_freq, rotate) = (&rope.inv_freq, &rope.rotate);
    let device = x.device();
    let [n, l, d] = x.dims();
    let (h, hd) = (c.heads, c.head_dim);
    let keys = key_mask.len();
    let past = keys - l;
    let (cos, sin) = rope_tables(inv_freq, positions);
    let cos = Tensor::<B, 4>::from_data(TensorData::new(cos, [1, l, 1, hd]), &device);
    let sin = Tensor::<B, 4>::from_data(TensorData::new(sin, [1, l, 1, hd]), &device);
    let rotate = rotate.clone().unsqueeze::<4>();
    // Additive mask: query i (absolute past + i) sees key j iff j <= past + i
    // and key j is unmasked.
    let mut bias = vec![0f32; l * keys];
    for i in 0..l {
        for (j, &m) in key_mask.iter().enumerate() {
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
            .filter_map(|cache| cache[layer].take())
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
            caches[0][layer] = Some((k_all, v_all));
        } else {
            for (i, cache) in caches.iter_mut().enumerate() {
                cache[layer] = Some((k_all.clone().narrow(0, i, 1), v_all.clone().narrow(0, i, 1)));
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

/// Embeddings `[n, D]` of ids already on the device (`[n]`).
pub fn embed_index<B: Backend>(w: &ModelWeights<B>, ids: Tensor<B, 1, Int>) -> Tensor<B, 2> {
    w.decoder.embed.clone().select(0, ids)
}
