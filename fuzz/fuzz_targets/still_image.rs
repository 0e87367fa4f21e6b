//! Image bytes (PNG, JPEG) through the still-image source: decoded under the
//! limits, then served as frames.
#![no_main]

use burn_autogaze::FrameSource;
use burn_autogaze::source::{StaticImage, decode_rgba};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = decode_rgba(data);
    let path = std::env::temp_dir().join(format!("fuzz-still-{}.png", std::process::id()));
    std::fs::write(&path, data).expect("scratch file");
    let opened = StaticImage::open(&path, 30.0);
    assert_eq!(decoded.is_ok(), opened.is_ok(), "bytes and file agree");
    if let Ok(mut source) = opened {
        let frame = source.next_frame().expect("a decoded still serves frames");
        assert_eq!(frame.rgba().len(), frame.size().rgba_len());
    }
});
