//! The viewer binary on bad flags and files, as a tester would run it: each
//! run exits non-zero within a timeout (no hang), names the value and its
//! limit, and does not panic.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the viewer with `args`, killing it after `limit`; returns the exit
/// code and stderr. A run that outlives the limit fails the test (a hang).
fn viewer(args: &[&str], limit: Duration) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bevy_burn_autogaze"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the viewer");
    // Drained on a thread, so a chatty child never blocks on a full pipe.
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let err = reader.join().expect("stderr reader");
            return (status.code().unwrap_or(-1), err);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("viewer {args:?} still running after {limit:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_refused(args: &[&str], needles: &[&str]) {
    let (code, err) = viewer(args, Duration::from_secs(60));
    assert_ne!(code, 0, "{args:?} must fail: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {n:?} not in {err}");
    }
}

#[test]
fn flags_beyond_the_limits_are_refused_by_name() {
    for (flag, value, needle) in [
        ("--source-fps", "1e10", "MAX_FPS"),
        ("--source-fps", "1e-20", "MIN_FPS"),
        ("--size", "100000x100000", "MAX_FRAME_SIDE"),
        ("--size", "16384x16384", "MAX_FRAME_PIXELS"),
        ("--target-size", "20000x20", "MAX_FRAME_SIDE"),
        ("--frames", "1000000000000", "100000000"),
        ("--warmup-frames", "1000000000000", "100000000"),
        ("--anyres-tiles", "1000", "0..=64"),
        ("--horizon", "1000000000000", "0..=1024"),
        ("--prefetch", "1000000000000", "0..=256"),
        ("--cache-mib", "1000000000000", "0..=65536"),
        ("--timeout-s", "18446744073709551615", "604800"),
    ] {
        assert_refused(&["--headless", flag, value], &[flag, value, needle]);
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autogaze_cli_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + x as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// An 8x8 grey PNG written by hand (no encoder needed here).
fn write_png(path: &Path) {
    let raw: Vec<u8> = (0..8)
        .flat_map(|_| std::iter::once(0).chain([128u8; 24]))
        .collect();
    // zlib with one stored (uncompressed) block.
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend((raw.len() as u16).to_le_bytes());
    z.extend((!(raw.len() as u16)).to_le_bytes());
    z.extend(&raw);
    z.extend(adler32(&raw).to_be_bytes());
    let mut ihdr = 8u32.to_be_bytes().to_vec();
    ihdr.extend(8u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (name, data) in [(&b"IHDR"[..], ihdr), (b"IDAT", z), (b"IEND", Vec::new())] {
        png.extend((data.len() as u32).to_be_bytes());
        let mut chunk = name.to_vec();
        chunk.extend(&data);
        png.extend(&chunk);
        png.extend(crc32(&chunk).to_be_bytes());
    }
    std::fs::write(path, png).expect("write png");
}

/// Rates from a meta.json that once hung (1e10: a zero pacing interval) or
/// panicked (1e-20: a `Duration` overflow) now fail the run, named.
#[test]
fn meta_json_rates_beyond_the_limits_fail_the_run() {
    for fps in ["1e10", "1e-20"] {
        let dir = scratch(&format!("meta{fps}"));
        write_png(&dir.join("a.png"));
        write_png(&dir.join("b.png"));
        std::fs::write(dir.join("meta.json"), format!(r#"{{"fps": {fps}}}"#)).expect("meta");
        let images = dir.to_str().expect("utf-8 path");
        let args = [
            "--headless",
            "--source",
            "images",
            "--images-dir",
            images,
            "--source-fps",
            "native",
            "--frames",
            "2",
            "--warmup-frames",
            "0",
        ];
        assert_refused(&args, &["meta.json", fps, "MAX_FPS"]);
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}

#[test]
#[cfg(target_os = "linux")]
fn a_camera_that_is_not_there_is_named() {
    // The index past this machine's last video device node (none here).
    let last = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("video")?.parse::<u32>().ok()
        })
        .max();
    let index = last.map_or(0, |i| i + 1);
    let source = format!("camera:{index}");
    let want = match last {
        None => "no camera found".to_string(),
        Some(_) => format!("no camera with index {index}"),
    };
    assert_refused(
        &["--headless", "--frames", "2", "--source", &source],
        &[&source, &want],
    );
    assert_refused(
        &["--headless", "--source", "camera", "--camera-fps", "1e10"],
        &["camera fps", "MAX_FPS"],
    );
}
