//! `images`: a directory of frames in file-name order, looping.
//!
//! Frames are decoded on demand and kept in a cache bounded in bytes, so a
//! short clip is decoded once and a long one never holds more than the cap.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::image_file::{list_images, load_rgba};
use super::{FrameSource, frame_time};
use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FrameSize};

/// Default cap on decoded bytes kept by an image sequence (256 MiB).
pub const DEFAULT_SEQUENCE_CACHE_BYTES: usize = 256 << 20;

/// A looping image sequence.
#[derive(Debug)]
pub struct ImageSequence {
    dir: PathBuf,
    files: Vec<PathBuf>,
    size: FrameSize,
    cache: Vec<Option<Arc<Vec<u8>>>>,
    cached_bytes: usize,
    cache_cap: usize,
    seq: u64,
    fps: f64,
    native_fps: Option<f64>,
}

/// Reads `fps` from a `meta.json` beside the frames, if there is one.
fn meta_fps(dir: &Path) -> Result<Option<f64>> {
    let path = dir.join("meta.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| AutoGazeError::io(&path, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| AutoGazeError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    match value.get("fps") {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(fps) if fps.is_finite() && fps > 0.0 => Ok(Some(fps)),
            _ => Err(AutoGazeError::Config {
                path,
                reason: format!("fps must be a positive number, got {v}"),
            }),
        },
    }
}

impl ImageSequence {
    /// Lists `dir` and decodes its first frame (which fixes the clip size).
    /// A `meta.json` beside the frames with an `fps` field sets the frame
    /// rate (timestamps and [`FrameSource::native_fps`]); otherwise `fps`.
    pub fn open(dir: &Path, fps: f64, cache_cap: usize) -> Result<Self> {
        let files = list_images(dir)?;
        let native_fps = meta_fps(dir)?;
        let fps = native_fps.unwrap_or(fps);
        let (size, first) = load_rgba(&files[0])?;
        let mut cache = vec![None; files.len()];
        let cached_bytes = if first.len() <= cache_cap {
            cache[0] = Some(Arc::new(first));
            size.rgba_len()
        } else {
            0
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            size,
            cache,
            cached_bytes,
            cache_cap,
            seq: 0,
            fps,
            native_fps,
        })
    }

    /// Number of files in one loop.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Always false: opening fails on an empty directory.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn pixels(&mut self, index: usize) -> Result<Arc<Vec<u8>>> {
        if let Some(hit) = &self.cache[index] {
            return Ok(Arc::clone(hit));
        }
        let (size, pixels) = load_rgba(&self.files[index])?;
        if size != self.size {
            return Err(AutoGazeError::MismatchedFrameSize {
                context: self.dir.display().to_string(),
                index,
                expected_w: self.size.width,
                expected_h: self.size.height,
                actual_w: size.width,
                actual_h: size.height,
            });
        }
        let pixels = Arc::new(pixels);
        if self.cached_bytes + self.size.rgba_len() <= self.cache_cap {
            self.cached_bytes += self.size.rgba_len();
            self.cache[index] = Some(Arc::clone(&pixels));
        }
        Ok(pixels)
    }
}

impl FrameSource for ImageSequence {
    fn name(&self) -> &str {
        "images"
    }

    fn size(&self) -> FrameSize {
        self.size
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        self.seq += n;
        Ok(())
    }

    fn next_frame(&mut self) -> Result<Frame> {
        let n = self.seq;
        let index = (n % self.files.len() as u64) as usize;
        let pixels = self.pixels(index)?;
        self.seq += 1;
        Frame::new(
            n,
            self.size.width,
            self.size.height,
            pixels,
            frame_time(n, self.fps),
        )
    }

    fn native_fps(&self) -> Option<f64> {
        self.native_fps
    }

    fn loop_len(&self) -> Option<u64> {
        Some(self.files.len() as u64)
    }

    fn pooled_bytes(&self) -> usize {
        self.cached_bytes
    }
}
