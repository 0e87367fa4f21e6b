//! `camera`: a live camera, captured by an `ffmpeg` child (Video4Linux2 on
//! Linux) that passes the camera's own frames through untouched (`-c:v
//! copy`: MJPEG images, or raw YUYV / NV12), converted to RGBA on the
//! source's capture thread ([`super::pixel_format`]).
//!
//! Live frames do not wait for the reader: the capture thread keeps only
//! the newest converted frame (latest wins; frames it overwrites unseen are
//! counted as evicted), and [`FrameSource::next_frame`] takes the newest
//! frame it has not given yet, waiting for one when there is none. Frames
//! then go through the pipeline's `FrameRing` like every other source's.
//! Memory is bounded by a pool of RGBA buffers; dropping the source kills
//! and reaps the child and joins its threads.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use web_time::Instant;

use super::FrameSource;
use super::camera_device::{find_camera_in, list_modes, preferred_format, v4l2_input};
use super::ffmpeg::FfmpegTools;
use super::image_sequence::DecodeStats;
use super::pixel_format::{CameraFormat, JpegSplitter, MjpegDecoder, nv12_to_rgba, yuyv_to_rgba};
use super::sequence::FrameSequence;
use crate::error::{AutoGazeError, CameraProblem, Result};
use crate::frame::{Frame, FramePool, FrameSize};
use crate::limits::{MAX_VIDEO_PIXELS, MAX_VIDEO_SIDE};

/// How long the capture may take to give its first frame.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long a running camera may go without a frame.
const FRAME_LIMIT: Duration = Duration::from_secs(5);
/// Largest MJPEG frame read (a 4K frame at the highest quality is a few
/// MiB).
const JPEG_CAP: usize = 32 << 20;
/// RGBA buffers pooled: the newest frame, the one being converted, and
/// the frames a consumer holds (its current frame, a ring of two).
const POOL_BUFFERS: usize = 6;
/// FFmpeg error lines kept.
const ERROR_LINES: usize = 8;

/// What to capture from a camera.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraSettings {
    /// The camera's index (`/dev/videoN` on Linux).
    pub index: u32,
    /// Frame size to ask for (none: the camera's current size). The driver
    /// may give the nearest size it has; the frames have the size it gives.
    pub size: Option<FrameSize>,
    /// Frame rate to ask for (none: the camera's current rate).
    pub fps: Option<f64>,
    /// Pixel format to ask for (none: MJPEG, NV12 or YUYV, the first the
    /// camera offers).
    pub format: Option<CameraFormat>,
    /// The FFmpeg programs.
    pub tools: FfmpegTools,
}

/// An FFmpeg input that gives camera frames: the input's arguments (`-f
/// v4l2 ... -i /dev/video0`) and the output's (`-c:v copy -f mjpeg`, or an
/// encoding to one of the [`CameraFormat`]s). Any FFmpeg input can stand
/// in for a camera this way (a `lavfi` test pattern, a network stream).
#[derive(Debug, Clone, PartialEq)]
pub struct CameraInput {
    /// Names the camera in errors (`camera:0`).
    pub label: String,
    /// FFmpeg's arguments up to and including `-i INPUT`.
    pub input: Vec<OsString>,
    /// FFmpeg's output arguments before `pipe:1`.
    pub output: Vec<OsString>,
}

impl CameraInput {
    /// Camera `settings.index` of `device_dir` (`/dev`), its frames passed
    /// through as the camera sends them.
    pub fn device(settings: &CameraSettings, device_dir: &std::path::Path) -> Result<Self> {
        let label = format!("camera:{}", settings.index);
        super::camera_device::check_platform(&label)?;
        let device = find_camera_in(device_dir, settings.index)?;
        let format = match settings.format {
            Some(f) => Some(f),
            None => preferred_format(&list_modes(&settings.tools, &device)?),
        };
        let size = settings.size.map(|s| (s.width, s.height));
        Ok(Self {
            label,
            input: v4l2_input(&device, format, size, settings.fps),
            output: ["-c:v", "copy", "-f", muxer(format)]
                .map(OsString::from)
                .to_vec(),
        })
    }
}

/// The muxer that writes the camera's packets as they are.
fn muxer(format: Option<CameraFormat>) -> &'static str {
    match format {
        Some(CameraFormat::Mjpeg) => "mjpeg",
        // Raw frames; a device whose current format is MJPEG (none asked)
        // writes JPEGs through rawvideo too, and the stream line says so.
        _ => "rawvideo",
    }
}

/// The stream FFmpeg writes: its format and frame size.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamInfo {
    /// The format, or FFmpeg's `codec/pix_fmt` when it is none of ours.
    pub format: Result<CameraFormat, String>,
    pub width: u32,
    pub height: u32,
}

/// Parses FFmpeg's output stream line (`Stream #0:0: Video: rawvideo (YUY2
/// / 0x32595559), yuyv422(tv, progressive), 640x480 [SAR 1:1], ...`):
/// MJPEG by its codec, raw frames by their pixel format.
pub(crate) fn parse_stream_line(line: &str) -> Option<StreamInfo> {
    let body = line.split_once("Video: ")?.1;
    // Top-level comma fields (pixel formats carry commas in parentheses).
    let mut fields = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in body.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                fields.push(body[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(body[start..].trim());
    let word = |s: &str| {
        s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("")
            .to_string()
    };
    let codec = word(fields.first()?);
    let pix_fmt = fields.get(1).map(|f| word(f)).unwrap_or_default();
    let (width, height) = fields.iter().find_map(|f| {
        let (w, h) = f.split_whitespace().next()?.split_once('x')?;
        Some((w.parse().ok()?, h.parse().ok()?))
    })?;
    let format = match codec.as_str() {
        "mjpeg" => Some(CameraFormat::Mjpeg),
        "rawvideo" => CameraFormat::from_ffmpeg(&pix_fmt),
        _ => None,
    }
    .ok_or_else(|| format!("{codec}/{pix_fmt}"));
    Some(StreamInfo {
        format,
        width,
        height,
    })
}

/// The newest frame and the capture's counters, shared with the thread.
#[derive(Debug, Default)]
struct Latest {
    frame: Option<(Arc<Vec<u8>>, Duration, u32, u32)>,
    /// Frames converted so far (the newest one's number).
    number: u64,
    /// The number of the last frame the reader took.
    taken: u64,
    /// Frames overwritten before anyone took them.
    overwritten: u64,
    convert_ms: f64,
    /// Why the capture ended.
    ended: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    latest: Mutex<Latest>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn end(&self, reason: String) {
        self.lock().ended.get_or_insert(reason);
        self.ready.notify_all();
    }
}

/// A live camera (see the module docs).
#[derive(Debug)]
pub struct CameraSource {
    label: String,
    size: FrameSize,
    child: Child,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    errors: Arc<Mutex<VecDeque<String>>>,
    seq: FrameSequence,
    stats: DecodeStats,
}

impl CameraSource {
    /// Opens camera `settings.index` (Linux: `/dev/videoN`): a typed error
    /// when there is no camera, no camera with that index, or the capture
    /// does not start.
    pub fn open(settings: &CameraSettings) -> Result<Self> {
        let input = CameraInput::device(
            settings,
            std::path::Path::new(super::camera_device::DEVICE_DIR),
        )?;
        Self::open_input(&settings.tools, input, settings.fps.unwrap_or(30.0))
    }

    /// Starts capturing `input` and waits for its first frame (which fixes
    /// the size). `fps` is the nominal rate the source reports.
    pub fn open_input(tools: &FfmpegTools, input: CameraInput, fps: f64) -> Result<Self> {
        let opened = Instant::now();
        let mut cmd = tools.ffmpeg_command();
        cmd.args(["-loglevel", "level+info"])
            .args(&input.input)
            .args(["-map", "0:v:0", "-an", "-sn", "-dn"])
            .args(&input.output)
            .arg("pipe:1");
        let (child, stdout, stderr) = tools.spawn_piped(&mut cmd)?;
        let shared = Arc::new(Shared::default());
        let errors = Arc::new(Mutex::new(VecDeque::new()));
        let (info_tx, info_rx) = channel();
        let mut source = Self {
            label: input.label,
            size: FrameSize::new(1, 1)?,
            child,
            threads: Vec::with_capacity(2),
            shared,
            errors,
            seq: FrameSequence::new(fps.clamp(1e-3, 1e6)),
            stats: DecodeStats::default(),
        };
        let log = Arc::clone(&source.errors);
        source.spawn_thread("autogaze-camera-log", move || {
            read_log(stderr, info_tx, log)
        })?;
        let shared = Arc::clone(&source.shared);
        source.spawn_thread("autogaze-camera", move || capture(stdout, info_rx, shared))?;
        let (w, h) = source.wait_first()?;
        source.size = FrameSize::new(w, h)?;
        source.stats.time_to_first_frame_ms = opened.elapsed().as_secs_f64() * 1e3;
        source.stats.cap_bytes = (POOL_BUFFERS * source.size.rgba_len()) as u64;
        Ok(source)
    }

    fn spawn_thread(&mut self, name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map_err(|e| AutoGazeError::io("camera thread", e))?;
        self.threads.push(handle);
        Ok(())
    }

    /// The camera's name in errors.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Process id of the `ffmpeg` child.
    pub fn capture_pid(&self) -> u32 {
        self.child.id()
    }

    fn error(&self, problem: CameraProblem) -> AutoGazeError {
        AutoGazeError::camera(self.label.clone(), problem)
    }

    /// Why the capture ended, with FFmpeg's last error line.
    fn capture_error(&self, reason: &str) -> AutoGazeError {
        let errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        let reason = match errors.back() {
            Some(last) => format!("{reason}; ffmpeg: {last}"),
            None => reason.to_string(),
        };
        match reason.strip_prefix("format ") {
            Some(format) => self.error(CameraProblem::Format {
                format: format.split(';').next().unwrap_or(format).to_string(),
            }),
            None => self.error(CameraProblem::Capture { reason }),
        }
    }

    /// The first frame's size (the frame stays to be given).
    fn wait_first(&mut self) -> Result<(u32, u32)> {
        let (_, _, w, h) = self.wait_newer(START_LIMIT, false)?;
        Ok((w, h))
    }

    /// The newest frame not given yet, waiting up to `limit` for one;
    /// marked given when `take`.
    fn wait_newer(
        &mut self,
        limit: Duration,
        take: bool,
    ) -> Result<(Arc<Vec<u8>>, Duration, u32, u32)> {
        let shared = Arc::clone(&self.shared);
        let mut latest = shared.lock();
        let deadline = std::time::Instant::now() + limit;
        loop {
            if latest.number > latest.taken
                && let Some(frame) = latest.frame.clone()
            {
                self.stats.evicted = latest.overwritten;
                self.stats.decoded = latest.number;
                self.stats.decode_ms_total = latest.convert_ms;
                if take {
                    latest.taken = latest.number;
                }
                return Ok(frame);
            }
            if let Some(reason) = latest.ended.clone() {
                drop(latest);
                return Err(self.capture_error(&reason));
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(self.error(CameraProblem::Stalled {
                    seconds: limit.as_secs(),
                }));
            }
            latest = shared
                .ready
                .wait_timeout(latest, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

impl FrameSource for CameraSource {
    fn name(&self) -> &str {
        "camera"
    }

    fn size(&self) -> FrameSize {
        self.size
    }

    fn next_frame(&mut self) -> Result<Frame> {
        let (pixels, at, w, h) = self.wait_newer(FRAME_LIMIT, true)?;
        let size = FrameSize::new(w, h)?;
        if size != self.size {
            return Err(self.error(CameraProblem::Capture {
                reason: format!("the frame size changed from {} to {size}", self.size),
            }));
        }
        self.stats.hits += 1;
        self.seq.frame_at(size, pixels, at)
    }

    fn native_fps(&self) -> Option<f64> {
        None
    }

    fn pooled_bytes(&self) -> usize {
        POOL_BUFFERS * self.size.rgba_len()
    }

    fn decode_stats(&self) -> Option<DecodeStats> {
        Some(DecodeStats {
            cached_bytes: self.size.rgba_len() as u64,
            ..self.stats
        })
    }
}

impl Drop for CameraSource {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The log thread: the output stream's line goes to `info`, error lines to
/// `errors`. Ends when FFmpeg closes its stderr.
fn read_log(stderr: impl Read, info: Sender<StreamInfo>, errors: Arc<Mutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut output = false;
    let mut sent = false;
    loop {
        line.clear();
        match reader.by_ref().take(64 << 10).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        if text.contains("Output #0") {
            output = true;
        } else if output && !sent && text.contains("Stream #") {
            if let Some(stream) = parse_stream_line(&text) {
                let _ = info.send(stream);
                sent = true;
            }
        } else if ["[error]", "[fatal]", "[panic]"]
            .iter()
            .any(|t| text.contains(t))
        {
            let mut kept = errors.lock().unwrap_or_else(|p| p.into_inner());
            if kept.len() == ERROR_LINES {
                kept.pop_front();
            }
            kept.push_back(text.trim().to_string());
        }
    }
}

/// The capture thread: waits for the stream's format and size, then reads
/// and converts frames until FFmpeg's output ends.
fn capture(stdout: impl Read, info: Receiver<StreamInfo>, shared: Arc<Shared>) {
    let started = Instant::now();
    let stream = match info.recv_timeout(START_LIMIT) {
        Ok(stream) => stream,
        Err(_) => return shared.end("FFmpeg started no video output".into()),
    };
    let (w, h) = (stream.width, stream.height);
    let format = match stream.format {
        Ok(format) => format,
        Err(name) => return shared.end(format!("format {name}")),
    };
    if w == 0
        || h == 0
        || w > MAX_VIDEO_SIDE
        || h > MAX_VIDEO_SIDE
        || w as u64 * h as u64 > MAX_VIDEO_PIXELS
    {
        return shared.end(format!("{w}x{h} frames are beyond the limits"));
    }
    let mut reader = BufReader::with_capacity(1 << 20, stdout);
    let mut pool = FramePool::new(w as usize * h as usize * 4, POOL_BUFFERS);
    let splitter = JpegSplitter::new(JPEG_CAP);
    let (mut packet, mut mjpeg) = (Vec::new(), MjpegDecoder::default());
    loop {
        let read = match format.raw_frame_len(w, h) {
            Some(len) => {
                packet.resize(len, 0);
                match reader.read_exact(&mut packet) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
                    Err(e) => Err(e.to_string()),
                }
            }
            None => splitter
                .next(&mut reader, &mut packet)
                .map_err(|e| e.to_string()),
        };
        match read {
            Ok(true) => {}
            Ok(false) => return shared.end("the capture ended".into()),
            Err(e) => return shared.end(e),
        }
        let t = Instant::now();
        let mut converted = Ok(());
        let pixels = pool.fill(|rgba| {
            converted = match format {
                CameraFormat::Yuyv => yuyv_to_rgba(&packet, w, h, rgba),
                CameraFormat::Nv12 => nv12_to_rgba(&packet, w, h, rgba),
                CameraFormat::Mjpeg => mjpeg.decode(&packet, w, h, rgba),
            };
        });
        if let Err(e) = converted {
            return shared.end(e.to_string());
        }
        let mut latest = shared.lock();
        let unseen = latest.frame.is_some() && latest.taken < latest.number;
        latest.frame = Some((pixels, started.elapsed(), w, h));
        latest.number += 1;
        latest.convert_ms += t.elapsed().as_secs_f64() * 1e3;
        if unseen {
            latest.overwritten += 1;
        }
        drop(latest);
        shared.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_stream_lines_name_the_format_and_size() {
        let raw = "[info]   Stream #0:0: Video: rawvideo (YUY2 / 0x32595559), yuyv422(tv, progressive), 64x48 [SAR 1:1 DAR 4:3], q=2-31, 1474 kb/s, 30 fps, 30 tbn";
        let s = parse_stream_line(raw).unwrap();
        assert_eq!(
            (s.format, s.width, s.height),
            (Ok(CameraFormat::Yuyv), 64, 48)
        );
        let nv12 =
            "  Stream #0:0: Video: rawvideo (NV12 / 0x3231564E), nv12, 1280x720, q=2-31, 30 fps";
        assert_eq!(
            parse_stream_line(nv12).unwrap().format,
            Ok(CameraFormat::Nv12)
        );
        let mjpeg = "[info]   Stream #0:0: Video: mjpeg (Baseline), yuvj422p(pc, bt470bg/unknown/unknown), 1920x1080, q=2-31, 30 fps";
        let s = parse_stream_line(mjpeg).unwrap();
        assert_eq!(
            (s.format, s.width, s.height),
            (Ok(CameraFormat::Mjpeg), 1920, 1080)
        );
        let grey = "  Stream #0:0: Video: rawvideo (Y800 / 0x30303859), gray, 640x480, 30 fps";
        assert_eq!(
            parse_stream_line(grey).unwrap().format,
            Err("rawvideo/gray".to_string())
        );
        assert_eq!(
            parse_stream_line("[info]   Stream #0:0 -> #0:0 (copy)"),
            None
        );
    }
}
