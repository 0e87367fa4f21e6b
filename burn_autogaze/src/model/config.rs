//! `config.json` of an AutoGaze model directory (Hugging Face layout).

use std::path::Path;

use serde::Deserialize;

use crate::error::{AutoGazeError, Result};
use crate::tokens::TokenLayout;

#[derive(Debug, Deserialize)]
struct RawVision {
    hidden_dim: usize,
    out_dim: usize,
    depth: usize,
    kernel_size: usize,
    temporal_patch_size: usize,
    trunk_temporal_kernel_size: usize,
    trunk_spatial_kernel_size: usize,
}

#[derive(Debug, Deserialize)]
struct RawConnector {
    hidden_dim: usize,
}

#[derive(Debug, Deserialize)]
struct RawRopeScaling {
    rope_type: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    factor: f64,
    low_freq_factor: f64,
    high_freq_factor: f64,
    original_max_position_embeddings: f64,
}

#[derive(Debug, Deserialize)]
struct RawDecoder {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: f64,
    rope_theta: f64,
    rope_scaling: Option<RawRopeScaling>,
    num_multi_token_pred: Option<usize>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    hidden_act: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawGazeModel {
    input_img_size: usize,
    vision_model_config: RawVision,
    connector_config: RawConnector,
    gaze_decoder_config: RawDecoder,
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    scales: String,
    num_vision_tokens_each_frame: u32,
    gaze_model_config: RawGazeModel,
    #[serde(default)]
    max_num_frames: Option<usize>,
}

/// llama3 RoPE scaling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeScaling {
    /// Divisor of the low frequencies.
    pub factor: f64,
    /// Wavelengths above `original / low_freq_factor` are divided by `factor`.
    pub low_freq_factor: f64,
    /// Wavelengths below `original / high_freq_factor` are kept.
    pub high_freq_factor: f64,
    /// The context length the frequencies were trained for.
    pub original_max_position_embeddings: f64,
}

/// Everything the model needs from `config.json`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoGazeConfig {
    /// Token layout (`scales`, tokens per frame).
    pub layout: TokenLayout,
    /// Side of the model input (224).
    pub input_size: usize,
    /// Vision encoder width.
    pub vision_hidden: usize,
    /// Vision encoder output width (the decoder's, `hidden`).
    pub vision_out: usize,
    /// Patch side (16): `input_size / patch` vision tokens per side.
    pub patch: usize,
    /// Temporal kernel of the trunk block (3): frames of context.
    pub trunk_temporal: usize,
    /// Spatial kernel of the trunk block (3).
    pub trunk_spatial: usize,
    /// Decoder width.
    pub hidden: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Head size (`hidden / heads`).
    pub head_dim: usize,
    /// RMSNorm's epsilon.
    pub rms_eps: f64,
    /// RoPE's base.
    pub rope_theta: f64,
    /// llama3 RoPE scaling, when the config sets it.
    pub rope_scaling: Option<RopeScaling>,
    /// Tokens predicted per decoder step (K), read from the file.
    pub multi_token: usize,
    /// Frames the model was trained on (informational).
    pub max_num_frames: Option<usize>,
}

/// The vision encoder's settings this crate supports: one trunk block,
/// frames one at a time, square patches dividing the input, odd spatial
/// trunk kernels, and one width from the encoder's output to the decoder.
fn check_vision(
    input: usize,
    connector: usize,
    v: &RawVision,
    hidden: usize,
) -> std::result::Result<(), String> {
    if v.temporal_patch_size != 1 {
        return Err(format!(
            "temporal_patch_size {} is not supported (only 1)",
            v.temporal_patch_size
        ));
    }
    if v.depth != 1 {
        return Err(format!(
            "vision depth {} is not supported (only 1)",
            v.depth
        ));
    }
    if v.kernel_size == 0 || !input.is_multiple_of(v.kernel_size) {
        return Err(format!(
            "input_img_size {input} is not a multiple of kernel_size {}",
            v.kernel_size
        ));
    }
    if v.trunk_spatial_kernel_size.is_multiple_of(2) || v.trunk_temporal_kernel_size == 0 {
        return Err("trunk kernels must be odd (spatial) and >= 1 (temporal)".into());
    }
    if v.out_dim != connector || v.out_dim != hidden {
        return Err(format!(
            "vision out_dim {}, connector hidden_dim {connector} and decoder hidden_size {hidden} must agree",
            v.out_dim
        ));
    }
    Ok(())
}

/// The dimensions of a config against [`crate::limits`]: each before any
/// arithmetic or allocation uses it.
fn check_limits(g: &RawGazeModel) -> Result<()> {
    use crate::limits::{self as l, at_most};
    let (v, d) = (&g.vision_model_config, &g.gaze_decoder_config);
    for (name, value) in [
        ("vision_model_config.hidden_dim", v.hidden_dim),
        ("vision_model_config.out_dim", v.out_dim),
        ("connector_config.hidden_dim", g.connector_config.hidden_dim),
        ("gaze_decoder_config.hidden_size", d.hidden_size),
        ("gaze_decoder_config.intermediate_size", d.intermediate_size),
    ] {
        at_most(
            format!("config.json {name}"),
            value,
            l::MAX_MODEL_WIDTH,
            "MAX_MODEL_WIDTH",
        )?;
    }
    for (name, value) in [
        ("vision_model_config.kernel_size", v.kernel_size),
        (
            "vision_model_config.trunk_temporal_kernel_size",
            v.trunk_temporal_kernel_size,
        ),
        (
            "vision_model_config.trunk_spatial_kernel_size",
            v.trunk_spatial_kernel_size,
        ),
    ] {
        at_most(
            format!("config.json {name}"),
            value,
            l::MAX_KERNEL_SIZE,
            "MAX_KERNEL_SIZE",
        )?;
    }
    let input = "config.json gaze_model_config.input_img_size";
    at_most(
        input,
        g.input_img_size,
        l::MAX_MODEL_INPUT_SIZE,
        "MAX_MODEL_INPUT_SIZE",
    )?;
    let layers = "config.json gaze_decoder_config.num_hidden_layers";
    at_most(
        layers,
        d.num_hidden_layers,
        l::MAX_MODEL_LAYERS,
        "MAX_MODEL_LAYERS",
    )?;
    let heads = "config.json gaze_decoder_config.num_attention_heads";
    at_most(
        heads,
        d.num_attention_heads,
        l::MAX_MODEL_HEADS,
        "MAX_MODEL_HEADS",
    )?;
    if let Some(head_dim) = d.head_dim {
        let name = "config.json gaze_decoder_config.head_dim";
        at_most(name, head_dim, l::MAX_MODEL_WIDTH, "MAX_MODEL_WIDTH")?;
    }
    if let Some(k) = d.num_multi_token_pred {
        let name = "config.json gaze_decoder_config.num_multi_token_pred";
        at_most(name, k, l::MAX_MULTI_TOKEN, "MAX_MULTI_TOKEN")?;
    }
    Ok(())
}

/// Finite, positive floats of the decoder (RMSNorm's epsilon, RoPE).
fn check_floats(d: &RawDecoder) -> std::result::Result<(), String> {
    let mut values = vec![
        ("rms_norm_eps", d.rms_norm_eps),
        ("rope_theta", d.rope_theta),
    ];
    if let Some(r) = &d.rope_scaling {
        values.extend([
            ("rope_scaling.factor", r.factor),
            ("rope_scaling.low_freq_factor", r.low_freq_factor),
            ("rope_scaling.high_freq_factor", r.high_freq_factor),
            (
                "rope_scaling.original_max_position_embeddings",
                r.original_max_position_embeddings,
            ),
        ]);
    }
    match values.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
        Some((name, v)) => Err(format!("{name} {v} must be a finite positive number")),
        None => Ok(()),
    }
}

/// llama3 RoPE scaling from its config entry (no other kind is supported).
fn llama3_scaling(s: RawRopeScaling) -> std::result::Result<RopeScaling, String> {
    let kind = s.rope_type.or(s.kind).unwrap_or_default();
    if kind != "llama3" {
        return Err(format!(
            "rope_scaling type {kind:?} is not supported (only llama3)"
        ));
    }
    Ok(RopeScaling {
        factor: s.factor,
        low_freq_factor: s.low_freq_factor,
        high_freq_factor: s.high_freq_factor,
        original_max_position_embeddings: s.original_max_position_embeddings,
    })
}

impl AutoGazeConfig {
    /// Reads `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        crate::config::read_json_file(path, Self::from_json)
    }

    /// Parses and validates config JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        let bad = |reason: String| AutoGazeError::Config {
            path: "config.json".into(),
            reason,
        };
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let layout = TokenLayout::from_config(&raw.scales, raw.num_vision_tokens_each_frame)?;
        check_limits(&raw.gaze_model_config)?;
        let g = raw.gaze_model_config;
        let v = g.vision_model_config;
        let d = g.gaze_decoder_config;
        let heads = d.num_attention_heads;
        if heads == 0 || !d.hidden_size.is_multiple_of(heads) {
            return Err(bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {heads}",
                d.hidden_size
            )));
        }
        let head_dim = d.head_dim.unwrap_or(d.hidden_size / heads);
        if head_dim.checked_mul(heads) != Some(d.hidden_size) || !head_dim.is_multiple_of(2) {
            return Err(bad(format!(
                "head_dim {head_dim} x {heads} heads must equal hidden_size {} (even head_dim)",
                d.hidden_size
            )));
        }
        if d.num_key_value_heads.is_some_and(|kv| kv != heads) {
            return Err(bad("grouped-query attention (num_key_value_heads != num_attention_heads) is not supported".into()));
        }
        let multi_token = d
            .num_multi_token_pred
            .ok_or_else(|| bad("gaze_decoder_config.num_multi_token_pred is missing".into()))?;
        if multi_token == 0 {
            return Err(bad("num_multi_token_pred must be at least 1".into()));
        }
        check_vision(
            g.input_img_size,
            g.connector_config.hidden_dim,
            &v,
            d.hidden_size,
        )
        .map_err(bad)?;
        check_floats(&d).map_err(bad)?;
        if d.attention_bias || d.mlp_bias {
            return Err(bad("attention_bias / mlp_bias are not supported".into()));
        }
        if d.hidden_act.as_deref().is_some_and(|a| a != "silu") {
            return Err(bad(format!(
                "hidden_act {:?} is not supported (only silu)",
                d.hidden_act
            )));
        }
        let rope_scaling = d
            .rope_scaling
            .map(llama3_scaling)
            .transpose()
            .map_err(bad)?;
        let config = Self {
            layout,
            input_size: g.input_img_size,
            vision_hidden: v.hidden_dim,
            vision_out: v.out_dim,
            patch: v.kernel_size,
            trunk_temporal: v.trunk_temporal_kernel_size,
            trunk_spatial: v.trunk_spatial_kernel_size,
            hidden: d.hidden_size,
            intermediate: d.intermediate_size,
            layers: d.num_hidden_layers,
            heads,
            head_dim,
            rms_eps: d.rms_norm_eps,
            rope_theta: d.rope_theta,
            rope_scaling,
            multi_token,
            max_num_frames: raw.max_num_frames,
        };
        crate::limits::at_most(
            "parameters the config.json implies",
            config.parameters(),
            crate::limits::MAX_MODEL_PARAMETERS as u128,
            "MAX_MODEL_PARAMETERS",
        )?;
        Ok(config)
    }

    /// Parameters of the model (the elements of every expected tensor),
    /// in a width no config within the limits can overflow.
    pub fn parameters(&self) -> u128 {
        let [cv, vo, d, i, p] = [
            self.vision_hidden,
            self.vision_out,
            self.hidden,
            self.intermediate,
            self.patch,
        ]
        .map(|x| x as u128);
        let [kt, ks, k, l] = [
            self.trunk_temporal,
            self.trunk_spatial,
            self.multi_token,
            self.layers,
        ]
        .map(|x| x as u128);
        let vocab = self.vocab() as u128;
        let vision = cv * 3 * p * p + 3 * cv + cv * cv * kt * ks * ks + cv + vo * cv + vo;
        let decoder = vocab * d + d + vocab * k * d + k * d;
        let layer = 4 * d * d + 3 * i * d + 2 * d;
        vision + self.vision_tokens() as u128 * d + decoder + l * layer
    }

    /// Vision tokens per side (14).
    pub fn grid(&self) -> usize {
        self.input_size / self.patch
    }

    /// Vision tokens per frame (196).
    pub fn vision_tokens(&self) -> usize {
        self.grid() * self.grid()
    }

    /// Decoder vocabulary: the layout's tokens plus EOS/pad (266).
    pub fn vocab(&self) -> usize {
        self.layout.tokens() as usize + 1
    }

    /// The released model's architecture (K = 10), for random initialisation
    /// without a config file.
    pub fn release() -> Self {
        Self {
            layout: TokenLayout::release(),
            input_size: 224,
            vision_hidden: 192,
            vision_out: 192,
            patch: 16,
            trunk_temporal: 3,
            trunk_spatial: 3,
            hidden: 192,
            intermediate: 384,
            layers: 4,
            heads: 6,
            head_dim: 32,
            rms_eps: 1e-5,
            rope_theta: 5e5,
            rope_scaling: Some(RopeScaling {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192.0,
            }),
            multi_token: 10,
            max_num_frames: Some(16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = include_str!("../../../fixtures/autogaze-tiny/config.json");

    fn with(path: &str, value: serde_json::Value) -> Result<AutoGazeConfig> {
        let mut json: serde_json::Value = serde_json::from_str(TINY).unwrap();
        *json.pointer_mut(path).expect(path) = value;
        AutoGazeConfig::from_json(&json.to_string())
    }

    /// Each oversized dimension is a limit naming the field, checked before
    /// the tensor list (or anything else) is built.
    #[test]
    fn oversized_dimensions_are_limits_naming_the_field() {
        assert!(AutoGazeConfig::from_json(TINY).is_ok());
        let decoder = "/gaze_model_config/gaze_decoder_config";
        let vision = "/gaze_model_config/vision_model_config";
        let huge = serde_json::json!(1_000_000_000_000u64);
        for (path, value, named) in [
            (
                format!("{decoder}/num_hidden_layers"),
                huge.clone(),
                "MAX_MODEL_LAYERS",
            ),
            (
                format!("{decoder}/num_attention_heads"),
                huge.clone(),
                "MAX_MODEL_HEADS",
            ),
            (
                format!("{decoder}/hidden_size"),
                huge.clone(),
                "MAX_MODEL_WIDTH",
            ),
            (
                format!("{decoder}/intermediate_size"),
                huge.clone(),
                "MAX_MODEL_WIDTH",
            ),
            (
                format!("{decoder}/head_dim"),
                serde_json::json!(u64::MAX),
                "MAX_MODEL_WIDTH",
            ),
            (
                format!("{decoder}/num_multi_token_pred"),
                huge.clone(),
                "MAX_MULTI_TOKEN",
            ),
            (
                format!("{vision}/hidden_dim"),
                huge.clone(),
                "MAX_MODEL_WIDTH",
            ),
            (
                format!("{vision}/kernel_size"),
                huge.clone(),
                "MAX_KERNEL_SIZE",
            ),
            (
                format!("{vision}/trunk_spatial_kernel_size"),
                huge.clone(),
                "MAX_KERNEL_SIZE",
            ),
            (
                "/gaze_model_config/input_img_size".into(),
                huge.clone(),
                "MAX_MODEL_INPUT_SIZE",
            ),
            (
                "/num_vision_tokens_each_frame".into(),
                serde_json::json!(u32::MAX),
                "MAX_LAYOUT_TOKENS",
            ),
            (
                "/scales".into(),
                serde_json::json!("99999999999+1"),
                "MAX_SCALE",
            ),
        ] {
            let err = with(&path, value).expect_err(&path).to_string();
            assert!(err.contains(named), "{path}: {err}");
        }
        // Each within its limit, together beyond the parameter budget.
        let mut big: serde_json::Value = serde_json::from_str(TINY).unwrap();
        for (field, v) in [
            ("hidden_size", 65_536),
            ("intermediate_size", 65_536),
            ("head_dim", 64),
        ] {
            big["gaze_model_config"]["gaze_decoder_config"][field] = serde_json::json!(v);
        }
        for field in ["num_attention_heads", "num_key_value_heads"] {
            big["gaze_model_config"]["gaze_decoder_config"][field] = serde_json::json!(1024);
        }
        for part in ["vision_model_config", "connector_config"] {
            let key = if part == "connector_config" {
                "hidden_dim"
            } else {
                "out_dim"
            };
            big["gaze_model_config"][part][key] = serde_json::json!(65_536);
        }
        let err = AutoGazeConfig::from_json(&big.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("MAX_MODEL_PARAMETERS"), "{err}");
        for (field, value) in [("rms_norm_eps", -1.0), ("rope_theta", 0.0)] {
            let err = with(&format!("{decoder}/{field}"), serde_json::json!(value))
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}
