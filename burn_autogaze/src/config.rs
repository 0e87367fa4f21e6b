//! The shared reader of JSON configuration files (the model's `config.json`,
//! the processor's `preprocessor_config.json`): one place that names the
//! file in every error.

use std::path::Path;

use crate::error::{AutoGazeError, Result};

/// Reads a JSON config file (at most
/// [`crate::limits::MAX_JSON_FILE_BYTES`]) with `parse`, naming `path` in any parse error.
pub(crate) fn read_json_file<T>(path: &Path, parse: impl FnOnce(&str) -> Result<T>) -> Result<T> {
    let text = crate::limits::read_text(
        path,
        crate::limits::MAX_JSON_FILE_BYTES,
        "MAX_JSON_FILE_BYTES",
    )?;
    parse(&text).map_err(|e| match e {
        AutoGazeError::Config { reason, .. } => AutoGazeError::Config {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    })
}
