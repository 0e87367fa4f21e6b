//! Paced playback: frames shown at the source's frame rate, never drifting
//! behind real time. A run that cannot keep up skips the frames whose time
//! has passed (counted as dropped) and counts the frames it showed late.
//!
//! Time comes from a [`Clock`], so the logic is tested with a fake one.

use std::time::Duration;

use web_time::Instant;

/// The rate paced playback runs at: a number of frames a second, or the
/// source's own rate (`native`: an image sequence's `meta.json`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SourceRate {
    /// This many frames a second.
    Fps(f64),
    /// The source's own rate ([`crate::FrameSource::native_fps`]).
    Native,
}

impl std::str::FromStr for SourceRate {
    type Err = crate::AutoGazeError;

    fn from_str(s: &str) -> crate::Result<Self> {
        if s == "native" {
            return Ok(Self::Native);
        }
        match s.parse::<f64>() {
            // The error quotes the flag as given (`1e10`, not its expansion).
            Ok(fps) => crate::limits::fps("source fps", fps)
                .map(Self::Fps)
                .map_err(|e| match e {
                    crate::AutoGazeError::Limit { what, limit, .. } => {
                        crate::AutoGazeError::Limit {
                            what,
                            value: s.to_string(),
                            limit,
                        }
                    }
                    other => other,
                }),
            _ => Err(crate::AutoGazeError::setting(
                "source fps",
                s,
                "a positive frame rate, or `native` (the source's own rate)",
            )),
        }
    }
}

impl std::fmt::Display for SourceRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fps(fps) => write!(f, "{fps}"),
            Self::Native => f.write_str("native"),
        }
    }
}

/// A monotonic clock.
pub trait Clock {
    /// Time since an arbitrary fixed origin.
    fn now(&self) -> Duration;
}

/// The real clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// What the pacer says about the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceDecision {
    /// Source frames to skip before the one to show (their time has passed).
    pub skip: u64,
    /// Wait this long before showing it (zero when due or late).
    pub wait: Duration,
}

/// Pacing counters and the realtime factor.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PaceStats {
    /// Source frames shown.
    pub shown: u64,
    /// Source frames skipped because their time had passed.
    pub dropped: u64,
    /// Frames shown more than one frame interval after their due time.
    pub late: u64,
    /// Frames shown per second of wall time / source fps.
    pub realtime_factor: f64,
}

/// Schedules frame `n` of a `fps` source at `start + n / fps`.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Duration,
    start: Option<Duration>,
    next: u64,
    stats: PaceStats,
}

impl Pacer {
    /// A pacer for a source at `fps` frames a second, within
    /// [`crate::limits::MIN_FPS`] and [`crate::limits::MAX_FPS`] (so the
    /// interval is at least a millisecond and fits a `Duration`).
    pub fn new(fps: f64) -> crate::Result<Self> {
        let fps = crate::limits::fps("source fps", fps)?;
        Ok(Self {
            interval: Duration::from_secs_f64(1.0 / fps),
            start: None,
            next: 0,
            stats: PaceStats::default(),
        })
    }

    fn due(&self, n: u64) -> Duration {
        let offset = self.interval.as_secs_f64() * n as f64;
        self.start
            .unwrap_or_default()
            .saturating_add(Duration::try_from_secs_f64(offset).unwrap_or(Duration::MAX))
    }

    /// Decides about the next frame at `now`: skip every frame whose
    /// successor is already due (never fall behind), then wait until the
    /// chosen frame's time. The skip is computed, not counted out, so a
    /// long stall costs no more than a short one.
    pub fn decide(&mut self, now: Duration) -> PaceDecision {
        let start = *self.start.get_or_insert(now);
        // The last frame already due; its predecessors are skipped.
        let elapsed = now.saturating_sub(start).as_secs_f64();
        let last_due = (elapsed / self.interval.as_secs_f64()).floor() as u64;
        let mut skip = last_due.saturating_sub(self.next);
        // Floating-point rounding: settle on the exact rule either way.
        while skip > 0 && self.due(self.next + skip) > now {
            skip -= 1;
        }
        while self.due(self.next + skip + 1) <= now {
            skip += 1;
        }
        let due = self.due(self.next + skip);
        PaceDecision {
            skip,
            wait: due.saturating_sub(now),
        }
    }

    /// Records that the frame chosen by the last decision was shown at `now`.
    pub fn shown(&mut self, decision: PaceDecision, now: Duration) {
        let index = self.next.saturating_add(decision.skip);
        if now > self.due(index).saturating_add(self.interval) {
            self.stats.late += 1;
        }
        self.stats.dropped += decision.skip;
        self.stats.shown += 1;
        self.next = index + 1;
        let elapsed = now.saturating_sub(self.start.unwrap_or_default()) + self.interval;
        let fps = self.interval.as_secs_f64().recip();
        self.stats.realtime_factor = self.stats.shown as f64 / elapsed.as_secs_f64() / fps;
    }

    /// Counters so far.
    pub fn stats(&self) -> PaceStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A clock the test moves by hand.
    struct FakeClock(Cell<Duration>);

    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            self.0.get()
        }
    }

    impl FakeClock {
        fn advance(&self, d: Duration) {
            self.0.set(self.0.get() + d);
        }
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Runs `frames` frames where showing one costs `work`; returns stats.
    fn run(fps: f64, work: Duration, frames: usize) -> PaceStats {
        let clock = FakeClock(Cell::new(ms(1000)));
        let mut pacer = Pacer::new(fps).unwrap();
        for _ in 0..frames {
            let d = pacer.decide(clock.now());
            clock.advance(d.wait);
            clock.advance(work);
            pacer.shown(d, clock.now());
        }
        pacer.stats()
    }

    #[test]
    fn a_long_stall_at_the_fastest_rate_skips_in_one_step() {
        let mut pacer = Pacer::new(crate::limits::MAX_FPS).unwrap();
        let d = pacer.decide(ms(0));
        pacer.shown(d, ms(0));
        // A day-long stall at 1000 fps: 86.4 million frames skipped at once.
        let now = Duration::from_secs(86_400);
        let d = pacer.decide(now);
        assert_eq!(d.skip, 86_400_000 - 1);
        assert_eq!(d.wait, Duration::ZERO);
        pacer.shown(d, now);
        let d = pacer.decide(now);
        assert_eq!((d.skip, d.wait), (0, ms(1)));
    }

    #[test]
    fn a_fast_pipeline_waits_and_keeps_real_time() {
        let s = run(25.0, ms(10), 100);
        assert_eq!((s.dropped, s.late), (0, 0));
        assert!((s.realtime_factor - 1.0).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn a_slow_pipeline_drops_frames_instead_of_drifting() {
        // 25 fps source, 100 ms a frame: shows 10 fps, so 15 of every 25
        // source frames (~75 of the 125 in 5 s) are dropped.
        let clock = FakeClock(Cell::new(ms(0)));
        let mut pacer = Pacer::new(25.0).unwrap();
        let mut shown_index = 0;
        for _ in 0..50 {
            let d = pacer.decide(clock.now());
            clock.advance(d.wait);
            clock.advance(ms(100));
            pacer.shown(d, clock.now());
            shown_index += d.skip + 1;
            // Never behind real time by more than the work of one frame.
            let behind = clock.now().as_secs_f64() - shown_index as f64 / 25.0;
            assert!(behind <= 0.1 + 1e-9, "drifted {behind}");
        }
        let s = pacer.stats();
        assert!((70..=80).contains(&s.dropped), "{s:?}");
        assert!((s.realtime_factor - 0.4).abs() < 0.02, "{s:?}");
        assert!(s.late > 0);
        assert!(Pacer::new(0.0).is_err() && Pacer::new(f64::NAN).is_err());
        // Beyond the limits: an error naming them, not a hang (1e10: a zero
        // interval) nor a panic (1e-20: an interval no Duration holds).
        for fps in ["1e10", "1e-20", "inf"] {
            let err = fps.parse::<SourceRate>().unwrap_err().to_string();
            assert!(err.contains(fps) && err.contains("MAX_FPS"), "{err}");
        }
        assert_eq!("25".parse::<SourceRate>().unwrap(), SourceRate::Fps(25.0));
        assert_eq!("native".parse::<SourceRate>().unwrap(), SourceRate::Native);
        assert!("-3".parse::<SourceRate>().is_err() && "fast".parse::<SourceRate>().is_err());
    }
}
