//! Frames pushed by the host app (a camera crate, a decoder thread).

use std::sync::{Arc, Mutex};

use bevy::prelude::*;
use burn_autogaze::Frame;

#[derive(Debug, Default)]
struct Slot {
    latest: Option<Frame>,
    pushed: u64,
    replaced: u64,
}

/// A cloneable, thread-safe handle the host pushes frames into. The newest
/// frame wins: a frame replaced before the plugin took it is counted. Frames
/// carry their own sequence numbers, which must increase (the pipeline
/// refuses a repeat or an older frame, and counts it).
#[derive(Resource, Clone, Default, Debug)]
pub struct HostFrames(Arc<Mutex<Slot>>);

/// Counters of the host feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HostFeedCounters {
    /// Frames pushed.
    pub pushed: u64,
    /// Pushed frames replaced by a newer one before the plugin took them.
    pub replaced: u64,
}

impl HostFrames {
    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        // Every critical section is a few field writes: a poisoned lock
        // cannot hold a half-written slot.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers a frame; never blocks (beyond a few field writes).
    pub fn push(&self, frame: Frame) {
        let mut slot = self.slot();
        slot.pushed += 1;
        if slot.latest.replace(frame).is_some() {
            slot.replaced += 1;
        }
    }

    /// Takes the newest frame, if one arrived since the last take.
    pub fn take(&self) -> Option<Frame> {
        self.slot().latest.take()
    }

    /// Counters so far.
    pub fn counters(&self) -> HostFeedCounters {
        let slot = self.slot();
        HostFeedCounters {
            pushed: slot.pushed,
            replaced: slot.replaced,
        }
    }
}
