//! A fixed-capacity frame window between a source and its consumers.
//!
//! Policy: latest wins. When the window is full, admitting a new frame evicts
//! the oldest (counted as dropped). Sequence numbers must increase: a frame
//! whose number is not above the last admitted one is rejected as stale
//! (counted). The storage is allocated once; frames share their pixels, so
//! evicting one hands its buffer back to the source's pool.

use std::collections::VecDeque;

use crate::error::{AutoGazeError, Result};
use crate::frame::Frame;

/// Counters of a [`FrameRing`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RingCounters {
    /// Frames accepted into the window.
    pub admitted: u64,
    /// Accepted frames evicted (window full) or skipped by `take_latest`.
    pub dropped: u64,
    /// Frames rejected because their sequence number was not new.
    pub stale: u64,
}

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Admitted; nothing was evicted.
    Admitted,
    /// Admitted; the frame with this sequence number was evicted to make room.
    AdmittedEvicting(u64),
    /// Rejected: its sequence number is not above `last`.
    Stale {
        /// The newest sequence number the ring has taken.
        last: u64,
    },
}

/// Fixed-capacity, latest-wins frame window.
#[derive(Debug)]
pub struct FrameRing {
    slots: VecDeque<Frame>,
    capacity: usize,
    last_seq: Option<u64>,
    counters: RingCounters,
}

impl FrameRing {
    /// A window holding at most `capacity` frames (at least 1).
    pub fn new(capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(AutoGazeError::setting("ring capacity", 0, "at least 1"));
        }
        Ok(Self {
            slots: VecDeque::with_capacity(capacity),
            capacity,
            last_seq: None,
            counters: RingCounters::default(),
        })
    }

    /// Offers a frame (see the module docs for the policy).
    pub fn push(&mut self, frame: Frame) -> Admission {
        if let Some(last) = self.last_seq
            && frame.seq <= last
        {
            self.counters.stale += 1;
            return Admission::Stale { last };
        }
        self.last_seq = Some(frame.seq);
        self.counters.admitted += 1;
        let evicted = if self.slots.len() == self.capacity {
            self.counters.dropped += 1;
            self.slots.pop_front().map(|f| f.seq)
        } else {
            None
        };
        self.slots.push_back(frame);
        match evicted {
            Some(seq) => Admission::AdmittedEvicting(seq),
            None => Admission::Admitted,
        }
    }

    /// Removes and returns the oldest frame.
    pub fn pop_oldest(&mut self) -> Option<Frame> {
        self.slots.pop_front()
    }

    /// Removes and returns the newest frame; older frames still waiting are
    /// dropped (and counted): the consumer only ever sees the latest.
    pub fn take_latest(&mut self) -> Option<Frame> {
        let latest = self.slots.pop_back()?;
        self.counters.dropped += self.slots.len() as u64;
        self.slots.clear();
        Some(latest)
    }

    /// The newest frame, left in place.
    pub fn latest(&self) -> Option<&Frame> {
        self.slots.back()
    }

    /// Frames waiting in the window, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Frame> {
        self.slots.iter()
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no frame waits.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Maximum frames held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sequence number of the last admitted frame.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Admission counters.
    pub fn counters(&self) -> RingCounters {
        self.counters
    }

    /// Capacity of the backing storage (constant after construction).
    pub fn storage_capacity(&self) -> usize {
        self.slots.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(seq: u64) -> Frame {
        Frame::new(seq, 1, 1, vec![seq as u8; 4], Duration::ZERO).unwrap()
    }

    #[test]
    fn latest_wins_and_counts() {
        let mut ring = FrameRing::new(2).unwrap();
        let storage = ring.storage_capacity();
        assert_eq!(ring.push(frame(0)), Admission::Admitted);
        assert_eq!(ring.push(frame(1)), Admission::Admitted);
        assert_eq!(ring.push(frame(2)), Admission::AdmittedEvicting(0));
        assert_eq!(ring.push(frame(2)), Admission::Stale { last: 2 });
        assert_eq!(ring.push(frame(1)), Admission::Stale { last: 2 });
        assert_eq!(ring.pop_oldest().unwrap().seq, 1);
        for seq in 3..100 {
            ring.push(frame(seq));
        }
        assert_eq!(ring.storage_capacity(), storage, "no reallocation");
        assert_eq!(ring.take_latest().unwrap().seq, 99);
        assert!(ring.is_empty());
        let c = ring.counters();
        assert_eq!(c.admitted, 100);
        assert_eq!(c.stale, 2);
        // 98 evicted while full, 1 skipped by take_latest, 1 popped normally.
        assert_eq!(c.dropped, 98);
        assert_eq!(c.admitted, c.dropped + 2);
    }

    #[test]
    fn sequence_numbers_only_grow() {
        let mut ring = FrameRing::new(4).unwrap();
        ring.push(frame(5));
        ring.push(frame(9));
        assert!(matches!(ring.push(frame(7)), Admission::Stale { last: 9 }));
        let seqs: Vec<u64> = ring.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, vec![5, 9]);
        assert!(FrameRing::new(0).is_err());
    }
}
