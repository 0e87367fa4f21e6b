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
        if head_dim * heads != d.hidden_size || !head_dim.is_multiple_of(2) {
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
        Ok(Self {
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
        })
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
