//! Frames: RGBA8 pixels shared without copies, plus a small buffer pool so
//! sources reuse their allocations once consumers drop old frames.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{AutoGazeError, Result};

/// Width and height of a frame in pixels (both at least 1 and within
/// [`crate::limits::MAX_FRAME_SIDE`] / [`crate::limits::MAX_FRAME_PIXELS`]
/// once validated; deserialising validates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawFrameSize")]
pub struct FrameSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

#[derive(serde::Deserialize)]
struct RawFrameSize {
    width: u32,
    height: u32,
}

impl TryFrom<RawFrameSize> for FrameSize {
    type Error = AutoGazeError;

    fn try_from(raw: RawFrameSize) -> Result<Self> {
        Self::new(raw.width, raw.height)
    }
}

impl FrameSize {
    /// A validated size: zero width or height is an error, and so is a size
    /// beyond [`crate::limits::MAX_FRAME_SIDE`] or
    /// [`crate::limits::MAX_FRAME_PIXELS`].
    pub fn new(width: u32, height: u32) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(AutoGazeError::ZeroSize { width, height });
        }
        crate::limits::frame_size("frame size", width, height)?;
        Ok(Self { width, height })
    }

    /// Number of pixels.
    pub fn pixels(self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Number of RGBA8 bytes (`pixels * 4`).
    pub fn rgba_len(self) -> usize {
        self.pixels() * 4
    }
}

impl std::fmt::Display for FrameSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl std::str::FromStr for FrameSize {
    type Err = AutoGazeError;

    /// Parses `WIDTHxHEIGHT` (e.g. `1280x720`) or the names `720p`, `1080p`.
    fn from_str(s: &str) -> Result<Self> {
        let expected = "WIDTHxHEIGHT (e.g. 1280x720), 720p or 1080p";
        match s {
            "720p" => return Self::new(1280, 720),
            "1080p" => return Self::new(1920, 1080),
            _ => {}
        }
        let (w, h) = s
            .split_once(['x', 'X'])
            .ok_or_else(|| AutoGazeError::setting("frame size", s, expected))?;
        let w = w
            .trim()
            .parse::<u32>()
            .map_err(|_| AutoGazeError::setting("frame size", s, expected))?;
        let h = h
            .trim()
            .parse::<u32>()
            .map_err(|_| AutoGazeError::setting("frame size", s, expected))?;
        Self::new(w, h)
    }
}

/// One video frame: RGBA8 pixels (row-major, 4 bytes a pixel, no row padding).
///
/// Pixels sit behind an `Arc`, so cloning a frame or handing it to another
/// stage never copies pixel data.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Monotonic sequence number assigned by the source.
    pub seq: u64,
    size: FrameSize,
    pixels: Arc<Vec<u8>>,
    /// Presentation time since the source started.
    pub timestamp: Duration,
}

impl Frame {
    /// Builds a frame, checking that `pixels` holds exactly `width*height*4` bytes.
    pub fn new(
        seq: u64,
        width: u32,
        height: u32,
        pixels: impl Into<Arc<Vec<u8>>>,
        timestamp: Duration,
    ) -> Result<Self> {
        let size = FrameSize::new(width, height)?;
        let pixels = pixels.into();
        if pixels.len() != size.rgba_len() {
            return Err(AutoGazeError::PixelLength {
                width,
                height,
                expected: size.rgba_len(),
                actual: pixels.len(),
            });
        }
        Ok(Self {
            seq,
            size,
            pixels,
            timestamp,
        })
    }

    /// Size of the frame.
    pub fn size(&self) -> FrameSize {
        self.size
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.size.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.size.height
    }

    /// RGBA8 bytes, row-major.
    pub fn rgba(&self) -> &[u8] {
        &self.pixels
    }

    /// The shared pixel buffer (cloning it does not copy pixels).
    pub fn shared_pixels(&self) -> &Arc<Vec<u8>> {
        &self.pixels
    }

    /// True when both frames point at the same pixel buffer.
    pub fn shares_pixels_with(&self, other: &Frame) -> bool {
        Arc::ptr_eq(&self.pixels, &other.pixels)
    }
}

/// A small pool of RGBA buffers of one size.
///
/// `acquire` hands back a buffer that no frame references any more, so a
/// source that produces a frame per call allocates only until the pool holds
/// as many buffers as frames are alive at once (the ring capacity plus the
/// frames a consumer keeps).
#[derive(Debug)]
pub struct FramePool {
    len: usize,
    buffers: Vec<Arc<Vec<u8>>>,
    max_buffers: usize,
    allocations: u64,
}

impl FramePool {
    /// A pool for buffers of `len` bytes, keeping at most `max_buffers` of them.
    pub fn new(len: usize, max_buffers: usize) -> Self {
        Self {
            len,
            buffers: Vec::with_capacity(max_buffers.max(1)),
            max_buffers: max_buffers.max(1),
            allocations: 0,
        }
    }

    /// Byte length of each buffer.
    pub fn buffer_len(&self) -> usize {
        self.len
    }

    /// Buffers allocated so far (steady state: this stops growing).
    pub fn allocations(&self) -> u64 {
        self.allocations
    }

    /// Bytes held by the pool's buffers.
    pub fn held_bytes(&self) -> usize {
        self.buffers.len() * self.len
    }

    /// Fills a buffer that no frame references any more (allocating one only
    /// when every pooled buffer is still in use) and returns it, shared.
    ///
    /// `fill` must overwrite every byte: the buffer's previous content is a
    /// frame that was handed out earlier.
    pub fn fill(&mut self, fill: impl FnOnce(&mut [u8])) -> Arc<Vec<u8>> {
        if let Some(idx) = self.buffers.iter().position(|b| Arc::strong_count(b) == 1) {
            // Take it out so that this is the only reference; get_mut then succeeds.
            let mut buf = self.buffers.swap_remove(idx);
            if let Some(bytes) = Arc::get_mut(&mut buf) {
                fill(bytes);
                self.buffers.push(Arc::clone(&buf));
                return buf;
            }
        }
        self.allocations += 1;
        let mut bytes = vec![0u8; self.len];
        fill(&mut bytes);
        let buf = Arc::new(bytes);
        if self.buffers.len() < self.max_buffers {
            self.buffers.push(Arc::clone(&buf));
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rejects_wrong_length_and_zero_size() {
        let err = Frame::new(0, 4, 2, vec![0u8; 31], Duration::ZERO).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("4x2") && msg.contains("32") && msg.contains("31"),
            "{msg}"
        );
        assert!(matches!(
            Frame::new(0, 0, 2, vec![], Duration::ZERO),
            Err(AutoGazeError::ZeroSize { .. })
        ));
        assert!(Frame::new(0, 4, 2, vec![0u8; 32], Duration::ZERO).is_ok());
    }

    #[test]
    fn frame_clone_shares_pixels() {
        let a = Frame::new(1, 2, 2, vec![7u8; 16], Duration::ZERO).unwrap();
        let b = a.clone();
        assert!(a.shares_pixels_with(&b));
    }

    #[test]
    fn size_parses_names_and_rejects_garbage() {
        assert_eq!(
            "720p".parse::<FrameSize>().unwrap(),
            FrameSize::new(1280, 720).unwrap()
        );
        assert_eq!(
            "641x359".parse::<FrameSize>().unwrap(),
            FrameSize::new(641, 359).unwrap()
        );
        assert!("0x10".parse::<FrameSize>().is_err());
        assert!("wide".parse::<FrameSize>().is_err());
    }

    #[test]
    fn pool_reuses_buffers_once_frames_are_dropped() {
        let mut pool = FramePool::new(16, 4);
        for _ in 0..100 {
            let buf = pool.fill(|b| b.fill(3));
            let frame = Frame::new(0, 2, 2, buf, Duration::ZERO).unwrap();
            assert_eq!(frame.rgba()[0], 3);
        }
        assert_eq!(pool.allocations(), 1);
        // Two frames alive at once need two buffers, and no more afterwards.
        let mut keep = Vec::new();
        for _ in 0..50 {
            keep.push(pool.fill(|b| b.fill(1)));
            if keep.len() > 2 {
                keep.remove(0);
            }
        }
        assert_eq!(pool.allocations(), 3);
    }
}
