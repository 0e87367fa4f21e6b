//! The FFmpeg programs the `video` source drives: where they are, running
//! `ffprobe` with a time and output limit, and what it says about a file.
//!
//! Nothing is downloaded: the programs are the system's (`ffmpeg` and
//! `ffprobe` on `PATH`, or the paths in `AUTOGAZE_FFMPEG` /
//! `AUTOGAZE_FFPROBE`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::time::Duration;

use web_time::Instant;

use crate::error::{AutoGazeError, Result, VideoProblem};
use crate::limits::{MAX_VIDEO_PIXELS, MAX_VIDEO_SIDE};

/// Environment variable naming the `ffmpeg` program.
pub const FFMPEG_ENV: &str = "AUTOGAZE_FFMPEG";
/// Environment variable naming the `ffprobe` program.
pub const FFPROBE_ENV: &str = "AUTOGAZE_FFPROBE";

/// Time `ffprobe` may take on one file.
const PROBE_LIMIT: Duration = Duration::from_secs(60);
/// Bytes of `ffprobe` output read (its JSON for one file is a few KiB).
const PROBE_OUTPUT_CAP: u64 = 1 << 20;

/// The two FFmpeg programs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FfmpegTools {
    /// The decoder/encoder (`ffmpeg`).
    pub ffmpeg: PathBuf,
    /// The prober (`ffprobe`).
    pub ffprobe: PathBuf,
}

impl Default for FfmpegTools {
    fn default() -> Self {
        Self::from_env()
    }
}

impl FfmpegTools {
    /// `AUTOGAZE_FFMPEG` / `AUTOGAZE_FFPROBE` when set, otherwise `ffmpeg`
    /// and `ffprobe` on `PATH`.
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        Self {
            ffmpeg: var(FFMPEG_ENV, "ffmpeg"),
            ffprobe: var(FFPROBE_ENV, "ffprobe"),
        }
    }

    /// A command for `ffmpeg` that reads nothing from stdin and prints no
    /// banner.
    pub fn ffmpeg_command(&self) -> Command {
        let mut cmd = Command::new(&self.ffmpeg);
        cmd.args(["-hide_banner", "-nostdin", "-nostats"])
            .stdin(Stdio::null());
        cmd
    }

    /// Starts `cmd` (one of these programs), naming the program when it is
    /// not installed.
    pub fn spawn(&self, cmd: &mut Command) -> Result<Child> {
        let program = PathBuf::from(cmd.get_program());
        cmd.spawn().map_err(|e| {
            let env = if program == self.ffprobe {
                FFPROBE_ENV
            } else {
                FFMPEG_ENV
            };
            if e.kind() == std::io::ErrorKind::NotFound {
                AutoGazeError::ToolMissing {
                    program: program.display().to_string(),
                    reason: "not found".into(),
                    env,
                }
            } else {
                AutoGazeError::ToolMissing {
                    program: program.display().to_string(),
                    reason: e.to_string(),
                    env,
                }
            }
        })
    }

    /// Starts `cmd` with its stdout and stderr piped: the child and both
    /// pipes (a child without them is killed, reaped and an error).
    pub fn spawn_piped(&self, cmd: &mut Command) -> Result<(Child, ChildStdout, ChildStderr)> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.spawn(cmd)?;
        match (child.stdout.take(), child.stderr.take()) {
            (Some(stdout), Some(stderr)) => Ok((child, stdout, stderr)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(AutoGazeError::io(
                    &self.ffmpeg,
                    std::io::Error::other("no pipes to the child"),
                ))
            }
        }
    }

    /// Whether `ffmpeg` and `ffprobe` both start (`-version`).
    pub fn available(&self) -> bool {
        [&self.ffmpeg, &self.ffprobe].iter().all(|p| {
            Command::new(p)
                .arg("-version")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }
}

/// What `ffprobe` says about a video file's first video stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VideoInfo {
    /// Coded width (before any rotation FFmpeg applies on decoding).
    pub width: u32,
    /// Coded height.
    pub height: u32,
    /// Mean frame rate (`avg_frame_rate`, else `r_frame_rate`).
    pub fps: Option<f64>,
    /// Frames in the stream: the container's count, or its duration times
    /// the rate (see [`VideoInfo::frames_exact`]).
    pub frames: Option<u64>,
    /// Whether [`VideoInfo::frames`] is the container's own count.
    pub frames_exact: bool,
    /// Duration, seconds.
    pub duration: Option<f64>,
    /// Presentation time of the stream's first frame, seconds.
    pub start_time: f64,
    /// Codec name (`h264`, `vp9`, ...).
    pub codec: String,
    /// Container name (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, ...).
    pub container: String,
}

/// Reads a child's pipe to its end (at most `cap` bytes kept) on a thread.
fn drain(pipe: Option<impl Read + Send + 'static>, cap: u64) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(pipe) = pipe {
            let mut limited = pipe.take(cap);
            let _ = limited.read_to_end(&mut out);
            // Whatever is left is read and dropped, so the child never
            // blocks on a full pipe.
            let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
        }
        out
    })
}

/// The last non-empty line of `text` (FFmpeg puts its verdict there).
pub(crate) fn last_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_string()
}

/// Runs `ffprobe` on `path`: its JSON, or the video error its message means.
fn run_probe(tools: &FfmpegTools, path: &Path) -> Result<serde_json::Value> {
    let mut cmd = Command::new(&tools.ffprobe);
    cmd.args(["-v", "error", "-show_entries"])
        .arg(
            "stream=codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate,\
             nb_frames,duration,start_time:format=format_name,duration",
        )
        .args(["-of", "json"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = tools.spawn(&mut cmd)?;
    let stdout = drain(child.stdout.take(), PROBE_OUTPUT_CAP);
    let stderr = drain(child.stderr.take(), PROBE_OUTPUT_CAP);
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > PROBE_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(AutoGazeError::video(
                    path,
                    VideoProblem::NotAVideo {
                        reason: format!(
                            "ffprobe did not finish within {} s",
                            PROBE_LIMIT.as_secs()
                        ),
                    },
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(AutoGazeError::io(&tools.ffprobe, e)),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
    if !status.success() {
        return Err(AutoGazeError::video(
            path,
            VideoProblem::NotAVideo {
                reason: last_line(&stderr),
            },
        ));
    }
    serde_json::from_slice(&stdout).map_err(|e| {
        AutoGazeError::video(
            path,
            VideoProblem::Decoder {
                reason: format!("ffprobe printed JSON that does not parse: {e}"),
            },
        )
    })
}

/// A rate written `N/D` (or a plain number); `None` when not positive.
fn rate(text: Option<&str>) -> Option<f64> {
    let text = text?;
    let value = match text.split_once('/') {
        Some((n, d)) => n.parse::<f64>().ok()? / d.parse::<f64>().ok()?,
        None => text.parse::<f64>().ok()?,
    };
    (value.is_finite() && value > 0.0).then_some(value)
}

/// A number ffprobe prints as a string (`"4.000000"`, `"N/A"`).
fn number(value: &serde_json::Value, key: &str) -> Option<f64> {
    let v = value.get(key)?;
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .filter(|x: &f64| x.is_finite())
}

/// Probes `path`: its first video stream's size, rate, frame count and
/// duration. A missing file, a file that is not a video, an audio-only file
/// and frames beyond [`MAX_VIDEO_SIDE`] / [`MAX_VIDEO_PIXELS`] (limits) are
/// [`AutoGazeError::Video`] errors naming the problem.
pub fn probe(tools: &FfmpegTools, path: &Path) -> Result<VideoInfo> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AutoGazeError::video(path, VideoProblem::Missing));
        }
        Err(e) => return Err(AutoGazeError::io(path, e)),
    };
    if !meta.is_file() {
        return Err(AutoGazeError::video(
            path,
            VideoProblem::NotAVideo {
                reason: "not a regular file".into(),
            },
        ));
    }
    let json = run_probe(tools, path)?;
    let streams = json
        .get("streams")
        .and_then(|s| s.as_array())
        .cloned()
        .unwrap_or_default();
    let kind = |s: &serde_json::Value| {
        s.get("codec_type")
            .and_then(|t| t.as_str())
            .unwrap_or("unknown")
            .to_string()
    };
    let Some(video) = streams.iter().find(|s| kind(s) == "video") else {
        let kinds: Vec<String> = streams.iter().map(kind).collect();
        let streams = if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        };
        return Err(AutoGazeError::video(
            path,
            VideoProblem::NoVideoStream { streams },
        ));
    };
    let format = json.get("format").cloned().unwrap_or_default();
    let side = |key| number(video, key).map_or(0, |v| v.clamp(0.0, u32::MAX as f64) as u32);
    let (width, height) = (side("width"), side("height"));
    check_size(path, width, height)?;
    let str_of = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(|s| s.as_str())
            .unwrap_or("unknown")
            .to_string()
    };
    let fps = rate(video.get("avg_frame_rate").and_then(|v| v.as_str()))
        .or_else(|| rate(video.get("r_frame_rate").and_then(|v| v.as_str())));
    let duration = number(video, "duration").or_else(|| number(&format, "duration"));
    let counted = number(video, "nb_frames").map(|n| n.max(0.0) as u64);
    let frames = counted.or_else(|| {
        let (d, f) = (duration?, fps?);
        Some((d * f).round().max(0.0) as u64)
    });
    Ok(VideoInfo {
        width,
        height,
        fps,
        frames,
        frames_exact: counted.is_some(),
        duration,
        start_time: number(video, "start_time").unwrap_or(0.0),
        codec: str_of(video, "codec_name"),
        container: str_of(&format, "format_name"),
    })
}

/// Checks a frame size against the source's limits.
pub(crate) fn check_size(path: &Path, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(AutoGazeError::video(
            path,
            VideoProblem::Decoder {
                reason: format!("the video stream has no frame size ({width}x{height})"),
            },
        ));
    }
    if width > MAX_VIDEO_SIDE
        || height > MAX_VIDEO_SIDE
        || width as u64 * height as u64 > MAX_VIDEO_PIXELS
    {
        return Err(AutoGazeError::video(
            path,
            VideoProblem::TooLarge {
                width,
                height,
                limit: format!(
                    "sides up to {MAX_VIDEO_SIDE}, at most {MAX_VIDEO_PIXELS} pixels \
                     (limits::MAX_VIDEO_SIDE, MAX_VIDEO_PIXELS)"
                ),
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_fractions_and_non_positive_ones_are_none() {
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
        assert!(close(rate(Some("30000/1001")), 29.97002997002997));
        assert!(close(rate(Some("25/1")), 25.0));
        assert!(close(rate(Some("12.5")), 12.5));
        for bad in ["0/0", "0/1", "-5/1", "x/y", "", "N/A"] {
            assert_eq!(rate(Some(bad)), None, "{bad}");
        }
        assert_eq!(rate(None), None);
    }

    #[test]
    fn sizes_beyond_the_limits_are_typed_errors() {
        let p = Path::new("v.mp4");
        assert!(check_size(p, 7680, 4320).is_ok());
        for (w, h) in [(8193, 8), (8, 8193), (8192, 8192)] {
            match check_size(p, w, h) {
                Err(AutoGazeError::Video {
                    problem: VideoProblem::TooLarge { width, height, .. },
                    ..
                }) => assert_eq!((width, height), (w, h)),
                other => panic!("{w}x{h}: {other:?}"),
            }
        }
        assert!(check_size(p, 0, 5).is_err());
    }

    #[test]
    fn a_missing_program_is_named() {
        let tools = FfmpegTools {
            ffmpeg: "/nonexistent/ffmpeg".into(),
            ffprobe: "/nonexistent/ffprobe".into(),
        };
        assert!(!tools.available());
        let file = std::env::temp_dir().join(format!("autogaze_probe_{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let err = probe(&tools, &file).unwrap_err();
        let _ = std::fs::remove_file(&file);
        match &err {
            AutoGazeError::ToolMissing { program, env, .. } => {
                assert_eq!(
                    (program.as_str(), *env),
                    ("/nonexistent/ffprobe", FFPROBE_ENV)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().contains("apt-get install -y ffmpeg"),
            "{err}"
        );
    }
}
