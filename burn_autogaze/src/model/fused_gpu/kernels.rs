//! The fused engine's CubeCL kernels: a decoder call is one dispatch a
//! layer ([`layer_step`]), one that finishes the last layer for the last
//! row, and one for the heads ([`last_row_heads`]). Dispatch `L` takes each
//! block of rows through the rest of layer `L - 1` (attention, the output
//! projection + residual, RMSNorm + gate/up + SiLU, down + residual) and
//! into layer `L` (RMSNorm, q/k/v, RoPE, the KV append). Each workgroup
//! owns a block of rows, its phases meet at workgroup barriers, and the
//! dispatch boundary is where a block reads the keys the other blocks
//! appended. The same computation as the host engine's decoder
//! (`host/decoder.rs`); the summation order is the kernels' own.
//!
//! The projections are register-blocked (`blocks`): a block's rows, normed,
//! sit in workgroup memory, and a unit computes four adjacent output
//! columns for every row of the block, reading the weights as `vec4`s, so
//! each weight is read once a block and lavapipe emits a load for four
//! values instead of one. The attention (`attention`) goes head by head
//! over tiles of keys whose scores stay in workgroup memory, keys, values
//! and queries read as `vec4`s (PERF_LOOP 2026-12-07, tenth and eleventh
//! sessions: what each change bought on lavapipe, and what did not help).
//!
//! The barriers need an adapter that holds a workgroup at them: Mesa's
//! lavapipe before 23 does not after long work (measured, PERF_LOOP
//! 2026-12-07), so the engine checks the adapter once ([`barrier_probe`])
//! and leaves the model on the Burn-ops engine, saying why, where the check
//! fails.
//!
//! Buffers (at most eight bindings, WebGPU's default; `layer_step` binds
//! seven):
//! - `w`: every weight, packed once at load ([`WeightLayout`]), and `w4` the
//!   same buffer read as `vec4`s (both read-only bindings);
//! - `kv`: the stream's cache `[layer][k|v][head][cap][head_dim]`, as
//!   `vec4`s (head_dim a multiple of 8: a RoPE half is whole `vec4`s);
//! - `scratch`: the call's rows: `x`, the queries, the attention outputs
//!   (`[rows, D]` each) and the MLP's activations (`[rows, inter]`;
//!   `scratch_values`);
//! - `call`: cos and sin `[rows, head_dim]`, then the key mask (1.0 for a key
//!   later rows may attend to, 0.0 otherwise) of the past and new keys;
//! - `ids` (`i32`), `vision` (strided): the rows' inputs;
//! - `out` (the heads' dispatch): the streams' logits `[N, n_logits]`, then
//!   (at an offset a binding may start at) their task losses `[N, n_tl]`.

use cubecl::prelude::*;

use super::attention::block_attention;
use super::blocks::{F4, block_add_product, block_gate_up, block_normed, project_quad};
use super::layout::{
    CallOffsets, CallShape, Step, TILE_KEYS, WeightLayout, attention_parts, phase_end,
};

/// Row `r`'s input into `x`: the embedding of its id (the first `m` rows),
/// else its vision token; `c` a column.
#[cube]
#[allow(clippy::too_many_arguments)]
fn embed_value(
    w: &Array<f32>,
    s: &mut Slice<f32, ReadWrite>,
    ids: &Array<i32>,
    vision: &Array<f32>,
    shape: &CallShape,
    at: &CallOffsets,
    stream: usize,
    r: usize,
    c: usize,
    #[comptime] lay: WeightLayout,
) {
    let d = comptime!(lay.d);
    let m = shape.m as usize;
    if r < m {
        let id = ids[stream * m + r] as usize;
        s[r * d + c] = w[comptime!(lay.embed()) + id * d + c];
    } else {
        s[r * d + c] = vision
            [stream * at.v_stream as usize + (r - m) * at.v_row as usize + c * at.v_col as usize];
    }
}

/// The rest of layer `layer` for the block's rows: attention, the output
/// projection + residual, RMSNorm + gate/up + SiLU, down + residual.
#[cube]
#[allow(clippy::too_many_arguments)]
fn finish_layer(
    w: &Array<f32>,
    w4: &Array<F4>,
    kv: &Slice<F4, ReadWrite>,
    s: &mut Slice<f32, ReadWrite>,
    call: &Array<f32>,
    shape: &CallShape,
    xn: &mut SharedMemory<f32>,
    sc: &mut SharedMemory<f32>,
    qs: &mut SharedMemory<F4>,
    part: &mut SharedMemory<F4>,
    stat: &mut SharedMemory<f32>,
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
    let units = comptime!(step.units);
    let rows = shape.rows as usize;
    let act_at = 3 * rows * d;
    block_attention(
        kv, s, call, shape, sc, qs, part, stat, layer, row0, d, block, heads, step.hd, units,
    );
    let o_at = layer * comptime!(lay.layer()) + comptime!(d + 3 * d * d);
    block_add_product(w4, s, row0, rows, 2 * rows * d, o_at, d, d, block);
    let post_at = o_at + d * d;
    block_normed(s, w, xn, row0, rows, post_at, eps, d, block, units);
    let gu_at = post_at + d;
    block_gate_up(w4, s, xn, row0, rows, gu_at, act_at, d, inter, block);
    let down_at = gu_at + 2 * d * inter;
    block_add_product(w4, s, row0, rows, act_at, down_at, inter, d, block);
}

/// One dispatch of a decoder call (see the module's doc): each workgroup
/// takes its block of rows (from `shape.row0`) through the phases `step`
/// names; `layer` is the layer projected (the one finished is the one
/// before it).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn layer_step(
    w: &Array<f32>,
    w4: &Array<F4>,
    kv: &mut Array<F4>,
    s: &mut Array<f32>,
    call: &Array<f32>,
    ids: &Array<i32>,
    vision: &Array<f32>,
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
    let row0 = shape.row0 as usize + CUBE_POS_X as usize * block;
    let layer = layer as usize;
    // The workgroup's stream: its scratch rows and its KV cache.
    let stream = CUBE_POS_Y as usize;
    let (s_len, kv_len) = (shape.s_len as usize, shape.kv_len as usize);
    let mut s = s.slice_mut(stream * s_len, (stream + 1) * s_len);
    let mut kv = kv.slice_mut(stream * kv_len, (stream + 1) * kv_len);
    let mut xn = SharedMemory::<f32>::new(comptime!(block * lay.d));
    let mut sc = SharedMemory::<f32>::new(comptime!(block * TILE_KEYS));
    let mut qs = SharedMemory::<F4>::new(comptime!(block * step.hd / 4));
    let mut part = SharedMemory::<F4>::new(comptime!(attention_parts(&step)));
    let mut stat = SharedMemory::<f32>::new(comptime!(4 * block));
    if comptime!(step.embed) {
        let mut t = UNIT_POS as usize;
        while t < block * d {
            let r = row0 + t / d;
            if r < rows {
                embed_value(w, &mut s, ids, vision, &shape, &at, stream, r, t % d, lay);
            }
            t += CUBE_DIM as usize;
        }
        phase_end();
    }
    if comptime!(step.finish) {
        finish_layer(
            w,
            w4,
            &kv,
            &mut s,
            call,
            &shape,
            &mut xn,
            &mut sc,
            &mut qs,
            &mut part,
            &mut stat,
            layer - 1,
            row0,
            eps,
            lay,
            step,
        );
    }
    if comptime!(step.project) {
        let norm = layer * comptime!(lay.layer());
        block_normed(&s, w, &mut xn, row0, rows, norm, eps, d, block, step.units);
        let tasks = comptime!(3 * heads * (hd / 8));
        let mut t = UNIT_POS as usize;
        while t < tasks {
            project_quad(
                w4, &mut kv, &mut s, call, &xn, &shape, layer, row0, t, lay, step,
            );
            t += CUBE_DIM as usize;
        }
    }
}

/// Units of work of the heads' dispatch: the logits a unit a quad (read as
/// `vec4`s) where their number is a multiple of 4, else a unit a logit;
/// then a unit a task loss.
pub fn head_units(lay: &WeightLayout) -> usize {
    logit_units(lay) + lay.n_tl
}

fn logit_units(lay: &WeightLayout) -> usize {
    if lay.n_logits.is_multiple_of(4) {
        lay.n_logits / 4
    } else {
        lay.n_logits
    }
}

/// The logits and task-loss heads of the call's final-normed last row
/// (`rows - 1`), spread over as many workgroups as [`head_units`] needs:
/// each normalises the row into workgroup memory first.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn last_row_heads(
    w: &Array<f32>,
    w4: &Array<F4>,
    s: &mut Array<f32>,
    out: &mut Array<f32>,
    shape: CallShape,
    at: CallOffsets,
    eps: f32,
    #[comptime] lay: WeightLayout,
    #[comptime] units: usize,
) {
    let d = comptime!(lay.d);
    let n_logits = comptime!(lay.n_logits);
    let n_tl = comptime!(lay.n_tl);
    let quads = comptime!(lay.n_logits.is_multiple_of(4));
    let logit_units = comptime!(logit_units(&lay));
    let rows = shape.rows as usize;
    // The workgroup's stream: its scratch rows.
    let stream = CUBE_POS_Y as usize;
    let s_len = shape.s_len as usize;
    let s = s.slice_mut(stream * s_len, (stream + 1) * s_len);
    let mut xn = SharedMemory::<f32>::new(comptime!(lay.d));
    let norm = comptime!(lay.final_norm());
    block_normed(
        &s,
        w,
        &mut xn,
        rows - 1,
        rows,
        norm,
        eps,
        d,
        comptime!(1usize),
        units,
    );
    let j = CUBE_POS_X as usize * units + UNIT_POS as usize;
    if j < logit_units {
        if comptime!(quads) {
            let col = comptime!(lay.lm_head() / 4) + j;
            let mut acc = F4::new(0.0f32);
            for k in 0..d {
                acc += F4::new(xn[k]) * w4[col + k * comptime!(lay.n_logits / 4)];
            }
            #[unroll]
            for c in 0..4usize {
                out[stream * n_logits + 4 * j + c] = acc[c];
            }
        } else {
            let col = comptime!(lay.lm_head()) + j;
            out[stream * n_logits + j] = column_dot(w, &xn, col, n_logits, d);
        }
    } else if j < logit_units + n_tl {
        let o = j - logit_units;
        let col = comptime!(lay.task_loss()) + o;
        out[at.task_loss as usize + stream * n_tl + o] = column_dot(w, &xn, col, n_tl, d);
    }
}

/// `sum_k xn[k] * w[col + k * stride]`: a normed row times a weight column.
#[cube]
fn column_dot(
    w: &Array<f32>,
    xn: &SharedMemory<f32>,
    col: usize,
    #[comptime] stride: usize,
    #[comptime] d: usize,
) -> f32 {
    let mut acc = 0.0f32;
    for k in 0..d {
        acc += xn[k] * w[col + k * stride];
    }
    acc
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
