//! The device selection in one dispatch a chunk: a workgroup a stream picks
//! the chunk's ids head after head (each unit scans a stride of the
//! vocabulary, the first unit settles the workgroup's best, ties to the
//! lowest id as on the host), bars them for the rest of the frame, writes
//! them for the next call's embedding, and records them with the chunk's
//! task losses in the frame's record, read back once at the frame's end.

use std::sync::Arc;

use burn::backend::wgpu::{WgpuDevice, WgpuRuntime};
use burn::tensor::{DType, backend::Backend};
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::super::engine::{ChunkIds, FramePicker, Heads};
use super::NAME;
use super::bridge::{GpuTensor, float_buffer, int_tensor};
use super::counters::Counters;
use crate::error::{AutoGazeError, Result};
use crate::wait::Pending;

/// Units of a picking workgroup.
const UNITS: usize = 64;

/// Picks chunk ids `at..at + m` of stream `CUBE_POS` from its `k` heads'
/// logits (`[N, k * vocab]`): for each head in turn the unbarred id with
/// the greatest logit (none when every logit is barred, -inf or NaN: the
/// pad then). `used` (`[N, vocab]`, 1.0 = barred) gains each pick;
/// `record` (`[N, 2 * budget]`) gets the ids and the heads' task losses
/// (`tl`, `[N, k]`); `ids` (`[N * m]`) the ids for the next call.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn pick_chunk(
    logits: &Array<f32>,
    tl: &Array<f32>,
    used: &mut Array<f32>,
    record: &mut Array<f32>,
    ids: &mut Array<i32>,
    at: u32,
    m: u32,
    budget: u32,
    pad: u32,
    #[comptime] k: usize,
    #[comptime] vocab: usize,
) {
    let s = CUBE_POS;
    let unit = UNIT_POS as usize;
    let units = comptime!(UNITS);
    let none = comptime!(vocab);
    let none = none.runtime();
    let mut best_v = SharedMemory::<f32>::new(units);
    let mut best_i = SharedMemory::<u32>::new(units);
    let m = m as usize;
    for i in 0..m {
        let mut bv = f32::new(-3.0e38);
        let mut bi = none;
        let mut id = unit;
        while id < vocab {
            let v = logits[(s * k + i) * vocab + id];
            if used[s * vocab + id] < 0.5 && v > bv && v > f32::new(-3.4e38) {
                bv = v;
                bi = id;
            }
            id += units;
        }
        best_v[unit] = bv;
        best_i[unit] = bi as u32;
        sync_cube();
        if unit == 0 {
            let mut v = f32::new(-3.0e38);
            let mut p = none;
            for u in 0..units {
                let cand = best_i[u] as usize;
                if cand < none && (p == none || best_v[u] > v || (best_v[u] == v && cand < p)) {
                    v = best_v[u];
                    p = cand;
                }
            }
            if p == none {
                p = pad as usize;
            }
            used[s * vocab + p] = 1.0;
            let row = s * 2 * budget as usize + at as usize + i;
            record[row] = p as f32;
            record[row + budget as usize] = tl[s * k + i];
            ids[s * m + i] = p as i32;
        }
        sync_storage();
        sync_cube();
    }
}

/// A frame's picks on the fused engine's device: the barred ids and the
/// record stay there until [`FramePicker::read`].
pub struct FusedPicker {
    client: ComputeClient<WgpuRuntime>,
    device: WgpuDevice,
    streams: usize,
    budget: usize,
    k: usize,
    vocab: usize,
    pad: u32,
    used: Handle,
    record: Handle,
    counters: Arc<Counters>,
}

impl FusedPicker {
    /// A frame's picker for `streams` streams, `budget` tokens, `k` heads of
    /// `vocab` logits, the pad id `pad` barred from the start.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: ComputeClient<WgpuRuntime>,
        device: WgpuDevice,
        streams: usize,
        budget: usize,
        k: usize,
        vocab: usize,
        pad: u32,
        counters: Arc<Counters>,
    ) -> Self {
        let mut used = vec![0f32; streams * vocab];
        for s in 0..streams {
            used[s * vocab + pad as usize] = 1.0;
        }
        let used = counters.upload(&client, &used);
        let record = counters.upload(&client, &vec![0f32; streams * 2 * budget]);
        Self {
            client,
            device,
            streams,
            budget,
            k,
            vocab,
            pad,
            used,
            record,
            counters,
        }
    }
}

/// A head tensor's buffer, checked to be the contiguous `[N, per]` the
/// kernel reads.
fn head_buffer(t: GpuTensor, n: usize, per: usize, what: &str) -> Result<GpuTensor> {
    if t.dtype != DType::F32 || !t.is_contiguous() || t.meta.num_elements() != n * per {
        return Err(AutoGazeError::engine(
            NAME,
            format!("the {what} to pick from are not a contiguous f32 [{n}, {per}]"),
        ));
    }
    Ok(t)
}

impl<B: Backend> FramePicker<B> for FusedPicker {
    fn pick(&mut self, heads: Heads<B>, j: usize, m: usize) -> Result<ChunkIds<B>> {
        let (n, k, vocab) = (self.streams, self.k, self.vocab);
        let (logits, tl) = match heads {
            Heads::Device { logits, task_loss } => (logits, task_loss),
            Heads::Host { .. } => {
                return Err(AutoGazeError::engine(
                    NAME,
                    "host heads given to the device picker",
                ));
            }
        };
        let logits = head_buffer(float_buffer(logits)?, n, k * vocab, "logits")?;
        let tl = head_buffer(float_buffer(tl)?, n, k, "task losses")?;
        if m == 0 || m > k || j * k + m > self.budget {
            return Err(AutoGazeError::engine(
                NAME,
                format!(
                    "chunk {j} of {m} ids does not fit a budget of {}",
                    self.budget
                ),
            ));
        }
        let ids = self.client.empty(4 * n * m);
        let arg = |handle: Handle, len: usize| {
            // SAFETY: `len` is the number of values each handle holds.
            unsafe { ArrayArg::from_raw_parts(handle, len) }
        };
        pick_chunk::launch(
            &self.client,
            CubeCount::Static(n as u32, 1, 1),
            CubeDim::new_1d(UNITS as u32),
            arg(logits.handle, n * k * vocab),
            arg(tl.handle, n * k),
            arg(self.used.clone(), n * vocab),
            arg(self.record.clone(), n * 2 * self.budget),
            arg(ids.clone(), n * m),
            (j * k) as u32,
            m as u32,
            self.budget as u32,
            self.pad,
            k,
            vocab,
        );
        self.counters.dispatched(1);
        let ids = GpuTensor::new_contiguous(
            self.client.clone(),
            self.device.clone(),
            [n * m].into(),
            ids,
            DType::I32,
        );
        Ok(ChunkIds::Device(int_tensor(ids)?))
    }

    fn read(self: Box<Self>) -> Pending<'static, Result<Vec<f32>>> {
        let this = *self;
        Box::pin(async move {
            let (client, counters) = (this.client, this.counters);
            let bytes = client.read_async(vec![this.record]).await.map_err(|e| {
                AutoGazeError::engine(NAME, format!("reading the frame's picks back: {e:?}"))
            })?;
            let bytes = bytes.first().ok_or_else(|| {
                AutoGazeError::engine(NAME, "the frame's picks read back as nothing")
            })?;
            counters.read(bytes.len());
            Ok(f32::from_bytes(bytes).to_vec())
        })
    }
}
