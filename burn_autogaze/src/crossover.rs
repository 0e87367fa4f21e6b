//! The measured cost models: the compositor's per-path costs and the
//! display's texture-write costs, measured by `cargo xtask crossover` and
//! stored as data (`data/crossover.json`, embedded; a file of the same schema
//! can replace it at runtime).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{AutoGazeError, Result};
use crate::frame::FrameSize;
use crate::mask::PlanStats;

/// Schema tag of crossover files.
pub const CROSSOVER_SCHEMA: &str = "burn_autogaze.crossover/1";

/// Measured cost coefficients for one frame size (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostCoefficients {
    /// Frame width the coefficients were measured at.
    pub width: u32,
    /// Frame height the coefficients were measured at.
    pub height: u32,
    /// Sparse: fixed cost per row copy.
    pub sparse_ns_per_row: f64,
    /// Sparse: cost per byte copied.
    pub sparse_ns_per_byte: f64,
    /// Dense: cost per frame pixel (the masked pass).
    pub dense_ns_per_pixel: f64,
    /// Dense: cost per pixel of the mask union (its raster).
    pub dense_ns_per_union_pixel: f64,
    /// Full: per frame byte (one memcpy).
    pub full_ns_per_byte: f64,
}

impl CostCoefficients {
    /// Predicted sparse cost of a plan.
    pub fn sparse_ns(&self, stats: &PlanStats) -> f64 {
        self.sparse_ns_per_row * stats.row_spans as f64
            + self.sparse_ns_per_byte * stats.copied_bytes as f64
    }

    /// Predicted dense cost of a plan on a frame of `pixels`.
    pub fn dense_ns(&self, stats: &PlanStats, pixels: u64) -> f64 {
        self.dense_ns_per_pixel * pixels as f64
            + self.dense_ns_per_union_pixel * stats.updated_pixels as f64
    }

    /// Predicted full-frame copy cost.
    pub fn full_ns(&self, pixels: u64) -> f64 {
        self.full_ns_per_byte * (pixels * 4) as f64
    }
}

/// One measured point of the crossover sweep (kept for the record and charts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CrossoverPoint {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Fraction of the frame the plan updates, in [0, 1].
    pub coverage: f64,
    /// Median compose time on the sparse path, µs.
    pub sparse_us: f64,
    /// Median compose time on the dense path, µs.
    pub dense_us: f64,
    /// Median compose time of the full-frame copy, µs.
    pub full_us: f64,
    /// Median compose time of adaptive dispatch (the path the table picks), µs.
    pub adaptive_us: f64,
    /// Dirty regions the upload lane wrote, one texture write each (when
    /// measured).
    #[serde(default)]
    pub upload_regions: Option<u32>,
    /// Median time of writing those regions, through the submit, µs.
    #[serde(default)]
    pub upload_regions_us: Option<f64>,
    /// Median time of one whole-frame write, through the submit, µs.
    #[serde(default)]
    pub upload_full_us: Option<f64>,
}

/// Predicted cost of texture writes: per call and per byte.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UploadCost {
    /// Fixed cost of one texture write call, ns.
    pub per_call_ns: f64,
    /// Cost per byte written, ns.
    pub per_byte_ns: f64,
}

impl Default for UploadCost {
    /// The costs `cargo xtask crossover` measured (the embedded table's
    /// `upload`), or, in a table without them, lavapipe's
    /// `queue.write_texture` figures (16 KiB 0.019 ms, 256 KiB 0.042 ms,
    /// 4 MiB 0.44 ms: ~17 us a call, ~0.1 ns a byte). The display's online
    /// fit (`upload::UploadFit`) replaces it with the running machine's
    /// figures.
    fn default() -> Self {
        CrossoverTable::embedded().upload.unwrap_or(Self {
            per_call_ns: 17_000.0,
            per_byte_ns: 0.1,
        })
    }
}

impl UploadCost {
    /// Predicted time of `calls` writes moving `bytes` in all.
    pub fn predict_ns(&self, calls: u64, bytes: u64) -> f64 {
        self.per_call_ns * calls as f64 + self.per_byte_ns * bytes as f64
    }

    /// The cheaper way to upload `regions` writes of `region_bytes` in all
    /// on a frame of `frame_bytes`: true when one whole-frame write is, and
    /// the predicted cost of the way chosen.
    pub fn cheaper(&self, regions: u64, region_bytes: u64, frame_bytes: u64) -> (bool, f64) {
        let whole = self.predict_ns(1, frame_bytes);
        let parts = self.predict_ns(regions, region_bytes);
        if region_bytes >= frame_bytes || whole <= parts {
            (true, whole)
        } else {
            (false, parts)
        }
    }
}

/// The table the compositor reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossoverTable {
    /// Schema tag, [`CROSSOVER_SCHEMA`].
    pub schema: String,
    /// Commit the table was measured at.
    pub revision: String,
    /// When it was measured (UTC).
    pub date: String,
    /// The measuring machine (CPU, cores, memory).
    pub machine: String,
    /// Fitted coefficients, one entry per measured frame size.
    pub sizes: Vec<CostCoefficients>,
    /// Every measured point of the sweep.
    #[serde(default)]
    pub points: Vec<CrossoverPoint>,
    /// Texture-write costs on the measuring machine's adapter (the prior of
    /// the display's online fit, `upload::UploadFit`).
    #[serde(default)]
    pub upload: Option<UploadCost>,
    /// The adapter the upload costs were measured on.
    #[serde(default)]
    pub upload_adapter: Option<String>,
}

const EMBEDDED: &str = include_str!("../data/crossover.json");

impl CrossoverTable {
    /// The table measured for this repository (`data/crossover.json`).
    pub fn embedded() -> Self {
        // The embedded file is checked by a unit test.
        Self::from_json(EMBEDDED, Path::new("data/crossover.json"))
            .unwrap_or_else(|e| unreachable!("embedded crossover table is valid: {e}"))
    }

    /// Reads a table written by `cargo xtask crossover`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::limits::read_text(
            path,
            crate::limits::MAX_JSON_FILE_BYTES,
            "MAX_JSON_FILE_BYTES",
        )?;
        Self::from_json(&text, path)
    }

    fn from_json(text: &str, path: &Path) -> Result<Self> {
        let bad = |reason: String| AutoGazeError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let table: Self = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if table.schema != CROSSOVER_SCHEMA {
            return Err(bad(format!(
                "schema {:?}, expected {CROSSOVER_SCHEMA:?}",
                table.schema
            )));
        }
        if table.sizes.is_empty() {
            return Err(bad("no sizes".into()));
        }
        if let Some(u) = table.upload
            && !(u.per_call_ns.is_finite()
                && u.per_call_ns >= 0.0
                && u.per_byte_ns.is_finite()
                && u.per_byte_ns >= 0.0)
        {
            return Err(bad(format!("upload costs must be finite and >= 0: {u:?}")));
        }
        for c in &table.sizes {
            let values = [
                c.sparse_ns_per_row,
                c.sparse_ns_per_byte,
                c.dense_ns_per_pixel,
                c.dense_ns_per_union_pixel,
                c.full_ns_per_byte,
            ];
            if values.iter().any(|v| !v.is_finite() || *v < 0.0) {
                return Err(bad(format!(
                    "coefficients of {}x{} must be finite and >= 0",
                    c.width, c.height
                )));
            }
        }
        Ok(table)
    }

    /// Coefficients measured at the size closest in pixel count to `size`.
    pub fn for_size(&self, size: FrameSize) -> CostCoefficients {
        let px = size.pixels() as f64;
        let mut best = self.sizes[0];
        for c in &self.sizes {
            let d = ((c.width as f64 * c.height as f64) / px).ln().abs();
            let b = ((best.width as f64 * best.height as f64) / px).ln().abs();
            if d < b {
                best = *c;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_is_valid_and_covers_720p_and_1080p() {
        let t = CrossoverTable::embedded();
        let c720 = t.for_size(FrameSize::new(1280, 720).unwrap());
        let c1080 = t.for_size(FrameSize::new(1920, 1080).unwrap());
        assert_eq!((c720.width, c1080.width), (1280, 1920));
        assert!(c1080.full_ns_per_byte > 0.0 && c1080.sparse_ns_per_byte > 0.0);
    }

    #[test]
    fn malformed_tables_name_the_file() {
        let err = CrossoverTable::from_json("{}", Path::new("x.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.json"), "{err}");
        let text = EMBEDDED.replace(CROSSOVER_SCHEMA, "other/1");
        assert!(CrossoverTable::from_json(&text, Path::new("y.json")).is_err());
    }
}
