//! The web viewer's URL query: parsed as the command line (percent
//! decoding, the browser's refusals, the limits) to settings or an error.
//! The check is `autogaze_fuzz_checks::web_query` (replayed by that crate's
//! tests as the CI smoke).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autogaze_fuzz_checks::web_query(data));
