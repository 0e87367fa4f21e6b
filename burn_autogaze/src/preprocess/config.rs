//! The Hugging Face processor's settings: `preprocessor_config.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::PilFilter;
use crate::config::read_json_file;
use crate::error::{AutoGazeError, Result};

/// Target of the processor's resize step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResizeTarget {
    /// The short side becomes this; the long side `int(edge * long / short)`.
    ShortestEdge {
        /// The short side after the resize, pixels.
        shortest_edge: u32,
    },
    /// Exactly this size (squashes the aspect ratio).
    Exact {
        /// Height after the resize, pixels.
        height: u32,
        /// Width after the resize, pixels.
        width: u32,
    },
}

/// Centre-crop size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropSize {
    /// Crop height in pixels.
    pub height: u32,
    /// Crop width in pixels.
    pub width: u32,
}

fn yes() -> bool {
    true
}
fn default_resize() -> ResizeTarget {
    ResizeTarget::ShortestEdge { shortest_edge: 224 }
}
fn default_resample() -> i64 {
    2
}
fn default_rescale() -> f64 {
    1.0 / 127.5
}
fn default_mean() -> [f64; 3] {
    [0.485, 0.456, 0.406]
}
fn default_std() -> [f64; 3] {
    [0.229, 0.224, 0.225]
}

/// `AutoGazeImageProcessor` settings (`preprocessor_config.json`). Missing
/// fields take the values of the released processor: shortest edge 224, PIL
/// bilinear, `x/127.5 - 1`, ImageNet mean/std, no centre crop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessorConfig {
    /// Resize before anything else.
    #[serde(default = "yes")]
    pub do_resize: bool,
    /// What the resize aims at.
    #[serde(default = "default_resize")]
    pub size: ResizeTarget,
    /// Pillow filter code (2 = bilinear).
    #[serde(default = "default_resample")]
    pub resample: i64,
    /// Multiply the 8-bit values by `rescale_factor`.
    #[serde(default = "yes")]
    pub do_rescale: bool,
    /// The rescale factor (`1/127.5` in the release).
    #[serde(default = "default_rescale")]
    pub rescale_factor: f64,
    /// Subtract 1 after rescaling (maps [0, 255] to [-1, 1]).
    #[serde(default = "yes")]
    pub offset: bool,
    /// Subtract `image_mean` and divide by `image_std`, per channel.
    #[serde(default = "yes")]
    pub do_normalize: bool,
    /// Per-channel mean (RGB).
    #[serde(default = "default_mean")]
    pub image_mean: [f64; 3],
    /// Per-channel standard deviation (RGB).
    #[serde(default = "default_std")]
    pub image_std: [f64; 3],
    /// Crop the centre after resizing.
    #[serde(default)]
    pub do_center_crop: bool,
    /// Size of the centre crop.
    #[serde(default)]
    pub crop_size: Option<CropSize>,
}

impl Default for PreprocessorConfig {
    fn default() -> Self {
        Self {
            do_resize: true,
            size: default_resize(),
            resample: default_resample(),
            do_rescale: true,
            rescale_factor: default_rescale(),
            offset: true,
            do_normalize: true,
            image_mean: default_mean(),
            image_std: default_std(),
            do_center_crop: false,
            crop_size: None,
        }
    }
}

impl PreprocessorConfig {
    /// Reads and validates a `preprocessor_config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        read_json_file(path, Self::from_json)
    }

    /// Parses and validates JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(text).map_err(|e| AutoGazeError::Config {
            path: "preprocessor_config.json".into(),
            reason: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values this crate relies on.
    pub fn validate(&self) -> Result<()> {
        PilFilter::from_code(self.resample)?;
        if let ResizeTarget::ShortestEdge { shortest_edge: 0 }
        | ResizeTarget::Exact { height: 0, .. }
        | ResizeTarget::Exact { width: 0, .. } = self.size
        {
            return Err(AutoGazeError::setting(
                "size",
                format!("{:?}", self.size),
                "non-zero",
            ));
        }
        let sides = match self.size {
            ResizeTarget::ShortestEdge { shortest_edge } => {
                vec![("size.shortest_edge", shortest_edge)]
            }
            ResizeTarget::Exact { height, width } => {
                vec![("size.height", height), ("size.width", width)]
            }
        };
        let crop = self
            .crop_size
            .map(|c| vec![("crop_size.height", c.height), ("crop_size.width", c.width)])
            .unwrap_or_default();
        for (name, side) in sides.into_iter().chain(crop) {
            crate::limits::at_most(
                format!("preprocessor_config.json {name}"),
                side,
                crate::limits::MAX_PREPROCESS_SIDE,
                "MAX_PREPROCESS_SIDE",
            )?;
        }
        if !self.rescale_factor.is_finite() || self.image_mean.iter().any(|m| !m.is_finite()) {
            return Err(AutoGazeError::setting(
                "rescale_factor / image_mean",
                format!("{} / {:?}", self.rescale_factor, self.image_mean),
                "finite values",
            ));
        }
        if self.image_std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err(AutoGazeError::setting(
                "image_std",
                format!("{:?}", self.image_std),
                "finite, non-zero values",
            ));
        }
        if self.do_center_crop && self.crop_size.is_none_or(|c| c.width == 0 || c.height == 0) {
            return Err(AutoGazeError::setting(
                "crop_size",
                "missing",
                "a non-zero {height, width} when do_center_crop is true",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_release_processor_and_fills_defaults() {
        let cfg = PreprocessorConfig::from_json(
            r#"{"size": {"shortest_edge": 224}, "resample": 2, "offset": true,
                "rescale_factor": 0.00784313725490196, "image_mean": [0.485,0.456,0.406],
                "image_std": [0.229,0.224,0.225], "do_center_crop": false,
                "crop_size": {"height": 224, "width": 224}}"#,
        )
        .unwrap();
        assert_eq!(cfg.size, ResizeTarget::ShortestEdge { shortest_edge: 224 });
        assert!(cfg.do_normalize && cfg.do_resize);
        let exact =
            PreprocessorConfig::from_json(r#"{"size": {"height": 10, "width": 20}}"#).unwrap();
        assert_eq!(
            exact.size,
            ResizeTarget::Exact {
                height: 10,
                width: 20
            }
        );
    }

    #[test]
    fn rejects_bad_values_with_names() {
        let err = PreprocessorConfig::from_json(r#"{"resample": 0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("resample"), "{err}");
        let err = PreprocessorConfig::from_json(r#"{"image_std": [0.2, 0.0, 0.2]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("image_std"), "{err}");
        for bad in [
            r#"{"size": {"shortest_edge": 4294967295}}"#,
            r#"{"size": {"height": 100000, "width": 20}}"#,
            r#"{"do_center_crop": true, "crop_size": {"height": 224, "width": 5000}}"#,
        ] {
            let err = PreprocessorConfig::from_json(bad).unwrap_err();
            assert!(
                matches!(&err, AutoGazeError::Limit { limit, .. } if limit.contains("MAX_PREPROCESS_SIDE")),
                "{err}"
            );
        }
        let err = PreprocessorConfig::from_json(r#"{"rescale_factor": 1e400}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rescale_factor") || err.contains("number out of range"),
            "{err}"
        );
        let err = PreprocessorConfig::from_json("{not json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("preprocessor_config.json"), "{err}");
    }
}
