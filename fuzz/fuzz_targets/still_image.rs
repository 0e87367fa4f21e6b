//! Image bytes (PNG, JPEG) through the still-image source: decoded under the
//! limits, then served as frames.
//! The check is `autogaze_fuzz_checks::still_image` (replayed by that crate's
//! tests as the CI smoke).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autogaze_fuzz_checks::still_image(data));
