//! Greedy selection, written once above every engine: on the host from
//! each decoder call's read-back heads (the CPU backend's default, and every
//! traced run), or on the device with one readback per frame (the picked
//! ids and the task-loss values; the GPU backends' default): see
//! [`Selection`](super::Selection). Both close chunks through one gate
//! ([`settle_chunk`]).

use burn::tensor::{Int, Tensor, backend::Backend};

use super::autogaze::AutoGaze;
use super::engine::{ChunkIds, FramePicker, Heads};
use super::options::{DecodeStep, FrameGaze, GenerateOptions};
use super::stream::StreamState;
use super::values::host_values_async;
use crate::error::Result;
use crate::wait::Pending;

/// Closes a chunk of picks the way the reference does: the per-token
/// task-loss gate (a token whose predicted loss is at or below the
/// requirement becomes a pad; the frame's first token is exempt), then the
/// budget. Appends the chunk to `frame`; returns its tokens (ids, pad flags)
/// and whether the frame ends with it.
fn settle_chunk(
    chunk: &[u32],
    tl: &[f32],
    frame: &mut FrameGaze,
    budget: usize,
    early_stop: bool,
    options: &GenerateOptions,
    pad: u32,
) -> (Vec<(u32, bool)>, bool) {
    let first = frame.ids.is_empty();
    let mut chunk = chunk.to_vec();
    let mut padded = vec![false; chunk.len()];
    let mut any_meet = false;
    if let Some(req) = options.task_loss_requirement {
        for (i, p) in padded.iter_mut().enumerate() {
            let meet = tl[i] <= req && !(first && i == 0);
            *p = meet;
            any_meet |= meet;
        }
    }
    let mut hit_max = false;
    if frame.ids.len() + chunk.len() >= budget {
        chunk.truncate(budget - frame.ids.len());
        padded.truncate(chunk.len());
        hit_max = true;
    }
    // Gated tokens become pads (a pad ends the frame).
    let tokens: Vec<(u32, bool)> = chunk
        .iter()
        .zip(&padded)
        .map(|(id, p)| (if *p { pad } else { *id }, *p))
        .collect();
    for &(id, p) in &tokens {
        frame.ids.push(id);
        frame.padded.push(p);
    }
    (tokens, any_meet || hit_max || early_stop)
}

/// One stream's greedy picks within a frame, on the host.
struct Picker {
    /// Ids the frame emitted (no repeats).
    used: Vec<bool>,
    pad: u32,
    frame: FrameGaze,
}

impl Picker {
    fn new(vocab: usize, pad: u32) -> Self {
        Self {
            used: vec![false; vocab],
            pad,
            frame: FrameGaze::default(),
        }
    }

    /// The next chunk from one call's `K * vocab` logits (overwritten as
    /// scores) and `K` task losses: its tokens, and whether the frame ends.
    fn chunk(
        &mut self,
        scores: &mut [f32],
        tl: &[f32],
        k: usize,
        budget: usize,
        options: &GenerateOptions,
    ) -> (Vec<(u32, bool)>, bool) {
        let vocab = self.used.len();
        // Logit processors: no repeats within the frame, EOS banned.
        for head in scores.chunks_exact_mut(vocab) {
            for (id, s) in head.iter_mut().enumerate() {
                if self.used[id] || id == self.pad as usize {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        let mut chunk: Vec<u32> = Vec::with_capacity(k);
        let mut early_stop = false;
        for i in 0..k {
            if chunk.len() + self.frame.ids.len() >= budget {
                early_stop = true;
                break;
            }
            let head = &scores[i * vocab..(i + 1) * vocab];
            let mut best: Option<(usize, f32)> = None;
            for (id, &s) in head.iter().enumerate() {
                if s > f32::NEG_INFINITY && best.is_none_or(|(_, b)| s > b) {
                    best = Some((id, s));
                }
            }
            let Some((pick, _)) = best else {
                early_stop = true;
                break;
            };
            chunk.push(pick as u32);
            for later in i + 1..k {
                scores[later * vocab + pick] = f32::NEG_INFINITY;
            }
        }
        let (tokens, stop) = settle_chunk(
            &chunk,
            tl,
            &mut self.frame,
            budget,
            early_stop,
            options,
            self.pad,
        );
        for &(id, _) in &tokens {
            self.used[id as usize] = true;
        }
        (tokens, stop)
    }
}

impl<B: Backend> AutoGaze<B> {
    /// Greedy selection on the host from each call's read-back logits.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn select_on_host(
        &self,
        states: &mut [&mut StreamState<B>],
        mut logits: Vec<f32>,
        mut tl: Vec<f32>,
        budget: usize,
        tail: &[i64],
        options: &GenerateOptions,
        trace: &mut Option<&mut Vec<DecodeStep>>,
    ) -> Result<Vec<FrameGaze>> {
        let c = &self.config;
        let (k, vocab, pad, n) = (c.multi_token, c.vocab(), c.layout.pad_id(), states.len());
        let mut pickers: Vec<Picker> = (0..n).map(|_| Picker::new(vocab, pad)).collect();
        loop {
            let mut chunks = Vec::with_capacity(n);
            let mut stop = false;
            for (i, picker) in pickers.iter_mut().enumerate() {
                let (tokens, ends) = picker.chunk(
                    &mut logits[i * k * vocab..(i + 1) * k * vocab],
                    &tl[i * k..(i + 1) * k],
                    k,
                    budget,
                    options,
                );
                // Streams in lockstep end their frames together.
                debug_assert!(i == 0 || ends == stop);
                stop = ends;
                chunks.push(tokens);
            }
            if stop {
                for (state, tokens) in states.iter_mut().zip(chunks) {
                    state.pending = tokens;
                }
                return Ok(pickers.into_iter().map(|p| p.frame).collect());
            }
            // Feed the chunk inside the frame: tail positions, all attended.
            // In the full sequence these tokens still occupy cumulative
            // positions, which the next frame's prefill continues from.
            let ids: Vec<u32> = chunks.iter().flatten().map(|(id, _)| *id).collect();
            let m = chunks[0].len();
            for state in states.iter_mut() {
                state.next_pos += m as i64;
            }
            let ids = ChunkIds::Host(ids);
            let all = vec![true; m];
            (logits, tl) = self
                .call_host(states, Some(ids), None, &tail[..m], &all, trace)
                .await?;
        }
    }

    /// Greedy selection on the device: the whole budget is decoded without
    /// reading anything back. Each head's pick is an argmax over its logits
    /// where the pad id and every id picked in the frame so far (earlier
    /// heads of the same chunk included) are barred, by the engine's own
    /// kernels where it has them ([`FramePicker`]) or Burn ops; the picks
    /// are embedded on the device and fed as the next chunk. The number of decode
    /// calls is known up front (`ceil(budget / K)` chunks); only the task-loss
    /// gate can end a frame earlier. So after the last chunk, **one readback**
    /// (the frame's picked ids and each chunk's `K` task-loss values, `2 *
    /// budget` floats per stream) goes through the same gate as the host
    /// path; when the gate stopped a frame at chunk `j`, the keys of the
    /// chunks fed after it are dropped from the KV cache and the positions
    /// rewound, so the state is exactly the reference's. Ties between equal
    /// logits go to the lowest id (as on the host) in an engine's kernels,
    /// to the backend's `argmax` in Burn ops.
    pub(super) async fn select_on_device(
        &self,
        states: &mut [&mut StreamState<B>],
        heads: Heads<B>,
        budget: usize,
        tail: &[i64],
        options: &GenerateOptions,
    ) -> Result<Vec<FrameGaze>> {
        let c = &self.config;
        let (k, vocab, pad, n) = (c.multi_token, c.vocab(), c.layout.pad_id(), states.len());
        let mut picker = match self.engine.frame_picker(n, budget) {
            Some(picker) => picker,
            None => Box::new(OpsPicker::new(n, k, vocab, pad, self.device())),
        };
        let chunks = budget.div_ceil(k);
        let (keys_fed_from, pos_fed_from) = (states[0].cached_keys(), states[0].next_pos);
        let mut heads = heads;
        for j in 0..chunks {
            let m = k.min(budget - j * k);
            let ids = picker.pick(heads, j, m)?;
            if j + 1 == chunks {
                break;
            }
            for state in states.iter_mut() {
                state.next_pos += m as i64;
            }
            heads = self
                .call(states, Some(ids), None, &tail[..m], &vec![true; m])
                .await?;
        }
        // The frame's one readback: per stream, its ids then its task losses.
        let values = picker.read().await?;
        // The picker is the engine's: its bytes are the engine's count.
        self.counts.read(1, 0);
        let mut frames = Vec::with_capacity(n);
        for (i, state) in states.iter_mut().enumerate() {
            state.readbacks += 1;
            let (ids, losses) = values[i * 2 * budget..(i + 1) * 2 * budget].split_at(budget);
            let mut frame = FrameGaze::default();
            for j in 0..chunks {
                let range = j * k..(j * k + k).min(budget);
                let chunk: Vec<u32> = ids[range.clone()].iter().map(|&v| v as u32).collect();
                let early_stop = chunk.len() < k;
                let (tokens, stop) = settle_chunk(
                    &chunk,
                    &losses[range],
                    &mut frame,
                    budget,
                    early_stop,
                    options,
                    pad,
                );
                if stop || j + 1 == chunks {
                    // Chunks 0..j were fed (K tokens each); later ones are undone.
                    state.truncate_keys(keys_fed_from + j * k);
                    state.next_pos = pos_fed_from + (j * k) as i64;
                    state.pending = tokens;
                    break;
                }
            }
            frames.push(frame);
        }
        Ok(frames)
    }
}

/// The device selection in Burn ops (engines without picking kernels of
/// their own): a few ops a pick, the frame's picks and losses kept as
/// tensors until the frame's one readback.
pub(super) struct OpsPicker<B: Backend> {
    k: usize,
    vocab: usize,
    /// `[N, vocab]` ids `0..vocab` a row.
    iota: Tensor<B, 2, Int>,
    /// `[N, vocab]`: -inf where an id may not be picked, else 0.
    used: Tensor<B, 2>,
    /// Each chunk's ids `[N, m]` (as floats).
    picked: Vec<Tensor<B, 2>>,
    /// Each chunk's task losses `[N, m]`.
    losses: Vec<Tensor<B, 2>>,
    device: B::Device,
}

impl<B: Backend> OpsPicker<B> {
    pub(super) fn new(n: usize, k: usize, vocab: usize, pad: u32, device: B::Device) -> Self {
        let iota = Tensor::<B, 1, Int>::arange(0..vocab as i64, &device)
            .reshape([1, vocab])
            .expand([n, vocab]);
        let used = Tensor::<B, 2>::zeros([n, vocab], &device)
            .mask_fill(iota.clone().equal_elem(pad as i64), f32::NEG_INFINITY);
        Self {
            k,
            vocab,
            iota,
            used,
            picked: Vec::new(),
            losses: Vec::new(),
            device,
        }
    }
}

impl<B: Backend> FramePicker<B> for OpsPicker<B> {
    fn pick(&mut self, heads: Heads<B>, _j: usize, m: usize) -> Result<ChunkIds<B>> {
        let (k, vocab) = (self.k, self.vocab);
        let n = self.iota.dims()[0];
        let (logits, tl) = heads.into_device(n, &self.device);
        let heads = logits.reshape([n, k, vocab]);
        let mut chunk = Vec::with_capacity(m);
        for i in 0..m {
            let scores = heads
                .clone()
                .slice([0..n, i..i + 1, 0..vocab])
                .reshape([n, vocab])
                + self.used.clone();
            let pick = scores.argmax(1);
            self.used = self.used.clone().mask_fill(
                self.iota.clone().equal(pick.clone().expand([n, vocab])),
                f32::NEG_INFINITY,
            );
            chunk.push(pick);
        }
        let ids = Tensor::cat(chunk, 1);
        self.picked.push(ids.clone().float());
        self.losses.push(tl.slice([0..n, 0..m]));
        Ok(ChunkIds::Device(ids.reshape([n * m])))
    }

    fn read(self: Box<Self>) -> Pending<'static, Result<Vec<f32>>> {
        let mut all = self.picked;
        all.extend(self.losses);
        Box::pin(host_values_async(Tensor::cat(all, 1)))
    }
}
