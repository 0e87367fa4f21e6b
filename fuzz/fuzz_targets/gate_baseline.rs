//! The regression gate's baseline file: parsed and checked (a baseline that
//! compares nothing is an error), then compared with itself and paired with
//! itself: no regression, no panic.
//! The check is `autogaze_fuzz_checks::gate_baseline` (replayed by that crate's
//! tests as the CI smoke).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autogaze_fuzz_checks::gate_baseline(data));
