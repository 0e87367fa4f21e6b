//! Device times of the plugin's GPU stages, by timestamp queries.
//!
//! Where the render device has `TIMESTAMP_QUERY` and
//! `TIMESTAMP_QUERY_INSIDE_ENCODERS` (Vulkan, DX12, Metal; not WebGPU or
//! WebGL2), each GPU stage the plugin records (`device_compose`: the
//! region copies of the device composing; `psnr`: the device's PSNR
//! reduction; `mask_panel`: the mask panel pass) writes a timestamp before
//! and after its commands. A frame's queries are resolved into a buffer
//! that is mapped a frame or more later, never waited for; a frame whose
//! slot is still mapping goes untimed. Elsewhere the times are reported as
//! unavailable, with the reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Stages a frame can time.
const SPANS: u32 = 8;
/// Frames in flight (each its own queries and readback buffer).
const SLOTS: usize = 3;
/// Resolve destinations are 256-byte aligned.
const SLOT_BYTES: u64 = 256;

const PENDING: u8 = 0;
const MAPPED: u8 = 1;
const FAILED: u8 = 2;

/// What the timer needs from the device.
pub(crate) const FEATURES: wgpu::Features =
    wgpu::Features::TIMESTAMP_QUERY.union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);

/// One frame's queries: the stages begun, and whether its readback maps.
#[derive(Default)]
struct Slot {
    stages: Vec<&'static str>,
    /// Set by the map callback (`PENDING`, `MAPPED`, `FAILED`); None while
    /// the slot is free.
    mapped: Option<Arc<AtomicU8>>,
}

/// The timestamp queries of the plugin's GPU stages (render world).
pub(crate) struct GpuTimer {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: Vec<wgpu::Buffer>,
    /// Nanoseconds a tick.
    period: f64,
    slots: Vec<Slot>,
    /// The slot this frame writes (None: every slot is still mapping).
    current: Option<usize>,
}

/// A stage begun: its index in the frame's slot.
struct Span(u32);

/// The stages the plugin times (their names in the summary): the device
/// composition's region copies.
pub(crate) const DEVICE_COMPOSE: &str = "device_compose";
/// The device's PSNR reduction.
pub(crate) const PSNR: &str = "psnr";
/// The mask panel pass.
pub(crate) const MASK_PANEL: &str = "mask_panel";
/// The frame lent to the model (the display's texture into its buffer).
pub(crate) const FRAME_LEND: &str = "frame_lend";

/// A stage's overlay label.
pub(crate) fn label(stage: &str) -> &'static str {
    match stage {
        DEVICE_COMPOSE => "GPU copies",
        PSNR => "GPU PSNR",
        MASK_PANEL => "GPU panel",
        FRAME_LEND => "GPU lend",
        _ => "GPU other",
    }
}

/// Records `stage`'s commands into `encoder` through `record`, between two
/// timestamps when there is a timer (and a slot for this frame).
pub(crate) fn timed<R>(
    timer: Option<&mut GpuTimer>,
    encoder: &mut wgpu::CommandEncoder,
    stage: &'static str,
    record: impl FnOnce(&mut wgpu::CommandEncoder) -> R,
) -> R {
    let Some(timer) = timer else {
        return record(encoder);
    };
    let span = timer.begin(encoder, stage);
    let out = record(encoder);
    timer.end(encoder, span);
    out
}

impl GpuTimer {
    /// A timer on `device`, or why there is none.
    pub(crate) fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Result<Self, String> {
        let missing = FEATURES - device.features();
        if !missing.is_empty() {
            return Err(format!("unavailable: the device lacks {missing:?}"));
        }
        let count = SPANS * 2 * SLOTS as u32;
        let set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("autogaze-gpu-stages"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolve = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("autogaze-gpu-stages-resolve"),
            size: SLOT_BYTES * SLOTS as u64,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = (0..SLOTS)
            .map(|_| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("autogaze-gpu-stages-readback"),
                    size: SLOT_BYTES,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Ok(Self {
            set,
            resolve,
            readback,
            period: queue.get_timestamp_period() as f64,
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            current: None,
        })
    }

    /// Starts a frame: collects the frames whose times have arrived (into
    /// `out`, as (stage, ms)) and picks a free slot for this one.
    pub(crate) fn begin_frame(
        &mut self,
        device: &wgpu::Device,
        out: &mut Vec<(&'static str, f64)>,
    ) {
        let _ = device.poll(wgpu::PollType::Poll);
        for (k, slot) in self.slots.iter_mut().enumerate() {
            let Some(mapped) = slot.mapped.as_ref() else {
                continue;
            };
            let state = mapped.load(Ordering::Acquire);
            if state == PENDING {
                continue;
            }
            let buffer = &self.readback[k];
            if state == MAPPED {
                let bytes = buffer.slice(..).get_mapped_range();
                for (i, stage) in slot.stages.iter().enumerate() {
                    let tick = |j: usize| {
                        let at = 8 * j;
                        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default())
                    };
                    let ticks = tick(2 * i + 1).saturating_sub(tick(2 * i));
                    out.push((stage, ticks as f64 * self.period / 1e6));
                }
                drop(bytes);
                buffer.unmap();
            }
            slot.mapped = None;
            slot.stages.clear();
        }
        self.current = self.slots.iter().position(|s| s.mapped.is_none());
    }

    /// Begins stage `name` in `encoder` (None: this frame is not timed, or
    /// it has timed `SPANS` stages already).
    fn begin(&mut self, encoder: &mut wgpu::CommandEncoder, name: &'static str) -> Option<Span> {
        let k = self.current?;
        let slot = &mut self.slots[k];
        let i = slot.stages.len() as u32;
        if i >= SPANS {
            return None;
        }
        slot.stages.push(name);
        encoder.write_timestamp(&self.set, (k as u32 * SPANS + i) * 2);
        Some(Span(i))
    }

    /// Ends a stage begun in the same encoder.
    fn end(&self, encoder: &mut wgpu::CommandEncoder, span: Option<Span>) {
        if let (Some(k), Some(Span(i))) = (self.current, span) {
            encoder.write_timestamp(&self.set, (k as u32 * SPANS + i) * 2 + 1);
        }
    }

    /// Ends the frame: its queries resolved and copied for reading, the
    /// readback mapped asynchronously (read by a later `begin_frame`).
    pub(crate) fn end_frame(&mut self, device: &wgpu::Device, queue: &wgpu::Queue) {
        let Some(k) = self.current.take() else {
            return;
        };
        let n = self.slots[k].stages.len() as u32;
        if n == 0 {
            return;
        }
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("autogaze-gpu-stages-resolve"),
        });
        let first = k as u32 * SPANS * 2;
        let offset = k as u64 * SLOT_BYTES;
        encoder.resolve_query_set(&self.set, first..first + 2 * n, &self.resolve, offset);
        encoder.copy_buffer_to_buffer(&self.resolve, offset, &self.readback[k], 0, 16 * n as u64);
        queue.submit([encoder.finish()]);
        let mapped = Arc::new(AtomicU8::new(PENDING));
        let done = Arc::clone(&mapped);
        self.readback[k]
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| {
                done.store(if r.is_ok() { MAPPED } else { FAILED }, Ordering::Release)
            });
        self.slots[k].mapped = Some(mapped);
    }
}

/// Samples of each GPU stage the overlay keeps.
const WINDOW: usize = 60;

/// The GPU stage times the main world keeps (in `AutoGazeMetrics`).
#[derive(Debug, Default, Clone)]
pub struct GpuStages {
    /// How they are timed ("timestamp queries"), or why they are not
    /// (None: the render world has not said yet).
    pub timing: Option<String>,
    /// The times (stage, ms) that arrived in the last update.
    pub arrived: Vec<(&'static str, f64)>,
    window: std::collections::BTreeMap<&'static str, std::collections::VecDeque<f64>>,
}

impl GpuStages {
    /// Adds the arrived times to each stage's window.
    pub(crate) fn observe(&mut self) {
        for &(stage, ms) in &self.arrived {
            let w = self
                .window
                .entry(stage)
                .or_insert_with(|| std::collections::VecDeque::with_capacity(WINDOW));
            if w.len() == WINDOW {
                w.pop_front();
            }
            w.push_back(ms);
        }
    }

    /// Each stage's median over its window, in ms.
    pub fn medians(&self) -> Vec<(&'static str, f64)> {
        self.window
            .iter()
            .map(|(stage, w)| {
                let mut v: Vec<f64> = w.iter().copied().collect();
                v.sort_by(f64::total_cmp);
                (*stage, v.get(v.len() / 2).copied().unwrap_or(0.0))
            })
            .collect()
    }
}
