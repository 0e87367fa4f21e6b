//! The fused GPU engine: a decoder call is a few CubeCL dispatches (one a
//! layer, one finishing the last row, one for the heads: `kernels`), every
//! stream of the call in the same ones, over weights packed once into one
//! buffer and a KV cache that grows in place on the device, launched on
//! Burn's own wgpu runtime: it takes the encoder's vision tokens and the
//! device-picked ids as Burn tensors and gives the heads as Burn tensors,
//! with no copy and no readback. The encoder is two more dispatches over
//! all of a call's streams and frames
//! (`encoder`: the convolutions as products over patches read in place,
//! the epilogues fused, each stream's temporal context written on the
//! device), or the reference engine's Burn ops where its shapes are not
//! ones those kernels take. The default engine on Burn's wgpu backend; same
//! tokens as the host engine (tested).
//!
//! It counts its dispatches ([`Engine::dispatches`]) and the bytes it moves
//! between the host and the device ([`Engine::transfers`], `counters`). Its
//! kernels meet at workgroup barriers, so it is built only on an adapter
//! that holds them (`probe`); elsewhere the model stays on the Burn-ops
//! engine and says why.

mod attention;
mod blocks;
mod bridge;
mod cache;
mod counters;
mod encoder;
mod kernels;
mod launch;
mod layout;
mod pick;
mod probe;

use std::sync::Arc;

use burn::backend::wgpu::{WgpuDevice, WgpuRuntime};
use burn::tensor::{DType, Tensor, backend::Backend};
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::burn_ops::encode_with;
use super::config::AutoGazeConfig;
use super::engine::{
    ChunkIds, DecoderCall, Engine, EngineCache, EngineEntry, FramePicker, Heads, PortableCache,
    Transfers, own_caches,
};
use super::rope::{inv_freq, rope_tables};
use super::weights::ModelWeights;
use crate::error::{AutoGazeError, Result};
use crate::wait::Pending;

use bridge::{
    GpuTensor, flat, float_buffer, float_tensor, int_buffer, pack_on_device, wgpu_device,
};
use cache::{FusedCache, KvShape};
use counters::Counters;
use launch::{BLOCK_ROWS, Buffer, MAX_CUBES, Offsets, StreamCall};
use layout::WeightLayout;

/// The engine's registered name.
pub const NAME: &str = "fused-gpu";

/// Bytes a storage binding's offset is a multiple of (wgpu's default
/// `min_storage_buffer_offset_alignment`).
const BINDING_ALIGN: usize = 256;

/// The registry's entry: the default on Burn's wgpu backend.
pub fn entry<B: Backend>() -> EngineEntry<B> {
    EngineEntry {
        name: NAME,
        about: "the encoder in two fused CubeCL dispatches, the decoder in one a layer (and two for the heads) on Burn's wgpu runtime (the wgpu default)",
        priority: |device| wgpu_device::<B>(device).map(|_| 20),
        build: |w, c| Ok(Arc::new(FusedGpu::new(w, c)?)),
    }
}

/// The engine: the model's weights, its packed decoder buffer, the client
/// that launches its kernels.
pub struct FusedGpu<B: Backend> {
    weights: ModelWeights<B>,
    config: AutoGazeConfig,
    layout: WeightLayout,
    packed: Handle,
    /// One-value buffers bound where a call has no ids or no vision rows
    /// (made once, never written).
    no_ids: Handle,
    no_vision: Handle,
    client: ComputeClient<WgpuRuntime>,
    device: WgpuDevice,
    inv_freq: Vec<f32>,
    counters: Arc<Counters>,
    /// The encoder's kernels, or why they do not run this model's shapes
    /// (then it encodes in Burn ops).
    encoder: std::result::Result<encoder::GpuEncoder, String>,
}

impl<B: Backend> std::fmt::Debug for FusedGpu<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedGpu")
            .field("layout", &self.layout)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Why the kernels cannot run `c` (None: they can).
fn unsupported(c: &AutoGazeConfig) -> Option<String> {
    if c.layers == 0 {
        return Some("a decoder without layers".into());
    }
    if !c.head_dim.is_multiple_of(2) {
        return Some(format!(
            "head_dim {} is odd (RoPE pairs columns)",
            c.head_dim
        ));
    }
    if !c.hidden.is_multiple_of(4) || !c.intermediate.is_multiple_of(4) {
        return Some(format!(
            "hidden size {} or MLP width {} is not a multiple of 4 (the kernels read weights as vec4s)",
            c.hidden, c.intermediate
        ));
    }
    if !c.head_dim.is_multiple_of(8) {
        return Some(format!(
            "head_dim {} is not a multiple of 8 (RoPE pairs columns, read as vec4s)",
            c.head_dim
        ));
    }
    if c.heads * c.head_dim != c.hidden {
        return Some(format!(
            "{} heads of {} do not make the hidden size {}",
            c.heads, c.head_dim, c.hidden
        ));
    }
    // A workgroup keeps its block's normed rows and the attention's tile
    // in workgroup memory: within WebGPU's default.
    let lay = WeightLayout {
        d: c.hidden,
        inter: c.intermediate,
        layers: c.layers,
        n_logits: 0,
        n_tl: 0,
    };
    if c.head_dim / 4 > launch::UNITS as usize {
        return Some(format!(
            "head_dim {} is over 4 x {} (a workgroup's units take a head's column quads)",
            c.head_dim,
            launch::UNITS
        ));
    }
    let shared = 4 * layout::workgroup_values(&lay, c.head_dim, BLOCK_ROWS, launch::UNITS as usize);
    if shared > launch::SHARED_BYTES {
        return Some(format!(
            "hidden size {} with heads of {} needs {shared} bytes of workgroup memory, over the {} the kernels may use",
            c.hidden,
            c.head_dim,
            launch::SHARED_BYTES
        ));
    }
    None
}

impl<B: Backend> FusedGpu<B> {
    /// Packs `w`'s decoder into one device buffer (a typed error when the
    /// model is not on Burn's wgpu backend or its shapes are not ones the
    /// kernels run).
    pub fn new(w: &ModelWeights<B>, c: &AutoGazeConfig) -> Result<Self> {
        let device = wgpu_device::<B>(&w.decoder.embed.device())
            .ok_or_else(|| AutoGazeError::engine(NAME, "the model is not on a wgpu device"))?;
        if let Some(why) = unsupported(c) {
            return Err(AutoGazeError::engine(NAME, why));
        }
        probe::barriers_hold(&device).map_err(|why| AutoGazeError::engine(NAME, why))?;
        let dec = &w.decoder;
        let layout = WeightLayout {
            d: c.hidden,
            inter: c.intermediate,
            layers: c.layers,
            n_logits: dec.lm_head.dims()[1],
            n_tl: dec.task_loss.dims()[1],
        };
        let mut parts = Vec::with_capacity(8 * dec.layers.len() + 4);
        for l in &dec.layers {
            parts.push(flat(&l.input_norm));
            for t in [&l.qkv, &l.o] {
                parts.push(flat(t));
            }
            parts.push(flat(&l.post_norm));
            for t in [&l.gate_up, &l.down] {
                parts.push(flat(t));
            }
        }
        parts.push(flat(&dec.norm));
        parts.push(flat(&dec.lm_head));
        parts.push(flat(&dec.task_loss));
        let values: usize = parts.iter().map(|p| p.dims()[0]).sum();
        if values != layout.embed() {
            return Err(AutoGazeError::engine(
                NAME,
                format!(
                    "the decoder's weights hold {values} values, the kernels' layout {}",
                    layout.embed()
                ),
            ));
        }
        parts.push(flat(&dec.embed));
        let packed = pack_on_device(parts)?;
        let client = WgpuRuntime::client(&device);
        let counters = Arc::new(Counters::default());
        let encoder = encoder::GpuEncoder::new(w, c, &client, &counters);
        Ok(Self {
            weights: w.clone(),
            config: c.clone(),
            layout,
            packed,
            no_ids: counters.upload(&client, &[0i32]),
            no_vision: counters.upload(&client, &[0f32]),
            client,
            device,
            inv_freq: inv_freq(c),
            counters,
            encoder,
        })
    }

    fn kv_shape(&self) -> KvShape {
        KvShape {
            layers: self.config.layers,
            heads: self.config.heads,
            head_dim: self.config.head_dim,
        }
    }

    /// A device buffer holding `values`.
    fn upload<T: CubeElement>(&self, values: &[T]) -> Handle {
        self.counters.upload(&self.client, values)
    }

    /// The call's ids on the device (`i32`) and their number.
    fn ids(&self, ids: Option<ChunkIds<B>>) -> Result<(Handle, usize)> {
        match ids {
            None => Ok((self.no_ids.clone(), 0)),
            Some(ChunkIds::Host(ids)) => {
                let values: Vec<i32> = ids.iter().map(|&id| id as i32).collect();
                Ok((self.upload(&values), ids.len()))
            }
            Some(ChunkIds::Device(ids)) => {
                let t = int_buffer(ids)?;
                if t.dtype != DType::I32 || !t.is_contiguous() {
                    return Err(AutoGazeError::engine(
                        NAME,
                        format!(
                            "device ids of {:?} (the kernels read contiguous i32)",
                            t.dtype
                        ),
                    ));
                }
                let n = t.meta.num_elements();
                Ok((t.handle, n))
            }
        }
    }
}

/// A call's vision tokens as the kernels read them: the buffer, the
/// tokens a stream, and the strides of a stream, a row and a column.
struct Vision {
    handle: Handle,
    tokens: usize,
    strides: [usize; 3],
}

fn vision_of(t: Option<GpuTensor>, n: usize, d: usize, none: &Handle) -> Result<Vision> {
    let Some(t) = t else {
        return Ok(Vision {
            handle: none.clone(),
            tokens: 0,
            strides: [0; 3],
        });
    };
    let shape = t.meta.shape();
    let strides = t.meta.strides();
    if t.dtype != DType::F32 || shape.num_dims() != 3 || shape[0] != n || shape[2] != d {
        return Err(AutoGazeError::engine(
            NAME,
            format!(
                "vision tokens {:?} of {:?}, not [{n}, _, {d}] f32",
                shape, t.dtype
            ),
        ));
    }
    Ok(Vision {
        tokens: shape[1],
        strides: [strides[0], strides[1], strides[2]],
        handle: t.handle,
    })
}

impl<B: Backend> Engine<B> for FusedGpu<B> {
    fn name(&self) -> &'static str {
        NAME
    }

    fn dispatches(&self) -> Option<u64> {
        Some(self.counters.dispatches())
    }

    fn transfers(&self) -> Option<Transfers> {
        Some(self.counters.transfers())
    }

    fn idle(&self) -> Option<Pending<'static, Result<()>>> {
        let synced = self.client.sync();
        Some(Box::pin(async move {
            synced
                .await
                .map_err(|e| AutoGazeError::engine(NAME, format!("waiting for the device: {e:?}")))
        }))
    }

    fn fallback_part(&self) -> Option<String> {
        let why = self.encoder.as_ref().err()?;
        Some(format!("{NAME}: the encoder in Burn ops ({why})"))
    }

    fn frame_picker(&self, streams: usize, budget: usize) -> Option<Box<dyn FramePicker<B>>> {
        let c = &self.config;
        Some(Box::new(pick::FusedPicker::new(
            self.client.clone(),
            self.device.clone(),
            streams,
            budget,
            c.multi_token,
            c.vocab(),
            c.layout.pad_id(),
            self.counters.clone(),
        )))
    }

    fn new_cache(&self) -> Box<dyn EngineCache<B>> {
        Box::new(FusedCache::<B>::new(
            self.client.clone(),
            self.kv_shape(),
            self.counters.clone(),
        ))
    }

    fn import(&self, portable: &PortableCache) -> Result<Box<dyn EngineCache<B>>> {
        let mut cache =
            FusedCache::<B>::new(self.client.clone(), self.kv_shape(), self.counters.clone());
        cache.import(portable, &self.config, &self.weights.decoder.embed.device())?;
        Ok(Box::new(cache))
    }

    fn encode(
        &self,
        video: Tensor<B, 5>,
        caches: &mut [&mut dyn EngineCache<B>],
    ) -> Result<Tensor<B, 4>> {
        if let Ok(kernels) = &self.encoder {
            let mut own = own_caches::<B, FusedCache<B>>(NAME, caches)?;
            return kernels.encode(&self.client, &self.device, &self.counters, video, &mut own);
        }
        encode_with(
            NAME,
            &self.weights,
            &self.config,
            video,
            caches,
            |c: &mut FusedCache<B>| &mut c.conv,
        )
    }

    fn decode(
        &self,
        call: DecoderCall<'_, B>,
        caches: &mut [&mut dyn EngineCache<B>],
    ) -> Result<Heads<B>> {
        let mut own = own_caches::<B, FusedCache<B>>(NAME, caches)?;
        let c = &self.config;
        let (n, d, rows) = (call.streams, c.hidden, call.rows());
        let (ids, id_count) = self.ids(call.ids)?;
        let vision = call.vision.map(float_buffer).transpose()?;
        let vision = vision_of(vision, n, d, &self.no_vision)?;
        let m = id_count / n.max(1);
        let keys = call.key_mask.len();
        if n == 0 || own.len() != n || id_count != n * m || m + vision.tokens != rows || keys < rows
        {
            return Err(AutoGazeError::engine(
                NAME,
                format!(
                    "a call of {n} streams with {id_count} ids and {} vision tokens a stream \
                     does not give {rows} rows a stream",
                    vision.tokens
                ),
            ));
        }
        let past = keys - rows;
        if let Some(other) = own.iter().find(|cache| cache.keys() != past) {
            return Err(AutoGazeError::engine(
                NAME,
                format!("a stream holds {} keys, the key mask {past}", other.keys()),
            ));
        }
        let (cos, sin) = rope_tables(&self.inv_freq, call.positions);
        let mut call_values = cos;
        call_values.extend(sin);
        call_values.extend(call.key_mask.iter().map(|&m| if m { 1f32 } else { 0f32 }));
        let call_data = self.upload(&call_values);
        let lay = self.layout;
        let scratch_len = layout::scratch_values(&lay, rows);
        if rows.div_ceil(BLOCK_ROWS) > MAX_CUBES {
            return Err(AutoGazeError::engine(
                NAME,
                format!("a call of {rows} rows is more than one dispatch can spread"),
            ));
        }
        let scratch = Buffer {
            handle: self.client.empty(4 * n * scratch_len),
            len: n * scratch_len,
        };
        let tl_at = (n * lay.n_logits).next_multiple_of(BINDING_ALIGN / 4);
        let out_len = tl_at + n * lay.n_tl;
        let out = Buffer {
            handle: self.client.empty(4 * out_len),
            len: out_len,
        };
        let weights = Buffer {
            handle: self.packed.clone(),
            len: self.packed_len(),
        };
        let call_data = Buffer {
            len: call_values.len(),
            handle: call_data,
        };
        let ids = Buffer {
            handle: ids,
            len: id_count.max(1),
        };
        let vision_buffer = Buffer {
            len: vision_len(&vision, n, d),
            handle: vision.handle.clone(),
        };
        // Every stream in the same dispatches: one stream's cache is its
        // own buffer; several streams' sit side by side in one.
        let (kv, cap) = if n == 1 {
            let cap = own[0].reserve(past + rows);
            (own[0].kv_handle(), cap)
        } else {
            FusedCache::gather(&mut own, past + rows)
        };
        let kv_values = own[0].kv_values(cap);
        let batch = StreamCall {
            streams: n,
            s_len: scratch_len,
            kv_len: kv_values / 4,
            client: &self.client,
            weights: &weights,
            kv: Buffer {
                handle: kv,
                len: n * kv_values,
            },
            scratch: &scratch,
            call: &call_data,
            ids: &ids,
            vision: &vision_buffer,
            out: &out,
            rows,
            m,
            past,
            cap,
            at: Offsets {
                v_row: vision.strides[1] as u32,
                v_col: vision.strides[2] as u32,
                v_stream: vision.strides[0] as u32,
                task_loss: tl_at as u32,
            },
            eps: c.rms_eps as f32,
            lay,
            heads: c.heads,
            head_dim: c.head_dim,
        };
        self.counters.dispatched(batch.run());
        for cache in own.iter_mut() {
            cache.appended(rows);
        }
        let out = out.handle;
        let logits_bytes = 4 * n * lay.n_logits;
        let logits = GpuTensor::new_contiguous(
            self.client.clone(),
            self.device.clone(),
            [n, lay.n_logits].into(),
            out.clone().offset_end((4 * out_len - logits_bytes) as u64),
            DType::F32,
        );
        let task_loss = GpuTensor::new_contiguous(
            self.client.clone(),
            self.device.clone(),
            [n, lay.n_tl].into(),
            out.offset_start((4 * tl_at) as u64),
            DType::F32,
        );
        Ok(Heads::Device {
            logits: float_tensor(logits)?,
            task_loss: float_tensor(task_loss)?,
        })
    }
}

impl<B: Backend> FusedGpu<B> {
    /// Values in the packed weight buffer.
    fn packed_len(&self) -> usize {
        self.layout.embed() + self.config.vocab() * self.config.hidden
    }
}

/// Values the kernels may read of a call's vision buffer.
fn vision_len(v: &Vision, n: usize, d: usize) -> usize {
    if v.tokens == 0 {
        return 1;
    }
    (n - 1) * v.strides[0] + (v.tokens - 1) * v.strides[1] + (d - 1) * v.strides[2] + 1
}

#[cfg(test)]
mod tests;
