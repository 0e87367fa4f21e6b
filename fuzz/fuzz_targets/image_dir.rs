//! A `meta.json` and an image directory: the input up to the first NUL is
//! meta.json, the rest one frame file (written twice); the sequence opens
//! or fails with a typed error, and an open one reads a loop of frames.
#![no_main]

use burn_autogaze::FrameSource;
use burn_autogaze::source::ImageSequence;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (meta, image) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let dir = std::env::temp_dir().join(format!("fuzz-image-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    std::fs::write(dir.join("meta.json"), meta).expect("meta.json");
    std::fs::write(dir.join("a.png"), image).expect("frame");
    std::fs::write(dir.join("b.jpg"), image).expect("frame");
    if let Ok(mut seq) = ImageSequence::open_with(&dir, 30.0, 1 << 20, 1) {
        if let Some(fps) = seq.native_fps() {
            assert!(
                (burn_autogaze::limits::MIN_FPS..=burn_autogaze::limits::MAX_FPS).contains(&fps)
            );
        }
        for _ in 0..3 {
            if seq.next_frame().is_err() {
                break;
            }
        }
    }
});
