//! The `camera` source (feature `camera`) without a camera: FFmpeg test
//! patterns stand in for one in each pixel format the source converts
//! (YUYV, NV12, MJPEG), through the same capture thread; the typed errors
//! for no camera, an index that does not exist, a device that does not
//! capture and a format the source does not convert; the capture stopped
//! on drop.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use burn_autogaze::source::{
    CameraFormat, CameraInput, CameraOptions, CameraSettings, CameraSource, DEVICE_DIR,
    FfmpegTools, device_nodes,
};
use burn_autogaze::{
    AutoGazeError, CameraProblem, FrameSource, SourceKind, SourceOptions, open_source,
};

use crate::videos::{ffmpeg_or_skip, scratch};

/// A 64x48 test pattern of one colour at 30 fps, written as `output`.
fn pattern(rgb: &str, output: &[&str]) -> CameraInput {
    let input = format!("color=c=0x{rgb}:size=64x48:rate=30");
    CameraInput {
        label: "pattern".into(),
        input: ["-re", "-f", "lavfi", "-i", &input]
            .map(OsString::from)
            .to_vec(),
        output: output.iter().map(OsString::from).collect(),
    }
}

fn camera_problem(err: &AutoGazeError) -> &CameraProblem {
    match err {
        AutoGazeError::Camera { problem, .. } => problem,
        other => panic!("expected a camera error, got {other:?}"),
    }
}

#[test]
fn test_patterns_in_each_pixel_format_arrive_as_rgba() {
    if !ffmpeg_or_skip("test_patterns_in_each_pixel_format_arrive_as_rgba") {
        return;
    }
    let cases: [(CameraFormat, &[&str]); 3] = [
        (
            CameraFormat::Yuyv,
            &["-pix_fmt", "yuyv422", "-c:v", "rawvideo", "-f", "rawvideo"],
        ),
        (
            CameraFormat::Nv12,
            &["-pix_fmt", "nv12", "-c:v", "rawvideo", "-f", "rawvideo"],
        ),
        (
            CameraFormat::Mjpeg,
            &["-c:v", "mjpeg", "-q:v", "2", "-f", "mjpeg"],
        ),
    ];
    for (format, output) in cases {
        let tools = FfmpegTools::from_env();
        let mut camera = CameraSource::open_input(&tools, pattern("C83C5A", output), 30.0)
            .unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!((camera.size().width, camera.size().height), (64, 48));
        let mut last = None;
        for seq in 0..4 {
            let frame = camera.next_frame().unwrap();
            assert_eq!(frame.seq, seq, "{format}");
            let px = &frame.rgba()[(24 * 64 + 32) * 4..][..4];
            let want = [200, 60, 90, 255];
            assert!(
                px.iter().zip(want).all(|(&a, b)| (a as i32 - b).abs() <= 6),
                "{format}: {px:?} vs {want:?}"
            );
            if let Some(last) = last {
                assert!(frame.timestamp > last, "{format}: timestamps grow");
            }
            last = Some(frame.timestamp);
        }
        let stats = camera.decode_stats().unwrap();
        assert!(stats.decoded >= 4 && stats.hits == 4, "{format}: {stats:?}");
    }
}

#[test]
fn a_slow_reader_gets_the_newest_frame_and_the_rest_are_counted() {
    if !ffmpeg_or_skip("a_slow_reader_gets_the_newest_frame_and_the_rest_are_counted") {
        return;
    }
    let raw = ["-pix_fmt", "yuyv422", "-c:v", "rawvideo", "-f", "rawvideo"];
    let mut camera =
        CameraSource::open_input(&FfmpegTools::from_env(), pattern("808080", &raw), 30.0).unwrap();
    camera.next_frame().unwrap();
    // 30 fps for 400 ms: about 12 frames arrive; one is given.
    std::thread::sleep(Duration::from_millis(400));
    let before = camera.decode_stats().unwrap();
    let frame = camera.next_frame().unwrap();
    assert_eq!(frame.seq, 1);
    let after = camera.decode_stats().unwrap();
    assert!(
        after.evicted >= 5,
        "overwritten unseen: {after:?} (before {before:?})"
    );
    assert!(after.decoded >= after.evicted + 2, "{after:?}");
}

#[test]
fn dropping_the_camera_stops_ffmpeg() {
    if !ffmpeg_or_skip("dropping_the_camera_stops_ffmpeg") || !cfg!(target_os = "linux") {
        return;
    }
    let raw = ["-pix_fmt", "nv12", "-c:v", "rawvideo", "-f", "rawvideo"];
    let camera =
        CameraSource::open_input(&FfmpegTools::from_env(), pattern("101010", &raw), 30.0).unwrap();
    let pid = camera.capture_pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(camera);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "ffmpeg {pid} outlived the camera"
    );
}

#[test]
fn no_camera_or_a_missing_index_is_a_typed_error() {
    let nodes = device_nodes(Path::new(DEVICE_DIR));
    // This machine's cameras, whatever they are: none gives NoCamera, some
    // give NoSuchIndex for the index past the last.
    let index = nodes.last().map_or(0, |(i, _)| i + 1);
    let options = SourceOptions {
        kind: SourceKind::Camera,
        camera: CameraOptions {
            index,
            ..CameraOptions::default()
        },
        ..SourceOptions::default()
    };
    let err = open_source(&options).err().expect("no such camera");
    match (nodes.is_empty(), camera_problem(&err)) {
        (true, CameraProblem::NoCamera { looked }) => assert!(looked.contains("/dev"), "{looked}"),
        (false, CameraProblem::NoSuchIndex { index: i, .. }) => assert_eq!(*i, index),
        (_, other) => panic!("{} nodes: {other:?}", nodes.len()),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("camera camera:{index}")),
        "{err}"
    );
}

#[test]
fn a_device_that_does_not_capture_is_a_typed_error() {
    if !ffmpeg_or_skip("a_device_that_does_not_capture_is_a_typed_error") {
        return;
    }
    let dir = scratch("camera_fake");
    std::fs::write(dir.join("video0"), b"not a device").unwrap();
    let settings = CameraSettings {
        format: Some(CameraFormat::Yuyv),
        ..CameraSettings::default()
    };
    let input = CameraInput::device(&settings, &dir).unwrap();
    let t = std::time::Instant::now();
    let err = CameraSource::open_input(&settings.tools, input, 30.0).unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    match camera_problem(&err) {
        CameraProblem::Capture { reason } => assert!(reason.contains("ffmpeg"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_pixel_format_the_source_does_not_convert_is_named() {
    if !ffmpeg_or_skip("a_pixel_format_the_source_does_not_convert_is_named") {
        return;
    }
    let grey = ["-pix_fmt", "gray", "-c:v", "rawvideo", "-f", "rawvideo"];
    let err = CameraSource::open_input(&FfmpegTools::from_env(), pattern("404040", &grey), 30.0)
        .unwrap_err();
    match camera_problem(&err) {
        CameraProblem::Format { format } => assert_eq!(format, "rawvideo/gray"),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("--camera-format"), "{err}");
}

#[test]
fn the_autogaze_command_lists_cameras_and_names_a_missing_one() {
    let autogaze = || std::process::Command::new(env!("CARGO_BIN_EXE_autogaze"));
    let listed = autogaze().arg("--list-cameras").output().unwrap();
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let nodes = device_nodes(Path::new(DEVICE_DIR));
    if nodes.is_empty() {
        assert!(stdout.starts_with("no camera found"), "{stdout}");
    } else {
        assert!(stdout.contains("camera:"), "{stdout}");
    }
    let index = nodes.last().map_or(0, |(i, _)| i + 1);
    let dir = scratch("camera_cli");
    let run = autogaze()
        .args([
            "gaze",
            &format!("camera:{index}"),
            "--random-weights",
            "--frames",
            "2",
            "--out",
        ])
        .arg(dir.join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let want = if nodes.is_empty() {
        "no camera found".to_string()
    } else {
        format!("no camera with index {index}")
    };
    assert!(!run.status.success() && stderr.contains(&want), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
