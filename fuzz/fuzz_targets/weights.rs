//! Safetensors bytes through the strict weights loader, on a micro config
//! (the seeds are valid files for it): a typed error or a model, never a
//! panic or an allocation beyond what the config implies.
#![no_main]

use std::path::Path;

use burn::backend::NdArray;
use burn_autogaze::model::{AutoGazeConfig, load_weights_from};
use burn_autogaze::tensor_file::TensorFile;
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = include_str!("../micro_config.json");

fuzz_target!(|data: &[u8]| {
    let config = AutoGazeConfig::from_json(CONFIG).expect("micro config");
    let Ok(file) = TensorFile::from_bytes(Path::new("fuzz.safetensors"), data.to_vec()) else {
        return;
    };
    let _ = file.names();
    let _ = load_weights_from::<NdArray<f32>>(&config, &file, &Default::default());
});
