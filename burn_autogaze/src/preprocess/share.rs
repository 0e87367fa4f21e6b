//! One upload of a frame for the display and the model: a renderer that
//! holds the frame on the device already (the display's texture) lends it
//! to the model's device preprocessing, which then uploads nothing.
//!
//! The model's side ([`DevicePreprocessor::share_frames`](super::DevicePreprocessor::share_frames))
//! asks for its frame: it makes a buffer of the frame's size and waits, at
//! most the share's wait, for a renderer to fill it. The renderer takes the
//! asks its texture can serve ([`FrameShare::take`]: asks for the very
//! frame it holds, the same pixels), fills each buffer from the texture (a
//! texture-to-buffer copy, or [`LEND_WGSL`] where the copy's row alignment
//! does not hold), submits, then reports each ask ([`FrameShare::finish`]).
//! An ask for a frame older than the one the renderer holds is refused at
//! once; one nobody serves in time is withdrawn. Either way the model
//! uploads the frame itself: a lend only ever saves an upload, it never
//! changes the input.
//!
//! Ordering: the renderer submits its pass before it reports, and the
//! model's kernels reach the same queue only after the report, so they read
//! the filled buffer.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use burn::backend::wgpu::WgpuRuntime;
use cubecl::prelude::ComputeClient;
use cubecl::wgpu::WgpuResource;
use web_time::Instant;

use super::DeviceFrame;
use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FrameSize};

/// The lend pass: the frame's RGBA8 bytes from its texture (bound through
/// an `rgba8unorm` view) into a buffer, a pixel a `u32` with red in the low
/// byte: what an upload of the frame's own bytes holds. Bindings: 0 the
/// texture, 1 the buffer (storage, read-write), 2 a uniform `vec4<u32>`
/// (width, height, the buffer's first element). Workgroups of 8 x 8 pixels.
pub const LEND_WGSL: &str = r#"
@group(0) @binding(0) var frame: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> pixels: array<u32>;
@group(0) @binding(2) var<uniform> p: vec4<u32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.x || id.y >= p.y) {
        return;
    }
    let texel = textureLoad(frame, vec2<i32>(id.xy), 0);
    pixels[p.z + id.y * p.x + id.x] = pack4x8unorm(texel);
}
"#;

/// What a share did since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LendCounts {
    /// Frames the model asked for.
    pub asked: u64,
    /// Asks a renderer filled: frames the model did not upload.
    pub lent: u64,
    /// Asks a renderer refused (it holds a newer frame, or its pass failed).
    pub refused: u64,
    /// Asks nobody served within the wait.
    pub withdrawn: u64,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Asks no renderer has taken yet (one taken and not finished is in
    /// neither this list nor `finished`).
    waiting: Vec<FrameAsk>,
    /// Finished asks nobody fetched yet: id and whether filled.
    finished: Vec<(u64, bool)>,
    /// Taken asks their model stopped waiting for.
    abandoned: Vec<u64>,
    counts: LendCounts,
}

/// The meeting point of a renderer and the model's device preprocessing
/// (see the module's doc). Shared as an `Arc` by both sides.
pub struct FrameShare {
    state: Mutex<State>,
    changed: Condvar,
    wait: Duration,
}

impl std::fmt::Debug for FrameShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameShare")
            .field("wait", &self.wait)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

/// A frame the model asked for, taken by a renderer: fill its buffer from
/// the renderer's copy of [`FrameAsk::frame`], submit, then
/// [`FrameShare::finish`] it.
pub struct FrameAsk {
    id: u64,
    frame: Frame,
    target: DeviceFrame,
    client: ComputeClient<WgpuRuntime>,
}

impl std::fmt::Debug for FrameAsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FrameAsk({}, frame {})",
            self.target.size(),
            self.frame.seq
        )
    }
}

impl FrameAsk {
    /// The frame asked for (the renderer's texture holds its pixels).
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The frame's size: the buffer holds `width * height` pixels.
    pub fn size(&self) -> FrameSize {
        self.target.size()
    }

    /// Runs `record` with the buffer to fill (its wgpu buffer, and the
    /// byte offset and length of the frame's pixels in it); the buffer
    /// stays alive as long as the ask.
    pub fn with_target<T>(&self, record: impl FnOnce(&WgpuResource) -> T) -> Result<T> {
        let resource = self
            .client
            .get_resource(self.target.handle.clone())
            .map_err(|e| {
                AutoGazeError::setting("frame lend", format!("{e:?}"), "a buffer on the device")
            })?;
        Ok(record(resource.resource()))
    }
}

impl FrameShare {
    /// A share whose asks wait at most `wait` for a renderer.
    pub fn new(wait: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            wait,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Critical sections move values in and out only: a poisoned lock
        // holds nothing half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What it did so far.
    pub fn counts(&self) -> LendCounts {
        self.state().counts
    }

    /// True while an ask waits for a renderer (the renderer should have
    /// the current frame on the device).
    pub fn asked(&self) -> bool {
        !self.state().waiting.is_empty()
    }

    /// The renderer's side: takes the asks for `held` (the frame its
    /// texture holds now, by its pixels) and refuses those for older
    /// frames. Asks for newer frames keep waiting.
    pub fn take(&self, held: &Frame) -> Vec<FrameAsk> {
        let mut s = self.state();
        let mut out = Vec::new();
        let mut refused = false;
        let mut i = 0;
        while i < s.waiting.len() {
            let frame = &s.waiting[i].frame;
            if frame.shares_pixels_with(held) {
                out.push(s.waiting.swap_remove(i));
            } else if frame.seq < held.seq {
                let a = s.waiting.swap_remove(i);
                s.finished.push((a.id, false));
                s.counts.refused += 1;
                refused = true;
            } else {
                i += 1;
            }
        }
        drop(s);
        if refused {
            self.changed.notify_all();
        }
        out
    }

    /// The renderer's side: refuses every waiting ask (it cannot lend: its
    /// display does not keep the frame on the device now).
    pub fn refuse_waiting(&self) {
        let mut s = self.state();
        let waiting = std::mem::take(&mut s.waiting);
        s.counts.refused += waiting.len() as u64;
        s.finished.extend(waiting.iter().map(|a| (a.id, false)));
        drop(s);
        self.changed.notify_all();
    }

    /// The renderer's side: `ask` is done, its buffer `filled` (the pass
    /// submitted) or not.
    pub fn finish(&self, ask: FrameAsk, filled: bool) {
        let mut s = self.state();
        if filled {
            s.counts.lent += 1;
        } else {
            s.counts.refused += 1;
        }
        match s.abandoned.iter().position(|&id| id == ask.id) {
            Some(i) => {
                s.abandoned.swap_remove(i);
            }
            None => s.finished.push((ask.id, filled)),
        }
        drop(s);
        self.changed.notify_all();
    }

    /// The model's side: asks for `frame` in `target` (a buffer of its
    /// size) and waits for a renderer. True when `target` was filled; false
    /// when the ask was refused or withdrawn (then the caller uploads).
    pub(crate) fn borrow(
        &self,
        frame: &Frame,
        target: DeviceFrame,
        client: &ComputeClient<WgpuRuntime>,
    ) -> bool {
        let mut s = self.state();
        let id = s.next;
        s.next += 1;
        s.counts.asked += 1;
        s.waiting.push(FrameAsk {
            id,
            frame: frame.clone(),
            target,
            client: client.clone(),
        });
        let deadline = Instant::now() + self.wait;
        // A taken ask is being recorded: its renderer finishes it within
        // the same system, so it gets one more wait at most.
        let cap = deadline + self.wait;
        loop {
            if let Some(i) = s.finished.iter().position(|f| f.0 == id) {
                return s.finished.swap_remove(i).1;
            }
            let now = Instant::now();
            let waiting = s.waiting.iter().position(|a| a.id == id);
            if now >= deadline {
                if let Some(i) = waiting {
                    s.waiting.swap_remove(i);
                    s.counts.withdrawn += 1;
                    return false;
                }
                if now >= cap {
                    s.abandoned.push(id);
                    s.counts.withdrawn += 1;
                    return false;
                }
            }
            let until = if now < deadline { deadline } else { cap };
            s = self
                .changed
                .wait_timeout(s, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}
