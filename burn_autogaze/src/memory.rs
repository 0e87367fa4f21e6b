//! Memory figures: the process's resident set and the bytes the pipeline
//! holds in its pooled buffers, sampled at a bounded rate (reading the
//! resident set is a small file read; it is not done every frame).

use std::time::Duration;

use web_time::Instant;

use serde::{Deserialize, Serialize};

/// Resident set size of this process in bytes (Linux: `/proc/self/statm`;
/// None where the platform does not say).
pub fn process_rss_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf only reads a configuration value.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        (page > 0).then(|| pages * page as u64)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// One memory reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Process resident set (None where unknown).
    pub rss_bytes: Option<u64>,
    /// Bytes in the pipeline's pooled buffers (source pools and caches,
    /// model input, compositor output, snapshots).
    pub pooled_bytes: usize,
    /// Bytes in display staging buffers (a viewer's upload queue).
    pub staging_bytes: usize,
}

/// Memory over a run: the latest sample and the peaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// The newest sample.
    pub latest: MemorySample,
    /// Highest process RSS seen (none where the platform does not report it).
    pub peak_rss_bytes: Option<u64>,
    /// Most bytes held by pooled buffers at once.
    pub peak_pooled_bytes: usize,
    /// Most bytes in display staging buffers at once.
    pub peak_staging_bytes: usize,
    /// Samples taken.
    pub samples: u64,
}

/// Takes a memory sample at most once per `every`.
#[derive(Debug, Clone)]
pub struct MemorySampler {
    every: Duration,
    last: Option<Instant>,
    stats: MemoryStats,
}

impl Default for MemorySampler {
    /// Four samples a second at most.
    fn default() -> Self {
        Self::new(Duration::from_millis(250))
    }
}

impl MemorySampler {
    /// A sampler that takes at most one sample per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            stats: MemoryStats::default(),
        }
    }

    /// Samples when `every` has passed since the last sample (or there was
    /// none); `pooled` and `staging` are asked only then. Returns whether
    /// it sampled.
    pub fn maybe_sample(
        &mut self,
        now: Instant,
        pooled: impl FnOnce() -> usize,
        staging: impl FnOnce() -> usize,
    ) -> bool {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.every)
        {
            return false;
        }
        self.last = Some(now);
        self.add(MemorySample {
            rss_bytes: process_rss_bytes(),
            pooled_bytes: pooled(),
            staging_bytes: staging(),
        });
        true
    }

    /// Adds a sample taken by the caller.
    pub fn add(&mut self, sample: MemorySample) {
        let s = &mut self.stats;
        s.latest = sample;
        s.peak_rss_bytes = match (s.peak_rss_bytes, sample.rss_bytes) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        s.peak_pooled_bytes = s.peak_pooled_bytes.max(sample.pooled_bytes);
        s.peak_staging_bytes = s.peak_staging_bytes.max(sample.staging_bytes);
        s.samples += 1;
    }

    /// The samples so far: the latest and the peaks.
    pub fn stats(&self) -> MemoryStats {
        self.stats
    }
}

/// Bytes as MiB, for tables and overlays.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampler_keeps_its_rate_and_the_peaks() {
        let mut s = MemorySampler::new(Duration::from_millis(100));
        let t0 = Instant::now();
        let mut asked = 0;
        for (ms, pooled) in [(0, 10), (50, 99), (100, 30), (150, 5), (260, 20)] {
            s.maybe_sample(
                t0 + Duration::from_millis(ms),
                || {
                    asked += 1;
                    pooled
                },
                || 7,
            );
        }
        // Sampled at 0, 100 and 260 ms only; the others were not even asked.
        let stats = s.stats();
        assert_eq!((stats.samples, asked), (3, 3));
        assert_eq!(stats.latest.pooled_bytes, 20);
        assert_eq!((stats.peak_pooled_bytes, stats.peak_staging_bytes), (30, 7));
        if cfg!(target_os = "linux") {
            let rss = stats.peak_rss_bytes.expect("linux reports RSS");
            // A test process holds at least a megabyte and less than the
            // machine.
            assert!((1 << 20..1 << 40).contains(&rss), "{rss}");
        }
        s.add(MemorySample {
            rss_bytes: None,
            pooled_bytes: 1,
            staging_bytes: 1,
        });
        assert_eq!(s.stats().peak_rss_bytes, stats.peak_rss_bytes);
        assert_eq!(mib(3 << 20), 3.0);
    }
}
