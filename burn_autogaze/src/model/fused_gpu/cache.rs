//! A stream's caches in the fused engine: the encoder's temporal context
//! (a Burn tensor, as the reference engine keeps it) and the KV cache in one
//! device buffer `[layer][k|v][head][cap][head_dim]` that the decoder
//! kernel appends to in place. Growing, evicting and copying move the kept
//! keys into a new buffer in one dispatch ([`move_keys`]). Streams decoded
//! in lockstep keep their caches side by side in one buffer (a slot each,
//! [`FusedCache::gather`]), so one dispatch serves them all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::backend::wgpu::WgpuRuntime;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::super::config::AutoGazeConfig;
use super::super::engine::{EngineCache, PortableCache};
use super::super::values::host_values;
use super::NAME;
use super::counters::Counters;
use super::kernels::move_keys;
use crate::error::{AutoGazeError, Result};

/// Keys a new KV buffer holds at least; it grows to twice what it held.
const MIN_KEYS: usize = 512;

/// Capacities are multiples of this many keys, so a stream's slot in a
/// shared buffer starts where a binding may (256 bytes: a key's values in
/// every block are at least one f32).
const KEY_ALIGN: usize = 64;

/// A capacity of at least `keys` keys.
fn capacity(keys: usize) -> usize {
    keys.max(MIN_KEYS).next_multiple_of(KEY_ALIGN)
}

/// Names each buffer streams share.
static NEXT_SHARED: AtomicU64 = AtomicU64::new(1);

/// Where a stream's cache sits in a buffer shared by streams in lockstep:
/// the whole buffer, its name, the stream's index and the streams it holds.
#[derive(Clone)]
pub struct Slot {
    pub whole: Handle,
    pub id: u64,
    pub index: usize,
    pub streams: usize,
}

impl Slot {
    /// A name for a new shared buffer.
    pub fn new_id() -> u64 {
        NEXT_SHARED.fetch_add(1, Ordering::Relaxed)
    }

    /// `slots` are streams `0..` of one shared buffer, in order, and no
    /// others: that buffer.
    pub fn whole_of(slots: &[Option<&Slot>]) -> Option<Handle> {
        let first = slots.first()?.as_ref()?;
        let whole = slots.iter().enumerate().all(|(i, s)| {
            s.is_some_and(|s| s.id == first.id && s.index == i && s.streams == slots.len())
        });
        whole.then(|| first.whole.clone())
    }
}

/// The KV cache's dimensions.
#[derive(Debug, Clone, Copy)]
pub struct KvShape {
    /// Decoder layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Values a head's key.
    pub head_dim: usize,
}

impl KvShape {
    /// `[cap, head_dim]` blocks: one per layer, keys or values, head.
    fn blocks(&self) -> usize {
        self.layers * 2 * self.heads
    }

    /// Values of a buffer of `cap` keys.
    fn len(&self, cap: usize) -> usize {
        self.blocks() * cap * self.head_dim
    }
}

/// A stream's caches (see the module's notes).
pub struct FusedCache<B: Backend> {
    /// The trunk's temporal context `[kt - 1, grid, grid, C]`.
    pub conv: Option<Tensor<B, 4>>,
    /// Set while `conv` is a slot of a buffer the encoder's kernels wrote
    /// for streams in lockstep (the next call reads it whole).
    pub conv_slot: Option<Slot>,
    kv: Option<Handle>,
    /// Set while `kv` is a slot of a buffer shared with other streams.
    slot: Option<Slot>,
    cap: usize,
    keys: usize,
    shape: KvShape,
    client: ComputeClient<WgpuRuntime>,
    counters: Arc<Counters>,
}

impl<B: Backend> std::fmt::Debug for FusedCache<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedCache")
            .field("keys", &self.keys)
            .field("cap", &self.cap)
            .field("conv", &self.conv.as_ref().map(Tensor::dims))
            .finish_non_exhaustive()
    }
}

impl<B: Backend> FusedCache<B> {
    /// An empty cache.
    pub fn new(
        client: ComputeClient<WgpuRuntime>,
        shape: KvShape,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            conv: None,
            conv_slot: None,
            kv: None,
            slot: None,
            cap: 0,
            keys: 0,
            shape,
            client,
            counters,
        }
    }

    /// Keys held.
    pub fn keys(&self) -> usize {
        self.keys
    }

    /// Makes room for `keys` keys; returns the capacity.
    pub fn reserve(&mut self, keys: usize) -> usize {
        if keys > self.cap || self.kv.is_none() {
            let cap = capacity(keys.max(2 * self.cap));
            self.kv = Some(self.moved(0, cap));
            self.slot = None;
            self.cap = cap;
        }
        self.cap
    }

    /// Values of a KV buffer of `cap` keys.
    pub fn kv_values(&self, cap: usize) -> usize {
        self.shape.len(cap)
    }

    /// The caches of streams decoded in lockstep side by side in one
    /// buffer with room for `keys` keys each: the buffer and the capacity
    /// of a slot. Where they already sit so (the last call's), nothing
    /// moves; else a new buffer takes each stream's keys (one dispatch a
    /// stream) and each cache its slot.
    pub fn gather(caches: &mut [&mut Self], keys: usize) -> (Handle, usize) {
        let n = caches.len();
        let cap = caches[0].cap;
        let slots: Vec<Option<&Slot>> = caches.iter().map(|c| c.slot.as_ref()).collect();
        if let Some(whole) = Slot::whole_of(&slots)
            && keys <= cap
            && caches.iter().all(|c| c.cap == cap)
        {
            return (whole, cap);
        }
        let most = caches.iter().map(|c| c.cap).max().unwrap_or(0);
        let cap = capacity(if keys > most {
            keys.max(2 * most)
        } else {
            most
        });
        let region = 4 * caches[0].shape.len(cap) as u64;
        let whole = caches[0].client.empty(n * region as usize);
        let id = Slot::new_id();
        for (i, cache) in caches.iter_mut().enumerate() {
            let view = whole
                .clone()
                .offset_start(i as u64 * region)
                .offset_end((n - 1 - i) as u64 * region);
            cache.move_into(0, &view, cap);
            cache.kv = Some(view);
            cache.cap = cap;
            cache.slot = Some(Slot {
                whole: whole.clone(),
                id,
                index: i,
                streams: n,
            });
        }
        (whole, cap)
    }

    /// The KV buffer (after [`FusedCache::reserve`]).
    pub fn kv_handle(&self) -> Handle {
        self.kv.clone().expect("the KV buffer exists after reserve")
    }

    /// Records `rows` keys the decoder kernel appended.
    pub fn appended(&mut self, rows: usize) {
        self.keys += rows;
    }

    /// A new buffer of `cap` keys holding keys `from..` of this one.
    fn moved(&self, from: usize, cap: usize) -> Handle {
        let dst = self.client.empty(4 * self.shape.len(cap));
        self.move_into(from, &dst, cap);
        dst
    }

    /// Writes keys `from..` of this cache to the start of `dst`, a buffer
    /// of `cap` keys.
    fn move_into(&self, from: usize, dst: &Handle, cap: usize) {
        let s = self.shape;
        let count = self.keys - from;
        let Some(src) = self.kv.clone() else {
            return;
        };
        if count == 0 {
            return;
        }
        let total = s.blocks() * count * s.head_dim;
        let units = 256u32;
        let cubes = total.div_ceil(units as usize) as u32;
        // SAFETY: the kernel reads keys from..from + count of each block of
        // `src` and writes keys 0..count of `dst`, both within their lengths.
        unsafe {
            move_keys::launch(
                &self.client,
                CubeCount::Static(cubes, 1, 1),
                CubeDim::new_1d(units),
                ArrayArg::from_raw_parts(src, s.len(self.cap)),
                ArrayArg::from_raw_parts(dst.clone(), s.len(cap)),
                from as u32,
                count as u32,
                self.cap as u32,
                cap as u32,
                s.blocks(),
                s.head_dim,
            );
        }
        self.counters.dispatched(1);
    }

    /// Fills the cache from `portable` (see [`PortableCache`]).
    pub fn import(
        &mut self,
        portable: &PortableCache,
        c: &AutoGazeConfig,
        device: &B::Device,
    ) -> Result<()> {
        let s = self.shape;
        let bad = |what: String| AutoGazeError::engine(NAME, what);
        if !portable.conv.is_empty() {
            let shape = [c.trunk_temporal - 1, c.grid(), c.grid(), c.vision_hidden];
            if portable.conv.len() != shape.iter().product::<usize>() {
                return Err(bad(format!(
                    "a temporal context of {} values",
                    portable.conv.len()
                )));
            }
            let data = TensorData::new(portable.conv.clone(), shape);
            self.conv = Some(Tensor::from_data(data, device));
            self.conv_slot = None;
        }
        let keys = portable.keys;
        if keys == 0 {
            return Ok(());
        }
        let per = s.heads * keys * s.head_dim;
        if portable.layers.len() != s.layers
            || portable
                .layers
                .iter()
                .any(|(k, v)| k.len() != per || v.len() != per)
        {
            return Err(bad(format!(
                "a KV cache that does not hold {keys} keys in every layer"
            )));
        }
        let cap = capacity(keys);
        let mut values = vec![0f32; s.len(cap)];
        let block = cap * s.head_dim;
        for (layer, (k, v)) in portable.layers.iter().enumerate() {
            for (part, src) in [k, v].into_iter().enumerate() {
                for (h, rows) in src.chunks_exact(keys * s.head_dim).enumerate() {
                    let at = ((layer * 2 + part) * s.heads + h) * block;
                    values[at..at + rows.len()].copy_from_slice(rows);
                }
            }
        }
        self.kv = Some(self.counters.upload(&self.client, &values));
        self.slot = None;
        self.cap = cap;
        self.keys = keys;
        Ok(())
    }
}

impl<B: Backend> Clone for FusedCache<B> {
    /// A copy with its own KV buffer (the kernels write a stream's buffer in
    /// place, so two streams never share one).
    fn clone(&self) -> Self {
        let kv = self.kv.as_ref().map(|_| self.moved(0, self.cap));
        Self {
            conv: self.conv.clone(),
            conv_slot: self.conv_slot.clone(),
            kv,
            slot: None,
            cap: self.cap,
            keys: self.keys,
            shape: self.shape,
            client: self.client.clone(),
            counters: self.counters.clone(),
        }
    }
}

impl<B: Backend> EngineCache<B> for FusedCache<B> {
    fn engine(&self) -> &'static str {
        NAME
    }

    fn truncate(&mut self, keep: usize) {
        self.keys = keep.min(self.keys);
    }

    fn evict_front(&mut self, n: usize) {
        let n = n.min(self.keys);
        if self.kv.is_some() {
            self.kv = Some(self.moved(n, self.cap));
            self.slot = None;
        }
        self.keys -= n;
    }

    fn conv_is_empty(&self) -> bool {
        self.conv.is_none()
    }

    fn export(&self) -> PortableCache {
        let s = self.shape;
        let mut layers = vec![(Vec::new(), Vec::new()); s.layers];
        if let (Some(kv), true) = (&self.kv, self.keys > 0) {
            let bytes = self.client.read_one_unchecked(kv.clone());
            self.counters.read(bytes.len());
            let values = f32::from_bytes(&bytes);
            let block = self.cap * s.head_dim;
            for (layer, (k, v)) in layers.iter_mut().enumerate() {
                for (part, out) in [k, v].into_iter().enumerate() {
                    for h in 0..s.heads {
                        let at = ((layer * 2 + part) * s.heads + h) * block;
                        out.extend_from_slice(&values[at..at + self.keys * s.head_dim]);
                    }
                }
            }
        }
        PortableCache {
            conv: self.conv.clone().map(host_values).unwrap_or_default(),
            keys: self.keys,
            layers,
        }
    }
}
