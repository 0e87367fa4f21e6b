//! One decoding pass of the `video` source: an `ffmpeg` child that writes
//! raw RGBA frames to a pipe, a thread that reads them into a bounded
//! channel (the frames decoded ahead), and a thread that reads FFmpeg's log
//! for each frame's presentation time and size (the `showinfo` filter) and
//! its error lines.
//!
//! Dropping a [`Decoder`] kills and reaps the child and joins both threads:
//! no process outlives its source.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use web_time::Instant;

use super::ffmpeg::FfmpegTools;
use crate::error::{AutoGazeError, Result};
use crate::frame::FramePool;
use crate::limits::{MAX_VIDEO_PIXELS, MAX_VIDEO_SIDE};

/// FFmpeg error lines kept (the last ones).
const ERROR_LINES: usize = 8;
/// Longest log line read whole (longer ones are cut).
const LINE_CAP: u64 = 64 << 10;
/// Pooled frame buffers beyond the queue's depth: the one being read and
/// the frames a consumer holds (its current frame, a ring of two).
const POOL_SPARE: usize = 4;
/// Pipe buffer asked for FFmpeg's output (Linux; fewer wake-ups a frame
/// than the default 64 KiB).
#[cfg(target_os = "linux")]
const PIPE_BYTES: libc::c_int = 1 << 20;

/// What the log says about one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FrameInfo {
    /// Presentation time, seconds (`None`: the frame has none).
    pub pts: Option<f64>,
    /// Width of the frame FFmpeg writes.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// What the reading thread hands over.
#[derive(Debug)]
pub(crate) enum Msg {
    /// One frame: RGBA pixels, its log line, and how long the reader
    /// waited for its bytes (FFmpeg's decode time when it is the
    /// bottleneck).
    Frame {
        pixels: Arc<Vec<u8>>,
        info: FrameInfo,
        took: Duration,
    },
    /// The pass is over after `decoded` frames; `problem` is what the
    /// reader found wrong with FFmpeg's output, if anything.
    End {
        decoded: u64,
        problem: Option<String>,
    },
}

/// Parses a `showinfo` frame line (`... n:   3 pts:  3072 pts_time:0.3 ...
/// s:64x48 ...`).
pub(crate) fn parse_showinfo(line: &str) -> Option<FrameInfo> {
    if !line.contains("showinfo") || !line.contains(" n:") {
        return None;
    }
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|token| token.strip_prefix(key))
    };
    let pts = field("pts_time:").and_then(|v| v.parse::<f64>().ok().filter(|t| t.is_finite()));
    let (w, h) = field("s:")?.split_once('x')?;
    Some(FrameInfo {
        pts,
        width: w.parse().ok()?,
        height: h.parse().ok()?,
    })
}

/// Whether a log line (printed with `-loglevel level+...`) is an error.
fn is_error_line(line: &str) -> bool {
    ["[error]", "[fatal]", "[panic]"]
        .iter()
        .any(|tag| line.contains(tag))
}

/// The log thread: frame lines go to `infos`, error lines to `errors` (the
/// last [`ERROR_LINES`]). Ends when FFmpeg closes its stderr.
fn read_log(stderr: impl Read, infos: Sender<FrameInfo>, errors: Arc<Mutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.by_ref().take(LINE_CAP).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(info) = parse_showinfo(&text) {
            // A closed channel: the reader is gone; keep draining the log
            // so FFmpeg never blocks on it.
            let _ = infos.send(info);
        } else if is_error_line(&text) {
            let mut kept = errors.lock().unwrap_or_else(|p| p.into_inner());
            if kept.len() == ERROR_LINES {
                kept.pop_front();
            }
            kept.push_back(text.trim().to_string());
        }
    }
}

/// The reading thread: for each frame line, reads that frame's bytes from
/// FFmpeg's stdout and queues it; ends with [`Msg::End`].
fn read_frames(
    mut stdout: impl Read,
    infos: Receiver<FrameInfo>,
    frames: SyncSender<Msg>,
    depth: usize,
    queued: Arc<AtomicUsize>,
) {
    // Buffers come back once the frames handed out are dropped.
    let mut pool: Option<FramePool> = None;
    let mut decoded = 0u64;
    let mut first: Option<(u32, u32)> = None;
    let problem = loop {
        let Ok(info) = infos.recv() else {
            // The log is closed: FFmpeg is done. Nothing may be left.
            let mut byte = [0u8; 1];
            break match stdout.read(&mut byte) {
                Ok(0) | Err(_) => None,
                Ok(_) => Some("FFmpeg wrote frame data without a frame line".to_string()),
            };
        };
        let (w, h) = (info.width, info.height);
        if *first.get_or_insert((w, h)) != (w, h) {
            let (fw, fh) = first.unwrap_or((w, h));
            break Some(format!(
                "the frame size changed from {fw}x{fh} to {w}x{h} at frame {decoded}"
            ));
        }
        if w == 0
            || h == 0
            || w > MAX_VIDEO_SIDE
            || h > MAX_VIDEO_SIDE
            || w as u64 * h as u64 > MAX_VIDEO_PIXELS
        {
            break Some(format!("FFmpeg gives {w}x{h} frames, beyond the limits"));
        }
        let t = Instant::now();
        let len = w as usize * h as usize * 4;
        let pool = pool.get_or_insert_with(|| FramePool::new(len, depth + POOL_SPARE));
        let mut read = Ok(());
        let pixels = pool.fill(|buf| read = stdout.read_exact(buf));
        if let Err(e) = read {
            break Some(format!("FFmpeg's output ended inside frame {decoded}: {e}"));
        }
        let took = t.elapsed();
        queued.fetch_add(1, Ordering::Relaxed);
        if frames.send(Msg::Frame { pixels, info, took }).is_err() {
            return; // the source is gone
        }
        decoded += 1;
    };
    let _ = frames.send(Msg::End { decoded, problem });
}

/// One running `ffmpeg` pass over a file.
#[derive(Debug)]
pub(crate) struct Decoder {
    child: Child,
    frames: Option<Receiver<Msg>>,
    threads: Vec<JoinHandle<()>>,
    errors: Arc<Mutex<VecDeque<String>>>,
    /// Frames queued in the channel (decoded ahead, not yet taken).
    pub queued: Arc<AtomicUsize>,
}

impl Decoder {
    /// Starts `ffmpeg` on `path` from `start` seconds, decoding up to
    /// `depth` frames ahead of the reader.
    pub fn spawn(tools: &FfmpegTools, path: &Path, start: f64, depth: usize) -> Result<Self> {
        let mut cmd = tools.ffmpeg_command();
        cmd.args(["-loglevel", "level+info"]);
        if start > 0.0 {
            cmd.arg("-ss").arg(format!("{start}"));
        }
        cmd.arg("-copyts")
            .arg("-i")
            .arg(path)
            .args(["-map", "0:v:0", "-an", "-sn", "-dn"])
            .args(["-vf", "format=rgba,showinfo=checksum=0"])
            .args(["-fps_mode", "passthrough", "-f", "rawvideo", "pipe:1"]);
        let (child, stdout, stderr) = tools.spawn_piped(&mut cmd)?;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: F_SETPIPE_SZ on a pipe this process owns; a refusal
            // (a lower system limit) leaves the default size.
            unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) };
        }
        let errors = Arc::new(Mutex::new(VecDeque::new()));
        let queued = Arc::new(AtomicUsize::new(0));
        let (info_tx, info_rx) = channel();
        let (frame_tx, frame_rx) = sync_channel(depth);
        let mut threads = Vec::with_capacity(2);
        let spawned = (|| {
            let log = Arc::clone(&errors);
            threads.push(
                std::thread::Builder::new()
                    .name("autogaze-ffmpeg-log".into())
                    .spawn(move || read_log(stderr, info_tx, log))?,
            );
            let q = Arc::clone(&queued);
            threads.push(
                std::thread::Builder::new()
                    .name("autogaze-video-decode".into())
                    .spawn(move || read_frames(stdout, info_rx, frame_tx, depth, q))?,
            );
            Ok::<_, std::io::Error>(())
        })();
        let decoder = Self {
            child,
            frames: Some(frame_rx),
            threads,
            errors,
            queued,
        };
        // On failure, dropping the decoder stops what was started.
        spawned.map_err(|e| AutoGazeError::io("video decode thread", e))?;
        Ok(decoder)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next message, and whether it had to be waited for.
    pub fn recv(&self) -> (Msg, bool) {
        let Some(rx) = &self.frames else {
            return (
                Msg::End {
                    decoded: 0,
                    problem: Some("the decoder is closed".into()),
                },
                false,
            );
        };
        let gone = || Msg::End {
            decoded: 0,
            problem: Some("the decode thread stopped".into()),
        };
        let (msg, waited) = match rx.try_recv() {
            Ok(msg) => (msg, false),
            Err(_) => (rx.recv().unwrap_or_else(|_| gone()), true),
        };
        if matches!(msg, Msg::Frame { .. }) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        (msg, waited)
    }

    /// After [`Msg::End`]: FFmpeg's exit status and its last error lines.
    /// A clean end means FFmpeg has closed its output and is exiting, so
    /// this does not block for long; after a `problem` the child is killed
    /// first (it may be blocked writing).
    pub fn finish(&mut self, problem: bool) -> (Option<ExitStatus>, Vec<String>) {
        if problem {
            let _ = self.child.kill();
        }
        let status = self.child.wait().ok();
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        (status, errors)
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // Kill (closing the pipes ends both threads' reads), reap, and
        // close the channel (ending a reader blocked on a full queue).
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.frames = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn showinfo_lines_give_the_time_and_size_and_others_are_ignored() {
        let line = "[Parsed_showinfo_1 @ 0x55] [info] n:   3 pts:   3072 pts_time:0.3     \
                    pos:  48 fmt:rgba sar:1/1 s:64x48 i:P iskey:0 type:P";
        assert_eq!(
            parse_showinfo(line),
            Some(FrameInfo {
                pts: Some(0.3),
                width: 64,
                height: 48
            })
        );
        let nopts = "[Parsed_showinfo_1 @ 0x5] [info] n:   0 pts:NOPTS pts_time:NOPTS s:2x2";
        assert_eq!(parse_showinfo(nopts).unwrap().pts, None);
        for other in [
            "[Parsed_showinfo_1 @ 0x55] [info] config in time_base: 1/10240, frame_rate: 10/1",
            "[matroska,webm @ 0x5] [error] File ended prematurely",
            "",
        ] {
            assert_eq!(parse_showinfo(other), None, "{other}");
        }
        assert!(is_error_line(
            "[matroska,webm @ 0x5] [error] File ended prematurely"
        ));
        assert!(!is_error_line(
            "[h264 @ 0x5] [warning] deprecated pixel format"
        ));
    }
}
