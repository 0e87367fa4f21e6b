//! The vision encoder (`ShallowVideoConvNet`) and connector: frames
//! `[T, 3, S, S]` to vision tokens `[T, 196, D]`, causal in time, with the
//! streaming cache of the trunk convolution.
//!
//! Both convolutions run as matrix products over unfolded inputs, channels
//! last: the stride-p patch embedding over `[T * 196, 3 * p * p]` patches,
//! the 3x3x3 trunk over `[T * 196, 9 * C]` neighbourhoods once per temporal
//! tap. On the CPU backend this is ~4x faster than its convolution kernels.

use burn::tensor::activation::relu;
use burn::tensor::{Tensor, backend::Backend};

use super::super::config::AutoGazeConfig;
use super::super::weights::ModelWeights;

const LAYER_NORM_EPS: f64 = 1e-5;

/// Encodes `N` independent streams at once (`[N, T, 3, S, S]`, e.g. the
/// AnyRes tiles of one frame), stream `i` continuing from `contexts[i]`
/// (the trunk convolution's temporal context: the last `kt - 1` normalised
/// feature frames `[kt - 1, grid, grid, C]`, channels last; None before the
/// first frame, read as zeros: the reference pads in feature space):
/// `[N, T, vision_tokens, D]`. Every matrix product runs over all streams'
/// rows together; each stream's temporal context stays its own.
pub fn encode_streams<B: Backend>(
    w: &ModelWeights<B>,
    c: &AutoGazeConfig,
    video: Tensor<B, 5>,
    contexts: &mut [&mut Option<Tensor<B, 4>>],
) -> Tensor<B, 4> {
    let v = &w.vision;
    let [n, t, ch_in, _, _] = video.dims();
    debug_assert_eq!(n, contexts.len(), "one context per stream");
    let (ch, g, p) = (c.vision_hidden, c.grid(), c.patch);
    let device = video.device();
    // Patch embedding: unfold non-overlapping p x p patches, one matmul.
    let patches = video
        .reshape([n * t, ch_in, g, p, g, p])
        .permute([0, 2, 4, 1, 3, 5])
        .reshape([n * t * g * g, ch_in * p * p]);
    let x = patches.matmul(v.patch_w.clone()) + v.patch_b.clone().reshape([1, ch]);
    // LayerNorm over channels at every (t, h, w), biased variance.
    let mean = x.clone().mean_dim(1);
    let centred = x - mean;
    let var = centred.clone().powi_scalar(2).mean_dim(1);
    let x = centred / (var + LAYER_NORM_EPS).sqrt();
    let x = x * v.norm_w.clone().reshape([1, ch]) + v.norm_b.clone().reshape([1, ch]);
    let x = x.reshape([n, t, g, g, ch]);
    // Causal temporal context: each stream's cached frames (or zeros)
    // before this clip.
    let context = c.trunk_temporal - 1;
    let padded = if context == 0 {
        x
    } else {
        let total = t + context;
        let streams = contexts
            .iter_mut()
            .enumerate()
            .map(|(i, cache)| {
                let past = cache
                    .take()
                    .unwrap_or_else(|| Tensor::zeros([context, g, g, ch], &device));
                let own = x.clone().narrow(0, i, 1).reshape([t, g, g, ch]);
                let padded = Tensor::cat(vec![past, own], 0);
                **cache = Some(padded.clone().narrow(0, total - context, context));
                padded.unsqueeze::<5>()
            })
            .collect();
        Tensor::cat(streams, 0)
    };
    // Trunk Conv3d (kt, s, s): spatial zero padding s/2, every s x s
    // neighbourhood unfolded along channels, one matmul per temporal tap.
    let (s, frames) = (c.trunk_spatial, t + context);
    let pad = s / 2;
    let wide = if pad == 0 {
        padded
    } else {
        let zeros_w = Tensor::zeros([n, frames, g, pad, ch], &device);
        let rows = Tensor::cat(vec![zeros_w.clone(), padded, zeros_w], 3);
        let zeros_h = Tensor::zeros([n, frames, pad, g + 2 * pad, ch], &device);
        Tensor::cat(vec![zeros_h.clone(), rows, zeros_h], 2)
    };
    let mut shifted = Vec::with_capacity(s * s);
    for dy in 0..s {
        for dx in 0..s {
            shifted.push(
                wide.clone()
                    .slice([0..n, 0..frames, dy..dy + g, dx..dx + g, 0..ch]),
            );
        }
    }
    let unfolded = Tensor::cat(shifted, 4);
    let mut y: Option<Tensor<B, 2>> = None;
    for (k, tap) in v.trunk_w.iter().enumerate() {
        let rows = unfolded
            .clone()
            .narrow(1, k, t)
            .reshape([n * t * g * g, s * s * ch]);
        let yk = rows.matmul(tap.clone());
        y = Some(match y {
            Some(acc) => acc + yk,
            None => yk,
        });
    }
    let y = y.unwrap_or_else(|| Tensor::zeros([n * t * g * g, ch], &device));
    let y = relu(y + v.trunk_b.clone().reshape([1, ch]));
    // 1x1x1 output projection, tokens row-major over (h, w), plus the
    // connector's position embedding.
    let d = c.vision_out;
    let out = y.matmul(v.out_w.clone()) + v.out_b.clone().reshape([1, d]);
    out.reshape([n, t, g * g, d]) + w.pos_embed.clone().unsqueeze::<4>()
}
