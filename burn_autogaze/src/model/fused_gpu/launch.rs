//! One stream's decoder call as the kernels' dispatches: the embedding,
//! then per layer the five passes, then the heads (see `kernels`).

use burn::backend::wgpu::WgpuRuntime;
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::kernels::{
    CallOffsetsLaunch, CallShapeLaunch, WeightLayout, add_product, attend, embed, gate_up,
    heads_out, project_qkv,
};

/// Units of a cube: each unit computes whole outputs, so the cube's size
/// only spreads them.
pub const UNITS: u32 = 64;

/// Workgroups a dispatch may have along x on every adapter.
pub const MAX_CUBES: usize = 65_535;

/// A buffer as a kernel binds it: the handle and its length in values.
#[derive(Debug, Clone)]
pub struct Buffer {
    /// The device buffer.
    pub handle: Handle,
    /// Its length in values.
    pub len: usize,
}

impl Buffer {
    /// The buffer as a kernel argument.
    fn arg(&self) -> ArrayArg<WgpuRuntime> {
        // SAFETY: `len` is the number of values the handle holds (set where
        // each buffer is made); the kernels' indices stay below it.
        unsafe { ArrayArg::from_raw_parts(self.handle.clone(), self.len) }
    }
}

/// Where a stream's inputs and outputs sit (see `kernels::CallOffsets`).
#[derive(Debug, Clone, Copy)]
pub struct Offsets {
    pub ids: u32,
    pub vision: u32,
    pub v_row: u32,
    pub v_col: u32,
    pub stream: u32,
    pub task_loss: u32,
}

/// One stream's decoder call.
pub struct StreamCall<'a> {
    pub client: &'a ComputeClient<WgpuRuntime>,
    pub weights: &'a Buffer,
    pub kv: Buffer,
    pub scratch: &'a Buffer,
    pub call: &'a Buffer,
    pub ids: &'a Buffer,
    pub vision: &'a Buffer,
    pub out: &'a Buffer,
    pub rows: usize,
    pub m: usize,
    pub past: usize,
    pub cap: usize,
    pub at: Offsets,
    pub eps: f32,
    pub lay: WeightLayout,
    pub heads: usize,
    pub head_dim: usize,
}

/// Cubes for `tasks` tasks.
fn cubes(tasks: usize) -> CubeCount {
    CubeCount::Static(tasks.div_ceil(UNITS as usize).max(1) as u32, 1, 1)
}

impl StreamCall<'_> {
    fn shape(&self, q_first: usize) -> CallShapeLaunch<WgpuRuntime> {
        CallShapeLaunch::new(
            self.rows as u32,
            self.m as u32,
            self.past as u32,
            self.cap as u32,
            q_first as u32,
        )
    }

    fn offsets(&self) -> CallOffsetsLaunch<WgpuRuntime> {
        let a = self.at;
        CallOffsetsLaunch::new(a.ids, a.vision, a.v_row, a.v_col, a.stream, a.task_loss)
    }

    /// `x[r] += a[r] @ W` for rows `q_first..` (`a` `[rows, k]` at `a_at`
    /// in the scratch, `W` `[k, D]` at `w_at` in the weights).
    fn add_product(&self, q_first: usize, a_at: usize, w_at: usize, k: usize) {
        let d = self.lay.d;
        add_product::launch(
            self.client,
            cubes((self.rows - q_first) * d),
            CubeDim::new_1d(UNITS),
            self.weights.arg(),
            self.scratch.arg(),
            self.shape(q_first),
            a_at as u32,
            w_at as u32,
            k,
            d,
        );
    }

    /// Launches every dispatch of the call; returns how many.
    pub fn run(&self) -> u64 {
        let (rows, lay, d) = (self.rows, self.lay, self.lay.d);
        let dim = CubeDim::new_1d(UNITS);
        let client = self.client;
        embed::launch(
            client,
            cubes(rows * d),
            dim,
            self.weights.arg(),
            self.scratch.arg(),
            self.ids.arg(),
            self.vision.arg(),
            self.shape(0),
            self.offsets(),
            lay,
        );
        let mut dispatches = 1;
        for layer in 0..lay.layers {
            // In the last layer only the last row's output reaches the heads.
            let q_first = if layer + 1 == lay.layers { rows - 1 } else { 0 };
            let kept = rows - q_first;
            let half = self.head_dim / 2;
            project_qkv::launch(
                client,
                cubes(rows * 3 * self.heads * half),
                dim,
                self.weights.arg(),
                self.kv.arg(),
                self.scratch.arg(),
                self.call.arg(),
                self.shape(q_first),
                layer as u32,
                self.eps,
                lay,
                self.heads,
                self.head_dim,
            );
            attend::launch(
                client,
                cubes(kept * self.heads),
                dim,
                self.kv.arg(),
                self.scratch.arg(),
                self.call.arg(),
                self.shape(q_first),
                layer as u32,
                d,
                self.heads,
                self.head_dim,
            );
            let o_at = layer * lay.layer() + d + 3 * d * d;
            self.add_product(q_first, 2 * rows * d, o_at, d);
            gate_up::launch(
                client,
                cubes(kept * lay.inter),
                dim,
                self.weights.arg(),
                self.scratch.arg(),
                self.shape(q_first),
                layer as u32,
                self.eps,
                lay,
            );
            let down_at = o_at + d * d + d + 2 * d * lay.inter;
            self.add_product(q_first, 3 * rows * d, down_at, lay.inter);
            dispatches += 5;
        }
        heads_out::launch(
            client,
            cubes(lay.n_logits + lay.n_tl),
            dim,
            self.weights.arg(),
            self.scratch.arg(),
            self.out.arg(),
            self.shape(rows - 1),
            self.offsets(),
            self.eps,
            lay,
        );
        dispatches + 1
    }
}
