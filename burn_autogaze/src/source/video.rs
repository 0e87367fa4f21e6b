//! `video`: any file the system's FFmpeg decodes (mp4/H.264, webm/VP9, mkv,
//! mov, ...), streamed as RGBA frames.
//!
//! `ffprobe` reads the container's size, frame rate and frame count at
//! open; an `ffmpeg` child decodes on its own process and a thread queues
//! its frames, up to `prefetch` ahead of the reader. Memory is bounded: the
//! frames are read into a pool of `prefetch + 4` buffers, reused once the
//! frames handed out are dropped (a consumer that keeps more frames makes
//! the pool allocate, and keep no more than that many). Frames keep their presentation
//! timestamps. At the end the clip loops (a new pass from the start time,
//! its timestamps continuing after the last frame's) or, not looping,
//! [`AutoGazeError::EndOfStream`]. A file that ends early gives the frames
//! before the damage, then [`VideoProblem::Truncated`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use web_time::Instant;

use super::FrameSource;
use super::ffmpeg::{FfmpegTools, VideoInfo, last_line, probe};
use super::image_sequence::DecodeStats;
use super::sequence::FrameSequence;
use super::video_decoder::{Decoder, FrameInfo, Msg};
use crate::error::{AutoGazeError, Result, VideoProblem};
use crate::frame::{Frame, FrameSize};

/// How to read a video file.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSettings {
    /// Rate for timestamps and `native` pacing when the container has none.
    pub fps: f64,
    /// Where to start, seconds from the beginning (also where each loop
    /// starts).
    pub start: f64,
    /// Start again at the end (otherwise [`AutoGazeError::EndOfStream`]).
    pub looping: bool,
    /// Frames decoded ahead of the reader (0: FFmpeg decodes while the
    /// reader waits).
    pub prefetch: usize,
    /// The FFmpeg programs.
    pub tools: FfmpegTools,
}

impl Default for VideoSettings {
    fn default() -> Self {
        Self {
            fps: 30.0,
            start: 0.0,
            looping: true,
            prefetch: super::DEFAULT_PREFETCH,
            tools: FfmpegTools::from_env(),
        }
    }
}

/// A video file decoded by an `ffmpeg` child process.
#[derive(Debug)]
pub struct VideoSource {
    path: PathBuf,
    info: VideoInfo,
    settings: VideoSettings,
    size: FrameSize,
    decoder: Option<Decoder>,
    /// The first frame of a pass, read at open (or at a loop's start).
    pending: Option<(Arc<Vec<u8>>, FrameInfo)>,
    seq: FrameSequence,
    /// Frames given in this pass.
    pass_frames: u64,
    /// Frames in one pass, once one has ended.
    loop_frames: Option<u64>,
    /// Added to this pass's timestamps (the length of the passes before).
    loop_offset: Duration,
    /// Presentation times (from the video's start) of this pass's first
    /// and latest frames.
    pass_first: Option<Duration>,
    pass_last: Duration,
    ended: bool,
    /// What broke the video (given again on every later call).
    broken: Option<VideoProblem>,
    stats: DecodeStats,
}

impl VideoSource {
    /// Opens `path` with the default settings at `fps` (used only when the
    /// container has no rate of its own).
    pub fn open(path: &Path, fps: f64) -> Result<Self> {
        Self::open_with(
            path,
            VideoSettings {
                fps,
                ..VideoSettings::default()
            },
        )
    }

    /// Probes `path`, starts decoding from `settings.start` and reads the
    /// first frame (which fixes the size).
    pub fn open_with(path: &Path, settings: VideoSettings) -> Result<Self> {
        let t = Instant::now();
        if !(settings.start.is_finite() && settings.start >= 0.0) {
            return Err(AutoGazeError::setting(
                "video start",
                settings.start,
                "seconds from the beginning, 0 or more",
            ));
        }
        let info = probe(&settings.tools, path)?;
        let fps = info.fps.unwrap_or(settings.fps);
        let mut source = Self {
            path: path.to_path_buf(),
            size: FrameSize::new(info.width, info.height)?,
            info,
            seq: FrameSequence::new(fps),
            settings,
            decoder: None,
            pending: None,
            pass_frames: 0,
            loop_frames: None,
            loop_offset: Duration::ZERO,
            pass_first: None,
            pass_last: Duration::ZERO,
            ended: false,
            broken: None,
            stats: DecodeStats {
                files: 1,
                ..DecodeStats::default()
            },
        };
        source.start_pass()?;
        let (pixels, info) = source.pending.as_ref().expect("a pass starts with a frame");
        source.size = FrameSize::new(info.width, info.height)?;
        source.stats.cap_bytes = (source.settings.prefetch.max(1) * pixels.len()) as u64;
        source.stats.time_to_first_frame_ms = t.elapsed().as_secs_f64() * 1e3;
        Ok(source)
    }

    /// What `ffprobe` said about the file.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Process id of the running `ffmpeg` child (none between passes or at
    /// the end).
    pub fn decoder_pid(&self) -> Option<u32> {
        self.decoder.as_ref().map(Decoder::pid)
    }

    fn error(&self, problem: VideoProblem) -> AutoGazeError {
        AutoGazeError::video(&self.path, problem)
    }

    /// Starts a pass from the start time and reads its first frame into
    /// `pending`. A pass with no frame is an error.
    fn start_pass(&mut self) -> Result<()> {
        let depth = self.settings.prefetch;
        let decoder = Decoder::spawn(&self.settings.tools, &self.path, self.settings.start, depth)?;
        self.decoder = Some(decoder);
        self.pass_frames = 0;
        self.pass_first = None;
        match self.receive()? {
            Some(first) => {
                self.pending = Some(first);
                Ok(())
            }
            None => Err(self.error(VideoProblem::NoFrames {
                detail: if self.settings.start > 0.0 {
                    format!(" from {} s on", self.settings.start)
                } else {
                    String::new()
                },
            })),
        }
    }

    /// The decoder's next frame, or `None` at a clean end of the pass.
    fn receive(&mut self) -> Result<Option<(Arc<Vec<u8>>, FrameInfo)>> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(None);
        };
        let (msg, waited) = decoder.recv();
        match msg {
            Msg::Frame { pixels, info, took } => {
                self.stats.decoded += 1;
                self.stats.decode_ms_total += took.as_secs_f64() * 1e3;
                if waited {
                    self.stats.waited += 1;
                } else {
                    self.stats.hits += 1;
                }
                Ok(Some((pixels, info)))
            }
            Msg::End { decoded, problem } => {
                let (status, errors) = decoder.finish(problem.is_some());
                self.decoder = None;
                self.end_of_pass(decoded, problem, status, errors)
                    .map(|()| None)
            }
        }
    }

    /// Judges a finished pass: clean, or the typed error of what went wrong.
    fn end_of_pass(
        &mut self,
        decoded: u64,
        problem: Option<String>,
        status: Option<std::process::ExitStatus>,
        errors: Vec<String>,
    ) -> Result<()> {
        let exit_failed = !status.is_some_and(|s| s.success());
        let reason = problem
            .clone()
            .or_else(|| errors.last().cloned())
            .unwrap_or_else(|| match status {
                Some(s) => format!("ffmpeg exited with {s}"),
                None => "ffmpeg's exit status is unknown".into(),
            });
        let failed = problem.is_some() || exit_failed || !errors.is_empty();
        if decoded == 0 {
            let detail = match (failed, self.settings.start > 0.0) {
                (true, _) => format!(" (ffmpeg: {})", last_line(&reason)),
                (false, true) => format!(" from {} s on", self.settings.start),
                (false, false) => String::new(),
            };
            return Err(self.error(VideoProblem::NoFrames { detail }));
        }
        if let Some(problem) = problem {
            return Err(self.error(VideoProblem::Decoder { reason: problem }));
        }
        let expected = self.expected_frames();
        let short = expected.is_none_or(|(e, exact)| {
            let slack = if exact { 0 } else { 1 };
            decoded + slack < e
        });
        if failed && short {
            return Err(self.error(VideoProblem::Truncated {
                decoded,
                expected: expected.map_or_else(|| "unknown".into(), |(e, _)| e.to_string()),
                reason,
            }));
        }
        self.loop_frames = Some(decoded);
        Ok(())
    }

    /// Frames a pass should give (and whether that is the container's own
    /// count), from the probe.
    fn expected_frames(&self) -> Option<(u64, bool)> {
        let frames = self.info.frames?;
        let start = self.settings.start;
        if start <= 0.0 {
            return Some((frames, self.info.frames_exact));
        }
        let skipped = (start * self.info.fps?).round() as u64;
        Some((frames.saturating_sub(skipped), false))
    }

    /// The next frame's pixels and log line, across passes.
    fn next_pixels(&mut self) -> Result<(Arc<Vec<u8>>, FrameInfo)> {
        if let Some(first) = self.pending.take() {
            return Ok(first);
        }
        if let Some(problem) = &self.broken {
            return Err(self.error(problem.clone()));
        }
        if self.ended {
            return Err(self.end_of_stream());
        }
        match self.receive() {
            Ok(Some(next)) => return Ok(next),
            Ok(None) => {}
            Err(e) => {
                if let AutoGazeError::Video { problem, .. } = &e {
                    self.broken = Some(problem.clone());
                }
                return Err(e);
            }
        }
        if !self.settings.looping {
            self.ended = true;
            return Err(self.end_of_stream());
        }
        // A loop: this pass's length moves the timestamps on.
        let first = self.pass_first.unwrap_or(Duration::ZERO);
        let step = Duration::from_secs_f64(1.0 / self.seq_fps());
        self.loop_offset += self.pass_last.saturating_sub(first) + step;
        self.start_pass()?;
        Ok(self.pending.take().expect("a pass starts with a frame"))
    }

    fn end_of_stream(&self) -> AutoGazeError {
        AutoGazeError::EndOfStream {
            source_name: self.path.display().to_string(),
            frames: self.seq.next_seq(),
        }
    }

    fn seq_fps(&self) -> f64 {
        self.info.fps.unwrap_or(self.settings.fps).clamp(1e-3, 1e6)
    }

    /// A frame's time: its presentation time from the video's start (or
    /// its place at the rate, when it has none), after the passes before.
    fn timestamp(&mut self, info: &FrameInfo) -> Duration {
        let own = match info.pts {
            Some(pts) => (pts - self.info.start_time).max(0.0),
            None => self.settings.start + self.pass_frames as f64 / self.seq_fps(),
        };
        let own = Duration::try_from_secs_f64(own).unwrap_or(Duration::ZERO);
        self.pass_first.get_or_insert(own);
        self.pass_last = own;
        self.pass_frames += 1;
        self.loop_offset + own
    }
}

impl FrameSource for VideoSource {
    fn name(&self) -> &str {
        "video"
    }

    fn size(&self) -> FrameSize {
        self.size
    }

    fn next_frame(&mut self) -> Result<Frame> {
        let (pixels, info) = self.next_pixels()?;
        let size = FrameSize::new(info.width, info.height)?;
        if size != self.size {
            return Err(AutoGazeError::MismatchedFrameSize {
                context: self.path.display().to_string(),
                index: self.pass_frames as usize,
                expected_w: self.size.width,
                expected_h: self.size.height,
                actual_w: size.width,
                actual_h: size.height,
            });
        }
        let timestamp = self.timestamp(&info);
        self.seq.frame_at(size, pixels, timestamp)
    }

    fn native_fps(&self) -> Option<f64> {
        self.info.fps
    }

    fn loop_len(&self) -> Option<u64> {
        self.loop_frames
            .or_else(|| self.expected_frames().map(|(n, _)| n))
    }

    fn pooled_bytes(&self) -> usize {
        let queued = self
            .decoder
            .as_ref()
            .map_or(0, |d| d.queued.load(Ordering::Relaxed));
        (queued + usize::from(self.pending.is_some())) * self.size.rgba_len()
    }

    fn decode_stats(&self) -> Option<DecodeStats> {
        Some(DecodeStats {
            cached_bytes: self.pooled_bytes() as u64,
            ..self.stats
        })
    }
}
