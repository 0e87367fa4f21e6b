//! Safetensors bytes through the strict weights loader, on a micro config
//! (the seeds are valid files for it): a typed error or a model, never a
//! panic or an allocation beyond what the config implies.
//! The check is `autogaze_fuzz_checks::weights` (replayed by that crate's
//! tests as the CI smoke).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autogaze_fuzz_checks::weights(data));
