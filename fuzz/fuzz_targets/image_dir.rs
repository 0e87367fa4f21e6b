//! A `meta.json` and an image directory: the input up to the first NUL is
//! meta.json, the rest one frame file (written twice); the sequence opens
//! or fails with a typed error, and an open one reads a loop of frames.
//! The check is `autogaze_fuzz_checks::image_dir` (replayed by that crate's
//! tests as the CI smoke).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autogaze_fuzz_checks::image_dir(data));
