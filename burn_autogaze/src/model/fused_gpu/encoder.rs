//! The vision encoder and connector in two CubeCL dispatches over all of
//! a call's streams and frames: the same computation as the reference
//! encoder (`burn_ops/encoder.rs`) and the host engine's
//! (`host/encoder.rs`), with the convolutions as matrix products over
//! patches and neighbourhoods the kernels read in place (nothing unfolded
//! into a buffer) and every epilogue fused:
//! - [`patch_norm`]: the stride-p patch embedding, its bias and the
//!   LayerNorm over channels, into the frames' features `[N * T, g * g, C]`;
//! - [`trunk_out`]: the causal 3D trunk convolution over each stream's
//!   temporal context and the new features, its bias and ReLU, the 1x1
//!   output projection, its bias and the connector's position embedding,
//!   into the vision tokens `[N, T, g * g, D]`; it also writes each
//!   stream's next context (the last `kt - 1` feature frames) into a new
//!   buffer, so the cache never goes through the host or a concatenation.
//!
//! A workgroup owns `block` rows (grid positions of one frame: `block`
//! divides `g * g`) and a unit four adjacent output columns of every one of
//! them, the weights read as `vec4`s once a block (the decoder's register
//! blocking, `blocks`). The summation order is the kernels' own.

use burn::backend::wgpu::{WgpuDevice, WgpuRuntime};
use burn::tensor::{DType, Tensor, backend::Backend};
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::super::config::AutoGazeConfig;
use super::super::weights::ModelWeights;
use super::NAME;
use super::blocks::F4;
use super::bridge::{GpuTensor, flat, float_buffer, float_tensor, pack_on_device};
use super::cache::{FusedCache, Slot};
use super::counters::Counters;
use super::launch::{MAX_CUBES, SHARED_BYTES};
use crate::error::{AutoGazeError, Result};

const LAYER_NORM_EPS: f32 = 1e-5;

/// Rows a workgroup owns at most (seven for the 14 x 14 grid). On lavapipe
/// blocks of seven and of four run the trunk in the same 38-43 ms a frame
/// (PERF_LOOP, fifteenth session); more rows read each weight fewer times,
/// which a GPU's registers can hold.
const MAX_BLOCK: usize = 8;

/// Units of an encoder workgroup at most.
const MAX_UNITS: usize = 64;

/// The encoder's shapes, and where each weight sits in its packed buffer
/// (in f32 values; every section starts at a multiple of 4): the patch
/// embedding `[ch_in * p * p, C]` (row `(ci * p + py) * p + px`), its bias,
/// the norm's weight and bias, the trunk `[kt * s * s * C, C]` (row
/// `((tap * s + dy) * s + dx) * C + c`), its bias, the output projection
/// `[C, D]`, its bias, the position embedding `[g * g, D]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncShape {
    /// Input channels.
    pub ch_in: usize,
    /// Patch size.
    pub p: usize,
    /// Grid side (`S / p`).
    pub g: usize,
    /// Feature channels `C`.
    pub c: usize,
    /// Token width `D`.
    pub d: usize,
    /// Trunk spatial kernel `s` (odd; zero padding `s / 2`).
    pub s: usize,
    /// Trunk temporal kernel `kt` (a context of `kt - 1` frames).
    pub kt: usize,
    /// Rows a workgroup owns (divides `g * g`).
    pub block: usize,
}

impl EncShape {
    fn patch_b(&self) -> usize {
        self.ch_in * self.p * self.p * self.c
    }
    fn norm_w(&self) -> usize {
        self.patch_b() + self.c
    }
    fn norm_b(&self) -> usize {
        self.norm_w() + self.c
    }
    fn trunk_w(&self) -> usize {
        self.norm_b() + self.c
    }
    fn trunk_b(&self) -> usize {
        self.trunk_w() + self.kt * self.s * self.s * self.c * self.c
    }
    fn out_w(&self) -> usize {
        self.trunk_b() + self.c
    }
    fn out_b(&self) -> usize {
        self.out_w() + self.c * self.d
    }
    fn pos(&self) -> usize {
        self.out_b() + self.d
    }
    fn len(&self) -> usize {
        self.pos() + self.g * self.g * self.d
    }
    /// Feature frames of a stream's context.
    fn context(&self) -> usize {
        self.kt - 1
    }
    /// Values of one feature frame.
    fn frame(&self) -> usize {
        self.g * self.g * self.c
    }
    /// Units of a workgroup: one an output quad of the widest product,
    /// at least one a row (the LayerNorm's statistics).
    fn units(&self) -> usize {
        (self.c.max(self.d) / 4).clamp(self.block, MAX_UNITS)
    }
}

/// A product's epilogue into workgroup memory (`[block, C]`): column quad
/// `q` of every row of the block is `acc[b] + bias`, clamped at zero when
/// `relu`.
#[cube]
// The outer `if` is decided when the kernel is built, the inner at run time.
#[allow(clippy::collapsible_if)]
fn store_biased(
    acc: &Array<F4>,
    bias: F4,
    y: &mut SharedMemory<f32>,
    q: usize,
    #[comptime] relu: bool,
    #[comptime] e: EncShape,
) {
    #[unroll]
    for b in 0..e.block {
        let v = acc[b] + bias;
        #[unroll]
        for i in 0..4usize {
            let mut r = v[i];
            if comptime!(relu) {
                if r < 0.0f32 {
                    r = 0.0f32;
                }
            }
            y[b * comptime!(e.c) + 4 * q + i] = r;
        }
    }
}

/// Rows `[block]` of the patch embedding: each row's video offset.
#[cube]
fn patch_rows(
    rows: &mut Array<usize>,
    pos0: usize,
    base: usize,
    st_row: usize,
    st_col: usize,
    #[comptime] e: EncShape,
) {
    #[unroll]
    for b in 0..e.block {
        let pos = pos0 + b;
        let (gh, gw) = (pos / comptime!(e.g), pos % comptime!(e.g));
        rows[b] = base + gh * comptime!(e.p) * st_row + gw * comptime!(e.p) * st_col;
    }
}

/// The patch embedding of `block` grid positions of one frame, its bias
/// and the LayerNorm over channels, into `feat` (`[frames, g * g, C]`).
/// `st_*`: the video's strides (a stream, a frame, a channel, a row, a
/// column), so any layout Burn gives is read in place.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn patch_norm(
    video: &Array<f32>,
    w: &Array<f32>,
    w4: &Array<F4>,
    feat: &mut Array<f32>,
    t_len: u32,
    st_n: u32,
    st_t: u32,
    st_ch: u32,
    st_row: u32,
    st_col: u32,
    #[comptime] e: EncShape,
) {
    let block = comptime!(e.block);
    let c = comptime!(e.c);
    let quads = comptime!(e.c / 4);
    let gg = comptime!(e.g * e.g);
    let p = comptime!(e.p);
    let row0 = CUBE_POS * block;
    let frame = row0 / gg;
    let (n, t) = (frame / t_len as usize, frame % t_len as usize);
    let (st_ch, st_row, st_col) = (st_ch as usize, st_row as usize, st_col as usize);
    let mut y = SharedMemory::<f32>::new(comptime!(e.block * e.c));
    let mut stat = SharedMemory::<f32>::new(comptime!(2 * e.block));
    let mut rows = Array::<usize>::new(block);
    patch_rows(
        &mut rows,
        row0 % gg,
        n * st_n as usize + t * st_t as usize,
        st_row,
        st_col,
        e,
    );
    let mut q = UNIT_POS as usize;
    while q < quads {
        let mut acc = Array::<F4>::new(block);
        #[unroll]
        for b in 0..block {
            acc[b] = F4::new(0.0f32);
        }
        for ci in 0..comptime!(e.ch_in) {
            for py in 0..p {
                let at = ci * st_ch + py * st_row;
                for px in 0..p {
                    let wv = w4[((ci * p + py) * p + px) * quads + q];
                    let off = at + px * st_col;
                    #[unroll]
                    for b in 0..block {
                        acc[b] += F4::new(video[rows[b] + off]) * wv;
                    }
                }
            }
        }
        store_biased(
            &acc,
            w4[comptime!(e.patch_b() / 4) + q],
            &mut y,
            q,
            false,
            e,
        );
        q += CUBE_DIM as usize;
    }
    sync_cube();
    // Each row's mean and biased variance, one unit a row.
    let u = UNIT_POS as usize;
    if u < block {
        let mut sum = 0.0f32;
        for k in 0..c {
            sum += y[u * c + k];
        }
        let mean = sum / comptime!(e.c as f32);
        let mut var = 0.0f32;
        for k in 0..c {
            let dv = y[u * c + k] - mean;
            var += dv * dv;
        }
        stat[2 * u] = mean;
        stat[2 * u + 1] = f32::sqrt(var / comptime!(e.c as f32) + LAYER_NORM_EPS);
    }
    sync_cube();
    let mut i = UNIT_POS as usize;
    while i < comptime!(e.block * e.c) {
        let (b, k) = (i / c, i % c);
        let v = (y[i] - stat[2 * b]) / stat[2 * b + 1];
        feat[row0 * c + i] = v * w[comptime!(e.norm_w()) + k] + w[comptime!(e.norm_b()) + k];
        i += CUBE_DIM as usize;
    }
}

/// `acc[b] += x[b] @ W` for one trunk tap and offset `(dy, dx)`: `src` the
/// feature frame's values (`vec4`s over channels), `at[b]` row `b`'s
/// neighbour in it and `on[b]` 1.0 where that neighbour is inside the
/// frame (0.0: the zero padding), `row` the tap's first row of the trunk's
/// weights.
#[cube]
#[allow(clippy::too_many_arguments)]
fn trunk_tap(
    src: &Array<F4>,
    w4: &Array<F4>,
    acc: &mut Array<F4>,
    at: &Array<usize>,
    on: &Array<f32>,
    row: usize,
    q: usize,
    #[comptime] e: EncShape,
) {
    let quads = comptime!(e.c / 4);
    for c4 in 0..quads {
        let w0 = comptime!(e.trunk_w() / 4) + (row + 4 * c4) * quads + q;
        let wa = w4[w0];
        let wb = w4[w0 + quads];
        let wc = w4[w0 + 2 * quads];
        let wd = w4[w0 + 3 * quads];
        #[unroll]
        for b in 0..comptime!(e.block) {
            let x = src[at[b] + c4] * F4::new(on[b]);
            acc[b] +=
                F4::new(x[0]) * wa + F4::new(x[1]) * wb + F4::new(x[2]) * wc + F4::new(x[3]) * wd;
        }
    }
}

/// The trunk convolution of `block` grid positions of frame `t` of stream
/// `n`, its bias and ReLU, the output projection, its bias and the
/// position embedding, into `out` (`[N * T, g * g, D]`); workgroups of a
/// stream's first frame also write their positions of its next context
/// into `next` (`[N, kt - 1, g * g, C]`). `ctx` holds the streams' contexts
/// (`[N, kt - 1, g * g, C]`; read only when `has_ctx` is 1, zeros
/// otherwise), `feat` the new frames' features.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn trunk_out(
    ctx: &Array<F4>,
    feat: &Array<F4>,
    w4: &Array<F4>,
    out: &mut Array<f32>,
    next: &mut Array<F4>,
    t_len: u32,
    has_ctx: u32,
    #[comptime] e: EncShape,
) {
    let block = comptime!(e.block);
    let c = comptime!(e.c);
    let quads = comptime!(e.c / 4);
    let gg = comptime!(e.g * e.g);
    let g = comptime!(e.g);
    let s = comptime!(e.s);
    let pad = comptime!(e.s / 2);
    let context = comptime!(e.context());
    let frame_q = comptime!(e.g * e.g * e.c / 4);
    let t_len = t_len as usize;
    let row0 = CUBE_POS * block;
    let pos0 = row0 % gg;
    let frame = row0 / gg;
    let (n, t) = (frame / t_len, frame % t_len);
    let mut ys = SharedMemory::<f32>::new(comptime!(e.block * e.c));
    let mut at = Array::<usize>::new(block);
    let mut on = Array::<f32>::new(block);
    let mut q = UNIT_POS as usize;
    while q < quads {
        let mut acc = Array::<F4>::new(block);
        #[unroll]
        for b in 0..block {
            acc[b] = F4::new(0.0f32);
        }
        for tap in 0..comptime!(e.kt) {
            // Frame `t + tap` of the stream's timeline: its context, then
            // the new frames.
            let f = t + tap;
            let from_ctx = f < context;
            if !from_ctx || has_ctx == 1 {
                let mut base = (n * context + f) * frame_q;
                if !from_ctx {
                    base = (n * t_len + f - context) * frame_q;
                }
                for dy in 0..s {
                    for dx in 0..s {
                        #[unroll]
                        for b in 0..block {
                            let pos = pos0 + b;
                            let hh = pos / g + dy;
                            let ww = pos % g + dx;
                            let inside = hh >= pad && hh < g + pad && ww >= pad && ww < g + pad;
                            at[b] = base;
                            on[b] = 0.0f32;
                            if inside {
                                at[b] = base + ((hh - pad) * g + ww - pad) * quads;
                                on[b] = 1.0f32;
                            }
                        }
                        let row = ((tap * s + dy) * s + dx) * c;
                        if from_ctx {
                            trunk_tap(ctx, w4, &mut acc, &at, &on, row, q, e);
                        } else {
                            trunk_tap(feat, w4, &mut acc, &at, &on, row, q, e);
                        }
                    }
                }
            }
        }
        store_biased(
            &acc,
            w4[comptime!(e.trunk_b() / 4) + q],
            &mut ys,
            q,
            true,
            e,
        );
        q += CUBE_DIM as usize;
    }
    sync_cube();
    let d = comptime!(e.d);
    let out_quads = comptime!(e.d / 4);
    let mut q = UNIT_POS as usize;
    while q < out_quads {
        let mut acc = Array::<F4>::new(block);
        #[unroll]
        for b in 0..block {
            acc[b] = w4[comptime!(e.out_b() / 4) + q]
                + w4[comptime!(e.pos() / 4) + (pos0 + b) * out_quads + q];
        }
        for k in 0..c {
            let wv = w4[comptime!(e.out_w() / 4) + k * out_quads + q];
            #[unroll]
            for b in 0..block {
                acc[b] += F4::new(ys[b * c + k]) * wv;
            }
        }
        #[unroll]
        for b in 0..block {
            let v = acc[b];
            #[unroll]
            for i in 0..4usize {
                out[(row0 + b) * d + 4 * q + i] = v[i];
            }
        }
        q += CUBE_DIM as usize;
    }
    // The stream's next context: frames `T .. T + kt - 1` of its timeline.
    if t == 0 {
        let mut i = UNIT_POS as usize;
        while i < comptime!(e.context() * e.block * e.c / 4) {
            let j = i / comptime!(e.block * e.c / 4);
            let r = i % comptime!(e.block * e.c / 4);
            let here = pos0 * quads + r;
            let f = t_len + j;
            let mut v = F4::new(0.0f32);
            if f < context {
                if has_ctx == 1 {
                    v = ctx[(n * context + f) * frame_q + here];
                }
            } else {
                v = feat[(n * t_len + f - context) * frame_q + here];
            }
            next[(n * context + j) * frame_q + here] = v;
            i += CUBE_DIM as usize;
        }
    }
}

/// The encoder's weights packed once on the device, and its shapes.
#[derive(Debug)]
pub struct GpuEncoder {
    shape: EncShape,
    packed: Handle,
    /// Bound where no stream has a context yet (never read).
    empty: Handle,
}

/// A buffer as a kernel argument of `len` values.
fn arg(handle: &Handle, len: usize) -> ArrayArg<WgpuRuntime> {
    // SAFETY: callers pass the number of values `handle` holds (or fewer).
    unsafe { ArrayArg::from_raw_parts(handle.clone(), len) }
}

impl GpuEncoder {
    /// Packs `w`'s encoder and connector (a reason instead when the
    /// kernels do not run its shapes: the engine then encodes in Burn ops).
    pub fn new<B: Backend>(
        w: &ModelWeights<B>,
        c: &AutoGazeConfig,
        client: &ComputeClient<WgpuRuntime>,
        counters: &Counters,
    ) -> std::result::Result<Self, String> {
        let gg = c.grid() * c.grid();
        let block = (1..=MAX_BLOCK)
            .rev()
            .find(|b| gg.is_multiple_of(*b))
            .unwrap_or(1);
        let shape = EncShape {
            ch_in: 3,
            p: c.patch,
            g: c.grid(),
            c: c.vision_hidden,
            d: c.vision_out,
            s: c.trunk_spatial,
            kt: c.trunk_temporal,
            block,
        };
        if !shape.c.is_multiple_of(4) || !shape.d.is_multiple_of(4) {
            return Err(format!(
                "encoder widths {} (channels) and {} (tokens) must be multiples of 4 (the kernels read vec4s)",
                shape.c, shape.d
            ));
        }
        if shape.s.is_multiple_of(2) || shape.kt == 0 {
            return Err(format!(
                "trunk kernel {}x{}x{} (the kernels pad an odd spatial kernel)",
                shape.kt, shape.s, shape.s
            ));
        }
        let shared = 4 * block * (shape.c + 2);
        if shared > SHARED_BYTES {
            return Err(format!(
                "{} encoder channels need {shared} bytes of workgroup memory, over {SHARED_BYTES}",
                shape.c
            ));
        }
        let v = &w.vision;
        let mut parts = vec![flat(&v.patch_w)];
        for t in [&v.patch_b, &v.norm_w, &v.norm_b] {
            parts.push(flat(t));
        }
        for tap in &v.trunk_w {
            parts.push(flat(tap));
        }
        parts.push(flat(&v.trunk_b));
        parts.push(flat(&v.out_w));
        parts.push(flat(&v.out_b));
        parts.push(flat(&w.pos_embed));
        let values: usize = parts.iter().map(|p| p.dims()[0]).sum();
        if values != shape.len() {
            return Err(format!(
                "the encoder's weights hold {values} values, the kernels' layout {}",
                shape.len()
            ));
        }
        let packed = pack_on_device(parts).map_err(|e| e.to_string())?;
        Ok(Self {
            shape,
            packed,
            empty: counters.upload(client, &[0f32; 4]),
        })
    }

    /// Vision tokens `[N, T, g * g, D]` of `video` (`[N, T, 3, S, S]`),
    /// stream `i` continuing from `contexts[i]`'s temporal context (`[kt -
    /// 1, g, g, C]`; None before its first frame: zeros), which each gets
    /// its next value: a slot of one new buffer, which the next call of
    /// the same streams reads whole.
    pub fn encode<B: Backend>(
        &self,
        client: &ComputeClient<WgpuRuntime>,
        device: &WgpuDevice,
        counters: &Counters,
        video: Tensor<B, 5>,
        contexts: &mut [&mut FusedCache<B>],
    ) -> Result<Tensor<B, 4>> {
        let e = self.shape;
        let [n, t, ch, h, wd] = video.dims();
        let size = e.g * e.p;
        if n != contexts.len() || ch != e.ch_in || h != size || wd != size {
            return Err(AutoGazeError::engine(
                NAME,
                format!(
                    "video {:?} for {} stream context(s), not [N, T, {}, {size}, {size}]",
                    [n, t, ch, h, wd],
                    contexts.len(),
                    e.ch_in
                ),
            ));
        }
        let (frames, gg) = (n * t, e.g * e.g);
        let cubes = frames * gg / e.block;
        if cubes > MAX_CUBES {
            return Err(AutoGazeError::engine(
                NAME,
                format!(
                    "{frames} frames in one encoder call, over {}",
                    MAX_CUBES * e.block / gg
                ),
            ));
        }
        if frames == 0 {
            return float_tensor(GpuTensor::new_contiguous(
                client.clone(),
                device.clone(),
                [n, t, gg, e.d].into(),
                client.empty(4),
                DType::F32,
            ));
        }
        let ctx = self.contexts(contexts, n)?;
        let video = float_buffer(video)?;
        if video.dtype != DType::F32 {
            return Err(AutoGazeError::engine(NAME, "a video that is not f32"));
        }
        let st = video.meta.strides();
        let dims = [n, t, ch, h, wd];
        let video_len = 1 + (0..5).map(|i| (dims[i] - 1) * st[i]).sum::<usize>();
        let feat = client.empty(4 * frames * e.frame());
        let out = client.empty(4 * frames * gg * e.d);
        let next_len = n * e.context() * e.frame();
        let next = client.empty(4 * next_len.max(4));
        let units = CubeDim::new_1d(e.units() as u32);
        let count = CubeCount::Static(cubes as u32, 1, 1);
        let u32_of = |x: usize| x as u32;
        // SAFETY: the kernels' indices stay inside each buffer: the video's
        // strides and shape are Burn's own for this buffer; `feat`, `out`
        // and `next` are sized above for `frames` frames and `n` streams;
        // the weights' offsets are `EncShape`'s, checked against the packed
        // values at load; `ctx` holds `n` contexts when `has_ctx` is 1.
        unsafe {
            patch_norm::launch_unchecked(
                client,
                count.clone(),
                units,
                arg(&video.handle, video_len),
                arg(&self.packed, e.len()),
                arg(&self.packed, e.len() / 4),
                arg(&feat, frames * e.frame()),
                u32_of(t),
                u32_of(st[0]),
                u32_of(st[1]),
                u32_of(st[2]),
                u32_of(st[3]),
                u32_of(st[4]),
                e,
            );
            let (ctx_handle, ctx_len, has_ctx) = match &ctx {
                Some(handle) => (handle.clone(), n * e.context() * e.frame(), 1),
                None => (self.empty.clone(), 4, 0),
            };
            trunk_out::launch_unchecked(
                client,
                count,
                units,
                arg(&ctx_handle, ctx_len / 4),
                arg(&feat, frames * e.frame() / 4),
                arg(&self.packed, e.len() / 4),
                arg(&out, frames * gg * e.d),
                arg(&next, next_len.max(4) / 4),
                u32_of(t),
                has_ctx,
                e,
            );
        }
        counters.dispatched(2);
        if e.context() > 0 {
            let next_handle = next.clone();
            let next: Tensor<B, 5> = float_tensor(GpuTensor::new_contiguous(
                client.clone(),
                device.clone(),
                [n, e.context(), e.g, e.g, e.c].into(),
                next,
                DType::F32,
            ))?;
            let id = Slot::new_id();
            for (i, cache) in contexts.iter_mut().enumerate() {
                let shape = [e.context(), e.g, e.g, e.c];
                cache.conv = Some(next.clone().narrow(0, i, 1).reshape(shape));
                cache.conv_slot = Some(Slot {
                    whole: next_handle.clone(),
                    id,
                    index: i,
                    streams: n,
                });
            }
        }
        float_tensor(GpuTensor::new_contiguous(
            client.clone(),
            device.clone(),
            [n, t, gg, e.d].into(),
            out,
            DType::F32,
        ))
    }

    /// The streams' contexts as one contiguous buffer `[N, kt - 1, g * g,
    /// C]` (None: no stream has one yet): the buffer the last call of the
    /// same streams wrote, one stream's own, or else the streams' joined
    /// (zeros for a stream without one).
    fn contexts<B: Backend>(
        &self,
        caches: &[&mut FusedCache<B>],
        n: usize,
    ) -> Result<Option<Handle>> {
        let e = self.shape;
        if e.context() == 0 || caches.iter().all(|c| c.conv.is_none()) {
            return Ok(None);
        }
        let slots: Vec<Option<&Slot>> = caches.iter().map(|c| c.conv_slot.as_ref()).collect();
        if let Some(whole) = Slot::whole_of(&slots) {
            return Ok(Some(whole));
        }
        let contexts: Vec<&Option<Tensor<B, 4>>> = caches.iter().map(|c| &c.conv).collect();
        let shape = [e.context(), e.g, e.g, e.c];
        let joined = if n == 1 {
            contexts[0].clone().expect("one stream with a context")
        } else {
            let device = contexts
                .iter()
                .find_map(|c| c.as_ref().map(Tensor::device))
                .expect("a stream with a context");
            Tensor::cat(
                contexts
                    .iter()
                    .map(|c| Option::clone(c).unwrap_or_else(|| Tensor::zeros(shape, &device)))
                    .collect(),
                0,
            )
        };
        if joined.dims() != [n * shape[0], shape[1], shape[2], shape[3]] {
            return Err(AutoGazeError::engine(
                NAME,
                format!("stream contexts {:?}, not {n} x {shape:?}", joined.dims()),
            ));
        }
        let buffer = float_buffer(joined)?;
        if buffer.dtype != DType::F32 || !buffer.is_contiguous() {
            return Err(AutoGazeError::engine(
                NAME,
                "a stream context that is not contiguous f32",
            ));
        }
        Ok(Some(buffer.handle))
    }
}
