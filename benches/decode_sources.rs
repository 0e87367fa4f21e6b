//! Decode cost per frame of the file sources at 720p and 1080p: `video`
//! (an H.264 mp4 decoded by an `ffmpeg` child, RGBA over a pipe) against
//! `images` (the same frames as PNG and as JPEG files, decoded by the
//! `image` crate on the prefetch thread).
//!
//! Each lane opens its source and reads every frame of a 120-frame clip
//! once, as fast as it comes, and reports wall time per frame (opening
//! included) and CPU time per frame (this process and its reaped children:
//! FFmpeg's decode and colour conversion count for `video`). Prints a
//! markdown table.
//!
//! `cargo bench -p burn_autogaze --bench decode_sources` (FFmpeg needed;
//! `DECODE_FRAMES=N` changes the clip length).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use burn_autogaze::FrameSource;
use burn_autogaze::source::{FfmpegTools, ImageSequence, VideoSettings, VideoSource};

const SIZES: [(&str, u32, u32); 2] = [("720p", 1280, 720), ("1080p", 1920, 1080)];

/// CPU time of this process and its reaped children.
fn cpu_time() -> Duration {
    #[cfg(target_os = "linux")]
    {
        let usage = |who| {
            // SAFETY: getrusage fills the zeroed struct it is given.
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(who, &mut u) };
            let tv = |t: libc::timeval| {
                Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
            };
            tv(u.ru_utime) + tv(u.ru_stime)
        };
        usage(libc::RUSAGE_SELF) + usage(libc::RUSAGE_CHILDREN)
    }
    #[cfg(not(target_os = "linux"))]
    Duration::ZERO
}

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg starts");
    assert!(status.success(), "ffmpeg {args:?}");
}

/// Reads `n` frames of `source` (opened since `t`); (wall, cpu) per
/// frame, ms, from `t` and `cpu0`.
fn read(source: &mut dyn FrameSource, n: usize, t: Instant, cpu0: Duration) -> (f64, f64) {
    for _ in 0..n {
        std::hint::black_box(source.next_frame().expect("frame"));
    }
    let wall = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    let cpu = (cpu_time() - cpu0).as_secs_f64() * 1e3 / n as f64;
    (wall, cpu)
}

fn main() {
    if !FfmpegTools::from_env().available() {
        eprintln!("decode_sources: SKIPPED (ffmpeg/ffprobe not found)");
        return;
    }
    let n: usize = std::env::var("DECODE_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let dir = std::env::temp_dir().join(format!("autogaze_decode_bench_{}", std::process::id()));
    println!("| size | source | wall ms/frame | CPU ms/frame |");
    println!("|---|---|---|---|");
    for (name, w, h) in SIZES {
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["png", "jpg"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let src = format!("testsrc2=size={w}x{h}:rate=30:duration={}", n as f64 / 30.0);
        let clip = dir.join("clip.mp4");
        let clip_s = clip.to_str().unwrap();
        ffmpeg(&[
            "-f", "lavfi", "-i", &src, "-c:v", "libx264", "-pix_fmt", "yuv420p", clip_s,
        ]);
        ffmpeg(&["-i", clip_s, dir.join("png/%05d.png").to_str().unwrap()]);
        ffmpeg(&[
            "-i",
            clip_s,
            "-q:v",
            "2",
            dir.join("jpg/%05d.jpg").to_str().unwrap(),
        ]);

        let cpu0 = cpu_time();
        let opened = Instant::now();
        let settings = VideoSettings {
            looping: false,
            ..VideoSettings::default()
        };
        let mut video = VideoSource::open_with(&clip, settings).expect("video opens");
        let (wall, _) = read(&mut video, n, opened, cpu0);
        drop(video); // reaps FFmpeg: its CPU time counts from here
        let cpu = (cpu_time() - cpu0).as_secs_f64() * 1e3 / n as f64;
        println!("| {name} | video (H.264 mp4, ffmpeg) | {wall:.2} | {cpu:.2} |");

        for (kind, sub) in [("PNG", "png"), ("JPEG q2", "jpg")] {
            let cpu0 = cpu_time();
            let opened = Instant::now();
            // A cap of 8 frames: each frame is decoded once, 4 ahead.
            let cap = 8 * w as usize * h as usize * 4;
            let path: &Path = &dir.join(sub);
            let mut images = ImageSequence::open_with(path, 30.0, cap, 4).expect("images open");
            let (wall, cpu) = read(&mut images, n, opened, cpu0);
            println!("| {name} | images ({kind}) | {wall:.2} | {cpu:.2} |");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
