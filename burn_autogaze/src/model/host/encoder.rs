//! The vision encoder and connector on the host CPU: the same computation
//! as the reference engine's encoder (patch embedding, LayerNorm, the
//! causal 3D trunk convolution with its streaming cache, ReLU, the output
//! projection, the position embedding), with every product in the packed
//! GEMM of the host kernels over weights packed once at load.
//!
//! Layouts are channels last throughout: a frame's features are
//! `[grid, grid, C]`, the trunk's input is unfolded into `[grid * grid,
//! s * s * C]` rows (column `(dy * s + dx) * C + c`), as the weights expect.

use burn::tensor::backend::Backend;

use super::super::config::AutoGazeConfig;
use super::super::values::host_values;
use super::super::weights::ModelWeights;
use super::decoder::pack;
use super::kernels::{Lhs, Packed, gemm};

const LAYER_NORM_EPS: f32 = 1e-5;

/// The encoder's weights on the host, packed.
#[derive(Debug, Clone)]
pub struct CpuEncoder {
    ch: usize,
    out: usize,
    grid: usize,
    patch: usize,
    spatial: usize,
    temporal: usize,
    patch_w: Packed,
    patch_b: Vec<f32>,
    norm_w: Vec<f32>,
    norm_b: Vec<f32>,
    trunk_w: Vec<Packed>,
    trunk_b: Vec<f32>,
    out_w: Packed,
    out_b: Vec<f32>,
    pos_embed: Vec<f32>,
}

/// Adds `bias` to every row of `x`.
fn add_rows(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

impl CpuEncoder {
    /// Copies and packs the encoder and connector weights of `w`.
    pub fn new<B: Backend>(w: &ModelWeights<B>, c: &AutoGazeConfig) -> Self {
        let v = &w.vision;
        Self {
            ch: c.vision_hidden,
            out: c.vision_out,
            grid: c.grid(),
            patch: c.patch,
            spatial: c.trunk_spatial,
            temporal: c.trunk_temporal,
            patch_w: pack(&v.patch_w),
            patch_b: host_values(v.patch_b.clone()),
            norm_w: host_values(v.norm_w.clone()),
            norm_b: host_values(v.norm_b.clone()),
            trunk_w: v.trunk_w.iter().map(pack).collect(),
            trunk_b: host_values(v.trunk_b.clone()),
            out_w: pack(&v.out_w),
            out_b: host_values(v.out_b.clone()),
            pos_embed: host_values(w.pos_embed.clone()),
        }
    }

    /// Values in one stream's temporal context (`kt - 1` feature frames).
    pub fn context_len(&self) -> usize {
        (self.temporal - 1) * self.grid * self.grid * self.ch
    }

    /// Encodes one stream's `t` frames `video` (`[t, 3, S, S]`, row-major)
    /// into `[t, grid * grid, D]`, continuing from `context` (the last
    /// `kt - 1` feature frames, `[kt - 1, grid, grid, C]`; zeros before the
    /// first frame), which it updates.
    pub fn encode(&self, video: &[f32], t: usize, context: &mut Vec<f32>) -> Vec<f32> {
        let (ch, g, p) = (self.ch, self.grid, self.patch);
        let side = g * p;
        let cells = g * g;
        let frame_len = 3 * side * side;
        assert_eq!(
            video.len(),
            t * frame_len,
            "cpu encoder: {t} frames of 3 x {side} x {side}"
        );
        let ctx = self.temporal - 1;
        if context.len() != self.context_len() {
            *context = vec![0.0; self.context_len()];
        }
        let x = self.patch_embed(video, t);
        // The causal context: cached frames (or zeros), then these.
        let frame_feats = cells * ch;
        let mut padded = std::mem::take(context);
        padded.extend_from_slice(&x);
        let total = ctx + t;
        context.extend_from_slice(&padded[(total - ctx) * frame_feats..]);
        let y = self.trunk(&padded, t);
        // Output projection, then the connector's position embedding.
        let d = self.out;
        let mut out = vec![0f32; t * cells * d];
        gemm(
            Lhs::rows(&y, t * cells, ch),
            self.out_w.panels(),
            &mut out,
            d,
            false,
        );
        add_rows(&mut out, &self.out_b);
        for frame in out.chunks_exact_mut(cells * d) {
            for (v, e) in frame.iter_mut().zip(&self.pos_embed) {
                *v += e;
            }
        }
        out
    }

    /// The patch embedding and its LayerNorm of `t` frames: `[t * cells, C]`.
    fn patch_embed(&self, video: &[f32], t: usize) -> Vec<f32> {
        let (ch, g, p) = (self.ch, self.grid, self.patch);
        let side = g * p;
        let cells = g * g;
        let frame_len = 3 * side * side;
        // Patch embedding: unfold each p x p patch (row `c * p * p + y * p + x`).
        let kp = 3 * p * p;
        let mut patches = vec![0f32; t * cells * kp];
        for (f, frame) in video.chunks_exact(frame_len).enumerate() {
            for gy in 0..g {
                for gx in 0..g {
                    let row = &mut patches[((f * g + gy) * g + gx) * kp..][..kp];
                    for c in 0..3 {
                        for y in 0..p {
                            let src = &frame[(c * side + gy * p + y) * side + gx * p..][..p];
                            row[(c * p + y) * p..][..p].copy_from_slice(src);
                        }
                    }
                }
            }
        }
        let mut x = vec![0f32; t * cells * ch];
        gemm(
            Lhs::rows(&patches, t * cells, kp),
            self.patch_w.panels(),
            &mut x,
            ch,
            false,
        );
        add_rows(&mut x, &self.patch_b);
        // LayerNorm over channels (biased variance).
        for row in x.chunks_exact_mut(ch) {
            let mean = row.iter().sum::<f32>() / ch as f32;
            for v in row.iter_mut() {
                *v -= mean;
            }
            let var = row.iter().map(|v| v * v).sum::<f32>() / ch as f32;
            let sd = (var + LAYER_NORM_EPS).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.norm_w).zip(&self.norm_b) {
                *v = *v / sd * w + b;
            }
        }
        x
    }

    /// The trunk convolution and its ReLU over `padded` (the `kt - 1`
    /// context frames, then `t` frames' features): `[t * cells, C]`.
    fn trunk(&self, padded: &[f32], t: usize) -> Vec<f32> {
        let (ch, g, s) = (self.ch, self.grid, self.spatial);
        let cells = g * g;
        let frame_feats = cells * ch;
        // Trunk: unfold each s x s neighbourhood (zero padding s / 2), one
        // product per temporal tap, summed tap by tap.
        let pad = s / 2;
        let ks = s * s * ch;
        let mut unfolded = vec![0f32; cells * ks];
        let mut y = vec![0f32; t * cells * ch];
        for f in 0..t {
            let out = &mut y[f * frame_feats..][..frame_feats];
            for (k, tap) in self.trunk_w.iter().enumerate() {
                let src = &padded[(f + k) * frame_feats..][..frame_feats];
                unfolded.fill(0.0);
                for yy in 0..g {
                    for xx in 0..g {
                        let row = &mut unfolded[(yy * g + xx) * ks..][..ks];
                        for dy in 0..s {
                            let sy = yy + dy;
                            if sy < pad || sy - pad >= g {
                                continue;
                            }
                            for dx in 0..s {
                                let sx = xx + dx;
                                if sx < pad || sx - pad >= g {
                                    continue;
                                }
                                let from = &src[((sy - pad) * g + sx - pad) * ch..][..ch];
                                row[(dy * s + dx) * ch..][..ch].copy_from_slice(from);
                            }
                        }
                    }
                }
                gemm(
                    Lhs::rows(&unfolded, cells, ks),
                    tap.panels(),
                    out,
                    ch,
                    k > 0,
                );
            }
        }
        add_rows(&mut y, &self.trunk_b);
        for v in &mut y {
            *v = v.max(0.0);
        }
        y
    }
}
