//! The fused engine's CubeCL kernels: a decoder call is one dispatch a
//! layer plus one for the heads ([`layer_step`]). Dispatch `L` takes each
//! block of rows through the rest of layer `L - 1` (attention, the output
//! projection + residual, RMSNorm + gate/up + SiLU, down + residual) and
//! into layer `L` (RMSNorm, q/k/v, RoPE, the KV append); the last dispatch
//! finishes the last layer for the last row and computes the heads. Each
//! workgroup owns a block of rows, its phases meet at workgroup barriers,
//! and the dispatch boundary is where a block reads the keys the other
//! blocks appended. The same computation as the host engine's decoder
//! (`host/decoder.rs`); the summation order is the kernels' own.
//!
//! The barriers need an adapter that holds a workgroup at them: Mesa's
//! lavapipe before 23 does not after long work (measured, PERF_LOOP
//! 2026-12-07), so the engine checks the adapter once ([`barrier_probe`])
//! and leaves the model on the Burn-ops engine, saying why, where the check
//! fails.
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
/// call, the KV buffer's capacity, the first row whose query is written,
/// the first row the dispatch's blocks cover.
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
    /// The first row whose query is written (the last layer's projection
    /// needs only the last row's).
    pub q_first: u32,
    /// The first row of the dispatch's first block.
    pub row0: u32,
}

/// What a [`layer_step`] dispatch does, and its block: rows a workgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Step {
    /// Embeds the rows' inputs first (the first dispatch).
    pub embed: bool,
    /// Finishes layer `layer - 1` (every dispatch but the first).
    pub finish: bool,
    /// Projects layer `layer` (every dispatch but the last).
    pub project: bool,
    /// Computes the heads of the last row (the last dispatch).
    pub heads: bool,
    /// Rows a workgroup owns.
    pub block: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Values a head.
    pub hd: usize,
}

/// Ends a phase: what the workgroup wrote is seen by all of it.
#[cube]
fn phase_end() {
    sync_storage();
    sync_cube();
}

/// Row `r`'s input into `x`: the embedding of its id (the first `m` rows),
/// else its vision token; `c` a column.
#[cube]
fn embed_value(
    w: &Array<f32>,
    s: &mut Array<f32>,
    ids: &Array<i32>,
    vision: &Array<f32>,
    shape: &CallShape,
    at: &CallOffsets,
    r: usize,
    c: usize,
    #[comptime] lay: WeightLayout,
) {
    let d = comptime!(lay.d);
    let m = shape.m as usize;
    if r < m {
        let id = ids[at.ids as usize + r] as usize;
        s[r * d + c] = w[comptime!(lay.embed()) + id * d + c];
    } else {
        s[r * d + c] =
            vision[at.vision as usize + (r - m) * at.v_row as usize + c * at.v_col as usize];
    }
}

/// The q, k, v projections of row `r`'s normed `x` (`inv` its RMS factor)
/// for columns `(i, i + half)` of head `h` of `part` (0 q, 1 k, 2 v), RoPE
/// on q and k (q scaled by 1 / sqrt(head_dim)): the query into the
/// scratch, the key or value appended to the cache at `past + r`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn project_pair(
    w: &Array<f32>,
    kv: &mut Array<f32>,
    s: &mut Array<f32>,
    call: &Array<f32>,
    shape: &CallShape,
    layer: usize,
    r: usize,
    inv: f32,
    task: usize,
    #[comptime] lay: WeightLayout,
    #[comptime] heads: usize,
    #[comptime] hd: usize,
) {
    let d = comptime!(lay.d);
    let half = comptime!(hd / 2);
    let part = task / comptime!(heads * (hd / 2));
    let h = (task % comptime!(heads * (hd / 2))) / half;
    let i = task % half;
    if part > 0 || r >= shape.q_first as usize {
        let rows = shape.rows as usize;
        let cap = shape.cap as usize;
        let past = shape.past as usize;
        let base = layer * comptime!(lay.layer());
        let qkv_at = base + d;
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

/// Attention of row `r`, head `h`, over the keys it may see
/// (`j <= past + r`, unmasked): softmax in two passes (the max, then the
/// sum and `P @ V`), into the scratch's attention row.
#[cube]
#[allow(clippy::too_many_arguments)]
fn attend_head(
    kv: &Array<f32>,
    s: &mut Array<f32>,
    call: &Array<f32>,
    shape: &CallShape,
    layer: usize,
    r: usize,
    h: usize,
    #[comptime] d: usize,
    #[comptime] heads: usize,
    #[comptime] hd: usize,
) {
    let rows = shape.rows as usize;
    let cap = shape.cap as usize;
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

/// The RMS factors of the block's rows into `inv` (rows past the call's
/// end get none).
#[cube]
fn block_norms(
    s: &Array<f32>,
    inv: &mut SharedMemory<f32>,
    row0: usize,
    rows: usize,
    eps: f32,
    #[comptime] d: usize,
    #[comptime] block: usize,
) {
    let mut t = UNIT_POS as usize;
    while t < block {
        let r = row0 + t;
        if r < rows {
            inv[t] = inv_rms(s, r * d, eps, d);
        }
        t += CUBE_DIM as usize;
    }
}

/// `x[r] += a[r] @ W` for the block's rows (`a` at `a_at`, `[rows, k]`;
/// `W` `[k, D]` at `w_at`): a task an output value.
#[cube]
#[allow(clippy::too_many_arguments)]
fn block_add_product(
    w: &Array<f32>,
    s: &mut Array<f32>,
    row0: usize,
    rows: usize,
    a_at: usize,
    w_at: usize,
    #[comptime] k: usize,
    #[comptime] d: usize,
    #[comptime] block: usize,
) {
    let mut t = UNIT_POS as usize;
    while t < block * d {
        let r = row0 + t / d;
        let c = t % d;
        if r < rows {
            let v = dot(s, a_at + r * k, w, w_at + c, d, k);
            s[r * d + c] += v;
        }
        t += CUBE_DIM as usize;
    }
}

/// The rest of layer `layer` for the block's rows: attention, the output
/// projection + residual, RMSNorm + gate/up + SiLU, down + residual.
#[cube]
#[allow(clippy::too_many_arguments)]
fn finish_layer(
    w: &Array<f32>,
    kv: &Array<f32>,
    s: &mut Array<f32>,
    call: &Array<f32>,
    shape: &CallShape,
    inv: &mut SharedMemory<f32>,
    layer: usize,
    row0: usize,
    eps: f32,
    #[comptime] lay: WeightLayout,
    #[comptime] step: Step,
) {
    let d = comptime!(lay.d);
    let inter = comptime!(lay.inter);
    let block = comptime!(step.block);
    let heads = comptime!(step.n_heads);
    let rows = shape.rows as usize;
    let mut t = UNIT_POS as usize;
    while t < block * heads {
        let r = row0 + t / heads;
        if r < rows {
            attend_head(kv, s, call, shape, layer, r, t % heads, d, heads, step.hd);
        }
        t += CUBE_DIM as usize;
    }
    phase_end();
    let o_at = layer * comptime!(lay.layer()) + comptime!(d + 3 * d * d);
    block_add_product(w, s, row0, rows, 2 * rows * d, o_at, d, d, block);
    phase_end();
    block_norms(s, inv, row0, rows, eps, d, block);
    phase_end();
    let post_at = o_at + d * d;
    let gu_at = post_at + d;
    let mut t = UNIT_POS as usize;
    while t < block * inter {
        let r = row0 + t / inter;
        let j = t % inter;
        if r < rows {
            let f = inv[t / inter];
            let g = normed_dot(s, r * d, f, w, post_at, gu_at + j, 2 * inter, d);
            let u = normed_dot(s, r * d, f, w, post_at, gu_at + inter + j, 2 * inter, d);
            s[3 * rows * d + r * inter + j] = g / (1.0 + f32::exp(-g)) * u;
        }
        t += CUBE_DIM as usize;
    }
    phase_end();
    let down_at = gu_at + 2 * d * inter;
    block_add_product(w, s, row0, rows, 3 * rows * d, down_at, inter, d, block);
    phase_end();
}

/// One dispatch of a decoder call (see the module's doc): each workgroup
/// takes its block of rows (from `shape.row0`) through the phases `step`
/// names; `layer` is the layer projected (the one finished is the one
/// before it).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn layer_step(
    w: &Array<f32>,
    kv: &mut Array<f32>,
    s: &mut Array<f32>,
    call: &Array<f32>,
    ids: &Array<i32>,
    vision: &Array<f32>,
    out: &mut Array<f32>,
    shape: CallShape,
    at: CallOffsets,
    layer: u32,
    eps: f32,
    #[comptime] lay: WeightLayout,
    #[comptime] step: Step,
) {
    let d = comptime!(lay.d);
    let block = comptime!(step.block);
    let heads = comptime!(step.n_heads);
    let hd = comptime!(step.hd);
    let rows = shape.rows as usize;
    let row0 = shape.row0 as usize + CUBE_POS * block;
    let layer = layer as usize;
    let mut inv = SharedMemory::<f32>::new(block);
    if comptime!(step.embed) {
        let mut t = UNIT_POS as usize;
        while t < block * d {
            let r = row0 + t / d;
            if r < rows {
                embed_value(w, s, ids, vision, &shape, &at, r, t % d, lay);
            }
            t += CUBE_DIM as usize;
        }
        phase_end();
    }
    if comptime!(step.finish) {
        finish_layer(
            w,
            kv,
            s,
            call,
            &shape,
            &mut inv,
            layer - 1,
            row0,
            eps,
            lay,
            step,
        );
    }
    if comptime!(step.project) {
        block_norms(s, &mut inv, row0, rows, eps, d, block);
        phase_end();
        let per_row = comptime!(3 * heads * (hd / 2));
        let mut t = UNIT_POS as usize;
        while t < block * per_row {
            let r = row0 + t / per_row;
            if r < rows {
                let f = inv[t / per_row];
                project_pair(
                    w,
                    kv,
                    s,
                    call,
                    &shape,
                    layer,
                    r,
                    f,
                    t % per_row,
                    lay,
                    heads,
                    hd,
                );
            }
            t += CUBE_DIM as usize;
        }
    }
    if comptime!(step.heads) {
        heads_of_last_row(w, s, out, &shape, &at, eps, lay);
    }
}

/// The logits and task-loss heads of the final-normed last row, spread
/// over the workgroup (the last dispatch has one).
#[cube]
fn heads_of_last_row(
    w: &Array<f32>,
    s: &Array<f32>,
    out: &mut Array<f32>,
    shape: &CallShape,
    at: &CallOffsets,
    eps: f32,
    #[comptime] lay: WeightLayout,
) {
    let d = comptime!(lay.d);
    let n_logits = comptime!(lay.n_logits);
    let n_tl = comptime!(lay.n_tl);
    let last = (shape.rows as usize - 1) * d;
    let stream = at.stream as usize;
    let norm_at = comptime!(lay.final_norm());
    let inv = inv_rms(s, last, eps, d);
    let mut j = UNIT_POS as usize;
    while j < n_logits + n_tl {
        if j < n_logits {
            let lm = comptime!(lay.lm_head());
            out[stream * n_logits + j] = normed_dot(s, last, inv, w, norm_at, lm + j, n_logits, d);
        } else {
            let o = j - n_logits;
            let tl = comptime!(lay.task_loss());
            out[at.task_loss as usize + stream * n_tl + o] =
                normed_dot(s, last, inv, w, norm_at, tl + o, n_tl, d);
        }
        j += CUBE_DIM as usize;
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
