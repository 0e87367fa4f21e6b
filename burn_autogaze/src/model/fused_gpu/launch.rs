//! A decoder call of one or more streams in lockstep as the kernels'
//! dispatches: one a layer, one finishing the last layer for the last row,
//! one for the heads (see `kernels`), every stream in the same dispatches
//! (a row of workgroups a stream: `CUBE_POS_Y`).

use burn::backend::wgpu::WgpuRuntime;
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::kernels::{head_units, last_row_heads, layer_step};
use super::layout::{CallOffsetsLaunch, CallShapeLaunch, Step, WeightLayout};

/// Units of a cube: each unit computes whole outputs, so the cube's size
/// only spreads them.
pub const UNITS: u32 = 64;

/// Rows a workgroup owns in a layer's dispatch. Five: a chunk call's
/// K = 10 rows fill two workgroups, where four left a third to run alone on
/// lavapipe's two threads (a frame's layer dispatches 0.47-0.51 s against
/// 0.35-0.39 s, PERF_LOOP 2026-12-07, eleventh session); the prefill is the
/// same either way. Not yet measured on a GPU, where more, smaller
/// workgroups may win.
pub const BLOCK_ROWS: usize = 5;

/// Workgroup memory (bytes) a kernel may use on every adapter (WebGPU's default
/// `maxComputeWorkgroupStorageSize`).
pub const SHARED_BYTES: usize = 16_384;

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

    /// The buffer as a kernel argument of `vec4`s (its whole quads).
    fn arg4(&self) -> ArrayArg<WgpuRuntime> {
        // SAFETY: as `arg`, in values of four.
        unsafe { ArrayArg::from_raw_parts(self.handle.clone(), self.len / 4) }
    }
}

/// How the streams' inputs and outputs sit (see `layout::CallOffsets`; the host side of it).
#[derive(Debug, Clone, Copy)]
pub struct Offsets {
    pub v_row: u32,
    pub v_col: u32,
    pub v_stream: u32,
    pub task_loss: u32,
}

/// A decoder call of `streams` streams: their scratch rows one after
/// another in `scratch` (`s_len` values each), their KV caches one after
/// another in `kv` (`kv_len` `vec4`s each, `cap` keys).
pub struct StreamCall<'a> {
    pub streams: usize,
    pub s_len: usize,
    pub kv_len: usize,
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

impl StreamCall<'_> {
    fn shape(&self, q_first: usize, row0: usize) -> CallShapeLaunch<WgpuRuntime> {
        CallShapeLaunch::new(
            self.rows as u32,
            self.m as u32,
            self.past as u32,
            self.cap as u32,
            q_first as u32,
            row0 as u32,
            self.s_len as u32,
            self.kv_len as u32,
        )
    }

    fn offsets(&self) -> CallOffsetsLaunch<WgpuRuntime> {
        let a = self.at;
        CallOffsetsLaunch::new(a.v_row, a.v_col, a.v_stream, a.task_loss)
    }

    /// One [`layer_step`] dispatch over `blocks` workgroups from `row0`.
    fn step(&self, step: Step, layer: usize, q_first: usize, row0: usize, blocks: usize) {
        // SAFETY: every index the kernel forms stays inside its buffer: the
        // rows, keys and weights it reads are bounded by the call's shape,
        // checked against the buffers' lengths where they are made
        // (`FusedGpu::decode`, `FusedCache::reserve`, `WeightLayout`).
        unsafe {
            layer_step::launch_unchecked(
                self.client,
                CubeCount::Static(blocks as u32, self.streams as u32, 1),
                CubeDim::new_1d(UNITS),
                self.weights.arg(),
                self.weights.arg4(),
                self.kv.arg4(),
                self.scratch.arg(),
                self.call.arg(),
                self.ids.arg(),
                self.vision.arg(),
                self.shape(q_first, row0),
                self.offsets(),
                layer as u32,
                self.eps,
                self.lay,
                step,
            )
        };
    }

    /// Launches every dispatch of the call (a layer's each, then the
    /// heads'); returns how many.
    pub fn run(&self) -> u64 {
        let (rows, layers) = (self.rows, self.lay.layers);
        let blocks = rows.div_ceil(BLOCK_ROWS);
        let step = Step {
            embed: false,
            finish: false,
            project: true,
            block: BLOCK_ROWS,
            n_heads: self.heads,
            hd: self.head_dim,
            units: UNITS as usize,
        };
        for layer in 0..layers {
            // The last layer's queries are read for the last row only.
            let q_first = if layer + 1 == layers { rows - 1 } else { 0 };
            let this = Step {
                embed: layer == 0,
                finish: layer > 0,
                ..step
            };
            self.step(this, layer, q_first, 0, blocks);
        }
        let last = Step {
            finish: true,
            project: false,
            block: 1,
            ..step
        };
        self.step(last, layers, rows - 1, rows - 1, 1);
        self.heads();
        layers as u64 + 2
    }

    /// The [`last_row_heads`] dispatch.
    fn heads(&self) {
        let outputs = head_units(&self.lay);
        // SAFETY: the kernel reads the last row of the scratch and the
        // packed heads, and writes the stream's outputs below `out.len`
        // (`FusedGpu::decode` sizes it for every stream).
        unsafe {
            last_row_heads::launch_unchecked(
                self.client,
                CubeCount::Static(
                    outputs.div_ceil(UNITS as usize) as u32,
                    self.streams as u32,
                    1,
                ),
                CubeDim::new_1d(UNITS),
                self.weights.arg(),
                self.weights.arg4(),
                self.scratch.arg(),
                self.out.arg(),
                self.shape(self.rows - 1, self.rows - 1),
                self.offsets(),
                self.eps,
                self.lay,
                UNITS as usize,
            )
        };
    }
}
