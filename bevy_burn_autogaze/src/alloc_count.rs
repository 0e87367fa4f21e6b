//! Counting heap allocations on the viewer's per-frame path.
//!
//! [`CountingAlloc`] wraps the system allocator and counts every allocation
//! and reallocation in a counter of the calling thread. The viewer binary
//! installs it as its global allocator. The display systems open a
//! [`Region`] around their work (a system runs on one thread from start to
//! end), which adds what that thread allocated meanwhile to one of the
//! process-wide tallies ([`AllocPath`]); wgpu's own calls inside a region are
//! counted apart ([`AllocPath::Wgpu`]) and left out of the enclosing one. A
//! perf recording reports the tallies of its measured frames
//! (`DisplaySummary::allocations`), and `cargo xtask soak` requires the
//! frame step and upload ones to be 0.
//!
//! Where the allocator is not installed (a host app, the library's tests)
//! [`installed`] is false and nothing is reported.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use burn_autogaze::perf::AllocationCounts;

/// The system allocator, counting the calling thread's allocations.
pub struct CountingAlloc;

thread_local! {
    /// Allocations and reallocations made by this thread.
    static ALLOCATED: Cell<u64> = const { Cell::new(0) };
    /// Of those, the ones made inside wgpu regions (left out of the
    /// enclosing region).
    static EXCLUDED: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: a thread being torn down may still allocate.
    let _ = ALLOCATED.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a const-initialised thread-local Cell (it never allocates).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (and reallocations) this thread has made so far; 0 where
/// [`CountingAlloc`] is not the global allocator.
pub fn thread_allocations() -> u64 {
    ALLOCATED.try_with(Cell::get).unwrap_or(0)
}

/// True when [`CountingAlloc`] is the global allocator (checked once, by
/// making one allocation).
pub fn installed() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let before = thread_allocations();
        drop(std::hint::black_box(Box::new(0u64)));
        thread_allocations() > before
    })
}

/// Where counted allocations are tallied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocPath {
    /// The pipeline's step (source, hand-off, mask plan, composition).
    FrameStep,
    /// Staging uploads and the render world's work around its writes.
    Upload,
    /// Inside wgpu's calls.
    Wgpu,
}

static TALLIES: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Allocations counted so far on each path, process-wide.
pub fn totals() -> AllocationCounts {
    let get = |p: AllocPath| TALLIES[p as usize].load(Ordering::Relaxed);
    AllocationCounts {
        frame_step: get(AllocPath::FrameStep),
        upload: get(AllocPath::Upload),
        wgpu: get(AllocPath::Wgpu),
    }
}

/// `later - earlier`, path by path.
pub fn since(earlier: AllocationCounts, later: AllocationCounts) -> AllocationCounts {
    AllocationCounts {
        frame_step: later.frame_step.saturating_sub(earlier.frame_step),
        upload: later.upload.saturating_sub(earlier.upload),
        wgpu: later.wgpu.saturating_sub(earlier.wgpu),
    }
}

/// Counts this thread's allocations from its creation to its drop into a
/// path (a wgpu region's are left out of any region around it).
#[must_use = "a region counts until it is dropped"]
pub struct Region {
    path: AllocPath,
    allocated: u64,
    excluded: u64,
}

impl Region {
    /// Starts counting into `path`.
    pub fn new(path: AllocPath) -> Self {
        Self {
            path,
            allocated: thread_allocations(),
            excluded: EXCLUDED.try_with(Cell::get).unwrap_or(0),
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        let made = thread_allocations().saturating_sub(self.allocated);
        let excluded = EXCLUDED.try_with(Cell::get).unwrap_or(0);
        let n = if self.path == AllocPath::Wgpu {
            let _ = EXCLUDED.try_with(|c| c.set(c.get() + made));
            made
        } else {
            made.saturating_sub(excluded.saturating_sub(self.excluded))
        };
        TALLIES[self.path as usize].fetch_add(n, Ordering::Relaxed);
    }
}

/// The environment variable of [`test_allocation`].
pub const TEST_ALLOCATE_ENV: &str = "AUTOGAZE_TEST_ALLOCATE_ON_UPLOAD";

/// Test only: `AUTOGAZE_TEST_ALLOCATE_ON_UPLOAD=1` makes the upload staging
/// allocate once a frame, so a test can see the count go non-zero (read
/// once). Never set it for a measurement.
pub fn test_allocation() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(TEST_ALLOCATE_ENV).is_some_and(|v| v == "1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the allocator installed (the library's tests) nothing is
    /// counted: a region adds 0 and `installed` says so.
    #[test]
    fn without_the_allocator_nothing_is_counted() {
        assert!(!installed());
        let before = totals();
        {
            let _r = Region::new(AllocPath::Upload);
            std::hint::black_box(vec![0u8; 64]);
        }
        assert_eq!(since(before, totals()).upload, 0);
    }
}
