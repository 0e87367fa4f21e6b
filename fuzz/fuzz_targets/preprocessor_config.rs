//! `preprocessor_config.json` text, then (when it is valid and the resize
//! stays small) a small frame preprocessed with it.
//! The check is `autogaze_fuzz_checks::preprocessor_config` (replayed by that crate's
//! tests as the CI smoke).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autogaze_fuzz_checks::preprocessor_config(data));
