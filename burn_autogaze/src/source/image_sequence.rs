//! `images`: a directory of frames in file-name order, looping.
//!
//! Opening lists the directory and decodes only the first frame (it fixes
//! the clip size), so a directory of thousands of frames opens as fast as
//! one of ten. Frames are decoded on demand into a cache bounded in bytes;
//! a prefetch thread decodes the next frames ahead of the reader, so in
//! steady state decoding never lands on the caller's (display) thread.
//!
//! Eviction keeps the frames needed soonest: when the cache is full, the
//! frame whose next use lies furthest ahead of the reading position goes
//! (for a looping clip read in order, the one just shown). A clip that fits
//! in the cap is decoded once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use web_time::Instant;

use serde::{Deserialize, Serialize};

use super::FrameSource;
use super::image_file::{list_images, load_rgba};
use super::sequence::FrameSequence;
use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FrameSize};

/// Default cap on decoded bytes kept by an image sequence (256 MiB).
pub const DEFAULT_SEQUENCE_CACHE_BYTES: usize = 256 << 20;

/// Default number of frames decoded ahead of the reader.
pub const DEFAULT_PREFETCH: usize = 4;

/// Decode counters of a lazily decoded source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DecodeStats {
    /// Opening: listing the directory and decoding the first frame, ms.
    pub time_to_first_frame_ms: f64,
    /// Files in the sequence.
    pub files: u64,
    /// Frames decoded, on any thread.
    pub decoded: u64,
    /// Their total decode time, ms.
    pub decode_ms_total: f64,
    /// Frames served from the cache (prefetched or kept).
    pub hits: u64,
    /// Frames the reader waited for while the prefetcher decoded them.
    pub waited: u64,
    /// Frames the reader decoded itself (not cached, not in flight).
    pub misses: u64,
    /// Frames evicted to respect the cap.
    pub evicted: u64,
    /// Bytes cached now.
    pub cached_bytes: u64,
    /// The cache's byte cap.
    pub cap_bytes: u64,
}

impl DecodeStats {
    /// Mean decode time of one frame, ms (0 before any).
    pub fn decode_ms_mean(&self) -> f64 {
        if self.decoded == 0 {
            0.0
        } else {
            self.decode_ms_total / self.decoded as f64
        }
    }
}

#[derive(Debug, Default)]
struct Cache {
    frames: BTreeMap<usize, Arc<Vec<u8>>>,
    in_flight: Vec<usize>,
    /// The index the reader takes next (eviction measures from here).
    position: usize,
    stats: DecodeStats,
}

#[derive(Debug)]
struct Shared {
    files: Vec<PathBuf>,
    size: FrameSize,
    cap: usize,
    cache: Mutex<Cache>,
    decoded: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Cache> {
        // Critical sections only move values: a poisoned lock holds nothing
        // half-written.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decodes frame `index`, checking its size.
    fn decode(&self, dir: &Path, index: usize) -> Result<(Vec<u8>, Duration)> {
        let t = Instant::now();
        let (size, pixels) = load_rgba(&self.files[index])?;
        if size != self.size {
            return Err(AutoGazeError::MismatchedFrameSize {
                context: dir.display().to_string(),
                index,
                expected_w: self.size.width,
                expected_h: self.size.height,
                actual_w: size.width,
                actual_h: size.height,
            });
        }
        Ok((pixels, t.elapsed()))
    }

    /// Decodes frame `index`, which the caller marked in flight: clears the
    /// mark, caches the frame, and wakes a reader waiting for it.
    fn decode_in_flight(&self, dir: &Path, index: usize) -> Result<Arc<Vec<u8>>> {
        let decoded = self.decode(dir, index);
        let mut cache = self.lock();
        cache.in_flight.retain(|&i| i != index);
        let result = decoded.map(|(pixels, took)| {
            let pixels = Arc::new(pixels);
            self.insert(&mut cache, index, Arc::clone(&pixels), took);
            pixels
        });
        drop(cache);
        self.decoded.notify_all();
        result
    }

    /// Frames until `index` is read again, from the reading position.
    fn ahead(&self, position: usize, index: usize) -> usize {
        (index + self.files.len() - position) % self.files.len()
    }

    /// Caches a decoded frame, then evicts the frames needed last until the
    /// cap holds (possibly the new one itself).
    fn insert(&self, cache: &mut Cache, index: usize, pixels: Arc<Vec<u8>>, took: Duration) {
        cache.stats.decoded += 1;
        cache.stats.decode_ms_total += took.as_secs_f64() * 1e3;
        let frame = self.size.rgba_len();
        cache.frames.insert(index, pixels);
        while cache.frames.len() * frame > self.cap {
            let position = cache.position;
            let Some(&last) = cache
                .frames
                .keys()
                .max_by_key(|&&i| self.ahead(position, i))
            else {
                break;
            };
            cache.frames.remove(&last);
            cache.stats.evicted += 1;
        }
        cache.stats.cached_bytes = (cache.frames.len() * frame) as u64;
    }
}

/// A looping image sequence, decoded lazily with a bounded cache and a
/// prefetch thread.
#[derive(Debug)]
pub struct ImageSequence {
    dir: PathBuf,
    shared: Arc<Shared>,
    prefetch: usize,
    requests: Option<Sender<usize>>,
    thread: Option<JoinHandle<()>>,
    seq: FrameSequence,
    native_fps: Option<f64>,
}

/// Reads `fps` from a `meta.json` beside the frames, if there is one
/// (within [`crate::limits::MIN_FPS`], [`crate::limits::MAX_FPS`]).
fn meta_fps(dir: &Path) -> Result<Option<f64>> {
    let path = dir.join("meta.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = crate::limits::read_text(
        &path,
        crate::limits::MAX_JSON_FILE_BYTES,
        "MAX_JSON_FILE_BYTES",
    )?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| AutoGazeError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    match value.get("fps") {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(fps) => crate::limits::fps(format!("fps of {}", path.display()), fps).map(Some),
            _ => Err(AutoGazeError::Config {
                path,
                reason: format!("fps must be a positive number, got {v}"),
            }),
        },
    }
}

/// The prefetch thread: decodes each requested frame that is neither cached
/// nor in flight. A failed decode is left to the reader, which decodes the
/// frame itself and reports the error.
fn prefetch_loop(dir: PathBuf, shared: Arc<Shared>, requests: Receiver<usize>) {
    while let Ok(index) = requests.recv() {
        {
            let mut cache = shared.lock();
            let frame = shared.size.rgba_len();
            // Skip what is there, and what would be evicted at once (the cap
            // holds fewer frames than the distance to this one).
            let room = shared.cap / frame.max(1);
            if cache.frames.contains_key(&index)
                || cache.in_flight.contains(&index)
                || shared.ahead(cache.position, index) >= room
            {
                continue;
            }
            cache.in_flight.push(index);
        }
        // A failure is the reader's to report (it decodes the frame again).
        let _ = shared.decode_in_flight(&dir, index);
    }
}

impl ImageSequence {
    /// Lists `dir` and decodes its first frame (which fixes the clip size),
    /// with the default prefetch depth. A `meta.json` beside the frames with
    /// an `fps` field sets the frame rate (timestamps and
    /// [`FrameSource::native_fps`]); otherwise `fps`.
    pub fn open(dir: &Path, fps: f64, cache_cap: usize) -> Result<Self> {
        Self::open_with(dir, fps, cache_cap, DEFAULT_PREFETCH)
    }

    /// As [`ImageSequence::open`], decoding up to `prefetch` frames ahead on
    /// a thread (0: no thread; every frame is decoded by the reader). The
    /// depth is limited by the cap: frames decoded ahead must fit in it.
    pub fn open_with(dir: &Path, fps: f64, cache_cap: usize, prefetch: usize) -> Result<Self> {
        let t = Instant::now();
        let files = list_images(dir)?;
        let native_fps = meta_fps(dir)?;
        let fps = native_fps.unwrap_or(fps);
        let (size, first) = load_rgba(&files[0])?;
        let took = t.elapsed();
        let frame = size.rgba_len();
        let prefetch = prefetch
            .min((cache_cap / frame.max(1)).saturating_sub(1))
            .min(crate::limits::MAX_PREFETCH)
            .min(files.len().saturating_sub(1));
        let shared = Arc::new(Shared {
            files,
            size,
            cap: cache_cap,
            cache: Mutex::new(Cache::default()),
            decoded: Condvar::new(),
        });
        {
            let mut cache = shared.lock();
            cache.stats.files = shared.files.len() as u64;
            cache.stats.cap_bytes = cache_cap as u64;
            shared.insert(&mut cache, 0, Arc::new(first), took);
            cache.stats.time_to_first_frame_ms = took.as_secs_f64() * 1e3;
        }
        let (requests, thread) = if prefetch > 0 && shared.files.len() > 1 {
            let (tx, rx) = channel();
            let (d, s) = (dir.to_path_buf(), Arc::clone(&shared));
            let thread = std::thread::Builder::new()
                .name("autogaze-prefetch".into())
                .spawn(move || prefetch_loop(d, s, rx))
                .map_err(|e| AutoGazeError::io("image prefetch thread", e))?;
            (Some(tx), Some(thread))
        } else {
            (None, None)
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            shared,
            prefetch,
            requests,
            thread,
            seq: FrameSequence::new(fps),
            native_fps,
        })
    }

    /// Number of files in one loop.
    pub fn len(&self) -> usize {
        self.shared.files.len()
    }

    /// Always false: opening fails on an empty directory.
    pub fn is_empty(&self) -> bool {
        self.shared.files.is_empty()
    }

    /// Frames decoded ahead of the reader (after the cap's limit).
    pub fn prefetch_depth(&self) -> usize {
        self.prefetch
    }

    /// Asks the prefetcher for the frames after `index`.
    fn request_after(&self, index: usize) {
        if let Some(tx) = &self.requests {
            let n = self.len();
            for k in 1..=self.prefetch {
                // A closed channel means the thread is gone: the reader
                // then decodes everything itself.
                let _ = tx.send((index + k) % n);
            }
        }
    }

    fn pixels(&mut self, index: usize) -> Result<Arc<Vec<u8>>> {
        let shared = Arc::clone(&self.shared);
        let mut cache = shared.lock();
        cache.position = index;
        let mut waited = false;
        while cache.in_flight.contains(&index) {
            waited = true;
            cache = shared
                .decoded
                .wait(cache)
                .unwrap_or_else(|p| p.into_inner());
        }
        if let Some(hit) = cache.frames.get(&index).cloned() {
            if waited {
                cache.stats.waited += 1;
            } else {
                cache.stats.hits += 1;
            }
            drop(cache);
            self.request_after(index);
            return Ok(hit);
        }
        // Decode it here, marked in flight so the prefetcher leaves it.
        cache.stats.misses += 1;
        cache.in_flight.push(index);
        drop(cache);
        let result = shared.decode_in_flight(&self.dir, index);
        if result.is_ok() {
            self.request_after(index);
        }
        result
    }
}

impl Drop for ImageSequence {
    fn drop(&mut self) {
        // Closing the channel ends the thread after its current decode.
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl FrameSource for ImageSequence {
    fn name(&self) -> &str {
        "images"
    }

    fn size(&self) -> FrameSize {
        self.shared.size
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        self.seq.skip(n);
        // Prefetch from the new position (the frame itself included).
        let len = self.len() as u64;
        let next = (self.seq.next_seq() % len) as usize;
        self.request_after((next + self.len() - 1) % self.len());
        Ok(())
    }

    fn next_frame(&mut self) -> Result<Frame> {
        let index = (self.seq.next_seq() % self.len() as u64) as usize;
        let pixels = self.pixels(index)?;
        self.seq.frame(self.shared.size, pixels)
    }

    fn native_fps(&self) -> Option<f64> {
        self.native_fps
    }

    fn loop_len(&self) -> Option<u64> {
        Some(self.len() as u64)
    }

    fn pooled_bytes(&self) -> usize {
        self.shared.lock().stats.cached_bytes as usize
    }

    fn decode_stats(&self) -> Option<DecodeStats> {
        Some(self.shared.lock().stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of `n` tiny frames whose first pixel encodes the index.
    fn clip(name: &str, n: usize) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("autogaze_seq_{name}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            let img = image::RgbImage::from_fn(8, 4, |x, _| {
                image::Rgb([(i % 256) as u8, (i / 256) as u8, x as u8])
            });
            img.save(dir.join(format!("{i:05}.png"))).unwrap();
        }
        dir
    }

    fn index_of(frame: &Frame) -> usize {
        frame.rgba()[0] as usize + 256 * frame.rgba()[1] as usize
    }

    const FRAME: usize = 8 * 4 * 4;

    #[test]
    fn opening_decodes_one_frame_whatever_the_length() {
        let dir = clip("open", 600);
        let seq = ImageSequence::open(&dir, 30.0, 1 << 20).unwrap();
        let s = seq.decode_stats().unwrap();
        assert_eq!((s.files, s.decoded, s.cached_bytes), (600, 1, FRAME as u64));
        assert!(s.time_to_first_frame_ms > 0.0);
        drop(seq);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_capped_cache_never_exceeds_its_bytes_and_reads_in_order() {
        let dir = clip("cap", 40);
        // Room for 6 frames: prefetch depth 4 fits, the cache stays capped.
        let mut seq = ImageSequence::open_with(&dir, 30.0, 6 * FRAME, 4).unwrap();
        assert_eq!(seq.prefetch_depth(), 4);
        for n in 0..100u64 {
            let frame = seq.next_frame().unwrap();
            assert_eq!(index_of(&frame), (n % 40) as usize, "frame {n}");
            assert!(seq.pooled_bytes() <= 6 * FRAME, "{}", seq.pooled_bytes());
        }
        let s = seq.decode_stats().unwrap();
        assert_eq!(s.hits + s.waited + s.misses, 100, "{s:?}");
        assert!(s.evicted > 0 && s.cached_bytes <= 6 * FRAME as u64, "{s:?}");
        // Skipping keeps order (frame 100 + 7 = index 27).
        seq.skip(7).unwrap();
        assert_eq!(index_of(&seq.next_frame().unwrap()), 27);
        drop(seq);
        // A cap below one frame caches nothing and prefetches nothing.
        let mut tiny = ImageSequence::open_with(&dir, 30.0, FRAME - 1, 4).unwrap();
        assert_eq!(tiny.prefetch_depth(), 0);
        for n in 0..5 {
            assert_eq!(index_of(&tiny.next_frame().unwrap()), n);
        }
        assert_eq!(tiny.pooled_bytes(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_prefetcher_decodes_ahead_of_the_reader() {
        let dir = clip("ahead", 30);
        let mut seq = ImageSequence::open_with(&dir, 30.0, 64 * FRAME, 4).unwrap();
        seq.next_frame().unwrap();
        // Frames 1..=4 are requested; wait (bounded) until they are cached.
        let deadline = Instant::now() + Duration::from_secs(10);
        while seq.decode_stats().unwrap().cached_bytes < 5 * FRAME as u64 {
            assert!(Instant::now() < deadline, "prefetch did not happen");
            std::thread::sleep(Duration::from_millis(5));
        }
        for n in 1..=4 {
            assert_eq!(index_of(&seq.next_frame().unwrap()), n);
        }
        let s = seq.decode_stats().unwrap();
        // None of them was decoded by the reader.
        assert_eq!((s.misses, s.hits), (0, 5), "{s:?}");
        // A clip that fits is decoded once, then served from the cache.
        for _ in 0..60 {
            seq.next_frame().unwrap();
        }
        let s = seq.decode_stats().unwrap();
        assert_eq!((s.decoded, s.evicted), (30, 0), "{s:?}");
        assert!(s.decode_ms_mean() > 0.0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
