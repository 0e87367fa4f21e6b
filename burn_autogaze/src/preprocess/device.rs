//! The model input made on the device (Burn's wgpu backend): an RGBA8
//! frame, uploaded once as its own bytes (or lent by a renderer that holds
//! it on the device already: `share`), goes
//! through Pillow's resize, the value table and the bicubic squash in four
//! dispatches (`device_kernels`), into a `[3, S, S]` tensor the model reads
//! where it lies. The same computation as [`Preprocessor`] (whose settings,
//! tap tables and value table it uses), tested equal to it: the processor's
//! output exactly, the model input within a rounding.
//!
//! Tables are uploaded once per input size; the intermediate buffers are
//! kept per size and reused (the queue runs a frame's dispatches in order);
//! each frame's model input is a new buffer from Burn's pool, owned by the
//! tensor returned.

use std::sync::Arc;

use burn::backend::Wgpu;
use burn::backend::wgpu::{CubeTensor, WgpuDevice, WgpuRuntime};
use burn::tensor::{DType, Tensor, TensorPrimitive};
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::Preprocessor;
use super::bicubic::packed_cubic;
use super::device_kernels::{
    bicubic_cols, bicubic_rows, crop_tile, pil_horizontal, pil_vertical_values,
};
use super::pil_resize::packed_taps;
use super::share::FrameShare;
use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FrameSize};
use crate::mask::Rect;

/// Units of a workgroup (a unit an output value).
const UNITS: u32 = 256;

/// Workgroups a dispatch may have along x on every adapter.
const MAX_CUBES: usize = 65_535;

/// Dispatches a frame's model input takes.
pub const DISPATCHES_A_FRAME: u64 = 4;

/// An RGBA8 frame on the device: its buffer (a pixel a `u32`, red in the
/// low byte: the frame's own bytes) and its size.
#[derive(Clone)]
pub struct DeviceFrame {
    pub(super) handle: Handle,
    size: FrameSize,
}

impl DeviceFrame {
    /// The frame's size.
    pub fn size(&self) -> FrameSize {
        self.size
    }
}

impl std::fmt::Debug for DeviceFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceFrame({})", self.size)
    }
}

/// What the device preprocessing did since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceCounts {
    /// Frames preprocessed.
    pub frames: u64,
    /// Kernel dispatches.
    pub dispatches: u64,
    /// Bytes written from the host: frames and tap tables.
    pub uploaded_bytes: u64,
    /// Frames a renderer lent (on the device already: not uploaded).
    pub lent_frames: u64,
}

/// One input size's tables and scratch.
struct Plan {
    input: FrameSize,
    /// Resized width, the processor's output size and the crop's corner.
    rw: usize,
    pw: usize,
    ph: usize,
    left: usize,
    top: usize,
    /// Resized rows the vertical pass reads, from `row_first`.
    row_first: usize,
    rows: usize,
    h_taps: (Handle, usize, usize),
    v_taps: (Handle, usize, usize),
    x_cubic: (Handle, Handle),
    y_cubic: (Handle, Handle),
    temp: Handle,
    processed: Handle,
    cubic_rows: Handle,
}

/// The model input on the device (see the module's doc).
pub struct DevicePreprocessor {
    host: Preprocessor,
    client: ComputeClient<WgpuRuntime>,
    device: WgpuDevice,
    lut: Handle,
    plan: Option<Plan>,
    /// The AnyRes tile a frame's tiles are cut into, one at a time.
    tile: Option<DeviceFrame>,
    counts: DeviceCounts,
    /// The renderer that lends its frames, when one does.
    share: Option<Arc<FrameShare>>,
}

impl std::fmt::Debug for DevicePreprocessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevicePreprocessor")
            .field("device", &self.device)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// Workgroups (along x) for `n` units: an error past the dispatch limit
/// (not reached by frames within the frame limits).
fn cubes(n: usize) -> Result<CubeCount> {
    let x = n.div_ceil(UNITS as usize).max(1);
    if x > MAX_CUBES {
        return Err(AutoGazeError::setting(
            "device preprocessing",
            format!("{n} values in one pass"),
            format!(
                "at most {} (the dispatch limit)",
                MAX_CUBES * UNITS as usize
            ),
        ));
    }
    Ok(CubeCount::Static(x as u32, 1, 1))
}

fn arg(handle: &Handle, len: usize) -> ArrayArg<WgpuRuntime> {
    // SAFETY: every caller passes the number of values the handle was made
    // with (`Plan`, `DeviceFrame`); the kernels index below it.
    unsafe { ArrayArg::from_raw_parts(handle.clone(), len) }
}

impl DevicePreprocessor {
    /// The device path of `preprocessor` (its settings and model size) on
    /// `device`.
    pub fn new(preprocessor: Preprocessor, device: &WgpuDevice) -> Self {
        let client = WgpuRuntime::client(device);
        let lut: Vec<f32> = preprocessor.lut.iter().flatten().copied().collect();
        let lut_handle = client.create_from_slice(f32::as_bytes(&lut));
        Self {
            counts: DeviceCounts {
                uploaded_bytes: 4 * lut.len() as u64,
                ..DeviceCounts::default()
            },
            host: preprocessor,
            client,
            device: device.clone(),
            lut: lut_handle,
            plan: None,
            tile: None,
            share: None,
        }
    }

    /// Frames are asked of `share`'s renderer first (which holds them on
    /// the device: one upload for the display and the model) and uploaded
    /// only when it does not lend them. Each ask waits up to the share's
    /// wait for the renderer, so share only where the renderer runs while
    /// this preprocessing waits (another thread: a decoupled pipeline).
    pub fn share_frames(&mut self, share: Arc<FrameShare>) {
        self.share = Some(share);
    }

    /// The host preprocessor whose computation this is.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.host
    }

    /// What it did so far.
    pub fn counts(&self) -> DeviceCounts {
        self.counts
    }

    /// Uploads `frame`'s RGBA bytes (one write of `4 * w * h` bytes).
    pub fn upload(&mut self, frame: &Frame) -> DeviceFrame {
        let bytes = frame.rgba();
        self.counts.uploaded_bytes += bytes.len() as u64;
        DeviceFrame {
            handle: self.client.create_from_slice(bytes),
            size: frame.size(),
        }
    }

    /// `frame` on the device: lent by the renderer frames are shared
    /// with, or else uploaded.
    fn frame_on_device(&mut self, frame: &Frame) -> DeviceFrame {
        if let Some(share) = &self.share {
            let target = DeviceFrame {
                handle: self.client.empty(frame.rgba().len()),
                size: frame.size(),
            };
            if share.borrow(frame, target.clone(), &self.client) {
                self.counts.lent_frames += 1;
                return target;
            }
        }
        self.upload(frame)
    }

    /// `frame` on the device (lent or uploaded) made the model input
    /// `[3, S, S]`.
    pub fn frame_input(&mut self, frame: &Frame) -> Result<Tensor<Wgpu, 3>> {
        // The size is checked before the upload.
        self.host.processed_size(frame.size())?;
        let on_device = self.frame_on_device(frame);
        self.model_frame(&on_device)
    }

    /// The model inputs of `frame`'s square tiles (`rects`, each `side`
    /// pixels, overhanging the frame where they do), as `[n, 3, S, S]`:
    /// AnyRes on the device. The frame goes up once; each tile is cut from
    /// it on the device (the overhang opaque black, as the host crops it)
    /// and made a model input like a frame (five dispatches a tile, and one
    /// copy stacking them).
    pub fn tiles_input(
        &mut self,
        frame: &Frame,
        side: u32,
        rects: &[Rect],
    ) -> Result<Tensor<Wgpu, 4>> {
        let size = FrameSize::new(side, side)?;
        self.host.processed_size(size)?;
        if rects.is_empty()
            || rects
                .iter()
                .any(|r| r.width() != side || r.height() != side)
        {
            return Err(AutoGazeError::setting(
                "AnyRes tiles on the device",
                format!("{} tiles", rects.len()),
                format!("at least one, each {side} x {side}"),
            ));
        }
        let on_device = self.frame_on_device(frame);
        let n = side as usize * side as usize;
        let tile = match &self.tile {
            Some(tile) if tile.size == size => tile.clone(),
            _ => {
                let tile = DeviceFrame {
                    handle: self.client.empty(4 * n),
                    size,
                };
                self.tile = Some(tile.clone());
                tile
            }
        };
        let (w, h) = (frame.width(), frame.height());
        let mut inputs = Vec::with_capacity(rects.len());
        for r in rects {
            // SAFETY: `frame` holds `w * h` pixels and is read only inside
            // them; `tile` holds `side * side` (made above for this size).
            unsafe {
                crop_tile::launch_unchecked(
                    &self.client,
                    cubes(n)?,
                    CubeDim::new_1d(UNITS),
                    arg(&on_device.handle, w as usize * h as usize),
                    arg(&tile.handle, n),
                    w,
                    h,
                    r.x0,
                    r.y0,
                    side,
                );
            }
            self.counts.dispatches += 1;
            // The queue runs in order: the next cut waits for this input.
            inputs.push(self.model_frame(&tile)?);
        }
        self.counts.dispatches += 1;
        Ok(Tensor::stack(inputs, 0))
    }

    /// The processor's output for `frame` (`[3, H, W]`: the reference's
    /// `video[0, t]`, before the model's squash).
    pub fn processed(&mut self, frame: &DeviceFrame) -> Result<Tensor<Wgpu, 3>> {
        self.prepare(frame.size)?;
        let plan = self.plan.as_ref().ok_or_else(no_plan)?;
        let out = self.client.empty(4 * 3 * plan.pw * plan.ph);
        self.resize_into(plan, frame, &out)?;
        let shape = [3, plan.ph, plan.pw];
        self.counts.dispatches += 2;
        Ok(self.tensor(out, shape))
    }

    /// The model input for `frame` (`[3, S, S]`, S the model size).
    pub fn model_frame(&mut self, frame: &DeviceFrame) -> Result<Tensor<Wgpu, 3>> {
        self.prepare(frame.size)?;
        let s = self.host.model_size;
        let plan = self.plan.as_ref().ok_or_else(no_plan)?;
        self.resize_into(plan, frame, &plan.processed)?;
        let (pw, ph) = (plan.pw, plan.ph);
        let lines = 3 * ph;
        let out = self.client.empty(4 * 3 * s * s);
        // SAFETY: the tables hold 4 values an output column / row, their
        // indices below `pw` / `ph`; the buffers hold the lengths passed.
        unsafe {
            bicubic_rows::launch_unchecked(
                &self.client,
                cubes(lines * s)?,
                CubeDim::new_1d(UNITS),
                arg(&plan.processed, 3 * pw * ph),
                arg(&plan.x_cubic.0, 4 * s),
                arg(&plan.x_cubic.1, 4 * s),
                arg(&plan.cubic_rows, lines * s),
                lines as u32,
                pw as u32,
                s as u32,
            );
            bicubic_cols::launch_unchecked(
                &self.client,
                cubes(3 * s * s)?,
                CubeDim::new_1d(UNITS),
                arg(&plan.cubic_rows, lines * s),
                arg(&plan.y_cubic.0, 4 * s),
                arg(&plan.y_cubic.1, 4 * s),
                arg(&out, 3 * s * s),
                ph as u32,
                s as u32,
                s as u32,
            );
        }
        self.counts.dispatches += DISPATCHES_A_FRAME;
        self.counts.frames += 1;
        Ok(self.tensor(out, [3, s, s]))
    }

    fn tensor(&self, handle: Handle, shape: [usize; 3]) -> Tensor<Wgpu, 3> {
        let t = CubeTensor::new_contiguous(
            self.client.clone(),
            self.device.clone(),
            shape.into(),
            handle,
            DType::F32,
        );
        Tensor::from_primitive(TensorPrimitive::Float(t))
    }

    /// Pillow's two passes and the value table into `out` (`[3, ph, pw]`):
    /// two dispatches, which the caller counts.
    fn resize_into(&self, plan: &Plan, frame: &DeviceFrame, out: &Handle) -> Result<()> {
        let (w, h) = (frame.size.width as usize, frame.size.height as usize);
        let (hk, vk) = (plan.h_taps.1, plan.v_taps.1);
        let temp_len = plan.rows * plan.rw;
        // SAFETY: the tap tables index inside the frame's rows and columns
        // (Pillow's clamped windows, `packed_taps`) and inside the rows
        // `row_first..row_first + rows` that `temp` holds (`prepare`).
        unsafe {
            pil_horizontal::launch_unchecked(
                &self.client,
                cubes(temp_len)?,
                CubeDim::new_1d(UNITS),
                arg(&frame.handle, w * h),
                arg(&plan.h_taps.0, plan.h_taps.2),
                arg(&plan.temp, temp_len),
                w as u32,
                plan.row_first as u32,
                plan.rw as u32,
                plan.rows as u32,
                hk as u32,
            );
            pil_vertical_values::launch_unchecked(
                &self.client,
                cubes(plan.pw * plan.ph)?,
                CubeDim::new_1d(UNITS),
                arg(&plan.temp, temp_len),
                arg(&plan.v_taps.0, plan.v_taps.2),
                arg(&self.lut, 3 * 256),
                arg(out, 3 * plan.pw * plan.ph),
                plan.rw as u32,
                plan.row_first as u32,
                plan.left as u32,
                plan.top as u32,
                plan.pw as u32,
                plan.ph as u32,
                vk as u32,
            );
        }
        Ok(())
    }

    /// The plan for frames of `input`'s size (kept while the size holds).
    fn prepare(&mut self, input: FrameSize) -> Result<()> {
        if self.plan.as_ref().is_some_and(|p| p.input == input) {
            return Ok(());
        }
        let processed = self.host.processed_size(input)?;
        let resized = self.host.resized_size(input);
        let (w, h) = (input.width as usize, input.height as usize);
        let (rw, rh) = (resized.width as usize, resized.height as usize);
        let (pw, ph) = (processed.width as usize, processed.height as usize);
        let (left, top) = ((rw - pw) / 2, (rh - ph) / 2);
        let filter = self.host.filter;
        let (hk, h_table) = packed_taps(w, rw, filter);
        let (vk, v_table) = packed_taps(h, rh, filter);
        // The source rows the crop's rows read.
        let stride = vk + 2;
        let window = |y: usize| {
            let first = v_table[y * stride] as usize;
            (first, first + v_table[y * stride + 1] as usize)
        };
        let row_first = (top..top + ph).map(|y| window(y).0).min().unwrap_or(0);
        let row_last = (top..top + ph).map(|y| window(y).1).max().unwrap_or(0);
        let s = self.host.model_size;
        let (xi, xw) = packed_cubic(pw, s);
        let (yi, yw) = packed_cubic(ph, s);
        let mut up = 0u64;
        let mut create = |bytes: &[u8]| {
            up += bytes.len() as u64;
            self.client.create_from_slice(bytes)
        };
        let h_taps = (create(i32::as_bytes(&h_table)), hk, h_table.len());
        let v_taps = (create(i32::as_bytes(&v_table)), vk, v_table.len());
        let x_cubic = (create(u32::as_bytes(&xi)), create(f32::as_bytes(&xw)));
        let y_cubic = (create(u32::as_bytes(&yi)), create(f32::as_bytes(&yw)));
        let rows = row_last - row_first;
        self.plan = Some(Plan {
            input,
            rw,
            pw,
            ph,
            left,
            top,
            row_first,
            rows,
            h_taps,
            v_taps,
            x_cubic,
            y_cubic,
            temp: self.client.empty(4 * (rows * rw).max(1)),
            processed: self.client.empty(4 * 3 * pw * ph),
            cubic_rows: self.client.empty(4 * 3 * ph * s),
        });
        self.counts.uploaded_bytes += up;
        Ok(())
    }
}

fn no_plan() -> AutoGazeError {
    AutoGazeError::setting("device preprocessing", "no plan", "a plan made first")
}

#[cfg(test)]
mod tests;
