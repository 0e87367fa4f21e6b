//! Greedy multi-token gaze decoding, frame by frame, exactly as the
//! reference: K heads per step, no repeats within a frame, EOS banned, the
//! per-token task-loss gate (the first token of a frame exempt), pads
//! interleaving with valid tokens, decode chunks at the tail position ids of
//! the frame's vision tokens, and each frame's final chunk fed in the next
//! frame's prefill at cumulative positions.
//!
//! The public entry points: [`AutoGaze::generate`] (a clip),
//! [`AutoGaze::new_stream`] + [`AutoGaze::step`] (a frame a call), and
//! [`AutoGaze::step_streams_input`] (streams in lockstep: AnyRes tiles).
//! The arithmetic is the model's engine's; selection is `select`'s.

use std::sync::atomic::Ordering;

use burn::tensor::{Tensor, backend::Backend};

use super::autogaze::AutoGaze;
use super::engine::{ChunkIds, DecoderCall, EngineCache, Heads};
use super::options::{DecodeStep, FrameGaze, GenerateOptions, Selection, max_tokens};
use super::stream::{StreamState, lockstep};
use crate::error::{AutoGazeError, Result};
use crate::wait::block_on;

impl<B: Backend> AutoGaze<B> {
    /// Vision tokens `[T, 196, D]` of `video` (`[T, 3, S, S]`), continuing the
    /// stream's temporal context.
    pub fn encode(&self, state: &mut StreamState<B>, video: Tensor<B, 4>) -> Result<Tensor<B, 3>> {
        block_on("encode", self.encode_async(state, video))
    }

    /// [`AutoGaze::encode`], a wait for the device (one call in flight)
    /// awaited.
    pub async fn encode_async(
        &self,
        state: &mut StreamState<B>,
        video: Tensor<B, 4>,
    ) -> Result<Tensor<B, 3>> {
        let out = self
            .encode_streams(video.unsqueeze::<5>(), &mut [state])
            .await?;
        let [_, t, n, d] = out.dims();
        Ok(out.reshape([t, n, d]))
    }

    /// Vision tokens `[N, T, 196, D]` of `N` streams' frames `[N, T, 3, S,
    /// S]` (a shape other than that is a typed error), each stream
    /// continuing its own temporal context.
    async fn encode_streams(
        &self,
        video: Tensor<B, 5>,
        states: &mut [&mut StreamState<B>],
    ) -> Result<Tensor<B, 4>> {
        let [n, t, c, h, w] = video.dims();
        let s = self.config.input_size;
        if n != states.len() || t == 0 || c != 3 || h != s || w != s {
            return Err(AutoGazeError::TensorShape {
                name: "frames".into(),
                expected: vec![states.len(), t.max(1), 3, s, s],
                actual: vec![n, t, c, h, w],
            });
        }
        let mut caches: Vec<&mut dyn EngineCache<B>> =
            states.iter_mut().map(|s| s.cache.as_mut()).collect();
        let tokens = self.engine.encode(video, &mut caches)?;
        self.settle().await?;
        Ok(tokens)
    }

    /// With one piece of work in flight ([`AutoGaze::set_one_call_in_flight`]),
    /// waits until the device has finished what was enqueued: awaiting the
    /// engine's [`Engine::idle`](super::engine::Engine::idle) where it has
    /// one (in the browser the page draws meanwhile), else blocking on the
    /// backend's `sync` (natively; the browser cannot block, so there the
    /// calls are queued together).
    async fn settle(&self) -> Result<()> {
        if !self.one_call_in_flight {
            return Ok(());
        }
        if let Some(idle) = self.engine.idle() {
            return idle.await;
        }
        #[cfg(not(target_arch = "wasm32"))]
        B::sync(&self.device()).map_err(|e| {
            AutoGazeError::engine(self.engine.name(), format!("waiting for the device: {e:?}"))
        })?;
        Ok(())
    }

    /// One decoder call for `states` in lockstep: each stream's rows are
    /// its chunk `ids` then its `vision` tokens, at `positions`, attended
    /// to by later tokens where `mask` says.
    pub(super) async fn call(
        &self,
        states: &mut [&mut StreamState<B>],
        ids: Option<ChunkIds<B>>,
        vision: Option<Tensor<B, 3>>,
        positions: &[i64],
        mask: &[bool],
    ) -> Result<Heads<B>> {
        for state in states.iter_mut() {
            state.key_mask.extend_from_slice(mask);
        }
        let key_mask = states[0].key_mask.clone();
        let call = DecoderCall {
            streams: states.len(),
            ids,
            vision,
            positions,
            key_mask: &key_mask,
        };
        let mut caches: Vec<&mut dyn EngineCache<B>> =
            states.iter_mut().map(|s| s.cache.as_mut()).collect();
        self.counts.decoder_calls.fetch_add(1, Ordering::Relaxed);
        let heads = self.engine.decode(call, &mut caches)?;
        self.settle().await?;
        Ok(heads)
    }

    /// [`AutoGaze::call`] read back to the host (`[N * K * vocab]` logits,
    /// `[N * K]` task losses), recorded when traced (one stream).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn call_host(
        &self,
        states: &mut [&mut StreamState<B>],
        ids: Option<ChunkIds<B>>,
        vision: Option<Tensor<B, 3>>,
        positions: &[i64],
        mask: &[bool],
        trace: &mut Option<&mut Vec<DecodeStep>>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (logits, tl) = self
            .call(states, ids, vision, positions, mask)
            .await?
            .into_host_async()
            .await?;
        self.counts.read(2, 4 * (logits.len() + tl.len()));
        for state in states.iter_mut() {
            state.readbacks += 2;
        }
        if let Some(trace) = trace.as_mut() {
            trace.push(DecodeStep {
                frame: states[0].frames,
                positions: positions.to_vec(),
                logits: logits.clone(),
                task_loss: tl.clone(),
            });
        }
        Ok((logits, tl))
    }

    /// Decodes one frame from its vision tokens `[196, D]` (with
    /// [`AutoGaze::encode`], the two halves of [`AutoGaze::step`], for
    /// diagnostics: a trace records every decoder call).
    ///
    /// Selection runs where [`AutoGaze::selection_for`] says; a traced call
    /// always selects on the host (it reads every decoder call back).
    pub fn decode_frame(
        &self,
        state: &mut StreamState<B>,
        vision_tokens: Tensor<B, 2>,
        options: &GenerateOptions,
        trace: Option<&mut Vec<DecodeStep>>,
    ) -> Result<FrameGaze> {
        block_on(
            "decode_frame",
            self.decode_frame_async(state, vision_tokens, options, trace),
        )
    }

    /// [`AutoGaze::decode_frame`], its readbacks awaited.
    pub async fn decode_frame_async(
        &self,
        state: &mut StreamState<B>,
        vision_tokens: Tensor<B, 2>,
        options: &GenerateOptions,
        trace: Option<&mut Vec<DecodeStep>>,
    ) -> Result<FrameGaze> {
        let mut frames = self
            .decode_lockstep(&mut [state], vision_tokens.unsqueeze::<3>(), options, trace)
            .await?;
        Ok(frames.remove(0))
    }

    /// Decodes one frame for each of `states` from their vision tokens
    /// `[N, 196, D]`. Streams in lockstep (see [`lockstep`]) share every
    /// decoder call when [`AutoGaze::batches_streams`] (their rows go through
    /// the projections together, their attention is batched); otherwise they
    /// are decoded one after another. The result equals decoding each
    /// stream on its own.
    pub(super) async fn decode_frames(
        &self,
        states: &mut [StreamState<B>],
        vision_tokens: Tensor<B, 3>,
        options: &GenerateOptions,
    ) -> Result<Vec<FrameGaze>> {
        let mut refs: Vec<&mut StreamState<B>> = states.iter_mut().collect();
        if refs.len() > 1 && self.batches_streams() && lockstep(&refs, options) {
            return self
                .decode_lockstep(&mut refs, vision_tokens, options, None)
                .await;
        }
        let [_, tk, d] = vision_tokens.dims();
        let mut frames = Vec::with_capacity(refs.len());
        for (i, state) in refs.into_iter().enumerate() {
            let own = vision_tokens.clone().narrow(0, i, 1).reshape([tk, d]);
            frames.push(self.decode_frame_async(state, own, options, None).await?);
        }
        Ok(frames)
    }

    /// One frame for streams in lockstep (or one stream).
    async fn decode_lockstep(
        &self,
        states: &mut [&mut StreamState<B>],
        vision_tokens: Tensor<B, 3>,
        options: &GenerateOptions,
        mut trace: Option<&mut Vec<DecodeStep>>,
    ) -> Result<Vec<FrameGaze>> {
        let c = &self.config;
        let budget = max_tokens(options.gazing_ratio, c.layout.tokens())?;
        let keys_before = states[0].cached_keys();
        let (k, nv) = (c.multi_token, c.vision_tokens());
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
        let ids = (pending > 0).then(|| {
            ChunkIds::Host(
                states
                    .iter()
                    .flat_map(|s| s.pending.iter().map(|(id, _)| *id))
                    .collect(),
            )
        });
        let vision = Some(vision_tokens);
        // Decode steps reuse the positions of the frame's last K vision tokens.
        let tail: Vec<i64> = (0..k as i64)
            .map(|i| first_vision + nv as i64 - k as i64 + i)
            .collect();
        let frames = if trace.is_none() && self.selection_for(options) == Selection::Device {
            let heads = self.call(states, ids, vision, &positions, &mask).await?;
            self.select_on_device(states, heads, budget, &tail, options)
                .await?
        } else {
            let (logits, tl) = self
                .call_host(states, ids, vision, &positions, &mask, &mut trace)
                .await?;
            self.select_on_host(states, logits, tl, budget, &tail, options, &mut trace)
                .await?
        };
        for state in states.iter_mut() {
            state.frames += 1;
            state
                .frame_keys
                .push_back(state.cached_keys() - keys_before);
            state.enforce_horizon();
        }
        Ok(frames)
    }

    /// Encodes and decodes one more frame (`[3, S, S]`, already at the model
    /// input size): the streaming entry point.
    pub fn step(
        &self,
        state: &mut StreamState<B>,
        frame: Tensor<B, 3>,
        options: &GenerateOptions,
    ) -> Result<FrameGaze> {
        block_on("step", self.step_async(state, frame, options))
    }

    /// [`AutoGaze::step`], the frame's readback awaited (the browser's
    /// entry point: see [`crate::wait`]).
    pub async fn step_async(
        &self,
        state: &mut StreamState<B>,
        frame: Tensor<B, 3>,
        options: &GenerateOptions,
    ) -> Result<FrameGaze> {
        let tokens = self.encode_async(state, frame.unsqueeze::<4>()).await?;
        let [_, n, d] = tokens.dims();
        self.decode_frame_async(state, tokens.reshape([n, d]), options, None)
            .await
    }

    /// Streams frame 0 of a preprocessed `input` (`[1, T, 3, S, S]`), on the
    /// model's device.
    pub fn step_input(
        &self,
        state: &mut StreamState<B>,
        input: &crate::preprocess::ModelInput,
        options: &GenerateOptions,
    ) -> Result<FrameGaze> {
        block_on("step_input", self.step_input_async(state, input, options))
    }

    /// [`AutoGaze::step_input`], the frame's readback awaited.
    pub async fn step_input_async(
        &self,
        state: &mut StreamState<B>,
        input: &crate::preprocess::ModelInput,
        options: &GenerateOptions,
    ) -> Result<FrameGaze> {
        let [_, _, c, h, w] = input.shape();
        let x = input
            .to_tensor::<B>(&self.device())
            .narrow(1, 0, 1)
            .reshape([c, h, w]);
        self.counts.input(input.data().len());
        self.step_async(state, x, options).await
    }

    /// One frame for each of `states` (frame `i` of a preprocessed `input`
    /// `[1, N, 3, S, S]` goes to stream `i`, e.g. the AnyRes tiles of one
    /// frame): the encoder runs once over all of them, then the streams
    /// decode their frames together (`decode_frames`). Equal to
    /// stepping each stream on its own.
    pub fn step_streams_input(
        &self,
        states: &mut [StreamState<B>],
        input: &crate::preprocess::ModelInput,
        options: &GenerateOptions,
    ) -> Result<Vec<FrameGaze>> {
        block_on(
            "step_streams_input",
            self.step_streams_input_async(states, input, options),
        )
    }

    /// [`AutoGaze::step_streams_input`], the frame's readback awaited.
    pub async fn step_streams_input_async(
        &self,
        states: &mut [StreamState<B>],
        input: &crate::preprocess::ModelInput,
        options: &GenerateOptions,
    ) -> Result<Vec<FrameGaze>> {
        let [_, n, c, h, w] = input.shape();
        if n != states.len() {
            return Err(AutoGazeError::setting(
                "streams",
                states.len(),
                format!("one per input frame ({n})"),
            ));
        }
        let frames = input.to_tensor::<B>(&self.device()).reshape([n, c, h, w]);
        self.counts.input(input.data().len());
        self.step_streams_async(states, frames, options).await
    }

    /// As [`AutoGaze::step_streams_input`], from frames already on the
    /// model's device (`[N, 3, S, S]`, e.g. made there by the device
    /// preprocessing).
    pub fn step_streams(
        &self,
        states: &mut [StreamState<B>],
        frames: Tensor<B, 4>,
        options: &GenerateOptions,
    ) -> Result<Vec<FrameGaze>> {
        block_on(
            "step_streams",
            self.step_streams_async(states, frames, options),
        )
    }

    /// [`AutoGaze::step_streams`], the frame's readback awaited.
    pub async fn step_streams_async(
        &self,
        states: &mut [StreamState<B>],
        frames: Tensor<B, 4>,
        options: &GenerateOptions,
    ) -> Result<Vec<FrameGaze>> {
        let [n, c, h, w] = frames.dims();
        let mut refs: Vec<&mut StreamState<B>> = states.iter_mut().collect();
        let tokens = self
            .encode_streams(frames.reshape([n, 1, c, h, w]), &mut refs)
            .await?;
        let [_, _, tk, d] = tokens.dims();
        self.decode_frames(states, tokens.reshape([n, tk, d]), options)
            .await
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
        let tokens = self.encode(&mut state, video.reshape([t, ch, h, w]))?;
        let [_, n, d] = tokens.dims();
        let mut frames = Vec::with_capacity(t);
        for i in 0..t {
            let ft = tokens.clone().slice([i..i + 1, 0..n, 0..d]).reshape([n, d]);
            frames.push(self.decode_frame(&mut state, ft, options, trace.as_deref_mut())?);
        }
        Ok(frames)
    }
}
