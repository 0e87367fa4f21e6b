//! Small test videos made with the system's FFmpeg: frame `i` is a flat
//! grey of [`level`]`(i)`, so decoded frames tell their own index.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use burn_autogaze::source::FfmpegTools;

/// Whether FFmpeg is here. Without it the video tests are skipped with a
/// message, except in CI (`CI` set), where that is a failure.
pub fn ffmpeg_or_skip(test: &str) -> bool {
    if FfmpegTools::from_env().available() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: ffmpeg/ffprobe are not installed, and CI must run the video tests");
    }
    eprintln!(
        "SKIPPED {test}: ffmpeg/ffprobe not found (install FFmpeg: apt-get install -y ffmpeg)"
    );
    false
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autogaze_video_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The grey level of frame `i` (well apart from its neighbours, so lossy
/// codecs keep the order readable; it repeats every 12 frames).
pub fn level(i: usize) -> u8 {
    (24 + 18 * (i % 12)) as u8
}

/// The index modulo 12 a decoded frame's grey level says.
pub fn index_of(rgba: &[u8], width: u32, height: u32) -> usize {
    let centre = ((height / 2) * width + width / 2) as usize * 4;
    let grey = rgba[centre] as i32;
    (0..12)
        .min_by_key(|&i| (level(i) as i32 - grey).abs())
        .unwrap()
}

/// Encodes `frames` flat grey frames of `width` x `height` at `rate`
/// (`"30000/1001"`, `"10"`) with `codec` arguments into `path`.
pub fn encode(path: &Path, width: u32, height: u32, rate: &str, frames: usize, codec: &[&str]) {
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s"])
        .arg(format!("{width}x{height}"))
        .args(["-r", rate, "-i", "pipe:0"])
        .args(codec)
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("ffmpeg starts");
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..frames {
        let frame = vec![level(i); (width * height * 3) as usize];
        stdin.write_all(&frame).unwrap();
    }
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "encoding {}: {status}", path.display());
}

/// H.264 in yuv420p.
pub const H264: &[&str] = &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "5"];
/// H.264 in yuv444p (odd sizes).
pub const H264_444: &[&str] = &["-c:v", "libx264", "-pix_fmt", "yuv444p"];
/// VP9, fast.
pub const VP9: &[&str] = &[
    "-c:v",
    "libvpx-vp9",
    "-deadline",
    "realtime",
    "-cpu-used",
    "8",
    "-b:v",
    "0",
    "-crf",
    "30",
];
/// FFV1 (lossless, any size).
pub const FFV1: &[&str] = &["-c:v", "ffv1"];
/// MPEG-4 part 2.
pub const MPEG4: &[&str] = &["-c:v", "mpeg4", "-q:v", "2"];

/// Runs an FFmpeg command line (after `ffmpeg -y`), which must succeed.
pub fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg starts");
    assert!(status.success(), "ffmpeg {args:?}: {status}");
}
