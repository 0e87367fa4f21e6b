//! The fused engine's CubeCL kernels: a decoder layer in five dispatches
//! (RMSNorm + q/k/v + RoPE + the KV append; attention; the output
//! projection + residual; RMSNorm + gate/up + SiLU; down + residual), the
//! heads in one, each unit computing whole outputs (a norm is recomputed
//! where it is read, so no pass waits on another inside a dispatch). The
//! same computation as the host engine's decoder (`host/decoder.rs`); the
//! summation order is the kernels' own.
//!
//! Why no workgroup barriers: on Mesa's lavapipe (22.3, the CI adapter) a
//! barrier after a long stretch of work does not hold the workgroup's other
//! invocations (measured: 255 of 256 invocations' writes before the
//! barrier unseen after it), so passes that share values meet at dispatch
//! boundaries instead.
//!
//! Buffers (at most eight bindings, WebGPU's default):
//! - `w`: every weight, packed once at load ([`WeightLayout`]);
//! - `kv`: the stream's cache `[layer][k|v][head][cap][head_dim]`;
//! - `scratch`: the call's rows: `x`, the queries, the attention outputs
//!   (`[rows, D]` each) and the MLP's activations (`[rows, inter]`);
//! - `call`: cos and sin `[rows, head_dim]`, then the key mask (1.0 for a key
//!   later rows may attend to, 0.0 otherwise) of the past and new keys;
//! - `ids` (`i32`), `vision` (strided): the rows' inputs;
//! - `out`: the streams' logits `[N, n_logits]`, then (at an offset a
//!   binding may start at) their task losses `[N, n_tl]`.

use cubecl::prelude::*;

/// Where each weight sits in the packed weight buffer (in f32 values):
/// the layers one after another (input norm, qkv `[D, 3D]`, o `[D, D]`,
/// post norm, gate_up `[D, 2I]`, down `[I, D]`), then the final norm, the
/// logits head `[D, n_logits]`, the task-loss head `[D, n_tl]` and the
/// token embeddings `[vocab, D]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WeightLayout {
    /// Hidden size `D`.
    pub d: usize,
    /// MLP width `I`.
    pub inter: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Logits of all heads (`K * vocab`).
    pub n_logits: usize,
    /// Task-loss outputs (`K`).
    pub n_tl: usize,
}

impl WeightLayout {
    /// Values of one layer.
    pub fn layer(&self) -> usize {
        let (d, i) = (self.d, self.inter);
        d + 3 * d * d + d * d + d + 2 * d * i + i * d
    }

    /// Where the final norm starts.
    pub fn final_norm(&self) -> usize {
        self.layers * self.layer()
    }

    /// Where the logits head starts.
    pub fn lm_head(&self) -> usize {
        self.final_norm() + self.d
    }

    /// Where the task-loss head starts.
    pub fn task_loss(&self) -> usize {
        self.lm_head() + self.d * self.n_logits
    }

    /// Where the token embeddings start.
    pub fn embed(&self) -> usize {
        self.task_loss() + self.d * self.n_tl
    }
}

/// `sum_k a[a0 + k] * w[w0 + k * stride]` over `n` values.
#[cube]
fn dot(a: &Array<f32>, a0: usize, w: &Array<f32>, w0: usize, stride: usize, n: usize) -> f32 {
    let mut acc = 0.0f32;
    for k in 0..n {
        acc += a[a0 + k] * w[w0 + k * stride];
    }
    acc
}

/// This unit's task (tasks past a kernel's count do nothing).
#[cube]
fn task_index() -> usize {
    ABSOLUTE_POS
}

/// `1 / sqrt(mean(x^2) + eps)` of the `d` values at `a[at..]`.
#[cube]
fn inv_rms(a: &Array<f32>, at: usize, eps: f32, #[comptime] d: usize) -> f32 {
    let mut ss = 0.0f32;
    for k in 0..d {
        let v = a[at + k];
        ss += v * v;
    }
    1.0f32 / f32::sqrt(ss / comptime!(d as f32) + eps)
}

/// `sum_k (a[a0 + k] * inv * w[norm + k]) * w[w0 + k * stride]`: the
/// product of an RMS-normed row (its norm's weights at `norm`) with a
/// weight column.
#[cube]
#[allow(clippy::too_many_arguments)]
fn normed_dot(
    a: &Array<f32>,
    a0: usize,
    inv: f32,
    w: &Array<f32>,
    norm: usize,
    w0: usize,
    stride: usize,
    #[comptime] d: usize,
) -> f32 {
    let mut acc = 0.0f32;
    for k in 0..d {
        acc += a[a0 + k] * inv * w[norm + k] * w[w0 + k * stride];
    }
    acc
}

/// Where a stream's inputs and outputs sit: its first id in `ids`, its
/// first vision value and the strides of a vision row and column, its index
/// among the call's streams, and where the task losses start in `out`.
#[derive(CubeType, CubeLaunch)]
pub struct CallOffsets {
    /// The stream's first id.
    pub ids: u32,
    /// The stream's first vision value.
    pub vision: u32,
    /// Values between two vision rows.
    pub v_row: u32,
    /// Values between two vision columns.
    pub v_col: u32,
    /// The stream's index in the call.
    pub stream: u32,
    /// Where the task losses start in `out`.
    pub task_loss: u32,
}

/// A call's shape: rows a stream, ids among them, keys cached before the
/// call, the KV buffer's capacity, the first row whose query is read.
#[derive(CubeType, CubeLaunch)]
pub struct CallShape {
    /// Rows a stream.
    pub rows: u32,
    /// Rows embedded from ids (the first ones).
    pub m: u32,
    /// Keys cached before the call.
    pub past: u32,
    /// Keys the KV buffer holds at most.
    pub cap: u32,
    /// The first row whose query is read in this layer.
    pub q_first: u32,
}

/// The first layer's rows into `x`: the embedding of the first `m` rows'
/// ids, then the vision tokens.
#[cube(launch)]
pub fn embed(
    w: &Array<f32>,
    s: &mut Array<f32>,
    ids: &Array<i32>,
    vision: &Array<f32>,
    shape: CallShape,
    at: CallOffsets,
    #[comptime] lay: WeightLayout,
) {
    let d = comptime!(lay.d);
    let t = task_index();
    let rows = shape.rows as usize;
    if t < rows * d {
        let r = t / d;
        let c = t % d;
        let m = shape.m as usize;
        if r < m {
            let id = ids[at.ids as usize + r] as usize;
            s[t] = w[comptime!(lay.embed()) + id * d + c];
        } else {
            s[t] = vision[at.vision as usize + (r - m) * at.v_row as usize + c * at.v_col as usize];
        }
    }
}

/// RMSNorm, the q, k, v projections and RoPE on q and k (q scaled by
/// 1 / sqrt(head_dim)): queries of rows `q_first..` into the scratch, keys
/// and values appended to the cache at `past`. A task: one row's pair of
/// columns (i, i + half) of one head of q, k or v.
#[cube(launch)]
pub fn project_qkv(
    w: &Array<f32>,
    kv: &mut Array<f32>,
    s: &mut Array<f32>,
    call: &Array<f32>,
    shape: CallShape,
    layer: u32,
    eps: f32,
    #[comptime] lay: WeightLayout,
    #[comptime] heads: usize,
    #[comptime] hd: usize,
) {
    let d = comptime!(lay.d);
    let half = comptime!(hd / 2);
    let per_row = comptime!(3 * heads * (hd / 2));
    let rows = shape.rows as usize;
    let cap = shape.cap as usize;
    let past = shape.past as usize;
    let layer = layer as usize;
    let t = task_index();
    let r = t / per_row;
    let part = (t % per_row) / comptime!(heads * (hd / 2));
    let h = (t % comptime!(heads * (hd / 2))) / half;
    let i = t % half;
    if r < rows && (part > 0 || r >= shape.q_first as usize) {
        let base = layer * comptime!(lay.layer());
        let qkv_at = base + d;
        let inv = inv_rms(s, r * d, eps, d);
        let col = part * d + h * hd + i;
        let a = normed_dot(s, r * d, inv, w, base, qkv_at + col, 3 * d, d);
        let b = normed_dot(s, r * d, inv, w, base, qkv_at + col + half, 3 * d, d);
        if part == 2 {
            let at = (((layer * 2 + 1) * heads + h) * cap + past + r) * hd + i;
            kv[at] = a;
            kv[at + half] = b;
        } else {
            let sin_at = rows * hd;
            let c0 = call[r * hd + i];
            let c1 = call[r * hd + i + half];
            let s0 = call[sin_at + r * hd + i];
            let s1 = call[sin_at + r * hd + i + half];
            let lo = a * c0 - b * s0;
            let hi = b * c1 + a * s1;
            if part == 0 {
                let scale = comptime!((1.0 / (hd as f64).sqrt()) as f32);
                let q_at = rows * d + r * d + h * hd + i;
                s[q_at] = lo * scale;
                s[q_at + half] = hi * scale;
            } else {
                let at = ((layer * 2 * heads + h) * cap + past + r) * hd + i;
                kv[at] = lo;
                kv[at + half] = hi;
            }
        }
    }
}

/// Attention of rows `q_first..`, a task a (row, head), over the keys the
/// row may see (`j <= past + r`, unmasked): softmax in two passes (the max,
/// then the sum and `P @ V`), into the scratch's attention rows.
#[cube(launch)]
pub fn attend(
    kv: &Array<f32>,
    s: &mut Array<f32>,
    call: &Array<f32>,
    shape: CallShape,
    layer: u32,
    #[comptime] d: usize,
    #[comptime] heads: usize,
    #[comptime] hd: usize,
) {
    let rows = shape.rows as usize;
    let q_first = shape.q_first as usize;
    let cap = shape.cap as usize;
    let layer = layer as usize;
    let t = task_index();
    let r = q_first + t / heads;
    let h = t % heads;
    if r < rows {
        let q0 = rows * d + r * d + h * hd;
        let k0 = (layer * 2 * heads + h) * cap * hd;
        let v0 = ((layer * 2 + 1) * heads + h) * cap * hd;
        let o0 = 2 * rows * d + r * d + h * hd;
        let mask_at = 2 * rows * hd;
        let seen = shape.past as usize + r + 1;
        let mut max = f32::new(-3.0e38);
        for j in 0..seen {
            if call[mask_at + j] > 0.5 {
                let score = dot(s, q0, kv, k0 + j * hd, 1, hd);
                if score > max {
                    max = score;
                }
            }
        }
        for c in 0..hd {
            s[o0 + c] = 0.0;
        }
        let mut sum = 0.0f32;
        for j in 0..seen {
            if call[mask_at + j] > 0.5 {
                let p = f32::exp(dot(s, q0, kv, k0 + j * hd, 1, hd) - max);
                sum += p;
                for c in 0..hd {
                    s[o0 + c] += p * kv[v0 + j * hd + c];
                }
            }
        }
        let mut inv = 0.0f32;
        if sum > 0.0 {
            inv = 1.0f32 / sum;
        }
        for c in 0..hd {
            s[o0 + c] *= inv;
        }
    }
}

/// `x[r] += a[r] @ W` (`a` at `a_at`, `[rows, k]`; `W` `[k, D]` at `w_at`)
/// for rows `q_first..`: a task an output value.
#[cube(launch)]
pub fn add_product(
    w: &Array<f32>,
    s: &mut Array<f32>,
    shape: CallShape,
    a_at: u32,
    w_at: u32,
    #[comptime] k: usize,
    #[comptime] d: usize,
) {
    let rows = shape.rows as usize;
    let t = task_index();
    let r = shape.q_first as usize + t / d;
    let c = t % d;
    if r < rows {
        let v = dot(s, a_at as usize + r * k, w, w_at as usize + c, d, k);
        s[r * d + c] += v;
    }
}

/// The MLP's activations `silu(gate) * up` of the post-normed rows
/// `q_first..`: a task an activation.
#[cube(launch)]
pub fn gate_up(
    w: &Array<f32>,
    s: &mut Array<f32>,
    shape: CallShape,
    layer: u32,
    eps: f32,
    #[comptime] lay: WeightLayout,
) {
    let d = comptime!(lay.d);
    let inter = comptime!(lay.inter);
    let rows = shape.rows as usize;
    let t = task_index();
    let r = shape.q_first as usize + t / inter;
    let j = t % inter;
    if r < rows {
        let post_at = layer as usize * comptime!(lay.layer()) + comptime!(d + 4 * d * d);
        let gu_at = post_at + d;
        let inv = inv_rms(s, r * d, eps, d);
        let g = normed_dot(s, r * d, inv, w, post_at, gu_at + j, 2 * inter, d);
        let u = normed_dot(s, r * d, inv, w, post_at, gu_at + inter + j, 2 * inter, d);
        s[3 * rows * d + r * inter + j] = g / (1.0 + f32::exp(-g)) * u;
    }
}

/// The logits and task-loss heads of the final-normed last row: a task an
/// output.
#[cube(launch)]
pub fn heads_out(
    w: &Array<f32>,
    s: &Array<f32>,
    out: &mut Array<f32>,
    shape: CallShape,
    at: CallOffsets,
    eps: f32,
    #[comptime] lay: WeightLayout,
) {
    let d = comptime!(lay.d);
    let n_logits = comptime!(lay.n_logits);
    let n_tl = comptime!(lay.n_tl);
    let last = (shape.rows as usize - 1) * d;
    let j = task_index();
    let stream = at.stream as usize;
    if j < n_logits + n_tl {
        let inv = inv_rms(s, last, eps, d);
        let norm_at = comptime!(lay.final_norm());
        if j < n_logits {
            out[stream * n_logits + j] = normed_dot(
                s,
                last,
                inv,
                w,
                norm_at,
                comptime!(lay.lm_head()) + j,
                n_logits,
                d,
            );
        } else {
            let o = j - n_logits;
            out[at.task_loss as usize + stream * n_tl + o] = normed_dot(
                s,
                last,
                inv,
                w,
                norm_at,
                comptime!(lay.task_loss()) + o,
                n_tl,
                d,
            );
        }
    }
}

/// Copies keys `from..from + count` of every `[cap, head_dim]` block of
/// `src` (blocks of `src_cap` keys) to keys `0..count` of `dst` (blocks of
/// `dst_cap` keys): growing, evicting from and copying a cache.
#[cube(launch)]
pub fn move_keys(
    src: &Array<f32>,
    dst: &mut Array<f32>,
    from: u32,
    count: u32,
    src_cap: u32,
    dst_cap: u32,
    #[comptime] blocks: usize,
    #[comptime] hd: usize,
) {
    let t = ABSOLUTE_POS;
    let count = count as usize;
    if t < blocks * count * hd {
        let block = t / (count * hd);
        let key = (t / hd) % count;
        let c = t % hd;
        let from = from as usize;
        dst[(block * dst_cap as usize + key) * hd + c] =
            src[(block * src_cap as usize + from + key) * hd + c];
    }
}
