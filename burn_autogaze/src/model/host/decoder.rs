//! The gaze decoder on the host CPU, in a few fused passes: the same
//! computation as the reference engine's decoder (RMSNorm, llama3 RoPE,
//! masked causal attention over the KV cache, SiLU MLP, the K-head logits
//! and task-loss heads), over weights packed once at load for the
//! small-row products of a decode step, and a KV cache that grows in place
//! (per layer and head: keys as `K^T` panels, value rows).
//!
//! Why: on burn-ndarray a decode call (10 rows) went through ~60 Burn ops,
//! each re-packing its weight or copying its operand (PERF_LOOP, 2026-11-23:
//! 6.6 ms a call). Here a call is one pass per product, one per softmax.
//! Attention takes a head's queries as the rows of `Q_h @ K_h^T` (the keys
//! cached transposed, in panels of 16: [`KeyPanels`]), so a decode step's
//! 10 queries cost 10 rows, not a padded 16; softmax runs along each row,
//! and the output `P @ V_h` reads the value rows where they are.

use burn::tensor::backend::Backend;

use super::super::config::AutoGazeConfig;
use super::super::rope::{inv_freq, rope_tables};
use super::super::values::host_values;
use super::super::weights::ModelWeights;
use super::kernels::{Lhs, PANEL, Packed, Panels, gemm, silu_mul, softmax_rows};
use super::key_panels::KeyPanels;

/// Queries whose scores are computed and normalised together (a block's
/// `[64, keys]` scores stay in the outer caches through softmax and `P @ V`).
const QUERY_BLOCK: usize = 64;

/// A layer's packed weights.
#[derive(Debug, Clone)]
struct Layer {
    input_norm: Vec<f32>,
    qkv: Packed,
    o: Packed,
    post_norm: Vec<f32>,
    gate_up: Packed,
    down: Packed,
}

/// The decoder's weights on the host, packed for [`CpuDecoder::forward`].
#[derive(Debug, Clone)]
pub struct CpuDecoder {
    d: usize,
    heads: usize,
    head_dim: usize,
    inter: usize,
    eps: f32,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    lm_head: Packed,
    task_loss: Packed,
    inv_freq: Vec<f32>,
}

/// One layer's keys and values on the host, head by head: each head's keys
/// as `K^T` panels, its values `[keys, head_dim]` contiguous (what its
/// attention streams through).
#[derive(Debug, Clone, Default)]
pub struct HeadRows {
    pub keys: Vec<KeyPanels>,
    pub values: Vec<Vec<f32>>,
}

impl HeadRows {
    /// Keeps the first `keep` keys of every head.
    pub fn truncate(&mut self, keep: usize) {
        for (keys, values) in self.keys.iter_mut().zip(&mut self.values) {
            let hd = values.len() / keys.len().max(1);
            keys.truncate(keep);
            values.truncate(keep * hd);
        }
    }

    /// Drops the oldest `n` keys of every head.
    pub fn evict_front(&mut self, n: usize) {
        for (keys, values) in self.keys.iter_mut().zip(&mut self.values) {
            let hd = values.len() / keys.len().max(1);
            keys.drain_front(n);
            values.drain(..n * hd);
        }
    }
}

/// Packs a `[k, n]` weight for the kernels.
pub fn pack<B: Backend>(t: &burn::tensor::Tensor<B, 2>) -> Packed {
    let [k, n] = t.dims();
    Packed::new(&host_values(t.clone()), k, n)
}

/// `x * 1 / sqrt(mean(x^2) + eps) * w` per row of `d` values, into `out`.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    for (row, out) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let var = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((o, v), w) in out.iter_mut().zip(row).zip(w) {
            *o = *v * inv * w;
        }
    }
}

/// The shape of one decoder call: `n` streams of `l` rows; in the layer at
/// hand, the rows from `q_first` on are the ones whose queries are read.
#[derive(Debug, Clone, Copy)]
struct CallShape {
    n: usize,
    l: usize,
    q_first: usize,
}

impl CallShape {
    /// Rows of a stream whose queries are read.
    fn lq(&self) -> usize {
        self.l - self.q_first
    }
}

/// A call's working buffers, allocated once per call.
#[derive(Debug, Default)]
struct Scratch {
    hn: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    gu: Vec<f32>,
    act: Vec<f32>,
    inv_sum: Vec<f32>,
    v_pad: Vec<f32>,
    scores: Vec<f32>,
    rot: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// 0 for a key later tokens may attend to, -inf for a masked one.
    key_bias: Vec<f32>,
}
impl CpuDecoder {
    /// Copies and packs the decoder weights of `w`.
    pub fn new<B: Backend>(w: &ModelWeights<B>, c: &AutoGazeConfig) -> Self {
        let dec = &w.decoder;
        Self {
            d: c.hidden,
            heads: c.heads,
            head_dim: c.head_dim,
            inter: c.intermediate,
            eps: c.rms_eps as f32,
            layers: dec
                .layers
                .iter()
                .map(|l| Layer {
                    input_norm: host_values(l.input_norm.clone()),
                    qkv: pack(&l.qkv),
                    o: pack(&l.o),
                    post_norm: host_values(l.post_norm.clone()),
                    gate_up: pack(&l.gate_up),
                    down: pack(&l.down),
                })
                .collect(),
            norm: host_values(dec.norm.clone()),
            lm_head: pack(&dec.lm_head),
            task_loss: pack(&dec.task_loss),
            inv_freq: inv_freq(c),
        }
    }

    /// Runs `n` streams' rows `x` (`[n, l, D]`, row-major) at `positions`
    /// (the same for every stream) against each stream's cache `caches[s]`
    /// (whose key mask `key_mask` already includes the `l` new rows' bits),
    /// appending the new keys and values. Returns each stream's last-row
    /// logits `[n, K * vocab]` and task losses `[n, K]`.
    pub fn forward(
        &self,
        mut x: Vec<f32>,
        n: usize,
        positions: &[i64],
        key_mask: &[bool],
        caches: &mut [&mut Vec<HeadRows>],
    ) -> (Vec<f32>, Vec<f32>) {
        let (d, inter) = (self.d, self.inter);
        let l = positions.len();
        let rows = n * l;
        assert!(
            l > 0 && x.len() == rows * d,
            "cpu decoder: {n} x {l} rows of {d}, at least one a stream"
        );
        assert_eq!(caches.len(), n, "cpu decoder: one cache per stream");
        let mut buf = Scratch {
            hn: vec![0f32; rows * d],
            qkv: vec![0f32; rows * 3 * d],
            attn: vec![0f32; rows * d],
            gu: vec![0f32; rows * 2 * inter],
            act: vec![0f32; rows * inter],
            rot: vec![0f32; self.head_dim],
            key_bias: key_mask
                .iter()
                .map(|&m| if m { 0.0 } else { f32::NEG_INFINITY })
                .collect(),
            ..Scratch::default()
        };
        (buf.cos, buf.sin) = rope_tables(&self.inv_freq, positions);
        // Rows whose output the next layer reads: all of them, except in the
        // last layer, where only each stream's last row reaches the heads.
        // There the other rows still give their keys and values, but skip
        // their queries, attention, output projection and MLP.
        for (layer, lw) in self.layers.iter().enumerate() {
            let q_first = if layer + 1 == self.layers.len() {
                l - 1
            } else {
                0
            };
            let shape = CallShape { n, l, q_first };
            self.project_qkv(lw, shape, &x, &mut buf);
            self.rotate(shape, &mut buf);
            for (s, cache) in caches.iter_mut().enumerate() {
                self.attend(&mut cache[layer], s, shape, &mut buf);
            }
            if q_first > 0 {
                // Keep the rows whose output is read, in place.
                let lq = shape.lq();
                for s in 0..n {
                    for i in 0..lq {
                        let from = (s * l + q_first + i) * d;
                        x.copy_within(from..from + d, (s * lq + i) * d);
                    }
                }
                x.truncate(n * lq * d);
            }
            self.output_and_mlp(lw, n * shape.lq(), &mut x, &mut buf);
        }
        self.heads(&x, n)
    }

    /// RMSNorm, then q, k, v of every row (q only of the rows read).
    fn project_qkv(&self, lw: &Layer, shape: CallShape, x: &[f32], buf: &mut Scratch) {
        let d = self.d;
        let CallShape { n, l, q_first } = shape;
        let rows = n * l;
        rms_norm(x, &lw.input_norm, self.eps, &mut buf.hn);
        if q_first == 0 || !d.is_multiple_of(PANEL) {
            gemm(
                Lhs::rows(&buf.hn, rows, d),
                lw.qkv.panels(),
                &mut buf.qkv,
                3 * d,
                false,
            );
            return;
        }
        // Keys and values of every row, queries of the rows kept.
        gemm(
            Lhs::rows(&buf.hn, rows, d),
            lw.qkv.columns(d..3 * d),
            &mut buf.qkv[d..],
            3 * d,
            false,
        );
        let kept = Lhs {
            data: &buf.hn[q_first * d..],
            m: n,
            row_stride: l * d,
            col_stride: 1,
        };
        let q_out = &mut buf.qkv[q_first * 3 * d..];
        gemm(kept, lw.qkv.columns(0..d), q_out, l * 3 * d, false);
    }

    /// RoPE on q and k (`x * cos + rotate_half(x) * sin`); the queries
    /// carry the attention's 1 / sqrt(hd).
    fn rotate(&self, shape: CallShape, buf: &mut Scratch) {
        let (d, hd) = (self.d, self.head_dim);
        let half = hd / 2;
        let scale = (1.0 / (hd as f64).sqrt()) as f32;
        let (l, q_first) = (shape.l, shape.q_first);
        for (r, row) in buf.qkv.chunks_exact_mut(3 * d).enumerate() {
            let cs = &buf.cos[(r % l) * hd..][..hd];
            let sn = &buf.sin[(r % l) * hd..][..hd];
            let from = if r % l >= q_first { 0 } else { d };
            for head in row[from..2 * d].chunks_exact_mut(hd) {
                for i in 0..half {
                    buf.rot[i] = -head[i + half];
                    buf.rot[i + half] = head[i];
                }
                for i in 0..hd {
                    head[i] = head[i] * cs[i] + buf.rot[i] * sn[i];
                }
            }
            if from == 0 {
                for v in &mut row[..d] {
                    *v *= scale;
                }
            }
        }
    }

    /// Appends stream `s`'s new keys and values to its layer cache `kv`,
    /// then its read queries' attention outputs into `buf.attn`.
    fn attend(&self, kv: &mut HeadRows, s: usize, shape: CallShape, buf: &mut Scratch) {
        let (d, h, hd) = (self.d, self.heads, self.head_dim);
        let l = shape.l;
        kv.keys.resize(h, KeyPanels::new(hd));
        kv.values.resize(h, Vec::new());
        let past = kv.keys[0].len();
        let own = &buf.qkv[s * l * 3 * d..][..l * 3 * d];
        for row in own.chunks_exact(3 * d) {
            for head in 0..h {
                kv.keys[head].push(&row[d + head * hd..][..hd]);
                kv.values[head].extend_from_slice(&row[2 * d + head * hd..][..hd]);
            }
        }
        assert_eq!(buf.key_bias.len(), past + l, "cpu decoder: key mask length");
        for head in 0..h {
            for q0 in (shape.q_first..l).step_by(QUERY_BLOCK) {
                let qn = QUERY_BLOCK.min(l - q0);
                self.attend_block(kv, head, s, past, q0, qn, shape, buf);
            }
        }
    }

    /// Attention of one head for queries `q0..q0 + qn` of stream `s`.
    /// Query `q0 + i` sees key `j` iff `j <= past + q0 + i` (and the key
    /// mask allows it): the block's last query sees `seen` keys, the
    /// others fewer.
    #[allow(clippy::too_many_arguments)]
    fn attend_block(
        &self,
        kv: &HeadRows,
        head: usize,
        s: usize,
        past: usize,
        q0: usize,
        qn: usize,
        shape: CallShape,
        buf: &mut Scratch,
    ) {
        let (d, hd) = (self.d, self.head_dim);
        let CallShape { l, q_first, .. } = shape;
        let own = &buf.qkv[s * l * 3 * d..][..l * 3 * d];
        let seen = past + q0 + qn;
        let ld = seen.next_multiple_of(PANEL);
        buf.scores.resize(qn * ld, 0.0);
        // Scores [qn, seen] = (Q_h / sqrt(hd)) @ K_h^T.
        let q = Lhs {
            data: &own[q0 * 3 * d + head * hd..],
            m: qn,
            row_stride: 3 * d,
            col_stride: 1,
        };
        let k_t = Panels {
            n: seen,
            ..kv.keys[head].panels()
        };
        gemm(q, k_t, &mut buf.scores, ld, false);
        buf.inv_sum.resize(qn, 0.0);
        softmax_rows(
            &mut buf.scores,
            ld,
            &buf.key_bias[..seen],
            |i| past + q0 + i + 1,
            &mut buf.inv_sum,
        );
        // O = P @ V_h / sum, written into the queries' rows: V_h as panels
        // of 16 of the head's columns (copied to a padded block when
        // head_dim is not a multiple of 16).
        let p = Lhs {
            data: &buf.scores,
            m: qn,
            row_stride: ld,
            col_stride: 1,
        };
        let v_h = if hd.is_multiple_of(PANEL) {
            Panels {
                data: &kv.values[head],
                k: seen,
                n: hd,
                panel_stride: PANEL,
                row_stride: hd,
            }
        } else {
            let w = hd.next_multiple_of(PANEL);
            buf.v_pad.resize(seen * w, 0.0);
            for (j, row) in buf.v_pad.chunks_exact_mut(w).enumerate() {
                row[..hd].copy_from_slice(&kv.values[head][j * hd..][..hd]);
            }
            Panels {
                data: &buf.v_pad,
                k: seen,
                n: hd,
                panel_stride: PANEL,
                row_stride: w,
            }
        };
        let out = &mut buf.attn[(s * shape.lq() + q0 - q_first) * d + head * hd..];
        gemm(p, v_h, out, d, false);
        for (i, inv) in buf.inv_sum.iter().enumerate() {
            for v in &mut out[i * d..][..hd] {
                *v *= inv;
            }
        }
    }

    /// `x += attn @ o`, then `x += down(silu(gate) * up)` of the post-norm,
    /// for the `kept` rows of `x`.
    fn output_and_mlp(&self, lw: &Layer, kept: usize, x: &mut [f32], buf: &mut Scratch) {
        let (d, inter) = (self.d, self.inter);
        gemm(Lhs::rows(&buf.attn, kept, d), lw.o.panels(), x, d, true);
        rms_norm(x, &lw.post_norm, self.eps, &mut buf.hn);
        gemm(
            Lhs::rows(&buf.hn, kept, d),
            lw.gate_up.panels(),
            &mut buf.gu,
            2 * inter,
            false,
        );
        for (a, g) in buf
            .act
            .chunks_exact_mut(inter)
            .zip(buf.gu.chunks_exact(2 * inter))
            .take(kept)
        {
            a.copy_from_slice(&g[..inter]);
            silu_mul(a, &g[inter..]);
        }
        gemm(
            Lhs::rows(&buf.act, kept, inter),
            lw.down.panels(),
            x,
            d,
            true,
        );
    }

    /// The heads of each stream's final-normed last row (`x` holds `lq`
    /// rows a stream after the last layer): logits and task losses.
    fn heads(&self, x: &[f32], n: usize) -> (Vec<f32>, Vec<f32>) {
        let d = self.d;
        let lq = x.len() / (n * d);
        let mut last = vec![0f32; n * d];
        for s in 0..n {
            let row = &x[(s * lq + lq - 1) * d..][..d];
            rms_norm(row, &self.norm, self.eps, &mut last[s * d..][..d]);
        }
        let (nl, nt) = (self.lm_head.n, self.task_loss.n);
        let mut logits = vec![0f32; n * nl];
        let mut tl = vec![0f32; n * nt];
        let last = Lhs::rows(&last, n, d);
        gemm(last, self.lm_head.panels(), &mut logits, nl, false);
        gemm(last, self.task_loss.panels(), &mut tl, nt, false);
        (logits, tl)
    }
}
