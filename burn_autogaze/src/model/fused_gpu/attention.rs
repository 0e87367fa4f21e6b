//! The block's attention, head after head, a tile of keys at a time: the
//! tile's scores, the queries and the per-row softmax statistics sit in
//! workgroup memory.

use cubecl::prelude::*;

use super::blocks::F4;
use super::layout::{CallShape, TILE_KEYS, phase_end};

/// Attention of the block's rows, head after head, over the keys each row
/// may see (`j <= past + r`, unmasked), into the scratch's attention rows.
/// The keys go by in tiles of [`TILE_KEYS`]: the units score a tile's keys
/// against every row of the block (a key read once a block), then take the
/// tile's softmax terms with a running max and sum per row (the online
/// softmax), then each unit adds `P @ V` into the `(row, four columns)`
/// outputs it owns. Keys, values and queries are read as `vec4`s.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn block_attention(
    kv4: &Slice<F4, ReadWrite>,
    s: &mut Slice<f32, ReadWrite>,
    call: &Array<f32>,
    shape: &CallShape,
    sc: &mut SharedMemory<f32>,
    qs: &mut SharedMemory<F4>,
    part: &mut SharedMemory<F4>,
    stat: &mut SharedMemory<f32>,
    layer: usize,
    row0: usize,
    #[comptime] d: usize,
    #[comptime] block: usize,
    #[comptime] heads: usize,
    #[comptime] hd: usize,
    #[comptime] units: usize,
) {
    let rows = shape.rows as usize;
    let cap = shape.cap as usize;
    let past = shape.past as usize;
    let mask_at = 2 * rows * hd;
    let unit = UNIT_POS as usize;
    // Keys the block's last row sees (rows past the call's end see none
    // beyond it).
    let mut last = row0 + block;
    if last > rows {
        last = rows;
    }
    let seen = past + last;
    // The (row, column quad) outputs a unit owns: `unit`, `unit + units`, ...
    let hq = comptime!(hd / 4);
    let splits = comptime!(units / (hd / 4));
    let owned = comptime!((block * hd / 4).div_ceil(units));
    for h in 0..heads {
        let k0 = (layer * 2 * heads + h) * cap * hq;
        let v0 = ((layer * 2 + 1) * heads + h) * cap * hq;
        // The block's queries of this head, and each row's running max
        // (`stat[b]`) and sum (`stat[block + b]`).
        let mut t = unit;
        while t < comptime!(block * hd / 4) {
            let r = row0 + t / hq;
            let mut q = F4::new(0.0f32);
            if r < rows {
                let at = rows * d + r * d + h * hd + 4 * (t % hq);
                #[unroll]
                for c in 0..4usize {
                    q[c] = s[at + c];
                }
            }
            qs[t] = q;
            t += units;
        }
        if unit < block {
            stat[unit] = f32::new(-3.0e38);
            stat[block + unit] = 0.0;
        }
        let mut acc = Array::<F4>::new(owned);
        #[unroll]
        for o in 0..owned {
            acc[o] = F4::new(0.0f32);
        }
        phase_end();
        let mut j0 = 0usize;
        while j0 < seen {
            // Scores: a unit a key, every row of the block.
            let mut jj = unit;
            while jj < comptime!(TILE_KEYS) {
                let j = j0 + jj;
                let mut dots = Array::<F4>::new(block);
                #[unroll]
                for b in 0..block {
                    dots[b] = F4::new(0.0f32);
                }
                if j < seen {
                    for c in 0..hq {
                        let kc = kv4[k0 + j * hq + c];
                        #[unroll]
                        for b in 0..block {
                            dots[b] += qs[b * hq + c] * kc;
                        }
                    }
                }
                let open = j < seen && call[mask_at + j] > 0.5;
                #[unroll]
                for b in 0..block {
                    let mut v = f32::new(-3.0e38);
                    if open && j <= past + row0 + b {
                        let p = dots[b];
                        v = (p[0] + p[1]) + (p[2] + p[3]);
                    }
                    sc[b * comptime!(TILE_KEYS) + jj] = v;
                }
                jj += units;
            }
            phase_end();
            // Each row's new max (units 0..block), the old terms' scale in
            // `stat[2 block + b]`.
            if unit < block {
                let mut m = stat[unit];
                for jj in 0..comptime!(TILE_KEYS) {
                    let v = sc[unit * comptime!(TILE_KEYS) + jj];
                    if v > m {
                        m = v;
                    }
                }
                stat[comptime!(2 * block) + unit] = f32::exp(stat[unit] - m);
                stat[comptime!(3 * block) + unit] = m;
            }
            phase_end();
            // The tile's softmax terms.
            let mut t = unit;
            while t < comptime!(block * TILE_KEYS) {
                let v = sc[t];
                let mut p = 0.0f32;
                if v > -1.0e38 {
                    p = f32::exp(v - stat[comptime!(3 * block) + t / comptime!(TILE_KEYS)]);
                }
                sc[t] = p;
                t += units;
            }
            phase_end();
            // The rows' sums and maxes (units 0..block); each unit's
            // outputs: rescaled, plus the tile's `P @ V`.
            if unit < block {
                let mut sum = 0.0f32;
                for jj in 0..comptime!(TILE_KEYS) {
                    sum += sc[unit * comptime!(TILE_KEYS) + jj];
                }
                stat[block + unit] = stat[block + unit] * stat[comptime!(2 * block) + unit] + sum;
                stat[unit] = stat[comptime!(3 * block) + unit];
            }
            // `P @ V` in `splits` interleaved slices of the tile's keys: a
            // unit a column quad and a slice, every row of the block (a
            // value read once a block), into `part`.
            let mut n = seen - j0;
            if n > comptime!(TILE_KEYS) {
                n = comptime!(TILE_KEYS);
            }
            if unit < comptime!(splits * (hd / 4)) {
                let slice = unit / hq;
                let cq = unit % hq;
                let mut pv = Array::<F4>::new(block);
                #[unroll]
                for b in 0..block {
                    pv[b] = F4::new(0.0f32);
                }
                let mut jj = slice;
                while jj < n {
                    let v = kv4[v0 + (j0 + jj) * hq + cq];
                    #[unroll]
                    for b in 0..block {
                        pv[b] += F4::new(sc[b * comptime!(TILE_KEYS) + jj]) * v;
                    }
                    jj += comptime!(splits);
                }
                #[unroll]
                for b in 0..block {
                    part[(slice * block + b) * hq + cq] = pv[b];
                }
            }
            phase_end();
            // Each unit's outputs: rescaled, plus the slices' sums.
            #[unroll]
            for o in 0..owned {
                let t = unit + o * units;
                if t < comptime!(block * hd / 4) {
                    let b = t / hq;
                    let cq = t % hq;
                    let mut pv = F4::new(0.0f32);
                    #[unroll]
                    for slice in 0..splits {
                        pv += part[(slice * block + b) * hq + cq];
                    }
                    acc[o] = acc[o] * F4::new(stat[comptime!(2 * block) + b]) + pv;
                }
            }
            phase_end();
            j0 += comptime!(TILE_KEYS);
        }
        // The outputs, normalised.
        #[unroll]
        for o in 0..owned {
            let t = unit + o * units;
            if t < comptime!(block * hd / 4) {
                let b = t / hq;
                let r = row0 + b;
                if r < rows {
                    let sum = stat[block + b];
                    let mut inv = 0.0f32;
                    if sum > 0.0 {
                        inv = 1.0f32 / sum;
                    }
                    let v = acc[o];
                    let at = 2 * rows * d + r * d + h * hd + 4 * (t % hq);
                    #[unroll]
                    for c in 0..4usize {
                        s[at + c] = v[c] * inv;
                    }
                }
            }
        }
        phase_end();
    }
}
