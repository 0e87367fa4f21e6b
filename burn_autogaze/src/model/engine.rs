//! The engine seam: what runs the model's arithmetic. An engine encodes
//! frames into vision tokens (keeping each stream's temporal context) and
//! runs one decoder call over a batch of streams (keeping each stream's KV
//! cache); everything above it (streams, positions, the key mask, greedy
//! selection, the task-loss gate, horizons, tiling) is written once, in
//! `generate`, `select` and `stream`.
//!
//! Engines are registered in [`registry`](super::registry::registry); a model picks the one whose
//! [`EngineEntry::priority`] is highest on its device when it is built, or
//! the one named with [`AutoGaze::set_engine`](super::AutoGaze::set_engine).
//! Adding an engine: implement [`Engine`] and [`EngineCache`] in a folder
//! of its own and add its entry to the registry; nothing else changes.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::config::AutoGazeConfig;
use super::values::host_values_async;
use super::weights::ModelWeights;
use crate::error::{AutoGazeError, Result};
use crate::wait::Pending;

/// The token ids a decoder call embeds: each stream's chunk, stream after
/// stream (`[N * m]`), where the selection that picked them left them.
#[derive(Debug, Clone)]
pub enum ChunkIds<B: Backend> {
    /// Picked on the host.
    Host(Vec<u32>),
    /// Picked on the device (`[N * m]`).
    Device(Tensor<B, 1, Int>),
}

impl<B: Backend> ChunkIds<B> {
    /// The ids on the host (a readback for [`ChunkIds::Device`]).
    pub fn into_host(self) -> Vec<u32> {
        match self {
            Self::Host(ids) => ids,
            Self::Device(ids) => ids
                .into_data()
                .convert::<i64>()
                .into_vec::<i64>()
                .expect("i64 ids after the conversion to i64")
                .into_iter()
                .map(|id| id as u32)
                .collect(),
        }
    }

    /// The ids as a tensor on `device`.
    pub fn into_device(self, device: &B::Device) -> Tensor<B, 1, Int> {
        match self {
            Self::Device(ids) => ids,
            Self::Host(ids) => {
                let n = ids.len();
                let ids: Vec<i64> = ids.into_iter().map(i64::from).collect();
                Tensor::from_data(TensorData::new(ids, [n]), device)
            }
        }
    }
}

/// One decoder call over `streams` streams in lockstep: each stream's rows
/// are its chunk's embeddings (`ids`) followed by its vision tokens
/// (`vision`), at `positions` (the same for every stream).
#[derive(Debug, Clone)]
pub struct DecoderCall<'a, B: Backend> {
    /// Streams decoded together (at least one).
    pub streams: usize,
    /// Each stream's chunk of ids to embed first, if any.
    pub ids: Option<ChunkIds<B>>,
    /// Each stream's vision tokens `[N, nv, D]`, if any.
    pub vision: Option<Tensor<B, 3>>,
    /// The position id of each of a stream's rows.
    pub positions: &'a [i64],
    /// Whether later tokens may attend to each key: every cached key's bit
    /// and then this call's rows' (the same for every stream).
    pub key_mask: &'a [bool],
}

impl<B: Backend> DecoderCall<'_, B> {
    /// Rows a stream adds.
    pub fn rows(&self) -> usize {
        self.positions.len()
    }
}

/// What a decoder call gives: each stream's last-row logits of the `K`
/// heads (`[N, K * vocab]`) and task-loss predictions (`[N, K]`), where the
/// engine computed them.
#[derive(Debug, Clone)]
pub enum Heads<B: Backend> {
    /// Host values, row-major.
    Host {
        /// `[N * K * vocab]`.
        logits: Vec<f32>,
        /// `[N * K]`.
        task_loss: Vec<f32>,
    },
    /// Tensors on the device.
    Device {
        /// `[N, K * vocab]`.
        logits: Tensor<B, 2>,
        /// `[N, K]`.
        task_loss: Tensor<B, 2>,
    },
}

impl<B: Backend> Heads<B> {
    /// The values on the host (a readback for [`Heads::Device`], waited
    /// for: [`Heads::into_host_async`] where nothing may block).
    pub fn into_host(self) -> (Vec<f32>, Vec<f32>) {
        crate::wait::block_on("the heads' readback", self.into_host_async())
            .expect("the heads read back")
    }

    /// The values on the host, the readback awaited.
    pub async fn into_host_async(self) -> Result<(Vec<f32>, Vec<f32>)> {
        match self {
            Self::Host { logits, task_loss } => Ok((logits, task_loss)),
            Self::Device { logits, task_loss } => Ok((
                host_values_async(logits).await?,
                host_values_async(task_loss).await?,
            )),
        }
    }

    /// The values as tensors on `device` (`streams` rows).
    pub fn into_device(self, streams: usize, device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2>) {
        match self {
            Self::Device { logits, task_loss } => (logits, task_loss),
            Self::Host { logits, task_loss } => {
                let tensor = |values: Vec<f32>| {
                    let per = values.len() / streams.max(1);
                    Tensor::from_data(TensorData::new(values, [streams, per]), device)
                };
                (tensor(logits), tensor(task_loss))
            }
        }
    }
}

/// One stream's caches as host values, in the one layout every engine
/// converts from and to ([`AutoGaze::convert_stream`](super::AutoGaze::convert_stream)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortableCache {
    /// The trunk's temporal context `[kt - 1, grid, grid, C]` (channels
    /// last); empty before the first frame.
    pub conv: Vec<f32>,
    /// Keys held (every layer holds the same number).
    pub keys: usize,
    /// Per layer: keys then values, each `[heads, keys, head_dim]`; empty
    /// vectors while the cache is empty.
    pub layers: Vec<(Vec<f32>, Vec<f32>)>,
}

/// One stream's state inside an engine: its KV cache and the encoder's
/// temporal context, in the engine's own layout. (Copying and downcasting
/// come with any `Clone` type: [`CacheObject`].)
pub trait EngineCache<B: Backend>: CacheObject<B> + Debug + Send + Sync + 'static {
    /// The engine that made it ([`Engine::name`]).
    fn engine(&self) -> &'static str;
    /// Keeps the first `keep` keys of every layer (fewer than it holds:
    /// the stream tracks the count).
    fn truncate(&mut self, keep: usize);
    /// Drops the oldest `n` keys of every layer (at least one, at most
    /// all it holds).
    fn evict_front(&mut self, n: usize);
    /// True before any frame was encoded.
    fn conv_is_empty(&self) -> bool;
    /// The caches as host values.
    fn export(&self) -> PortableCache;
}

/// What every [`EngineCache`] can do as an object: be copied (streams are
/// cloneable) and be reached as its own type by its engine. Implemented
/// for every `Clone` cache.
pub trait CacheObject<B: Backend> {
    /// A copy.
    fn clone_box(&self) -> Box<dyn EngineCache<B>>;
    /// For the engine to reach its own type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<B: Backend, T: EngineCache<B> + Clone> CacheObject<B> for T {
    fn clone_box(&self) -> Box<dyn EngineCache<B>> {
        Box::new(self.clone())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl<B: Backend> Clone for Box<dyn EngineCache<B>> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Host<->device bytes an engine moved: its uploads (weights at load, each
/// call's buffers) and its readbacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfers {
    /// Bytes written from the host.
    pub uploaded: u64,
    /// Bytes read back to the host.
    pub read_back: u64,
}

/// What runs the model: the encoder over a batch of streams' frames and
/// one decoder call over a batch of streams in lockstep, each stream's
/// caches in the engine's [`EngineCache`].
pub trait Engine<B: Backend>: Debug + Send + Sync {
    /// The engine's name (as registered).
    fn name(&self) -> &'static str;

    /// Kernel dispatches the engine launched so far (None: it does not
    /// count them, e.g. it runs Burn ops).
    fn dispatches(&self) -> Option<u64> {
        None
    }

    /// Bytes the engine moved between the host and the device so far
    /// (None: it does not count them, e.g. it runs Burn ops).
    fn transfers(&self) -> Option<Transfers> {
        None
    }

    /// The part of the model the engine leaves to the reference's Burn
    /// ops, and why (None: it runs all of it its own way).
    fn fallback_part(&self) -> Option<String> {
        None
    }

    /// A future that resolves once the device has finished the work the
    /// engine enqueued (None: the caller waits with the backend's `sync`,
    /// natively). Awaited between decoder calls where the device's queue is
    /// shared with rendering ([`AutoGaze::set_one_call_in_flight`](super::AutoGaze::set_one_call_in_flight)).
    fn idle(&self) -> Option<Pending<'static, Result<()>>> {
        None
    }

    /// A frame's greedy picks on the device in the engine's own kernels
    /// for `streams` streams and `budget` tokens (None: the selection's
    /// Burn ops pick).
    fn frame_picker(&self, streams: usize, budget: usize) -> Option<Box<dyn FramePicker<B>>> {
        let _ = (streams, budget);
        None
    }

    /// An empty cache for a new stream.
    fn new_cache(&self) -> Box<dyn EngineCache<B>>;

    /// A cache holding `portable`'s values.
    fn import(&self, portable: &PortableCache) -> Result<Box<dyn EngineCache<B>>>;

    /// Vision tokens `[N, T, vision_tokens, D]` of `N` streams' frames
    /// `[N, T, 3, S, S]`, stream `i` continuing from `caches[i]`'s temporal
    /// context (which it updates).
    fn encode(
        &self,
        video: Tensor<B, 5>,
        caches: &mut [&mut dyn EngineCache<B>],
    ) -> Result<Tensor<B, 4>>;

    /// One decoder call: appends each stream's new keys and values to its
    /// cache and returns the heads of each stream's last row.
    fn decode(
        &self,
        call: DecoderCall<'_, B>,
        caches: &mut [&mut dyn EngineCache<B>],
    ) -> Result<Heads<B>>;
}

/// The engine's own cache type behind each of `caches` (a typed error
/// naming both engines when a stream was started on another engine).
pub fn own_caches<'a, B: Backend, C: EngineCache<B>>(
    engine: &str,
    caches: &'a mut [&mut dyn EngineCache<B>],
) -> Result<Vec<&'a mut C>> {
    caches
        .iter_mut()
        .map(|cache| {
            let other = cache.engine();
            cache.as_any_mut().downcast_mut::<C>().ok_or_else(|| {
                AutoGazeError::engine(
                    engine,
                    format!(
                        "the stream's caches belong to engine `{other}`; \
                         move it over with AutoGaze::convert_stream"
                    ),
                )
            })
        })
        .collect()
}

/// A frame's greedy picks kept on the device (the device selection): each
/// chunk's ids are the argmax of each head in turn over the ids the frame
/// has not emitted (never the pad; ties go to the lowest id in an engine's
/// kernels, to the backend's `argmax` in Burn ops), recorded with the
/// chunk's task losses for the frame's one readback.
pub trait FramePicker<B: Backend> {
    /// Picks chunk `j` (`m` ids a stream, at the frame's token `j * K`)
    /// from a decoder call's heads; gives the ids `[N * m]` the next call
    /// embeds.
    fn pick(&mut self, heads: Heads<B>, j: usize, m: usize) -> Result<ChunkIds<B>>;

    /// The frame's record, read back once: per stream, its `budget` ids
    /// then their `budget` task losses (awaited: see [`crate::wait`]).
    fn read(self: Box<Self>) -> Pending<'static, Result<Vec<f32>>>;
}

/// Builds an engine for a model's weights.
pub type EngineBuilder<B> = fn(&ModelWeights<B>, &AutoGazeConfig) -> Result<Arc<dyn Engine<B>>>;

/// A registered engine.
pub struct EngineEntry<B: Backend> {
    /// Its name, as [`Engine::name`] gives it and
    /// [`AutoGaze::set_engine`](super::AutoGaze::set_engine) takes it.
    pub name: &'static str,
    /// What it is, in a few words.
    pub about: &'static str,
    /// Its rank as the default engine on a device (the highest wins; None:
    /// never the default there).
    pub priority: fn(&B::Device) -> Option<u8>,
    /// Builds it.
    pub build: EngineBuilder<B>,
}

/// Whether `device` is Burn's CPU backend (burn-ndarray), where a
/// "readback" is a copy.
pub fn is_cpu_device<B: Backend>(device: &B::Device) -> bool {
    #[cfg(feature = "ndarray")]
    {
        (device as &dyn Any).is::<burn::backend::ndarray::NdArrayDevice>()
    }
    #[cfg(not(feature = "ndarray"))]
    {
        let _ = device;
        false
    }
}
