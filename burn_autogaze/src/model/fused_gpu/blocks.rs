//! The register-blocked pieces of a layer: a block's rows normed into
//! workgroup memory, products that read each weight once a block (a unit
//! four adjacent output columns, read as a `vec4`, for every row of the
//! block), and the q/k/v projection with RoPE and the KV append.

use cubecl::prelude::*;

use super::layout::{CallShape, Step, WeightLayout, inv_rms, phase_end};

/// Four consecutive weights, read with one load (the packed buffer seen as
/// `vec4`s: every offset the vector reads use is a multiple of 4).
pub type F4 = Vector<f32, Const<4>>;

/// The block's rows of `x`, RMS-normed and scaled by the norm's weights at
/// `norm`, into `xn` (`[block, D]`; rows past the call's end are zeros).
/// Each unit computes the RMS factor of the rows it writes itself (the
/// same sums in every unit, against a second barrier and a shared factor:
/// no difference measured on lavapipe, PERF_LOOP 2026-12-07).
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn block_normed(
    s: &Slice<f32, ReadWrite>,
    w: &Array<f32>,
    xn: &mut SharedMemory<f32>,
    row0: usize,
    rows: usize,
    norm: usize,
    eps: f32,
    #[comptime] d: usize,
    #[comptime] block: usize,
    #[comptime] units: usize,
) {
    let unit = UNIT_POS as usize;
    #[unroll]
    for b in 0..block {
        let r = row0 + b;
        let mut inv = 0.0f32;
        if r < rows {
            inv = inv_rms(s, r * d, eps, d);
        }
        let mut k = unit;
        while k < d {
            let mut v = 0.0f32;
            if r < rows {
                v = s[r * d + k] * inv * w[norm + k];
            }
            xn[b * d + k] = v;
            k += units;
        }
    }
    phase_end();
}

/// `x[r] += a[r] @ W` for the block's rows (`a` the scratch's `[rows, k]`
/// matrix at `a_at`; `W` `[k, D]` at `w_at`): a unit four adjacent output
/// columns for every row of the block, the weights read as `vec4`s.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn block_add_product(
    w4: &Array<F4>,
    s: &mut Slice<f32, ReadWrite>,
    row0: usize,
    rows: usize,
    a_at: usize,
    w_at: usize,
    #[comptime] k: usize,
    #[comptime] d: usize,
    #[comptime] block: usize,
) {
    let quads = comptime!(d / 4);
    let mut q = UNIT_POS as usize;
    while q < quads {
        let mut acc = Array::<F4>::new(block);
        #[unroll]
        for b in 0..block {
            acc[b] = F4::new(0.0f32);
        }
        let w0 = w_at / 4 + q;
        for j in 0..k {
            let wv = w4[w0 + j * quads];
            #[unroll]
            for b in 0..block {
                // Rows past the call's end read row `rows - 1` (a valid
                // row) and are not written.
                let mut r = row0 + b;
                if r >= rows {
                    r = rows - 1;
                }
                acc[b] += F4::new(s[a_at + r * k + j]) * wv;
            }
        }
        #[unroll]
        for b in 0..block {
            let r = row0 + b;
            if r < rows {
                let v = acc[b];
                #[unroll]
                for i in 0..4usize {
                    let at = r * d + 4 * q + i;
                    s[at] = s[at] + v[i];
                }
            }
        }
        q += CUBE_DIM as usize;
    }
    phase_end();
}

/// The block's normed rows (`xn`) times two weight-column quads: `acc_a[b]`
/// gets row `b` times the quad at `col` (in `vec4`s), `acc_b[b]` times the
/// quad `partner` further on; a column's next weight is `stride` `vec4`s on.
/// Gate with up, and a RoPE pair's two halves, are such pairs.
#[cube]
#[allow(clippy::too_many_arguments)]
fn normed_quad_pair(
    w4: &Array<F4>,
    xn: &SharedMemory<f32>,
    col: usize,
    #[comptime] partner: usize,
    #[comptime] stride: usize,
    acc_a: &mut Array<F4>,
    acc_b: &mut Array<F4>,
    #[comptime] d: usize,
    #[comptime] block: usize,
) {
    #[unroll]
    for b in 0..block {
        acc_a[b] = F4::new(0.0f32);
        acc_b[b] = F4::new(0.0f32);
    }
    for k in 0..d {
        let at = col + k * stride;
        let wa = w4[at];
        let wb = w4[at + partner];
        #[unroll]
        for b in 0..block {
            let x = F4::new(xn[b * d + k]);
            acc_a[b] += x * wa;
            acc_b[b] += x * wb;
        }
    }
}

/// RMSNorm'd rows (`xn`) through gate/up and SiLU into the scratch's
/// activations (`[rows, inter]` at `act_at`): a unit four adjacent columns
/// of both, their weights read as `vec4`s (`w4`).
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn block_gate_up(
    w4: &Array<F4>,
    s: &mut Slice<f32, ReadWrite>,
    xn: &SharedMemory<f32>,
    row0: usize,
    rows: usize,
    gu_at: usize,
    act_at: usize,
    #[comptime] d: usize,
    #[comptime] inter: usize,
    #[comptime] block: usize,
) {
    let quads = comptime!(inter / 4);
    let mut q = UNIT_POS as usize;
    while q < quads {
        let mut acc_g = Array::<F4>::new(block);
        let mut acc_u = Array::<F4>::new(block);
        let stride = comptime!(2 * inter / 4);
        normed_quad_pair(
            w4,
            xn,
            gu_at / 4 + q,
            quads,
            stride,
            &mut acc_g,
            &mut acc_u,
            d,
            block,
        );
        #[unroll]
        for b in 0..block {
            let r = row0 + b;
            if r < rows {
                let g4 = acc_g[b];
                let u4 = acc_u[b];
                #[unroll]
                for i in 0..4usize {
                    let g = g4[i];
                    s[act_at + r * inter + 4 * q + i] = g / (1.0 + f32::exp(-g)) * u4[i];
                }
            }
        }
        q += CUBE_DIM as usize;
    }
    phase_end();
}

/// The q, k, v projections of the block's normed rows (`xn`) for columns
/// `i..i + 4` and `i + half..i + half + 4` of head `h` of `part` (0 q, 1 k,
/// 2 v), a task these eight columns for every row of the block (each weight
/// read once a block, as `vec4`s); RoPE on q and k (q scaled by
/// 1 / sqrt(head_dim)): the queries into the scratch, the keys or values
/// appended to the cache (`kv4`, in `vec4`s) at `past + r`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn project_quad(
    w4: &Array<F4>,
    kv4: &mut Slice<F4, ReadWrite>,
    s: &mut Slice<f32, ReadWrite>,
    call: &Array<f32>,
    xn: &SharedMemory<f32>,
    shape: &CallShape,
    layer: usize,
    row0: usize,
    task: usize,
    #[comptime] lay: WeightLayout,
    #[comptime] step: Step,
) {
    let d = comptime!(lay.d);
    let block = comptime!(step.block);
    let heads = comptime!(step.n_heads);
    let hd = comptime!(step.hd);
    let half = comptime!(hd / 2);
    let quads = comptime!(hd / 8);
    let part = task / comptime!(heads * (hd / 8));
    let h = (task % comptime!(heads * (hd / 8))) / quads;
    let i = 4 * (task % quads);
    let rows = shape.rows as usize;
    let cap = shape.cap as usize;
    let past = shape.past as usize;
    let col = (layer * comptime!(lay.layer()) + d + part * d + h * hd + i) / 4;
    let stride = comptime!(3 * d / 4);
    let mut acc_a = Array::<F4>::new(block);
    let mut acc_b = Array::<F4>::new(block);
    let partner = comptime!(half / 4);
    normed_quad_pair(
        w4, xn, col, partner, stride, &mut acc_a, &mut acc_b, d, block,
    );
    #[unroll]
    for b in 0..block {
        let r = row0 + b;
        if r < rows && (part > 0 || r >= shape.q_first as usize) {
            let a = acc_a[b];
            let bv = acc_b[b];
            if part == 2 {
                let at = (((layer * 2 + 1) * heads + h) * cap + past + r) * hd + i;
                kv4[at / 4] = a;
                kv4[(at + half) / 4] = bv;
            } else {
                let sin_at = rows * hd;
                let mut lo = F4::new(0.0f32);
                let mut hi = F4::new(0.0f32);
                #[unroll]
                for c in 0..4usize {
                    let c0 = call[r * hd + i + c];
                    let c1 = call[r * hd + i + half + c];
                    let s0 = call[sin_at + r * hd + i + c];
                    let s1 = call[sin_at + r * hd + i + half + c];
                    lo[c] = a[c] * c0 - bv[c] * s0;
                    hi[c] = bv[c] * c1 + a[c] * s1;
                }
                if part == 0 {
                    let scale = comptime!((1.0 / (hd as f64).sqrt()) as f32);
                    let q_at = rows * d + r * d + h * hd + i;
                    #[unroll]
                    for c in 0..4usize {
                        s[q_at + c] = lo[c] * scale;
                        s[q_at + half + c] = hi[c] * scale;
                    }
                } else {
                    let at = ((layer * 2 * heads + h) * cap + past + r) * hd + i;
                    kv4[at / 4] = lo;
                    kv4[(at + half) / 4] = hi;
                }
            }
        }
    }
}
