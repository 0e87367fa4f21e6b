//! A token layout from a config's `scales` string and token count (and
//! explicit grids): every id decodes and encodes back.
//! The check is `autogaze_fuzz_checks::token_layout` (replayed by that crate's
//! tests as the CI smoke).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autogaze_fuzz_checks::token_layout(data));
