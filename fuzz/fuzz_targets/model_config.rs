//! `config.json` text: parsed and validated; a config that passes yields its
//! tensor list and parameter count without overflow or a huge allocation.
#![no_main]

use burn_autogaze::model::{AutoGazeConfig, expected_tensors};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = AutoGazeConfig::from_json(text) {
        let tensors = expected_tensors(&config);
        assert!(tensors.len() < 10 * burn_autogaze::limits::MAX_MODEL_LAYERS + 64);
        assert!(config.parameters() <= burn_autogaze::limits::MAX_MODEL_PARAMETERS as u128);
        let _ = (config.vision_tokens(), config.vocab());
    }
});
