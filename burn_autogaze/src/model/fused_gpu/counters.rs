//! What the fused engine did, shared by the engine, its caches and its
//! pickers: kernel dispatches, and every byte it moved between the host and
//! the device (the weights at load included), each transfer going through
//! here so none is left out.

use std::sync::atomic::{AtomicU64, Ordering};

use burn::backend::wgpu::WgpuRuntime;
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::super::engine::Transfers;

/// The engine's running totals.
#[derive(Debug, Default)]
pub struct Counters {
    dispatches: AtomicU64,
    uploaded: AtomicU64,
    read_back: AtomicU64,
}

impl Counters {
    /// `n` more dispatches.
    pub fn dispatched(&self, n: u64) {
        self.dispatches.fetch_add(n, Ordering::Relaxed);
    }

    /// Dispatches so far.
    pub fn dispatches(&self) -> u64 {
        self.dispatches.load(Ordering::Relaxed)
    }

    /// Bytes moved so far.
    pub fn transfers(&self) -> Transfers {
        Transfers {
            uploaded: self.uploaded.load(Ordering::Relaxed),
            read_back: self.read_back.load(Ordering::Relaxed),
        }
    }

    /// A new device buffer holding `values` (an upload, counted).
    pub fn upload<T: CubeElement>(
        &self,
        client: &ComputeClient<WgpuRuntime>,
        values: &[T],
    ) -> Handle {
        let bytes = T::as_bytes(values);
        self.uploaded
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        client.create_from_slice(bytes)
    }

    /// `n` bytes read back to the host.
    pub fn read(&self, n: usize) {
        self.read_back.fetch_add(n as u64, Ordering::Relaxed);
    }
}
