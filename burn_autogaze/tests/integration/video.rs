//! The `video` source on small generated files: containers and codecs,
//! order, size, rate, timestamps, looping, a start time, the decoder
//! stopped on drop, and each bad input a typed error.

use std::path::Path;
use std::time::Duration;

use burn_autogaze::pipeline::{FramePipeline, PipelineOptions};
use burn_autogaze::source::{FfmpegTools, VideoSettings, VideoSource};
use burn_autogaze::{
    AutoGazeError, FrameSource, SourceKind, SourceOptions, VideoProblem, open_source,
};

use crate::videos::{
    FFV1, H264, H264_444, MPEG4, VP9, encode, ffmpeg, ffmpeg_or_skip, index_of, scratch,
};

fn settings(looping: bool) -> VideoSettings {
    VideoSettings {
        looping,
        ..VideoSettings::default()
    }
}

/// Every frame of a non-looping source: (index its colour says, timestamp).
fn read_all(source: &mut VideoSource) -> (Vec<usize>, Vec<Duration>, AutoGazeError) {
    let (mut order, mut times) = (Vec::new(), Vec::new());
    let size = source.size();
    loop {
        match source.next_frame() {
            Ok(frame) => {
                assert_eq!(frame.size(), size);
                order.push(index_of(frame.rgba(), size.width, size.height));
                times.push(frame.timestamp);
            }
            Err(e) => return (order, times, e),
        }
    }
}

fn problem(err: &AutoGazeError) -> &VideoProblem {
    match err {
        AutoGazeError::Video { problem, .. } => problem,
        other => panic!("expected a video error, got {other:?}"),
    }
}

#[test]
fn containers_codecs_odd_sizes_and_rates_decode_in_order() {
    if !ffmpeg_or_skip("containers_codecs_odd_sizes_and_rates_decode_in_order") {
        return;
    }
    let dir = scratch("codecs");
    /// File, width, height, rate as given, rate, codec arguments.
    type Case<'a> = (&'a str, u32, u32, &'a str, f64, &'a [&'a str]);
    let cases: [Case; 5] = [
        ("h264.mp4", 64, 48, "10", 10.0, H264),
        ("vp9.webm", 64, 48, "30000/1001", 30000.0 / 1001.0, VP9),
        ("odd.mkv", 63, 47, "25", 25.0, FFV1),
        (
            "odd444.mp4",
            65,
            33,
            "30000/1001",
            30000.0 / 1001.0,
            H264_444,
        ),
        ("mpeg4.mov", 64, 48, "24", 24.0, MPEG4),
    ];
    for (name, w, h, rate, fps, codec) in cases {
        let path = dir.join(name);
        encode(&path, w, h, rate, 12, codec);
        let mut source = VideoSource::open_with(&path, settings(false)).unwrap();
        assert_eq!(
            (source.size().width, source.size().height),
            (w, h),
            "{name}"
        );
        let native = source.native_fps().unwrap();
        assert!((native - fps).abs() < 1e-6, "{name}: {native} fps");
        assert_eq!(source.loop_len(), Some(12), "{name}: {:?}", source.info());
        let (order, times, end) = read_all(&mut source);
        assert_eq!(order, (0..12).collect::<Vec<_>>(), "{name}");
        assert!(
            matches!(end, AutoGazeError::EndOfStream { frames: 12, .. }),
            "{name}: {end}"
        );
        // Presentation timestamps: frame i at i / fps.
        for (i, t) in times.iter().enumerate() {
            let want = i as f64 / fps;
            assert!(
                (t.as_secs_f64() - want).abs() < 2e-3,
                "{name} frame {i}: {t:?}"
            );
        }
        // Ended stays ended; the decoder is gone.
        assert!(matches!(
            source.next_frame(),
            Err(AutoGazeError::EndOfStream { .. })
        ));
        assert_eq!(source.decoder_pid(), None);
        let stats = source.decode_stats().unwrap();
        assert_eq!(stats.decoded, 12, "{name}: {stats:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn loops_continue_the_timestamps_and_a_start_time_skips_ahead() {
    if !ffmpeg_or_skip("loops_continue_the_timestamps_and_a_start_time_skips_ahead") {
        return;
    }
    let dir = scratch("loop");
    let path = dir.join("clip.mkv");
    encode(&path, 32, 16, "10", 10, FFV1);
    let mut source = VideoSource::open_with(&path, settings(true)).unwrap();
    let mut last = None;
    for n in 0..25usize {
        let frame = source.next_frame().unwrap();
        assert_eq!(frame.seq, n as u64);
        assert_eq!(index_of(frame.rgba(), 32, 16), n % 10, "frame {n}");
        let t = frame.timestamp.as_secs_f64();
        assert!((t - n as f64 / 10.0).abs() < 2e-3, "frame {n}: {t}");
        assert!(last.is_none_or(|l| frame.timestamp > l));
        last = Some(frame.timestamp);
    }
    assert_eq!(source.loop_len(), Some(10));
    drop(source);

    // From 0.5 s: frames 5..=9, stamped with their own times; each loop
    // starts there again.
    let start = VideoSettings {
        start: 0.5,
        ..settings(true)
    };
    let mut source = VideoSource::open_with(&path, start).unwrap();
    for n in 0..8usize {
        let frame = source.next_frame().unwrap();
        assert_eq!(index_of(frame.rgba(), 32, 16), 5 + n % 5, "frame {n}");
        let t = frame.timestamp.as_secs_f64();
        assert!((t - (0.5 + n as f64 / 10.0)).abs() < 2e-3, "frame {n}: {t}");
    }
    drop(source);

    // Through the shared options, as every front end opens it.
    let options = SourceOptions {
        kind: SourceKind::Video,
        path: Some(path.clone()),
        looping: false,
        start: 0.8,
        ..SourceOptions::default()
    };
    let mut source = open_source(&options).unwrap();
    assert_eq!(source.name(), "video");
    assert_eq!(source.native_fps(), Some(10.0));
    source.skip(1).unwrap();
    assert_eq!(index_of(source.next_frame().unwrap().rgba(), 32, 16), 9);
    assert!(source.next_frame().is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn native_pacing_uses_the_container_rate() {
    if !ffmpeg_or_skip("native_pacing_uses_the_container_rate") {
        return;
    }
    let dir = scratch("native");
    let path = dir.join("clip.webm");
    encode(&path, 32, 32, "30000/1001", 6, VP9);
    let options = PipelineOptions {
        source: SourceOptions {
            kind: SourceKind::Video,
            path: Some(path),
            ..SourceOptions::default()
        },
        source_fps: Some(burn_autogaze::pacing::SourceRate::Native),
        ..PipelineOptions::default()
    };
    let mut pipeline = FramePipeline::new(&options).unwrap();
    for seq in 0..3 {
        assert_eq!(pipeline.step().unwrap().seq, seq);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_variable_frame_rate_file_keeps_its_presentation_times() {
    if !ffmpeg_or_skip("a_variable_frame_rate_file_keeps_its_presentation_times") {
        return;
    }
    let dir = scratch("vfr");
    let path = dir.join("vfr.mkv");
    // Ten frames: five at 10 fps, then five at 25 fps (millisecond time
    // bases throughout; `-fps_mode vfr` keeps FFmpeg from evening them).
    let setpts = "settb=1/1000,setpts='if(lt(N,5),N*0.1,0.5+(N-5)*0.04)/TB'";
    let codec = [
        "-vf",
        setpts,
        "-fps_mode",
        "vfr",
        "-enc_time_base",
        "1:1000",
        "-c:v",
        "ffv1",
    ];
    encode(&path, 48, 32, "10", 10, &codec);
    let want = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.54, 0.58, 0.62, 0.66];
    let mut source = VideoSource::open_with(&path, settings(false)).unwrap();
    let (order, times, end) = read_all(&mut source);
    assert_eq!(order, (0..10).collect::<Vec<_>>(), "every frame, in order");
    assert!(
        matches!(end, AutoGazeError::EndOfStream { frames: 10, .. }),
        "{end:?}"
    );
    for (i, (t, w)) in times.iter().zip(want).enumerate() {
        assert!(
            (t.as_secs_f64() - w).abs() < 1e-3,
            "frame {i}: {:?}, want {w} s (the times: {times:?})",
            t
        );
    }
    // The count the probe estimates (duration x the container's claimed
    // rate) gives way to the frames a pass gave.
    assert_eq!(source.loop_len(), Some(10));
    // Looping: the second pass continues after the first one's last
    // frame, keeping the same gaps.
    let mut looping = VideoSource::open_with(&path, settings(true)).unwrap();
    let stamps: Vec<f64> = (0..12)
        .map(|_| looping.next_frame().unwrap().timestamp.as_secs_f64())
        .collect();
    let pass = stamps[10] - stamps[0];
    assert!(pass > 0.66 && pass < 0.8, "{stamps:?}");
    assert!((stamps[11] - stamps[10] - 0.1).abs() < 1e-3, "{stamps:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Whether process `pid` still exists (a zombie counts).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn dropping_the_source_kills_and_reaps_ffmpeg() {
    if !ffmpeg_or_skip("dropping_the_source_kills_and_reaps_ffmpeg") || !cfg!(target_os = "linux") {
        return;
    }
    let dir = scratch("drop");
    let path = dir.join("long.mp4");
    // 60 s: far more than is read, so FFmpeg is mid-file when dropped.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=25:duration=60",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        path.to_str().unwrap(),
    ]);
    for read in [0usize, 3] {
        let mut source = VideoSource::open_with(&path, settings(true)).unwrap();
        for _ in 0..read {
            source.next_frame().unwrap();
        }
        let pid = source.decoder_pid().expect("decoding");
        // Give the decoder time to fill its queue and block on the pipe.
        std::thread::sleep(Duration::from_millis(200));
        assert!(alive(pid));
        drop(source);
        assert!(!alive(pid), "ffmpeg {pid} outlived its source");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_truncated_file_gives_its_frames_then_a_typed_error() {
    if !ffmpeg_or_skip("a_truncated_file_gives_its_frames_then_a_typed_error") {
        return;
    }
    let dir = scratch("truncated");
    let whole = dir.join("whole.mkv");
    // Intra-only and lossless: every frame that decodes is exact.
    encode(&whole, 64, 48, "25", 60, FFV1);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let mut source = VideoSource::open_with(&cut, settings(true)).unwrap();
    let (order, _, err) = read_all(&mut source);
    assert!(
        !order.is_empty() && order.len() < 60,
        "{} frames",
        order.len()
    );
    for (i, &got) in order.iter().enumerate() {
        assert_eq!(got, i % 12, "frame {i}");
    }
    match problem(&err) {
        VideoProblem::Truncated {
            decoded, expected, ..
        } => {
            assert_eq!(*decoded, order.len() as u64);
            assert_eq!(expected, "60");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("cut.mkv"), "{err}");
    // Broken stays broken, and no decoder is left running.
    assert!(matches!(
        problem(&source.next_frame().unwrap_err()),
        VideoProblem::Truncated { .. }
    ));
    assert_eq!(source.decoder_pid(), None);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_inputs_are_typed_errors_naming_the_problem() {
    if !ffmpeg_or_skip("bad_inputs_are_typed_errors_naming_the_problem") {
        return;
    }
    let dir = scratch("bad");
    let open = |path: &Path| VideoSource::open_with(path, settings(true)).unwrap_err();

    let missing = open(&dir.join("missing.mp4"));
    assert_eq!(problem(&missing), &VideoProblem::Missing);
    assert!(missing.to_string().contains("missing.mp4"), "{missing}");

    let text = dir.join("notes.mp4");
    std::fs::write(&text, "not a video at all\n").unwrap();
    let err = open(&text);
    assert!(
        matches!(problem(&err), VideoProblem::NotAVideo { .. }),
        "{err}"
    );
    let err = open(&dir);
    assert!(
        matches!(problem(&err), VideoProblem::NotAVideo { .. }),
        "{err}"
    );

    let audio = dir.join("tone.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=0.5",
        audio.to_str().unwrap(),
    ]);
    let err = open(&audio);
    assert_eq!(
        problem(&err),
        &VideoProblem::NoVideoStream {
            streams: "audio".into()
        }
    );

    // A video stream with no frames: a YUV4MPEG2 header alone.
    let empty = dir.join("empty.y4m");
    std::fs::write(&empty, "YUV4MPEG2 W64 H48 F10:1 Ip A1:1 C420jpeg\n").unwrap();
    let err = open(&empty);
    assert!(
        matches!(problem(&err), VideoProblem::NoFrames { .. }),
        "{err}"
    );

    // A start time past the end gives no frames either.
    let clip = dir.join("clip.mp4");
    encode(&clip, 32, 32, "10", 5, H264);
    let late = VideoSettings {
        start: 10.0,
        ..settings(true)
    };
    let err = VideoSource::open_with(&clip, late).unwrap_err();
    assert!(err.to_string().contains("from 10 s on"), "{err}");
    let bad_start = VideoSettings {
        start: -1.0,
        ..settings(true)
    };
    assert!(VideoSource::open_with(&clip, bad_start).is_err());

    // Beyond the size limit (8192 a side): refused before decoding.
    let wide = dir.join("wide.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=size=8200x8:duration=0.1",
        "-c:v",
        "ffv1",
        wide.to_str().unwrap(),
    ]);
    let err = open(&wide);
    assert!(
        matches!(
            problem(&err),
            VideoProblem::TooLarge {
                width: 8200,
                height: 8,
                ..
            }
        ),
        "{err}"
    );

    // FFmpeg missing: each program named.
    let real = FfmpegTools::from_env();
    for tools in [
        FfmpegTools {
            ffprobe: dir.join("no-ffprobe"),
            ..real.clone()
        },
        FfmpegTools {
            ffmpeg: dir.join("no-ffmpeg"),
            ..real.clone()
        },
    ] {
        let settings = VideoSettings {
            tools: tools.clone(),
            ..settings(true)
        };
        let err = VideoSource::open_with(&clip, settings).unwrap_err();
        match &err {
            AutoGazeError::ToolMissing { program, .. } => {
                assert!(program.contains("no-ff"), "{err}");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("apt-get install -y ffmpeg"));
    }
    let _ = std::fs::remove_dir_all(dir);
}
