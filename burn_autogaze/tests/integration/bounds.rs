//! Bad input from files, as a tester would feed it: every case a typed
//! error naming the value and its limit, no panic, nothing large allocated.

use std::path::{Path, PathBuf};

use burn_autogaze::model::AutoGazeConfig;
use burn_autogaze::source::{ImageSequence, StaticImage, decode_rgba};
use burn_autogaze::tensor_file::TensorFile;
use burn_autogaze::{AutoGazeError, PreprocessorConfig};

use crate::fixtures::fixtures;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autogaze_bounds_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn expect_limit<T: std::fmt::Debug>(result: burn_autogaze::Result<T>, needles: &[&str]) {
    match result {
        Err(e @ AutoGazeError::Limit { .. }) => {
            let text = e.to_string();
            assert!(needles.iter().all(|n| text.contains(n)), "{text}");
        }
        other => panic!("expected a limit naming {needles:?}, got {other:?}"),
    }
}

/// CRC-32 (IEEE) of PNG chunks, for hand-made headers.
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

/// A PNG claiming `width x height` RGBA8 with no pixel data.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend(width.to_be_bytes());
    chunk.extend(height.to_be_bytes());
    chunk.extend([8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&chunk);
    png.extend(crc32(&chunk).to_be_bytes());
    // The decoder reads up to the first image data before it reports a size.
    for name in [&b"IDAT"[..], b"IEND"] {
        png.extend(0u32.to_be_bytes());
        png.extend(name);
        png.extend(crc32(name).to_be_bytes());
    }
    png
}

#[test]
fn image_headers_beyond_the_frame_limits_are_refused_before_decoding() {
    expect_limit(
        decode_rgba(&png_header(100_000, 100_000)),
        &["100000x100000", "16384"],
    );
    expect_limit(
        decode_rgba(&png_header(16_000, 16_000)),
        &["16000x16000", "MAX_FRAME_PIXELS"],
    );
    let dir = scratch("image");
    let path = dir.join("huge.png");
    std::fs::write(&path, png_header(60_000, 2)).expect("write");
    let err = StaticImage::open(&path, 30.0)
        .expect_err("huge")
        .to_string();
    assert!(err.contains("huge.png") && err.contains("60000x2"), "{err}");
    std::fs::remove_dir_all(&dir).expect("clean");
}

#[cfg(unix)]
#[test]
fn devices_are_never_read_as_files() {
    let zero = Path::new("/dev/zero");
    expect_limit(
        StaticImage::open(zero, 30.0),
        &["/dev/zero", "regular file"],
    );
    expect_limit(TensorFile::open(zero), &["/dev/zero", "regular file"]);
    expect_limit(PreprocessorConfig::from_file(zero), &["regular file"]);
    expect_limit(AutoGazeConfig::from_file(zero), &["regular file"]);
}

#[test]
fn meta_json_rates_beyond_the_limits_are_named() {
    let dir = scratch("meta");
    image::RgbImage::new(4, 4)
        .save(dir.join("a.png"))
        .expect("save");
    for fps in ["1e-20", "1e10", "0.0000001"] {
        std::fs::write(dir.join("meta.json"), format!(r#"{{"fps": {fps}}}"#)).expect("write");
        let result = ImageSequence::open(&dir, 30.0, 1 << 20).map(|s| s.len());
        expect_limit(result, &["meta.json", "MAX_FPS"]);
    }
    // A meta.json beyond the JSON cap is refused unread.
    let big = vec![b' '; (burn_autogaze::limits::MAX_JSON_FILE_BYTES + 1) as usize];
    std::fs::write(dir.join("meta.json"), big).expect("write");
    let result = ImageSequence::open(&dir, 30.0, 1 << 20).map(|s| s.len());
    expect_limit(result, &["meta.json", "MAX_JSON_FILE_BYTES"]);
    std::fs::remove_dir_all(&dir).expect("clean");
}

/// A model directory whose config asks for 10^12 layers fails on the
/// config, before the tensor list is built or the weights are read.
#[test]
fn a_config_with_a_trillion_layers_fails_before_the_weights() {
    let dir = scratch("layers");
    let tiny = fixtures().join("autogaze-tiny");
    let text = std::fs::read_to_string(tiny.join("config.json")).expect("tiny config");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("json");
    json["gaze_model_config"]["gaze_decoder_config"]["num_hidden_layers"] =
        serde_json::json!(1_000_000_000_000u64);
    std::fs::write(dir.join("config.json"), json.to_string()).expect("write");
    std::fs::copy(
        tiny.join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .expect("copy");
    let result = burn_autogaze::model::AutoGaze::<burn::backend::NdArray<f32>>::load(
        &dir,
        &Default::default(),
    )
    .map(|_| ());
    expect_limit(
        result,
        &["num_hidden_layers", "1000000000000", "MAX_MODEL_LAYERS"],
    );
    std::fs::remove_dir_all(&dir).expect("clean");
}

/// A horizon beyond `MAX_HORIZON` (frames of KV cache) is refused by name
/// wherever it enters: the model options, a pipeline built from them, and
/// the model source itself (before any weights are made).
#[test]
fn horizons_beyond_the_limit_are_refused_by_name() {
    use burn_autogaze::limits::MAX_HORIZON;
    use burn_autogaze::mask_source::{MaskSourceKind, ModelOptions};
    use burn_autogaze::pipeline::{FramePipeline, PipelineOptions};
    let huge = ModelOptions {
        horizon: 1_000_000_000_000,
        ..ModelOptions::default()
    };
    expect_limit(
        huge.check_limits(),
        &["--horizon", "1000000000000", "MAX_HORIZON"],
    );
    let just_over = ModelOptions {
        horizon: MAX_HORIZON + 1,
        ..ModelOptions::default()
    };
    expect_limit(just_over.check_limits(), &["1025", "at most 1024"]);
    for horizon in [0, MAX_HORIZON] {
        let ok = ModelOptions {
            horizon,
            ..ModelOptions::default()
        };
        assert!(ok.check_limits().is_ok(), "horizon {horizon}");
    }
    let source = MaskSourceKind::Autogaze
        .build(Default::default(), &huge)
        .map(|_| ());
    expect_limit(source, &["--horizon", "MAX_HORIZON"]);
    let options = PipelineOptions {
        mask_source: MaskSourceKind::Autogaze,
        model: huge,
        ..PipelineOptions::default()
    };
    expect_limit(
        options.check_limits(),
        &["--horizon", "1000000000000", "MAX_HORIZON"],
    );
    expect_limit(
        FramePipeline::new(&options).map(|_| ()),
        &["--horizon", "MAX_HORIZON"],
    );
}
