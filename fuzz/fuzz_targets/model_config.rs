//! `config.json` text: parsed and validated; a config that passes yields its
//! tensor list and parameter count without overflow or a huge allocation.
//! The check is `autogaze_fuzz_checks::model_config` (replayed by that crate's
//! tests as the CI smoke).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autogaze_fuzz_checks::model_config(data));
