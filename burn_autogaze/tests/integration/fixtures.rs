//! Tests against files: the reference fixtures (preprocessing parity), the
//! real-video frames in `../shared`, and image sources on bad input.
//!
//! Fixture root: `$AUTOGAZE_FIXTURES` or `<workspace>/fixtures`.
//! Real-video frames: `$AUTOGAZE_VIDEO_DIR` or
//! `<workspace>/../shared/fixtures/video/example_input`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn_autogaze::preprocess::TorchBicubic;
use burn_autogaze::source::{ImageSequence, StaticImage};
use burn_autogaze::tensor_file::TensorFile;
use burn_autogaze::{AutoGazeError, Frame, FrameSource, Preprocessor, PreprocessorConfig};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixtures() -> PathBuf {
    std::env::var_os("AUTOGAZE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("fixtures"))
}

fn video_dir() -> PathBuf {
    std::env::var_os("AUTOGAZE_VIDEO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/fixtures/video/example_input"))
}

fn case(name: &str) -> TensorFile {
    let path = fixtures()
        .join("autogaze-random-k10/cases")
        .join(format!("{name}.safetensors"));
    TensorFile::open(&path)
        .unwrap_or_else(|e| panic!("fixture missing ({e}); set AUTOGAZE_FIXTURES"))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn processor() -> Preprocessor {
    let cfg = PreprocessorConfig::from_file(
        &fixtures().join("autogaze-random-k10/preprocessor_config.json"),
    )
    .expect("preprocessor_config.json");
    Preprocessor::new(cfg, 224).expect("valid processor")
}

fn rgba_frames(file: &TensorFile) -> Vec<Frame> {
    let rgba = file.u8("rgba_u8", None).expect("rgba_u8");
    let (t, h, w) = (rgba.shape[0], rgba.shape[1], rgba.shape[2]);
    let n = h * w * 4;
    (0..t)
        .map(|i| {
            Frame::new(
                i as u64,
                w as u32,
                h as u32,
                rgba.values[i * n..(i + 1) * n].to_vec(),
                Duration::ZERO,
            )
            .expect("frame")
        })
        .collect()
}

/// `video_rgba_r030`: raw 448x448 RGBA -> processor output `video` (PIL
/// bilinear with antialiasing, rescale, ImageNet normalisation).
#[test]
fn processor_matches_reference_video_rgba_r030() {
    let file = case("video_rgba_r030");
    let video = file
        .f32("video", Some(&[1, 4, 3, 224, 224]))
        .expect("video");
    let frames = rgba_frames(&file);
    let mut p = processor();
    let plane = 3 * 224 * 224;
    let mut worst = 0.0f32;
    let mut differing = 0usize;
    for (t, frame) in frames.iter().enumerate() {
        let (ours, size) = p.process_frame(frame).expect("process");
        assert_eq!((size.width, size.height), (224, 224));
        let reference = &video.values[t * plane..(t + 1) * plane];
        worst = worst.max(max_abs_diff(ours, reference));
        differing += ours.iter().zip(reference).filter(|(a, b)| a != b).count();
    }
    println!(
        "video_rgba_r030 processor parity: max abs error {worst:e} (tolerance 6e-2, PIL-exact goal 0), {differing} of {} values differ",
        video.values.len()
    );
    assert!(worst <= 6e-2, "max abs error {worst}");
    // The model-side resize of a 224x224 input is the identity.
    let model = file
        .f32("model_input_224", Some(&[1, 4, 3, 224, 224]))
        .expect("model_input_224");
    let input = p.clip(&frames).expect("clip");
    let err = max_abs_diff(input.data(), &model.values);
    println!("video_rgba_r030 full preprocessing vs model_input_224: max abs error {err:e}");
    assert!(err <= 6e-2);
}

/// `clip128x320_r010_bicubic`: the model's bicubic squash of `video`
/// (upsampling H, downsampling W) must match `model_input_224`.
#[test]
fn bicubic_matches_reference_clip128x320() {
    let file = case("clip128x320_r010_bicubic");
    let video = file
        .f32("video", Some(&[1, 1, 3, 128, 320]))
        .expect("video");
    let reference = file
        .f32("model_input_224", Some(&[1, 1, 3, 224, 224]))
        .expect("model_input_224");
    let mut plan = TorchBicubic::new(320, 128, 224, 224);
    let mut out = vec![0.0; 3 * 224 * 224];
    plan.run(&video.values, 3, &mut out);
    let err = max_abs_diff(&out, &reference.values);
    println!("clip128x320_r010_bicubic bicubic parity: max abs error {err:e} (tolerance 1e-4)");
    assert!(err <= 1e-4, "max abs error {err}");
}

/// The shared real-video PNGs are the RGB of the fixture's `rgba_u8`, and the
/// `images` source reads them in order, looping.
#[test]
fn image_sequence_reads_the_real_video_frames() {
    let dir = video_dir();
    assert!(
        dir.is_dir(),
        "real-video frames not found at {}; set AUTOGAZE_VIDEO_DIR",
        dir.display()
    );
    // The rate comes from meta.json (25 fps), not the argument.
    let mut source = ImageSequence::open(&dir, 60.0, 64 << 20).expect("open sequence");
    assert_eq!(source.len(), 32);
    assert_eq!(source.native_fps(), Some(25.0));
    let reference = rgba_frames(&case("video_rgba_r030"));
    for expected in &reference {
        let frame = source.next_frame().expect("frame");
        assert_eq!(frame.rgba(), expected.rgba(), "frame {}", frame.seq);
    }
    for _ in 4..32 {
        source.next_frame().expect("frame");
    }
    let looped = source.next_frame().expect("looped frame");
    assert_eq!(looped.seq, 32);
    assert_eq!(looped.rgba(), reference[0].rgba());
    assert_eq!(looped.timestamp, Duration::from_secs_f64(32.0 / 25.0));
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autogaze_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn image_inputs_are_converted_and_bad_files_are_named() {
    let dir = scratch_dir("images");
    // 16-bit grayscale with alpha -> RGBA8.
    let gray16 = image::ImageBuffer::<image::LumaA<u16>, Vec<u16>>::from_fn(5, 3, |x, _| {
        image::LumaA([x as u16 * 16000, 65535])
    });
    gray16.save(dir.join("gray16.png")).expect("save");
    let mut still = StaticImage::open(&dir.join("gray16.png"), 30.0).expect("open gray16");
    let frame = still.next_frame().expect("frame");
    assert_eq!((frame.width(), frame.height()), (5, 3));
    assert_eq!(&frame.rgba()[4..8], &[62, 62, 62, 255]);
    let again = still.next_frame().expect("frame");
    assert!(frame.shares_pixels_with(&again), "a still is never copied");

    std::fs::write(dir.join("corrupt.png"), b"\x89PNG not really").expect("write");
    let err = StaticImage::open(&dir.join("corrupt.png"), 30.0)
        .expect_err("corrupt")
        .to_string();
    assert!(err.contains("corrupt.png"), "{err}");
    let err = StaticImage::open(&dir.join("missing.png"), 30.0)
        .expect_err("missing")
        .to_string();
    assert!(err.contains("missing.png"), "{err}");

    let empty = scratch_dir("empty");
    std::fs::write(empty.join("notes.txt"), b"no frames here").expect("write");
    match ImageSequence::open(&empty, 30.0, 1 << 20) {
        Err(AutoGazeError::EmptyDirectory { path, .. }) => assert_eq!(path, empty),
        other => panic!("expected EmptyDirectory, got {other:?}"),
    }

    let mixed = scratch_dir("mixed");
    image::RgbImage::new(4, 4)
        .save(mixed.join("a.png"))
        .expect("save");
    image::RgbImage::new(4, 5)
        .save(mixed.join("b.jpg"))
        .expect("save");
    // A malformed meta.json is a clear error naming the file.
    std::fs::write(mixed.join("meta.json"), br#"{"fps": "fast"}"#).expect("write");
    let err = ImageSequence::open(&mixed, 30.0, 1 << 20)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("meta.json") && err.contains("fps"), "{err}");
    std::fs::remove_file(mixed.join("meta.json")).expect("remove");
    let mut seq = ImageSequence::open(&mixed, 30.0, 1 << 20).expect("open");
    assert_eq!(seq.native_fps(), None);
    seq.next_frame().expect("first frame");
    let err = seq.next_frame().expect_err("size mismatch").to_string();
    assert!(
        err.contains("4x5") && err.contains("4x4") && err.contains("frame 1"),
        "{err}"
    );
    for d in [dir, empty, mixed] {
        let _ = std::fs::remove_dir_all(d);
    }
}
