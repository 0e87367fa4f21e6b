//! The fuzz targets' checks, one function each: `fuzz/` drives them with
//! cargo-fuzz (`cargo xtask fuzz`), and this crate's tests replay the
//! committed seed corpora (`fuzz/corpus/<target>/`) with seeded mutations,
//! the quick smoke that `cargo xtask test` (and so CI) runs without the
//! fuzzer's instrumented build.
//!
//! Each function takes arbitrary bytes and panics only when the code under
//! test breaks a promise: a panic inside the library, a result outside its
//! documented limits, or two paths that must agree disagreeing. A typed
//! error is a pass.

use std::path::Path;
use std::time::Duration;

use burn::backend::NdArray;
use burn_autogaze::model::{AutoGazeConfig, expected_tensors, load_weights_from};
use burn_autogaze::source::{ImageSequence, StaticImage, decode_rgba};
use burn_autogaze::tensor_file::TensorFile;
use burn_autogaze::tokens::TokenLayout;
use burn_autogaze::{Frame, FrameSize, FrameSource, Preprocessor, PreprocessorConfig, limits};

// The regression gate's own modules, compiled here as they are in xtask (a
// binary crate, so there is no library to link).
#[path = "../../xtask/src/gate.rs"]
#[allow(dead_code)]
mod gate;
#[path = "../../xtask/src/matrix_data.rs"]
#[allow(dead_code)]
mod matrix_data;
#[path = "../../xtask/src/stats.rs"]
#[allow(dead_code)]
mod stats;

#[cfg(test)]
mod replay;

/// The `weights` target's model: a 4-wide, one-layer config whose weights
/// file is 4 KB (the seeds are valid files for it).
pub const MICRO_CONFIG: &str = include_str!("../../fuzz/micro_config.json");

/// `config.json` text: parsed and validated; a config that passes yields
/// its tensor list and parameter count without overflow or a huge
/// allocation.
pub fn model_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = AutoGazeConfig::from_json(text) {
        let tensors = expected_tensors(&config);
        assert!(tensors.len() < 10 * limits::MAX_MODEL_LAYERS + 64);
        assert!(config.parameters() <= limits::MAX_MODEL_PARAMETERS as u128);
        let _ = (config.vision_tokens(), config.vocab());
    }
}

/// `preprocessor_config.json` text (after two bytes that pick a small
/// frame's size), then, when it is valid and the resize stays small, the
/// frame preprocessed with it.
pub fn preprocessor_config(data: &[u8]) {
    let (w, h, text) = match data {
        [w, h, rest @ ..] => (*w as u32 % 64 + 1, *h as u32 % 64 + 1, rest),
        _ => return,
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(config) = PreprocessorConfig::from_json(text) else {
        return;
    };
    let Ok(mut pre) = Preprocessor::new(config, 8) else {
        return;
    };
    let size = FrameSize::new(w, h).expect("small size");
    let Ok(processed) = pre.processed_size(size) else {
        return;
    };
    // Keep each run fast: only small resizes are run end to end.
    let resized = pre.resized_size(size);
    if resized.width as u64 * resized.height as u64 > 1 << 16 {
        return;
    }
    let frame = Frame::new(0, w, h, vec![128u8; size.rgba_len()], Duration::ZERO).unwrap();
    let mut out = vec![0f32; 3 * 8 * 8];
    pre.model_frame_into(&frame, &mut out)
        .expect("a valid size preprocesses");
    assert!(processed.width >= 1 && processed.height >= 1);
}

/// A token layout from a config's `scales` string and token count (the
/// first four bytes), and from explicit grids: every id decodes and
/// encodes back.
pub fn token_layout(data: &[u8]) {
    let (tokens, rest) = match data {
        [a, b, c, d, rest @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]), rest),
        _ => return,
    };
    if let Ok(scales) = std::str::from_utf8(rest)
        && let Ok(layout) = TokenLayout::from_config(scales, tokens)
    {
        round_trip(&layout);
    }
    let grids: Vec<(u32, u32)> = rest
        .chunks_exact(4)
        .map(|c| {
            (
                u16::from_le_bytes([c[0], c[1]]) as u32,
                u16::from_le_bytes([c[2], c[3]]) as u32,
            )
        })
        .collect();
    if let Ok(layout) = TokenLayout::from_grids(&grids) {
        round_trip(&layout);
    }
}

fn round_trip(layout: &TokenLayout) {
    assert!(layout.tokens() <= limits::MAX_LAYOUT_TOKENS);
    for id in 0..=layout.tokens() {
        match layout.decode(id) {
            Some(cell) => {
                let back = layout.encode(cell.scale as usize, cell.row as u32, cell.col as u32);
                assert_eq!(back, Some(id));
            }
            None => assert_eq!(id, layout.pad_id()),
        }
    }
}

/// Safetensors bytes through the strict weights loader, on
/// [`MICRO_CONFIG`]: a typed error or a model, never a panic or an
/// allocation beyond what the config implies.
pub fn weights(data: &[u8]) {
    let config = AutoGazeConfig::from_json(MICRO_CONFIG).expect("micro config");
    let Ok(file) = TensorFile::from_bytes(Path::new("fuzz.safetensors"), data.to_vec()) else {
        return;
    };
    let _ = file.names();
    let _ = load_weights_from::<NdArray<f32>>(&config, &file, &Default::default());
}

/// Image bytes (PNG, JPEG) through the still-image source: decoded under
/// the limits, then served as frames; decoding the bytes and opening them
/// as a file agree.
pub fn still_image(data: &[u8]) {
    let decoded = decode_rgba(data);
    let path = scratch("still").with_extension("png");
    std::fs::write(&path, data).expect("scratch file");
    let opened = StaticImage::open(&path, 30.0);
    assert_eq!(decoded.is_ok(), opened.is_ok(), "bytes and file agree");
    if let Ok(mut source) = opened {
        let frame = source.next_frame().expect("a decoded still serves frames");
        assert_eq!(frame.rgba().len(), frame.size().rgba_len());
    }
}

/// A `meta.json` and an image directory: the bytes up to the first NUL are
/// meta.json, the rest one frame file (written twice); the sequence opens
/// or fails with a typed error, and an open one reads a loop of frames.
pub fn image_dir(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (meta, image) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let dir = scratch("image-dir");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    std::fs::write(dir.join("meta.json"), meta).expect("meta.json");
    std::fs::write(dir.join("a.png"), image).expect("frame");
    std::fs::write(dir.join("b.jpg"), image).expect("frame");
    if let Ok(mut seq) = ImageSequence::open_with(&dir, 30.0, 1 << 20, 1) {
        if let Some(fps) = seq.native_fps() {
            assert!((limits::MIN_FPS..=limits::MAX_FPS).contains(&fps));
        }
        for _ in 0..3 {
            if seq.next_frame().is_err() {
                break;
            }
        }
    }
}

/// The regression gate's baseline file: parsed and checked (a baseline
/// that compares nothing is an error), then compared with itself and
/// paired with itself: no regression.
pub fn gate_baseline(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(baseline) = gate::parse(text) else {
        return;
    };
    assert!(!baseline.cases.is_empty());
    let deltas = gate::compare(&baseline, &baseline.cases);
    for d in &deltas {
        assert!(!d.regressed(), "a baseline against itself regressed: {d:?}");
        assert!(d.p95.band <= gate::MAX_BAND && d.p95.band >= gate::MIN_BAND);
    }
    let names: Vec<&str> = baseline.cases.iter().map(|c| c.case.as_str()).collect();
    assert!(gate::common_cases(&baseline, &names).is_ok());
    let _ = gate::noise_band(&baseline.cases);
    let _ = gate::capped_note(&deltas, "hint");
}

/// The web viewer's URL query: parsed as the command line (percent
/// decoding, the browser's refusals, the limits) to settings or an error;
/// parsed settings are within the limits.
#[cfg(feature = "web")]
pub fn web_query(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(args) = bevy_burn_autogaze::cli::ViewerArgs::from_query(query) {
        let settings = args.settings();
        settings
            .pipeline
            .check_limits()
            .expect("a parsed query is within the limits");
        let _ = args.record_options();
    }
}

/// A scratch path of this process and thread (the replay runs its targets
/// on several threads; libFuzzer runs one).
fn scratch(what: &str) -> std::path::PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    std::env::temp_dir().join(format!("fuzz-{what}-{}-{thread}", std::process::id()))
}
