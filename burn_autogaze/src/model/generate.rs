//! Greedy multi-token gaze decoding, frame by frame, exactly as the
//! reference: K heads per step, no repeats within a frame, EOS banned, the
//! per-token task-loss gate (the first token of a frame exempt), pads
//! interleaving with valid tokens, decode chunks at the tail position ids of
//! the frame's vision tokens, and each frame's final chunk fed in the next
//! frame's prefill at cumulative positions.
//!
//! Selection runs on the host from one readback per decoder call
//! (`K * vocab` logits and `K` task-loss values).

use burn::tensor::{Tensor, backend::Backend};

use super::AutoGaze;
use super::decoder::{self, KvCache};
use super::vision::{self, ConvCache};
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
}

impl<B: Backend> StreamState<B> {
    /// Frames decoded so far.
    pub fn frames(&self) -> usize {
        self.frames
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

fn host(t: Tensor<impl Backend, 2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_default()
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
        }
    }

    /// Vision tokens `[T, 196, D]` of `video` (`[T, 3, S, S]`), continuing the
    /// stream's temporal context.
    pub fn encode(&self, state: &mut StreamState<B>, video: Tensor<B, 4>) -> Tensor<B, 3> {
        vision::encode(&self.weights, &self.config, video, &mut state.conv)
    }

    fn call(
        &self,
        state: &mut StreamState<B>,
        x: Tensor<B, 2>,
        positions: Vec<i64>,
        mask: &[bool],
        trace: &mut Option<&mut Vec<DecodeStep>>,
    ) -> (Vec<f32>, Vec<f32>) {
        let hidden = decoder::forward(
            &self.weights,
            &self.config,
            x,
            &positions,
            mask,
            &mut state.kv,
            &self.rope,
        );
        let (logits, tl) = decoder::heads(&self.weights, hidden);
        let (logits, tl) = (host(logits), host(tl));
        if let Some(trace) = trace.as_mut() {
            trace.push(DecodeStep {
                frame: state.frames,
                positions,
                logits: logits.clone(),
                task_loss: tl.clone(),
            });
        }
        (logits, tl)
    }

    /// Decodes one frame from its vision tokens `[196, D]`.
    pub fn decode_frame(
        &self,
        state: &mut StreamState<B>,
        vision_tokens: Tensor<B, 2>,
        options: &GenerateOptions,
        mut trace: Option<&mut Vec<DecodeStep>>,
    ) -> Result<FrameGaze> {
        let c = &self.config;
        let budget = max_tokens(options.gazing_ratio, c.layout.tokens())?;
        let keys_before = state.kv.len();
        let (k, vocab, nv) = (c.multi_token, c.vocab(), c.vision_tokens());
        let pad = c.layout.pad_id();
        // Prefill: the previous frame's final chunk, then this frame's vision tokens.
        let mut positions = Vec::with_capacity(state.pending.len() + nv);
        let mut mask = Vec::with_capacity(state.pending.len() + nv);
        for &(_, padded) in &state.pending {
            if !padded {
                state.next_pos += 1;
            }
            // A pad repeats its predecessor's position (it is masked anyway).
            positions.push(state.next_pos - 1);
            mask.push(!padded);
        }
        let first_vision = state.next_pos;
        positions.extend(first_vision..first_vision + nv as i64);
        mask.extend(std::iter::repeat_n(true, nv));
        state.next_pos += nv as i64;
        let x = if state.pending.is_empty() {
            vision_tokens
        } else {
            let ids: Vec<u32> = state.pending.iter().map(|(id, _)| *id).collect();
            Tensor::cat(
                vec![decoder::embed_ids(&self.weights, &ids), vision_tokens],
                0,
            )
        };
        let (mut logits, mut tl) = self.call(state, x, positions, &mask, &mut trace);
        // Decode steps reuse the positions of the frame's last K vision tokens.
        let tail: Vec<i64> = (0..k as i64)
            .map(|i| first_vision + nv as i64 - k as i64 + i)
            .collect();
        let mut frame = FrameGaze::default();
        let mut used = vec![false; vocab];
        let mut first = true;
        loop {
            // Logit processors: no repeats within the frame, EOS banned.
            let mut scores = logits;
            for head in scores.chunks_exact_mut(vocab) {
                for (id, s) in head.iter_mut().enumerate() {
                    if used[id] || id == pad as usize {
                        *s = f32::NEG_INFINITY;
                    }
                }
            }
            let mut chunk: Vec<u32> = Vec::with_capacity(k);
            let mut early_stop = false;
            for i in 0..k {
                if chunk.len() + frame.ids.len() >= budget {
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
            // Task-loss gate, token by token; the frame's first token is exempt.
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
            // Gated tokens become pads; the frame's no-repeat set holds what
            // it emitted (a pad ends the frame, so the difference never shows).
            let chunk_tokens: Vec<(u32, bool)> = chunk
                .iter()
                .zip(&padded)
                .map(|(id, p)| (if *p { pad } else { *id }, *p))
                .collect();
            for &(id, p) in &chunk_tokens {
                used[id as usize] = true;
                frame.ids.push(id);
                frame.padded.push(p);
            }
            first = false;
            if any_meet || hit_max || early_stop {
                state.pending = chunk_tokens;
                break;
            }
            // Feed the chunk inside the frame: tail positions, all attended.
            // In the full sequence these tokens still occupy cumulative
            // positions, which the next frame's prefill continues from.
            let ids: Vec<u32> = chunk_tokens.iter().map(|(id, _)| *id).collect();
            state.next_pos += ids.len() as i64;
            let x = decoder::embed_ids(&self.weights, &ids);
            let n = ids.len();
            (logits, tl) = self.call(state, x, tail[..n].to_vec(), &vec![true; n], &mut trace);
        }
        state.frames += 1;
        state.frame_keys.push_back(state.kv.len() - keys_before);
        state.enforce_horizon();
        Ok(frame)
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
    /// frame): the encoder runs once over all of them, then each stream
    /// decodes its frame. Equal to stepping each stream on its own.
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
        let tokens = vision::encode_streams(&self.weights, &self.config, video, &mut caches);
        for (state, cache) in states.iter_mut().zip(caches) {
            state.conv = cache;
        }
        let [_, _, tk, d] = tokens.dims();
        states
            .iter_mut()
            .enumerate()
            .map(|(i, state)| {
                let own = tokens.clone().narrow(0, i, 1).reshape([tk, d]);
                self.decode_frame(state, own, options, None)
            })
            .collect()
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
        let model = AutoGaze::<Bk>::random(super::super::AutoGazeConfig::release(), 3, &device);
        let options = GenerateOptions {
            gazing_ratio: 0.05,
            task_loss_requirement: None,
        };
        let streams = 3;
        let mut batched: Vec<StreamState<Bk>> = (0..streams).map(|_| model.new_stream()).collect();
        let mut alone = batched.clone();
        for _ in 0..2 {
            let video =
                Tensor::<Bk, 4>::random([streams, 3, 224, 224], Distribution::Default, &device);
            let values = video.clone().into_data().into_vec::<f32>().unwrap();
            let input = ModelInput::from_vec(streams, 224, values).unwrap();
            let together = model
                .step_streams_input(&mut batched, &input, &options)
                .unwrap();
            for (i, state) in alone.iter_mut().enumerate() {
                let frame = video.clone().narrow(0, i, 1).reshape([3, 224, 224]);
                let own = model.step(state, frame, &options).unwrap();
                assert_eq!(own.ids, together[i].ids, "stream {i}");
                assert_eq!(own.padded, together[i].padded, "stream {i}");
            }
        }
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
                let alone = vision::encode(&model.weights, &model.config, frame, cache);
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
