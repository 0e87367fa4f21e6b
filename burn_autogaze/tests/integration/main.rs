//! The crate's one integration-test binary (one link, not one per file).
//!
//! - `fixtures`: preprocessing parity against the reference, real-video
//!   frames, image sources on bad input;
//! - `bounds`: bad files (image headers, devices, meta.json, config.json)
//!   are typed errors naming the limit;
//! - `alloc`: the steady state of the frame pipeline allocates nothing,
//!   checked with a counting global allocator;
//! - `device_fault` (feature `wgpu`): a real device destroyed under the
//!   wgpu model; the pipeline goes on with the host model;
//! - `video`: the `video` source on small files made with FFmpeg (`videos`);
//! - `gaze`: `autogaze gaze` on such files;
//! - `camera` (feature `camera`): the camera source on FFmpeg test
//!   patterns, and its typed errors.

mod alloc;
mod bounds;
#[cfg(feature = "camera")]
mod camera;
#[cfg(feature = "wgpu")]
mod device_fault;
mod fixtures;
mod gaze;
mod model;
mod video;
mod videos;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts allocations made on each thread (tests run on their own threads).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(|a| a.get())
}
