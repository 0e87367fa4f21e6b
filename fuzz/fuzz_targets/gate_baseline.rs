//! The regression gate's baseline file: parsed and checked (a baseline that
//! compares nothing is an error), then compared with itself and paired with
//! itself: no regression, no panic.
#![no_main]

// The gate's own modules, compiled here as they are in xtask (a binary
// crate, so there is no library to link).
#[path = "../../xtask/src/gate.rs"]
#[allow(dead_code)]
mod gate;
#[path = "../../xtask/src/matrix_data.rs"]
#[allow(dead_code)]
mod matrix_data;
#[path = "../../xtask/src/stats.rs"]
#[allow(dead_code)]
mod stats;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(baseline) = gate::parse(text) else {
        return;
    };
    assert!(!baseline.cases.is_empty());
    let deltas = gate::compare(&baseline, &baseline.cases);
    for d in &deltas {
        assert!(!d.regressed(), "a baseline against itself regressed: {d:?}");
        assert!(d.p95.band <= gate::MAX_BAND && d.p95.band >= gate::MIN_BAND);
    }
    let names: Vec<&str> = baseline.cases.iter().map(|c| c.case.as_str()).collect();
    assert!(gate::common_cases(&baseline, &names).is_ok());
    let _ = gate::noise_band(&baseline.cases);
    let _ = gate::capped_note(&deltas, "hint");
});
