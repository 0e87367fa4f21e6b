//! A stream's decoding state between frames, and when streams may share
//! decoder calls.

use std::collections::VecDeque;

use burn::tensor::backend::Backend;

use super::engine::EngineCache;
use super::options::GenerateOptions;

/// The decoder's state between frames: everything needed to continue a clip
/// one frame at a time with exactly the full-clip result.
#[derive(Debug, Clone)]
pub struct StreamState<B: Backend> {
    /// The engine's caches (KV cache, the encoder's temporal context).
    pub(super) cache: Box<dyn EngineCache<B>>,
    /// Whether later tokens may attend to each cached key.
    pub(super) key_mask: Vec<bool>,
    /// Valid tokens so far: the next cumulative position.
    pub(super) next_pos: i64,
    /// The last frame's final chunk (ids, pad flags), fed in the next prefill.
    pub(super) pending: Vec<(u32, bool)>,
    pub(super) frames: usize,
    /// Keys each cached frame added, oldest first.
    pub(super) frame_keys: VecDeque<usize>,
    /// Frames of keys kept (0: unbounded, exactly the reference).
    pub(super) horizon: usize,
    /// Device-to-host reads so far.
    pub(super) readbacks: u64,
}

impl<B: Backend> StreamState<B> {
    /// A fresh stream over an engine's empty cache.
    pub(super) fn new(cache: Box<dyn EngineCache<B>>) -> Self {
        Self {
            cache,
            key_mask: Vec::new(),
            next_pos: 0,
            pending: Vec::new(),
            frames: 0,
            frame_keys: VecDeque::new(),
            horizon: 0,
            readbacks: 0,
        }
    }

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
        self.key_mask.len()
    }

    /// The engine whose caches the stream holds.
    pub fn engine(&self) -> &'static str {
        self.cache.engine()
    }

    /// Bounds memory: keep the keys of at most `frames` frames (0: keep all,
    /// up to [`MAX_HORIZON`](crate::limits::MAX_HORIZON); a larger value
    /// keeps that many too: the options' check refuses it by name).
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

    pub(super) fn enforce_horizon(&mut self) {
        let max = crate::limits::MAX_HORIZON;
        let keep = if self.horizon == 0 {
            max
        } else {
            self.horizon.min(max)
        };
        while self.frame_keys.len() > keep {
            let n = self
                .frame_keys
                .pop_front()
                .unwrap_or(0)
                .min(self.key_mask.len());
            if n > 0 {
                self.cache.evict_front(n);
                self.key_mask.drain(..n);
            }
        }
    }

    /// Keeps the first `keep` cached keys (drops keys appended by decoder
    /// calls that turned out to be past a frame's stop).
    pub(super) fn truncate_keys(&mut self, keep: usize) {
        if keep < self.key_mask.len() {
            self.cache.truncate(keep);
            self.key_mask.truncate(keep);
        }
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
                && a.key_mask == b.key_mask
                && a.cache.engine() == b.cache.engine()
                && a.pending
                    .iter()
                    .map(|p| p.1)
                    .eq(b.pending.iter().map(|p| p.1))
        })
}
