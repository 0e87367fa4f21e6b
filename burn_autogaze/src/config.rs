//! The shared reader of JSON configuration files (the model's `config.json`,
//! the processor's `preprocessor_config.json`): one place that names the
//! file in every error.

use std::path::Path;

use crate::error::{AutoGazeError, Result};

/// Reads a JSON config file with `parse`, naming `path` in any parse error.
pub(crate) fn read_json_file<T>(path: &Path, parse: impl FnOnce(&str) -> Result<T>) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| AutoGazeError::io(path, e))?;
    parse(&text).map_err(|e| match e {
        AutoGazeError::Config { reason, .. } => AutoGazeError::Config {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    })
}
