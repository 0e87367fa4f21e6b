//! The vision encoder (`ShallowVideoConvNet`) and connector: frames
//! `[T, 3, S, S]` to vision tokens `[T, 196, D]`, causal in time, with the
//! streaming cache of the trunk convolution.

use burn::tensor::activation::relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, backend::Backend};

use super::config::AutoGazeConfig;
use super::weights::ModelWeights;

const LAYER_NORM_EPS: f64 = 1e-5;

/// The trunk convolution's temporal context: the last `kt - 1` normalised
/// feature frames (zeros before the first frame: the reference pads in
/// feature space, not pixel space).
#[derive(Debug, Clone)]
pub struct ConvCache<B: Backend> {
    frames: Option<Tensor<B, 4>>,
}

impl<B: Backend> Default for ConvCache<B> {
    fn default() -> Self {
        Self { frames: None }
    }
}

impl<B: Backend> ConvCache<B> {
    /// True before any frame was encoded.
    pub fn is_empty(&self) -> bool {
        self.frames.is_none()
    }
}

/// Encodes `video` (`[T, 3, S, S]`, already resized to the model input) into
/// connector outputs `[T, vision_tokens, D]`, continuing from `cache`.
pub fn encode<B: Backend>(
    w: &ModelWeights<B>,
    c: &AutoGazeConfig,
    video: Tensor<B, 4>,
    cache: &mut ConvCache<B>,
) -> Tensor<B, 3> {
    let v = &w.vision;
    let [t, _, _, _] = video.dims();
    let (ch, g, p) = (c.vision_hidden, c.grid(), c.patch);
    let device = video.device();
    // Patch embedding: the (1, p, p) Conv3d is a per-frame Conv2d.
    let x = conv2d(
        video,
        v.patch_w.clone(),
        Some(v.patch_b.clone()),
        ConvOptions::new([p, p], [0, 0], [1, 1], 1),
    );
    // LayerNorm over channels at every (t, h, w), biased variance.
    let x = x.permute([0, 2, 3, 1]);
    let mean = x.clone().mean_dim(3);
    let centred = x - mean;
    let var = centred.clone().powi_scalar(2).mean_dim(3);
    let x = centred / (var + LAYER_NORM_EPS).sqrt();
    let x = x * v.norm_w.clone().reshape([1, 1, 1, ch]) + v.norm_b.clone().reshape([1, 1, 1, ch]);
    let x = x.permute([0, 3, 1, 2]);
    // Causal temporal context: cached frames (or zeros) before this clip.
    let context = c.trunk_temporal - 1;
    let padded = if context == 0 {
        x
    } else {
        let past = cache
            .frames
            .take()
            .unwrap_or_else(|| Tensor::zeros([context, ch, g, g], &device));
        let padded = Tensor::cat(vec![past, x], 0);
        let total = t + context;
        cache.frames = Some(padded.clone().narrow(0, total - context, context));
        padded
    };
    // Trunk Conv3d (kt, s, s), temporal padding 0, spatial padding s/2, as a
    // sum over temporal taps of Conv2d.
    let pad = c.trunk_spatial / 2;
    let mut y: Option<Tensor<B, 4>> = None;
    for (k, tap) in v.trunk_w.iter().enumerate() {
        let xk = padded.clone().narrow(0, k, t);
        let yk = conv2d(
            xk,
            tap.clone(),
            None,
            ConvOptions::new([1, 1], [pad, pad], [1, 1], 1),
        );
        y = Some(match y {
            Some(acc) => acc + yk,
            None => yk,
        });
    }
    let y = y.unwrap_or_else(|| Tensor::zeros([t, ch, g, g], &device));
    let y = relu(y + v.trunk_b.clone().reshape([1, ch, 1, 1]));
    // 1x1x1 output projection, tokens row-major over (h, w), plus the
    // connector's position embedding.
    let tokens = y.reshape([t, ch, g * g]).swap_dims(1, 2);
    let d = c.vision_out;
    let out = tokens.matmul(v.out_w.clone().unsqueeze::<3>()) + v.out_b.clone().reshape([1, 1, d]);
    out + w.pos_embed.clone().unsqueeze::<3>()
}
