//! `autogaze gaze` ([`run_gaze`], and the binary with the `cli` feature)
//! on small generated videos with random weights: the jsonl's lines and
//! fields, the composed mp4 read back by FFmpeg, masks, the summary, an
//! interrupted run, a truncated input, bad input.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use burn_autogaze::export::{GazeJob, run_gaze};
use burn_autogaze::{AutoGazeError, VideoProblem};

use crate::videos::{FFV1, H264, encode, ffmpeg_or_skip, scratch};

/// Frames (and their width) FFmpeg decodes from `path`.
fn frames_in(path: &Path) -> (u64, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = &json["streams"][0];
    let n = stream["nb_read_frames"].as_str().unwrap().parse().unwrap();
    (n, stream["width"].as_u64().unwrap() as u32)
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn job(input: &Path, out: &Path) -> GazeJob {
    GazeJob {
        input: input.to_path_buf(),
        out: out.to_path_buf(),
        ..GazeJob::default()
    }
}

#[test]
fn gaze_writes_one_line_per_frame_and_an_mp4_ffmpeg_reads_back() {
    if !ffmpeg_or_skip("gaze_writes_one_line_per_frame_and_an_mp4_ffmpeg_reads_back") {
        return;
    }
    let dir = scratch("gaze");
    let input = dir.join("clip.mp4");
    encode(&input, 66, 40, "10", 6, H264);
    let out = dir.join("out");
    let job = GazeJob {
        side_by_side: true,
        masks: true,
        ..job(&input, &out)
    };
    let mut calls = 0;
    let summary = run_gaze(&job, &AtomicBool::new(false), &mut |p| {
        calls += 1;
        assert_eq!((p.done, p.total), (calls, Some(6)));
    })
    .unwrap();
    assert_eq!((summary.frames, summary.source.as_str()), (6, "video"));
    assert_eq!(summary.input_fps, 10.0);
    let records = lines(&out.join("gaze.jsonl"));
    assert_eq!(records.len(), 6);
    let budget = (0.75f64 * 265.0).round() as usize;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["index"], i as u64);
        assert!(
            (r["pts"].as_f64().unwrap() - i as f64 / 10.0).abs() < 1e-3,
            "{r}"
        );
        assert_eq!(r["keyframe"], i == 0);
        let tokens = r["tokens"].as_array().unwrap();
        // Random weights and no task-loss gate: the whole budget, no pads.
        assert!(
            tokens.len() <= budget && tokens.len() > budget / 2,
            "{}",
            tokens.len()
        );
        assert_eq!(r["tokens_before_stop"], tokens.len() as u64);
        for t in tokens {
            for key in ["id", "scale", "grid", "row", "col", "padded"] {
                assert!(t.get(key).is_some(), "{key} in {t}");
            }
            let rect: Vec<u64> = serde_json::from_value(t["rect"].clone()).unwrap();
            assert!(rect[0] < rect[2] && rect[2] <= 66 && rect[1] < rect[3] && rect[3] <= 40);
        }
        let ratio = r["gaze_ratio"].as_f64().unwrap();
        assert!(ratio > 0.0 && ratio <= 1.0, "{ratio}");
    }
    // input | mask | output: three frames wide (66 * 3, already even).
    assert_eq!(frames_in(&out.join("interframe.mp4")), (6, 198));
    let masks = std::fs::read_dir(out.join("masks")).unwrap().count();
    assert_eq!(masks, 6);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for key in ["stages", "fps", "settings", "revision", "frames"] {
        assert!(summary.get(key).is_some(), "{key}");
    }
    assert!(
        summary["stages"]["mask_source"]["mean_ms"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_interrupted_or_damaged_run_leaves_complete_files() {
    if !ffmpeg_or_skip("an_interrupted_or_damaged_run_leaves_complete_files") {
        return;
    }
    let dir = scratch("gaze_stop");
    let input = dir.join("clip.mkv");
    encode(&input, 32, 32, "25", 40, FFV1);
    // Ctrl-C after the third frame.
    let stop = AtomicBool::new(false);
    let out = dir.join("stopped");
    let summary = run_gaze(&job(&input, &out), &stop, &mut |p| {
        if p.done == 3 {
            stop.store(true, Ordering::Relaxed);
        }
    })
    .unwrap();
    assert!(summary.interrupted);
    assert_eq!(lines(&out.join("gaze.jsonl")).len(), 3);
    assert_eq!(frames_in(&out.join("interframe.mp4")).0, 3);

    // A truncated file: its frames are written, then the error.
    let bytes = std::fs::read(&input).unwrap();
    let cut = dir.join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.join("cut");
    let err = run_gaze(&job(&cut, &out), &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            AutoGazeError::Video {
                problem: VideoProblem::Truncated { .. },
                ..
            }
        ),
        "{err}"
    );
    let done = lines(&out.join("gaze.jsonl")).len() as u64;
    assert!(done > 0 && done < 40, "{done}");
    assert_eq!(frames_in(&out.join("interframe.mp4")).0, done);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(
        summary["error"].as_str().unwrap().contains("truncated"),
        "{summary}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The installed command: images in, bad input out.
#[cfg(feature = "cli")]
#[test]
fn the_autogaze_command_reads_images_and_refuses_bad_input() {
    if !ffmpeg_or_skip("the_autogaze_command_reads_images_and_refuses_bad_input") {
        return;
    }
    let dir = scratch("gaze_cli");
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for i in 0..3u8 {
        let img = image::RgbImage::from_fn(48, 32, |x, y| {
            image::Rgb([x as u8 * 5, y as u8 * 7, i * 80])
        });
        img.save(frames.join(format!("{i:03}.png"))).unwrap();
    }
    let run = |args: &[&Path]| {
        Command::new(env!("CARGO_BIN_EXE_autogaze"))
            .arg("gaze")
            .args(args)
            .output()
            .unwrap()
    };
    let out = dir.join("out");
    let flags = [Path::new("--random-weights"), Path::new("--out"), &out];
    let ok = run(&[&[frames.as_path()][..], &flags].concat());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(lines(&out.join("gaze.jsonl")).len(), 3);
    assert_eq!(frames_in(&out.join("interframe.mp4")).0, 3);
    // One image: one frame.
    let one = frames.join("001.png");
    let ok = run(&[&[one.as_path()][..], &flags].concat());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(lines(&out.join("gaze.jsonl")).len(), 1);
    // Bad input: a typed message and a failing exit code.
    let missing = dir.join("nope.mp4");
    let bad = run(&[&[missing.as_path()][..], &flags].concat());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("nope.mp4: no such file"),
        "{stderr}"
    );
    let no_model = run(&[frames.as_path(), Path::new("--out"), &out]);
    assert_eq!(no_model.status.code(), Some(2));
    // Counts beyond their limits: refused by name before anything runs.
    for (flag, needle) in [("--horizon", "0..=1024"), ("--anyres-tiles", "0..=64")] {
        let huge = run(&[
            &[frames.as_path()][..],
            &flags,
            &[Path::new(flag), Path::new("1000000000000")],
        ]
        .concat());
        let stderr = String::from_utf8_lossy(&huge.stderr);
        assert!(
            !huge.status.success() && stderr.contains(flag) && stderr.contains(needle),
            "{flag}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_autogaze_command_takes_anyres_and_target_scales() {
    if !ffmpeg_or_skip("the_autogaze_command_takes_anyres_and_target_scales") {
        return;
    }
    let dir = scratch("gaze_tiles");
    let input = dir.join("wide.mkv");
    encode(&input, 96, 40, "10", 2, FFV1);
    let run = |extra: &[&str], out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_autogaze"))
            .arg("gaze")
            .arg(&input)
            .args(["--random-weights", "--gazing-ratio", "0.1", "--out"])
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };
    // (flags, the model setting summary.json records).
    let cases: [(&[&str], &str); 2] = [
        (&["--anyres"], "anyres_tiles"),
        (&["--target-scales", "64,128,224,448"], "target_scales"),
    ];
    for (flags, key) in cases {
        let out = dir.join(key);
        let done = run(flags, &out);
        assert!(
            done.status.success(),
            "{flags:?}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        let frames = lines(&out.join("gaze.jsonl"));
        assert_eq!(frames.len(), 2, "{flags:?}");
        // Rectangles in the frame (a cell of a tile's overhang beyond the
        // frame is empty, at its edge), some of them not empty.
        let mut inside = 0;
        for frame in &frames {
            for token in frame["tokens"].as_array().unwrap() {
                let r: Vec<u64> = token["rect"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect();
                assert!(
                    r[0] <= r[2] && r[1] <= r[3] && r[2] <= 96 && r[3] <= 40,
                    "{flags:?}: {r:?}"
                );
                inside += usize::from(r[0] < r[2] && r[1] < r[3]);
            }
        }
        assert!(inside > 0, "{flags:?}: no token inside the frame");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        let model = &summary["settings"]["model"];
        match key {
            "anyres_tiles" => assert_eq!(model["anyres_tiles"], 8),
            _ => assert_eq!(
                model["target_scales"],
                serde_json::json!([64, 128, 224, 448])
            ),
        }
    }
    // The two tiled modes exclude each other, and scales that do not tile
    // the model's grids are refused with the reason.
    let both = run(
        &["--anyres", "--target-scales", "64,128,224,448"],
        &dir.join("both"),
    );
    assert_eq!(both.status.code(), Some(2));
    let bad = run(&["--target-scales", "64,128,240,480"], &dir.join("bad"));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("target_scales"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `autogaze reference` (the parity tool; `cargo xtask gaze` wraps the same
/// call) prints a fixture case's reference ids, and fails on bad input with
/// the problem named.
#[cfg(feature = "cli")]
#[test]
fn the_reference_command_prints_the_reference_ids() {
    let model = crate::fixtures::fixtures().join("autogaze-random-k10");
    let case = model.join("cases/clip224_r075_tl070.safetensors");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_autogaze"))
            .arg("reference")
            .arg("--model-dir")
            .arg(&model)
            .args(extra)
            .output()
            .unwrap()
    };
    let case_arg = case.to_str().unwrap();
    let ok = run(&[
        "--input",
        case_arg,
        "--gazing-ratio",
        "0.75",
        "--task-loss-requirement",
        "0.7",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    let file = burn_autogaze::tensor_file::TensorFile::open(&case).unwrap();
    let reference = file.i64("gazing_pos", None).unwrap().values;
    let printed: Vec<i64> = json["gazing_pos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(printed, reference);
    let bad = run(&["--input", case_arg, "--gazing-ratio", "1.5"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("autogaze: ") && stderr.contains("gazing ratio"),
        "{stderr}"
    );
}
