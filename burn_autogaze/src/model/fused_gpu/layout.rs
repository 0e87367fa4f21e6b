//! What the fused engine's kernels share: where each weight sits, a call's
//! shape and offsets, what a dispatch does ([`Step`]), the workgroup memory
//! it needs, and the phase barrier.

use cubecl::prelude::*;

/// Keys a tile of the block attention covers (its scores sit in workgroup
/// memory, `[block, TILE_KEYS]`).
pub const TILE_KEYS: usize = 256;

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

/// `1 / sqrt(mean(x^2) + eps)` of the `d` values at `a[at..]`.
#[cube]
pub fn inv_rms(a: &Slice<f32, ReadWrite>, at: usize, eps: f32, #[comptime] d: usize) -> f32 {
    let mut ss = 0.0f32;
    for k in 0..d {
        let v = a[at + k];
        ss += v * v;
    }
    1.0f32 / f32::sqrt(ss / comptime!(d as f32) + eps)
}

/// How the streams' inputs and outputs sit: the strides of a vision row,
/// column and stream, and where the task losses start in `out` (a stream's
/// ids, vision tokens and outputs follow from its index, `CUBE_POS_Y`).
#[derive(CubeType, CubeLaunch)]
pub struct CallOffsets {
    /// Values between two vision rows.
    pub v_row: u32,
    /// Values between two vision columns.
    pub v_col: u32,
    /// Values between two streams' vision tokens.
    pub v_stream: u32,
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
    /// Scratch values a stream (a batched call's streams one after another).
    pub s_len: u32,
    /// KV `vec4`s a stream (a batched call's caches one after another).
    pub kv_len: u32,
}

/// What a `layer_step` dispatch does, and its block: rows a workgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Step {
    /// Embeds the rows' inputs first (the first dispatch).
    pub embed: bool,
    /// Finishes layer `layer - 1` (every dispatch but the first).
    pub finish: bool,
    /// Projects layer `layer` (every dispatch but the last).
    pub project: bool,
    /// Rows a workgroup owns.
    pub block: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Values a head.
    pub hd: usize,
    /// Units a workgroup.
    pub units: usize,
}

/// Values of workgroup memory a `layer_step` dispatch uses for blocks of
/// `block` rows of heads of `hd` values, `units` a workgroup: the normed
/// rows, the attention's tile of scores, the queries of a head, the
/// per-row statistics and the slices of `P @ V`.
pub fn workgroup_values(lay: &WeightLayout, hd: usize, block: usize, units: usize) -> usize {
    block * (lay.d + TILE_KEYS + hd + 4) + 4 * parts(hd, block, units)
}

/// `vec4`s of the attention's `P @ V` slices: `units / (hd / 4)` slices of
/// the block's rows' column quads.
fn parts(hd: usize, block: usize, units: usize) -> usize {
    (units / (hd / 4)).max(1) * block * (hd / 4)
}

/// [`parts`] of a dispatch.
pub fn attention_parts(step: &Step) -> usize {
    parts(step.hd, step.block, step.units)
}

/// Values of the call's scratch for `rows` rows: `x`, the queries and the
/// attention outputs (`[rows, D]` each) and the MLP's activations (`[rows,
/// inter]`).
pub fn scratch_values(lay: &WeightLayout, rows: usize) -> usize {
    rows * (3 * lay.d + lay.inter)
}

/// Ends a phase: what the workgroup wrote is seen by all of it.
#[cube]
pub fn phase_end() {
    sync_storage();
    sync_cube();
}
