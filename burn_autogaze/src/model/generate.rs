//! Greedy multi-token gaze decoding, frame by frame, exactly as the
//! reference: K heads per step, no repeats within a frame, EOS banned, the
//! per-token task-loss gate (the first token of a frame exempt), pads
//! interleaving with valid tokens, decode chunks at the tail position ids of
//! the frame's vision tokens, and each frame's final chunk fed in the next
//! frame's prefill at cumulative positions.
//!
//! Selection runs on the host from each decoder call's read-back logits
//! (the CPU backend's default, and every traced run), or on the device with
//! one readback per frame (the picked ids and the task-loss values; the GPU
//! backends' default): see [`Selection`]. Both close chunks through one gate
//! ([`settle_chunk`]). [`StreamState::readbacks`] counts.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::decoder::{self, KvCache};
use super::vision::{self, ConvCache};
use super::{AutoGaze, host_values};
use crate::error::{AutoGazeError, Result};

/// Per-call decoding settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateOptions {
    /// Fraction of the 265 tokens a frame may use, in (0, 1].
    pub gazing_ratio: f32,
    /// Stop a frame once a token's predicted task loss is at or below this.
    pub task_loss_requirement: Option<f32>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            gazing_ratio: 0.75,
            task_loss_requirement: Some(0.7),
        }
    }
}

/// Where greedy selection runs. Both give the reference's tokens; the
/// default is [`AutoGaze::selection_for`]'s rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Read each decoder call's logits and task losses back and select on
    /// the host, stopping at the reference's stop: right for a CPU backend,
    /// where the "readback" is a copy, and wherever a task-loss gate ends
    /// frames early (every skipped decoder call counts).
    Host,
    /// Select on the device and decode the whole budget without a readback,
    /// then read the frame back once (see `select_on_device`): right for a
    /// GPU decoding full budgets. With a task-loss requirement that ends
    /// frames early, the calls past the stop are spent and undone.
    Device,
}

/// `max(1, trunc(f32(ratio) * tokens))`; a ratio outside (0, 1] or NaN is an error.
pub fn max_tokens(ratio: f32, tokens: u32) -> Result<usize> {
    if !(ratio > 0.0 && ratio <= 1.0) {
        return Err(AutoGazeError::setting(
            "gazing ratio",
            ratio,
            "a number in (0, 1]",
        ));
    }
    Ok(((ratio * tokens as f32) as usize).max(1))
}

/// What one frame produced: frame-local ids in generation order (pads hold
/// the pad id) and their pad flags; the same type every mask source emits.
pub type FrameGaze = crate::tokens::GazeTokens;

/// One decoder call, for parity checks and traces.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeStep {
    pub frame: usize,
    pub positions: Vec<i64>,
    /// `[K * vocab]` raw last-position logits.
    pub logits: Vec<f32>,
    /// `[K]` task-loss predictions.
    pub task_loss: Vec<f32>,
}

/// The decoder's state between frames: everything needed to continue a clip
/// one frame at a time with exactly the full-clip result.
#[derive(Debug, Clone)]
pub struct StreamState<B: Backend> {
    conv: ConvCache<B>,
    kv: KvCache<B>,
    /// Valid tokens so far: the next cumulative position.
    next_pos: i64,
    /// The last frame's final chunk (ids, pad flags), fed in the next prefill.
    pending: Vec<(u32, bool)>,
    frames: usize,
    /// Keys each cached frame added, oldest first.
    frame_keys: std::collections::VecDeque<usize>,
    /// Frames of keys kept (0: unbounded, exactly the reference).
    horizon: usize,
    /// Device-to-host reads so far.
    readbacks: u64,
}

impl<B: Backend> StreamState<B> {
    /// Frames decoded so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Device-to-host reads so far: one per frame (the frame's ids and task
    /// losses) untraced; two per decoder call (logits, task losses) traced.
    pub fn readbacks(&self) -> u64 {
        self.readbacks
    }

    /// Keys held in the KV cache.
    pub fn cached_keys(&self) -> usize {
        self.kv.len()
    }

    /// Bounds memory: keep the keys of at most `frames` frames (0: keep all).
    ///
    /// The reference attends to every earlier frame; with a horizon, the
    /// oldest frame's keys are dropped once more than `frames` frames are
    /// cached, so attention cost and memory stay constant on endless video.
    /// Positions keep counting (RoPE only sees relative offsets), but results
    /// past the horizon differ from an unbounded run by design.
    pub fn set_horizon(&mut self, frames: usize) {
        self.horizon = frames;
        self.enforce_horizon();
    }

    fn enforce_horizon(&mut self) {
        while self.horizon > 0 && self.frame_keys.len() > self.horizon {
            let n = self.frame_keys.pop_front().unwrap_or(0);
            self.kv.evict_front(n);
        }
    }
}

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

/// Whether `states` can share decoder calls for a frame: the same
/// positions, pad pattern and key mask, the same cached-frame bookkeeping,
/// and no task-loss gate (which would end their frames at different
/// chunks). Streams started together on the same settings (AnyRes tiles)
/// stay in lockstep as long as no gate is set.
pub fn lockstep<B: Backend>(states: &[&mut StreamState<B>], options: &GenerateOptions) -> bool {
    options.task_loss_requirement.is_none()
        && states.windows(2).all(|w| {
            let (a, b) = (&w[0], &w[1]);
            a.next_pos == b.next_pos
                && a.frame_keys == b.frame_keys
                && a.horizon == b.horizon
                && a.kv.key_mask() == b.kv.key_mask()
                && a.pending
                    .iter()
                    .map(|p| p.1)
                    .eq(b.pending.iter().map(|p| p.1))
        })
}

impl<B: Backend> AutoGaze<B> {
    /// A fresh stream.
    pub fn new_stream(&self) -> StreamState<B> {
        StreamState {
            conv: ConvCache::default(),
            kv: KvCache::new(self.config.layers),
            next_pos: 0,
            pending: Vec::new(),
            frames: 0,
            frame_keys: std::collections::VecDeque::new(),
            horizon: 0,
            readbacks: 0,
        }
    }

    /// Vision tokens `[T, 196, D]` of `video` (`[T, 3, S, S]`), continuing the
    /// stream's temporal context.
    pub fn encode(&self, state: &mut StreamState<B>, video: Tensor<B, 4>) -> Tensor<B, 3> {
        let mut caches = [std::mem::take(&mut state.conv)];
        let out = self.encode_streams(video.unsqueeze::<5>(), &mut caches);
        let [_, t, n, d] = out.dims();
        state.conv = std::mem::take(&mut caches[0]);
        out.reshape([t, n, d])
    }

    /// Vision tokens `[N, T, 196, D]` of `N` streams' frames `[N, T, 3, S,
    /// S]`, stream `i` continuing from `caches[i]`: in the CPU kernels when
    /// the model has them, else through Burn ops.
    fn encode_streams(&self, video: Tensor<B, 5>, caches: &mut [ConvCache<B>]) -> Tensor<B, 4> {
        let Some(cpu) = self.cpu_kernels.as_deref() else {
            return vision::encode_streams(&self.weights, &self.config, video, caches);
        };
        let device = video.device();
        let [n, t, _, _, _] = video.dims();
        let values = host_values(video);
        let per_stream = values.len() / n.max(1);
        let mut out =
            Vec::with_capacity(n * t * self.config.vision_tokens() * self.config.vision_out);
        for (frames, cache) in values
            .chunks_exact(per_stream.max(1))
            .zip(caches.iter_mut())
        {
            let mut context = cache.take_rows();
            out.extend(cpu.encoder.encode(frames, t, &mut context));
            cache.set_rows(context);
        }
        let shape = [n, t, self.config.vision_tokens(), self.config.vision_out];
        Tensor::from_data(TensorData::new(out, shape), &device)
    }

    /// One decoder call for streams in lockstep; the K-head logits
    /// `[N, K * vocab]` and task-loss predictions `[N, K]` stay on the device.
    fn call_device(
        &self,
        states: &mut [&mut StreamState<B>],
        x: Tensor<B, 3>,
        positions: &[i64],
        mask: &[bool],
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        if self.cpu_kernels.is_some() {
            let device = x.device();
            let n = states.len();
            let (logits, tl) = self.call_cpu(states, x, positions, mask);
            let (k, vocab) = (self.config.multi_token, self.config.vocab());
            return (
                Tensor::from_data(TensorData::new(logits, [n, k * vocab]), &device),
                Tensor::from_data(TensorData::new(tl, [n, k]), &device),
            );
        }
        let mut caches: Vec<&mut KvCache<B>> = states.iter_mut().map(|s| &mut s.kv).collect();
        let hidden = decoder::forward(
            &self.weights,
            &self.config,
            x,
            positions,
            mask,
            &mut caches,
            &self.rope,
        );
        decoder::heads(&self.weights, hidden)
    }

    /// One decoder call in the fused CPU kernels (the model has them):
    /// `[N * K * vocab]` logits, `[N * K]` task losses.
    fn call_cpu(
        &self,
        states: &mut [&mut StreamState<B>],
        x: Tensor<B, 3>,
        positions: &[i64],
        mask: &[bool],
    ) -> (Vec<f32>, Vec<f32>) {
        let cpu = &self
            .cpu_kernels
            .as_deref()
            .expect("the CPU kernels")
            .decoder;
        let rows = host_values(x);
        let mut caches: Vec<&mut KvCache<B>> = states.iter_mut().map(|s| &mut s.kv).collect();
        decoder::forward_cpu(cpu, rows, positions, mask, &mut caches)
    }

    /// One decoder call read back to the host (`[N * K * vocab]` logits,
    /// `[N * K]` task losses), recorded when traced (one stream).
    fn call_host(
        &self,
        states: &mut [&mut StreamState<B>],
        x: Tensor<B, 3>,
        positions: Vec<i64>,
        mask: &[bool],
        trace: &mut Option<&mut Vec<DecodeStep>>,
    ) -> (Vec<f32>, Vec<f32>) {
        let (logits, tl) = if self.cpu_kernels.is_some() {
            self.call_cpu(states, x, &positions, mask)
        } else {
            let (logits, tl) = self.call_device(states, x, &positions, mask);
            (host_values(logits), host_values(tl))
        };
        for state in states.iter_mut() {
            state.readbacks += 2;
        }
        if let Some(trace) = trace.as_mut() {
            trace.push(DecodeStep {
                frame: states[0].frames,
                positions,
                logits: logits.clone(),
                task_loss: tl.clone(),
            });
        }
        (logits, tl)
    }

    /// Decodes one frame from its vision tokens `[196, D]`.
    ///
    /// Selection runs where [`AutoGaze::selection`] says; a traced call
    /// always selects on the host (it reads every decoder call back).
    pub fn decode_frame(
        &self,
        state: &mut StreamState<B>,
        vision_tokens: Tensor<B, 2>,
        options: &GenerateOptions,
        trace: Option<&mut Vec<DecodeStep>>,
    ) -> Result<FrameGaze> {
        let mut frames =
            self.decode_lockstep(&mut [state], vision_tokens.unsqueeze::<3>(), options, trace)?;
        Ok(frames.remove(0))
    }

    /// Decodes one frame for each of `states` from their vision tokens
    /// `[N, 196, D]`. Streams in lockstep (see [`lockstep`]) share every
    /// decoder call when [`AutoGaze::batches_streams`] (their rows go through
    /// the projections together, their attention is batched); otherwise they
    /// are decoded one after another. The result equals decoding each
    /// stream on its own.
    pub fn decode_frames(
        &self,
        states: &mut [StreamState<B>],
        vision_tokens: Tensor<B, 3>,
        options: &GenerateOptions,
    ) -> Result<Vec<FrameGaze>> {
        let mut refs: Vec<&mut StreamState<B>> = states.iter_mut().collect();
        if refs.len() > 1 && self.batches_streams() && lockstep(&refs, options) {
            return self.decode_lockstep(&mut refs, vision_tokens, options, None);
        }
        let [_, tk, d] = vision_tokens.dims();
        refs.into_iter()
            .enumerate()
            .map(|(i, state)| {
                let own = vision_tokens.clone().narrow(0, i, 1).reshape([tk, d]);
                self.decode_frame(state, own, options, None)
            })
            .collect()
    }

    /// One frame for streams in lockstep (or one stream).
    fn decode_lockstep(
        &self,
        states: &mut [&mut StreamState<B>],
        vision_tokens: Tensor<B, 3>,
        options: &GenerateOptions,
        mut trace: Option<&mut Vec<DecodeStep>>,
    ) -> Result<Vec<FrameGaze>> {
        let c = &self.config;
        let budget = max_tokens(options.gazing_ratio, c.layout.tokens())?;
        let keys_before = states[0].kv.len();
        let (k, nv, n) = (c.multi_token, c.vision_tokens(), states.len());
        // Prefill: the previous frame's final chunk, then this frame's vision
        // tokens (positions and pads are the same for streams in lockstep).
        let pending = states[0].pending.len();
        let mut positions = Vec::with_capacity(pending + nv);
        let mut mask = Vec::with_capacity(pending + nv);
        let mut next_pos = states[0].next_pos;
        for &(_, padded) in &states[0].pending {
            if !padded {
                next_pos += 1;
            }
            // A pad repeats its predecessor's position (it is masked anyway).
            positions.push(next_pos - 1);
            mask.push(!padded);
        }
        let first_vision = next_pos;
        positions.extend(first_vision..first_vision + nv as i64);
        mask.extend(std::iter::repeat_n(true, nv));
        for state in states.iter_mut() {
            state.next_pos = first_vision + nv as i64;
        }
        let x = if pending == 0 {
            vision_tokens
        } else {
            let ids: Vec<u32> = states
                .iter()
                .flat_map(|s| s.pending.iter().map(|(id, _)| *id))
                .collect();
            Tensor::cat(vec![self.embed_chunks(&ids, n), vision_tokens], 1)
        };
        // Decode steps reuse the positions of the frame's last K vision tokens.
        let tail: Vec<i64> = (0..k as i64)
            .map(|i| first_vision + nv as i64 - k as i64 + i)
            .collect();
        let frames = if trace.is_none() && self.selection_for(options) == Selection::Device {
            let (logits, tl) = self.call_device(states, x, &positions, &mask);
            self.select_on_device(states, logits, tl, budget, &tail, options)
        } else {
            let (logits, tl) = self.call_host(states, x, positions, &mask, &mut trace);
            self.select_on_host(states, logits, tl, budget, &tail, options, &mut trace)
        };
        for state in states.iter_mut() {
            state.frames += 1;
            state.frame_keys.push_back(state.kv.len() - keys_before);
            state.enforce_horizon();
        }
        Ok(frames)
    }

    /// Embeddings `[N, m, D]` of each stream's chunk (`ids`: N chunks of m).
    fn embed_chunks(&self, ids: &[u32], n: usize) -> Tensor<B, 3> {
        let m = ids.len() / n;
        decoder::embed_ids(&self.weights, ids).reshape([n, m, self.config.hidden])
    }

    /// Greedy selection on the host from each call's read-back logits.
    #[allow(clippy::too_many_arguments)]
    fn select_on_host(
        &self,
        states: &mut [&mut StreamState<B>],
        mut logits: Vec<f32>,
        mut tl: Vec<f32>,
        budget: usize,
        tail: &[i64],
        options: &GenerateOptions,
        trace: &mut Option<&mut Vec<DecodeStep>>,
    ) -> Vec<FrameGaze> {
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
                return pickers.into_iter().map(|p| p.frame).collect();
            }
            // Feed the chunk inside the frame: tail positions, all attended.
            // In the full sequence these tokens still occupy cumulative
            // positions, which the next frame's prefill continues from.
            let ids: Vec<u32> = chunks.iter().flatten().map(|(id, _)| *id).collect();
            let m = chunks[0].len();
            for state in states.iter_mut() {
                state.next_pos += m as i64;
            }
            let x = self.embed_chunks(&ids, n);
            (logits, tl) = self.call_host(states, x, tail[..m].to_vec(), &vec![true; m], trace);
        }
    }

    /// Greedy selection on the device: the whole budget is decoded without
    /// reading anything back. Each head's pick is an `argmax` over its logits
    /// plus a running mask (`-inf` on the pad id and every id picked in the
    /// frame so far, earlier heads of the same chunk included); the picks are
    /// embedded on the device and fed as the next chunk. The number of decode
    /// calls is known up front (`ceil(budget / K)` chunks); only the task-loss
    /// gate can end a frame earlier. So after the last chunk, **one readback**
    /// (the frame's picked ids and each chunk's `K` task-loss values, `2 *
    /// budget` floats per stream) goes through the same gate as the host
    /// path; when the gate stopped a frame at chunk `j`, the keys of the
    /// chunks fed after it are dropped from the KV cache and the positions
    /// rewound, so the state is exactly the reference's. Ties between equal
    /// logits are the backend's `argmax`'s (the host path takes the lowest id).
    fn select_on_device(
        &self,
        states: &mut [&mut StreamState<B>],
        mut logits: Tensor<B, 2>,
        mut tl: Tensor<B, 2>,
        budget: usize,
        tail: &[i64],
        options: &GenerateOptions,
    ) -> Vec<FrameGaze> {
        let c = &self.config;
        let (k, vocab, pad, n) = (c.multi_token, c.vocab(), c.layout.pad_id(), states.len());
        let device = logits.device();
        let iota = Tensor::<B, 1, Int>::arange(0..vocab as i64, &device)
            .reshape([1, vocab])
            .expand([n, vocab]);
        let mut used = Tensor::<B, 2>::zeros([n, vocab], &device)
            .mask_fill(iota.clone().equal_elem(pad as i64), f32::NEG_INFINITY);
        let chunks = budget.div_ceil(k);
        let (keys_fed_from, pos_fed_from) = (states[0].kv.len(), states[0].next_pos);
        let mut picked: Vec<Tensor<B, 2>> = Vec::with_capacity(2 * chunks);
        let mut losses: Vec<Tensor<B, 2>> = Vec::with_capacity(chunks);
        for j in 0..chunks {
            let m = k.min(budget - j * k);
            let heads = logits.reshape([n, k, vocab]);
            let mut chunk = Vec::with_capacity(m);
            for i in 0..m {
                let scores = heads
                    .clone()
                    .slice([0..n, i..i + 1, 0..vocab])
                    .reshape([n, vocab])
                    + used.clone();
                let pick = scores.argmax(1);
                used = used.mask_fill(
                    iota.clone().equal(pick.clone().expand([n, vocab])),
                    f32::NEG_INFINITY,
                );
                chunk.push(pick);
            }
            let ids = Tensor::cat(chunk, 1);
            picked.push(ids.clone().float());
            losses.push(tl.slice([0..n, 0..m]));
            if j + 1 == chunks {
                break;
            }
            for state in states.iter_mut() {
                state.next_pos += m as i64;
            }
            let x =
                decoder::embed_index(&self.weights, ids.reshape([n * m])).reshape([n, m, c.hidden]);
            (logits, tl) = self.call_device(states, x, &tail[..m], &vec![true; m]);
        }
        // The frame's one readback: per stream, its ids then its task losses.
        picked.extend(losses);
        let values = host_values(Tensor::cat(picked, 1));
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
                    state.kv.truncate(keys_fed_from + j * k);
                    state.next_pos = pos_fed_from + (j * k) as i64;
                    state.pending = tokens;
                    break;
                }
            }
            frames.push(frame);
        }
        frames
    }

    /// Encodes and decodes one more frame (`[3, S, S]`, already at the model
    /// input size): the streaming entry point.
    pub fn step(
        &self,
        state: &mut StreamState<B>,
        frame: Tensor<B, 3>,
        options: &GenerateOptions,
    ) -> Result<FrameGaze> {
        let tokens = self.encode(state, frame.unsqueeze::<4>());
        let [_, n, d] = tokens.dims();
        self.decode_frame(state, tokens.reshape([n, d]), options, None)
    }

    /// Streams frame 0 of a preprocessed `input` (`[1, T, 3, S, S]`), on the
    /// model's device.
    pub fn step_input(
        &self,
        state: &mut StreamState<B>,
        input: &crate::preprocess::ModelInput,
        options: &GenerateOptions,
    ) -> Result<FrameGaze> {
        let [_, _, c, h, w] = input.shape();
        let x = input
            .to_tensor::<B>(&self.weights.decoder.embed.device())
            .narrow(1, 0, 1)
            .reshape([c, h, w]);
        self.step(state, x, options)
    }

    /// One frame for each of `states` (frame `i` of a preprocessed `input`
    /// `[1, N, 3, S, S]` goes to stream `i`, e.g. the AnyRes tiles of one
    /// frame): the encoder runs once over all of them, then the streams
    /// decode their frames together ([`AutoGaze::decode_frames`]). Equal to
    /// stepping each stream on its own.
    pub fn step_streams_input(
        &self,
        states: &mut [StreamState<B>],
        input: &crate::preprocess::ModelInput,
        options: &GenerateOptions,
    ) -> Result<Vec<FrameGaze>> {
        let [_, n, c, h, w] = input.shape();
        if n != states.len() {
            return Err(crate::error::AutoGazeError::setting(
                "streams",
                states.len(),
                format!("one per input frame ({n})"),
            ));
        }
        let video = input
            .to_tensor::<B>(&self.weights.decoder.embed.device())
            .reshape([n, 1, c, h, w]);
        let mut caches: Vec<ConvCache<B>> = states
            .iter_mut()
            .map(|s| std::mem::take(&mut s.conv))
            .collect();
        let tokens = self.encode_streams(video, &mut caches);
        for (state, cache) in states.iter_mut().zip(caches) {
            state.conv = cache;
        }
        let [_, _, tk, d] = tokens.dims();
        self.decode_frames(states, tokens.reshape([n, tk, d]), options)
    }

    /// Decodes a whole clip `[1, T, 3, S, S]`; optionally records every
    /// decoder call.
    pub fn generate(
        &self,
        video: Tensor<B, 5>,
        options: &GenerateOptions,
        mut trace: Option<&mut Vec<DecodeStep>>,
    ) -> Result<Vec<FrameGaze>> {
        let [b, t, ch, h, w] = video.dims();
        let s = self.config.input_size;
        if b != 1 || ch != 3 || h != s || w != s || t == 0 {
            return Err(AutoGazeError::TensorShape {
                name: "video".into(),
                expected: vec![1, t.max(1), 3, s, s],
                actual: vec![b, t, ch, h, w],
            });
        }
        let mut state = self.new_stream();
        let tokens = self.encode(&mut state, video.reshape([t, ch, h, w]));
        let [_, n, d] = tokens.dims();
        let mut frames = Vec::with_capacity(t);
        for i in 0..t {
            let ft = tokens.clone().slice([i..i + 1, 0..n, 0..d]).reshape([n, d]);
            frames.push(self.decode_frame(&mut state, ft, options, trace.as_deref_mut())?);
        }
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streams encoded as one batch give what each stream gives on its own,
    /// over frames that carry temporal context (the conv cache).
    #[cfg(feature = "ndarray")]
    #[test]
    fn batched_streams_equal_streams_stepped_alone() {
        use crate::preprocess::ModelInput;
        use burn::backend::NdArray;
        use burn::tensor::Distribution;
        type Bk = NdArray<f32>;
        let device = Default::default();
        let mut model = AutoGaze::<Bk>::random(super::super::AutoGazeConfig::release(), 3, &device);
        let options = GenerateOptions {
            gazing_ratio: 0.05,
            task_loss_requirement: None,
        };
        let streams = 3;
        // Lockstep (shared decoder calls) on both selections, and a gate
        // (streams decoded one after another).
        let gated = GenerateOptions {
            task_loss_requirement: Some(0.0),
            ..options
        };
        assert!(!model.batches_streams(), "not on the CPU by default");
        // The CPU selects on the host, gate or not, unless told otherwise.
        assert_eq!(model.selection(), None);
        assert_eq!(model.selection_for(&options), Selection::Host);
        assert_eq!(model.selection_for(&gated), Selection::Host);
        for (selection, options, batch) in [
            (Selection::Host, options, true),
            (Selection::Host, options, false),
            (Selection::Device, options, true),
            (Selection::Device, gated, true),
        ] {
            model.set_selection(selection);
            model.set_batch_streams(batch);
            let mut batched: Vec<StreamState<Bk>> =
                (0..streams).map(|_| model.new_stream()).collect();
            let mut alone = batched.clone();
            for t in 0..3 {
                let video =
                    Tensor::<Bk, 4>::random([streams, 3, 224, 224], Distribution::Default, &device);
                let values = video.clone().into_data().into_vec::<f32>().unwrap();
                let input = ModelInput::from_vec(streams, 224, values).unwrap();
                let refs: Vec<&mut StreamState<Bk>> = batched.iter_mut().collect();
                let shared = lockstep(&refs, &options);
                assert_eq!(shared, options.task_loss_requirement.is_none());
                let together = model
                    .step_streams_input(&mut batched, &input, &options)
                    .unwrap();
                for (i, state) in alone.iter_mut().enumerate() {
                    let frame = video.clone().narrow(0, i, 1).reshape([3, 224, 224]);
                    let own = model.step(state, frame, &options).unwrap();
                    let what =
                        format!("{selection:?}, {options:?}, batch {batch}, frame {t}, stream {i}");
                    assert_eq!(own, together[i], "{what}");
                    assert_eq!(state.cached_keys(), batched[i].cached_keys(), "{what}");
                    assert_eq!(state.readbacks(), batched[i].readbacks(), "{what}");
                }
            }
        }
        let mut batched: Vec<StreamState<Bk>> = (0..streams).map(|_| model.new_stream()).collect();
        let input = ModelInput::new(224);
        assert!(
            model
                .step_streams_input(&mut batched, &input, &options)
                .is_err()
        );
        // The encoder itself: each stream's tokens (with its own temporal
        // context) are those of the stream encoded alone, and differ
        // between streams.
        let mut caches: Vec<ConvCache<Bk>> = vec![ConvCache::default(); streams];
        let mut own: Vec<ConvCache<Bk>> = vec![ConvCache::default(); streams];
        for _ in 0..2 {
            let video =
                Tensor::<Bk, 5>::random([streams, 1, 3, 224, 224], Distribution::Default, &device);
            let together =
                vision::encode_streams(&model.weights, &model.config, video.clone(), &mut caches);
            for (i, cache) in own.iter_mut().enumerate() {
                let frame = video.clone().narrow(0, i, 1).reshape([1, 3, 224, 224]);
                let alone = vision::encode_streams(
                    &model.weights,
                    &model.config,
                    frame.unsqueeze::<5>(),
                    std::slice::from_mut(cache),
                );
                let [_, _, tk, d] = alone.dims();
                let alone = alone.reshape([1, tk, d]);
                let batch = together.clone().narrow(0, i, 1).reshape(alone.dims());
                let diff = (alone.clone() - batch).abs().max().into_scalar();
                assert!(diff <= 1e-5, "stream {i}: {diff}");
                if i > 0 {
                    let first = together.clone().narrow(0, 0, 1).reshape(alone.dims());
                    assert!((alone - first).abs().max().into_scalar() > 1e-3);
                }
            }
        }
    }

    /// The fused CPU kernels (the ndarray default) give Burn ops' tokens, and
    /// their embeddings, logits and task losses within 1e-4 at every frame
    /// and decoder call:
    /// full budget, a horizon that evicts, a task-loss gate; a stream whose
    /// cache was written by one and continued by the other (the cache moves
    /// over) decodes as either alone.
    #[cfg(feature = "ndarray")]
    #[test]
    fn the_cpu_kernels_equal_burn_ops() {
        use burn::backend::NdArray;
        use burn::tensor::Distribution;
        type Bk = NdArray<f32>;
        let device = Default::default();
        let fused = AutoGaze::<Bk>::random(super::super::AutoGazeConfig::release(), 5, &device);
        assert!(fused.uses_cpu_kernels(), "the ndarray default");
        let mut ops = fused.clone();
        ops.set_cpu_kernels(false);
        assert!(!ops.uses_cpu_kernels());
        let frames: Vec<Tensor<Bk, 3>> = (0..4)
            .map(|_| Tensor::random([3, 224, 224], Distribution::Default, &device))
            .collect();
        for (requirement, horizon) in [(None, 0), (None, 1), (Some(0.05), 2)] {
            let options = GenerateOptions {
                gazing_ratio: 0.75,
                task_loss_requirement: requirement,
            };
            let mut streams = [fused.new_stream(), ops.new_stream(), ops.new_stream()];
            for s in &mut streams {
                s.set_horizon(horizon);
            }
            for (t, frame) in frames.iter().enumerate() {
                let mut out = Vec::new();
                let mut traces = Vec::new();
                let mut embeddings = Vec::new();
                for (i, state) in streams.iter_mut().enumerate() {
                    // Stream 2 switches kernels every frame.
                    let model = if i == 0 || (i == 2 && t % 2 == 1) {
                        &fused
                    } else {
                        &ops
                    };
                    let tokens = model.encode(state, frame.clone().unsqueeze::<4>());
                    embeddings.push(tokens.clone());
                    let ft = tokens.reshape([196, model.config.hidden]);
                    let mut trace = Vec::new();
                    out.push(
                        model
                            .decode_frame(state, ft, &options, Some(&mut trace))
                            .unwrap(),
                    );
                    traces.push(trace);
                }
                let what = format!("requirement {requirement:?}, horizon {horizon}, frame {t}");
                for e in [&embeddings[0], &embeddings[2]] {
                    let diff = (e.clone() - embeddings[1].clone())
                        .abs()
                        .max()
                        .into_scalar();
                    assert!(diff <= 1e-4, "{what}: embeddings differ by {diff}");
                }
                assert_eq!(out[0], out[1], "{what}");
                assert_eq!(out[2], out[1], "{what}: switching decoders");
                assert_eq!(streams[0].cached_keys(), streams[1].cached_keys(), "{what}");
                assert_eq!(streams[2].cached_keys(), streams[1].cached_keys(), "{what}");
                for trace in [&traces[0], &traces[2]] {
                    assert_eq!(trace.len(), traces[1].len(), "{what}");
                    for (a, b) in trace.iter().zip(&traces[1]) {
                        assert_eq!(a.positions, b.positions, "{what}");
                        for (x, y) in [(&a.logits, &b.logits), (&a.task_loss, &b.task_loss)] {
                            let diff = x
                                .iter()
                                .zip(y)
                                .map(|(p, q)| (p - q).abs())
                                .fold(0f32, f32::max);
                            assert!(diff <= 1e-4, "{what}: {diff}");
                        }
                    }
                }
            }
        }
    }

    /// Selection on the device (one readback per frame) gives the host
    /// path's ids, pads, cached keys and later frames: full budget, a small
    /// one, and a task-loss gate that stops frames mid-budget (the KV cache
    /// is cut back to the stop).
    #[cfg(feature = "ndarray")]
    #[test]
    fn device_selection_equals_host_selection() {
        use burn::backend::NdArray;
        use burn::tensor::Distribution;
        type Bk = NdArray<f32>;
        let device = Default::default();
        let mut model =
            AutoGaze::<Bk>::random(super::super::AutoGazeConfig::release(), 11, &device);
        assert_eq!(
            model.selection_for(&GenerateOptions::default()),
            Selection::Host,
            "ndarray selects on the host"
        );
        model.set_selection(Selection::Device);
        let mut host_model = model.clone();
        host_model.set_selection(Selection::Host);
        let frames: Vec<Tensor<Bk, 3>> = (0..3)
            .map(|_| Tensor::random([3, 224, 224], Distribution::Default, &device))
            .collect();
        // A requirement met inside the first frame's second chunk.
        let mut probe = Vec::new();
        let mut s = model.new_stream();
        let tokens = model.encode(&mut s, frames[0].clone().unsqueeze::<4>());
        let ft = tokens.reshape([196, model.config.hidden]);
        let full = GenerateOptions {
            gazing_ratio: 0.75,
            task_loss_requirement: None,
        };
        model
            .decode_frame(&mut s, ft, &full, Some(&mut probe))
            .unwrap();
        let second = &probe[1].task_loss;
        let gate = second.iter().copied().fold(f32::INFINITY, f32::min);
        for (ratio, requirement) in [(0.75, None), (0.1, None), (0.75, Some(gate))] {
            let options = GenerateOptions {
                gazing_ratio: ratio,
                task_loss_requirement: requirement,
            };
            let (mut host, mut device_side) = (model.new_stream(), model.new_stream());
            let mut untraced = host_model.new_stream();
            let mut trace = Vec::new();
            for (t, frame) in frames.iter().enumerate() {
                let tokens = model.encode(&mut host, frame.clone().unsqueeze::<4>());
                let ft = tokens.reshape([196, model.config.hidden]);
                let a = model
                    .decode_frame(&mut host, ft, &options, Some(&mut trace))
                    .unwrap();
                let b = model
                    .step(&mut device_side, frame.clone(), &options)
                    .unwrap();
                let c = host_model
                    .step(&mut untraced, frame.clone(), &options)
                    .unwrap();
                assert_eq!(a, c, "untraced host selection");
                let what = format!("ratio {ratio}, requirement {requirement:?}, frame {t}");
                assert_eq!(a.ids, b.ids, "{what}");
                assert_eq!(a.padded, b.padded, "{what}");
                assert_eq!(host.cached_keys(), device_side.cached_keys(), "{what}");
                assert_eq!(host.next_pos, device_side.next_pos, "{what}");
                if requirement.is_some() && t == 0 {
                    let budget = max_tokens(ratio, 265).unwrap();
                    assert!(a.ids.len() < budget, "the gate stops frame 0 early");
                }
            }
            assert_eq!(device_side.readbacks(), frames.len() as u64);
            assert_eq!(host.readbacks(), 2 * trace.len() as u64);
            assert_eq!(untraced.readbacks(), host.readbacks());
        }
    }

    #[test]
    fn budget_follows_the_reference_rounding() {
        assert_eq!(max_tokens(0.75, 265).unwrap(), 198);
        assert_eq!(max_tokens(0.03, 265).unwrap(), 7);
        assert_eq!(max_tokens(0.1, 265).unwrap(), 26);
        assert_eq!(max_tokens(0.3, 265).unwrap(), 79);
        assert_eq!(max_tokens(0.001, 265).unwrap(), 1);
        assert_eq!(max_tokens(1.0, 265).unwrap(), 265);
        for bad in [0.0, -0.5, 1.5, f32::NAN] {
            assert!(max_tokens(bad, 265).is_err(), "{bad}");
        }
    }
}
