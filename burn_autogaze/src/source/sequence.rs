//! The sequence bookkeeping every source shares: the next frame's number,
//! skipping numbers, and the timestamp of each frame at a nominal rate.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::frame::{Frame, FrameSize};

/// Timestamp of frame `n` at `fps` frames a second (zero when `fps` <= 0;
/// `Duration::MAX` when it would not fit one).
pub(crate) fn frame_time(n: u64, fps: f64) -> Duration {
    if fps > 0.0 && fps.is_finite() {
        Duration::try_from_secs_f64(n as f64 / fps).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

/// Numbers a source's frames 0, 1, 2, ... and stamps them at `fps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FrameSequence {
    next: u64,
    fps: f64,
}

impl FrameSequence {
    /// A sequence whose first frame is number 0, stamped at `fps`.
    pub(crate) fn new(fps: f64) -> Self {
        Self { next: 0, fps }
    }

    /// The number the next frame gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next
    }

    /// Uses up `n` numbers without producing their frames.
    pub(crate) fn skip(&mut self, n: u64) {
        self.next = self.next.saturating_add(n);
    }

    /// The next frame: `pixels` of `size`, with the next number (used up
    /// even when the pixels do not fit `size`) and its timestamp.
    pub(crate) fn frame(&mut self, size: FrameSize, pixels: Arc<Vec<u8>>) -> Result<Frame> {
        let n = self.next;
        self.next = self.next.saturating_add(1);
        Frame::new(n, size.width, size.height, pixels, frame_time(n, self.fps))
    }

    /// The next frame, stamped `timestamp` (a source that knows each
    /// frame's presentation time) instead of at the nominal rate.
    pub(crate) fn frame_at(
        &mut self,
        size: FrameSize,
        pixels: Arc<Vec<u8>>,
        timestamp: Duration,
    ) -> Result<Frame> {
        let n = self.next;
        self.next += 1;
        Frame::new(n, size.width, size.height, pixels, timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_numbered_in_order_skips_use_numbers_up_and_stamps_follow_the_rate() {
        let size = FrameSize::new(2, 1).unwrap();
        let pixels = Arc::new(vec![0u8; size.rgba_len()]);
        let mut seq = FrameSequence::new(10.0);
        let a = seq.frame(size, Arc::clone(&pixels)).unwrap();
        assert_eq!((a.seq, a.timestamp), (0, Duration::ZERO));
        seq.skip(3);
        assert_eq!(seq.next_seq(), 4);
        let b = seq.frame(size, Arc::clone(&pixels)).unwrap();
        assert_eq!((b.seq, b.timestamp), (4, Duration::from_millis(400)));
        // A frame that does not fit its size is an error that still uses
        // its number up.
        assert!(seq.frame(size, Arc::new(vec![0u8; 3])).is_err());
        assert_eq!(seq.next_seq(), 6);
    }

    #[test]
    fn a_rate_that_is_not_positive_stamps_zero() {
        for fps in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            assert_eq!(frame_time(7, fps), Duration::ZERO, "{fps}");
        }
        assert_eq!(frame_time(7, 1e-300), Duration::MAX);
        let size = FrameSize::new(1, 1).unwrap();
        let mut seq = FrameSequence::new(0.0);
        seq.skip(9);
        let f = seq.frame(size, Arc::new(vec![0u8; 4])).unwrap();
        assert_eq!((f.seq, f.timestamp), (9, Duration::ZERO));
    }
}
