//! The register-blocked pieces of a layer: a block's rows normed into
//! workgroup memory, products that read each weight once a block (a unit an
//! output column, for every row of the block), and the q/k/v projection with
//! RoPE and the KV append.

use cubecl::prelude::*;

use super::layout::{CallShape, Step, WeightLayout, inv_rms, phase_end};

/// The block's rows of `x`, RMS-normed and scaled by the norm's weights at
/// `norm`, into `xn` (`[block, D]`; rows past the call's end are zeros).
/// Each unit computes the RMS factor of the rows it writes itself (the
/// same sums in every unit, against a second barrier and a shared factor:
/// no difference measured on lavapipe, PERF_LOOP 2026-12-07).
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn block_normed(
    s: &Array<f32>,
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
/// matrix at `a_at`; `W` `[k, D]` at `w_at`): a unit an output column for
/// every row of the block.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn block_add_product(
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
    let mut c = UNIT_POS as usize;
    while c < d {
        let mut acc = Array::<f32>::new(block);
        #[unroll]
        for b in 0..block {
            acc[b] = 0.0;
        }
        for j in 0..k {
            let wv = w[w_at + j * d + c];
            #[unroll]
            for b in 0..block {
                // Rows past the call's end read row `rows - 1` (a valid
                // row) and are not written.
                let mut r = row0 + b;
                if r >= rows {
                    r = rows - 1;
                }
                acc[b] += s[a_at + r * k + j] * wv;
            }
        }
        #[unroll]
        for b in 0..block {
            let r = row0 + b;
            if r < rows {
                s[r * d + c] += acc[b];
            }
        }
        c += CUBE_DIM as usize;
    }
    phase_end();
}

/// RMSNorm'd rows (`xn`) through gate/up and SiLU into the scratch's
/// activations (`[rows, inter]` at `act_at`): a unit a column of both.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn block_gate_up(
    w: &Array<f32>,
    s: &mut Array<f32>,
    xn: &SharedMemory<f32>,
    row0: usize,
    rows: usize,
    gu_at: usize,
    act_at: usize,
    #[comptime] d: usize,
    #[comptime] inter: usize,
    #[comptime] block: usize,
) {
    let mut j = UNIT_POS as usize;
    while j < inter {
        let mut acc_g = Array::<f32>::new(block);
        let mut acc_u = Array::<f32>::new(block);
        #[unroll]
        for b in 0..block {
            acc_g[b] = 0.0;
            acc_u[b] = 0.0;
        }
        for k in 0..d {
            let wg = w[gu_at + k * 2 * inter + j];
            let wu = w[gu_at + k * 2 * inter + inter + j];
            #[unroll]
            for b in 0..block {
                let x = xn[b * d + k];
                acc_g[b] += x * wg;
                acc_u[b] += x * wu;
            }
        }
        #[unroll]
        for b in 0..block {
            let r = row0 + b;
            if r < rows {
                let g = acc_g[b];
                s[act_at + r * inter + j] = g / (1.0 + f32::exp(-g)) * acc_u[b];
            }
        }
        j += CUBE_DIM as usize;
    }
    phase_end();
}

/// The q, k, v projections of the block's normed rows (`xn`) for
/// columns `(i, i + half)` of head `h` of `part` (0 q, 1 k, 2 v), a task
/// these two columns for every row of the block (each weight read once a
/// block); RoPE on q and k (q scaled by 1 / sqrt(head_dim)): the queries
/// into the scratch, the keys or values appended to the cache at
/// `past + r`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn project_pair(
    w: &Array<f32>,
    kv: &mut Array<f32>,
    s: &mut Array<f32>,
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
    let part = task / comptime!(heads * (hd / 2));
    let h = (task % comptime!(heads * (hd / 2))) / half;
    let i = task % half;
    let rows = shape.rows as usize;
    let cap = shape.cap as usize;
    let past = shape.past as usize;
    let col = layer * comptime!(lay.layer()) + d + part * d + h * hd + i;
    let mut acc_a = Array::<f32>::new(block);
    let mut acc_b = Array::<f32>::new(block);
    #[unroll]
    for b in 0..block {
        acc_a[b] = 0.0;
        acc_b[b] = 0.0;
    }
    for k in 0..d {
        let wa = w[col + k * 3 * d];
        let wb = w[col + half + k * 3 * d];
        #[unroll]
        for b in 0..block {
            let x = xn[b * d + k];
            acc_a[b] += x * wa;
            acc_b[b] += x * wb;
        }
    }
    #[unroll]
    for b in 0..block {
        let r = row0 + b;
        if r < rows && (part > 0 || r >= shape.q_first as usize) {
            let a = acc_a[b];
            let bv = acc_b[b];
            if part == 2 {
                let at = (((layer * 2 + 1) * heads + h) * cap + past + r) * hd + i;
                kv[at] = a;
                kv[at + half] = bv;
            } else {
                let sin_at = rows * hd;
                let c0 = call[r * hd + i];
                let c1 = call[r * hd + i + half];
                let s0 = call[sin_at + r * hd + i];
                let s1 = call[sin_at + r * hd + i + half];
                let lo = a * c0 - bv * s0;
                let hi = bv * c1 + a * s1;
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
}
