//! `preprocessor_config.json` text, then (when it is valid and the resize
//! stays small) a small frame preprocessed with it.
#![no_main]

use std::time::Duration;

use burn_autogaze::{Frame, FrameSize, Preprocessor, PreprocessorConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first two bytes pick the frame's size; the rest is the JSON.
    let (w, h, text) = match data {
        [w, h, rest @ ..] => (*w as u32 % 64 + 1, *h as u32 % 64 + 1, rest),
        _ => return,
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(config) = PreprocessorConfig::from_json(text) else {
        return;
    };
    let Ok(mut pre) = Preprocessor::new(config, 8) else {
        return;
    };
    let size = FrameSize::new(w, h).expect("small size");
    let Ok(processed) = pre.processed_size(size) else {
        return;
    };
    // Keep each run fast: only small resizes are run end to end.
    let resized = pre.resized_size(size);
    if resized.width as u64 * resized.height as u64 > 1 << 16 {
        return;
    }
    let frame = Frame::new(0, w, h, vec![128u8; size.rgba_len()], Duration::ZERO).unwrap();
    let mut out = vec![0f32; 3 * 8 * 8];
    pre.model_frame_into(&frame, &mut out)
        .expect("a valid size preprocesses");
    assert!(processed.width >= 1 && processed.height >= 1);
});
