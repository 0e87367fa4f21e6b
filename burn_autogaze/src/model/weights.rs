//! Model weights: strict loading from `model.safetensors` (every tensor
//! present, none extra, every shape right; f16/bf16 widened to f32) and a
//! seeded random initialisation at any configured size.

use std::collections::BTreeSet;
use std::path::Path;

use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::config::AutoGazeConfig;
use crate::error::{AutoGazeError, Result};
use crate::tensor_file::TensorFile;

/// Vision encoder weights, laid out for the forward pass.
#[derive(Debug, Clone)]
pub struct VisionWeights<B: Backend> {
    /// Patch embedding as a matrix `[3 * p * p, C]` (the `(1, p, p)` Conv3d
    /// with stride p is a matmul over unfolded patches; row `c*p*p + y*p + x`).
    pub patch_w: Tensor<B, 2>,
    /// Patch embedding bias `[C]`.
    pub patch_b: Tensor<B, 1>,
    /// LayerNorm over channels.
    pub norm_w: Tensor<B, 1>,
    /// LayerNorm bias.
    pub norm_b: Tensor<B, 1>,
    /// Trunk Conv3d split by temporal tap, as matrices over unfolded 3x3
    /// neighbourhoods: `trunk_w[k]` is `[s * s * C, C]` (row
    /// `(dy * s + dx) * C + c_in`) applied to frame `t - (kt - 1) + k`.
    pub trunk_w: Vec<Tensor<B, 2>>,
    /// Trunk bias `[C]`.
    pub trunk_b: Tensor<B, 1>,
    /// 1x1x1 output projection as a matrix `[C_in, C_out]`.
    pub out_w: Tensor<B, 2>,
    /// Output projection bias `[C_out]`.
    pub out_b: Tensor<B, 1>,
}

/// One decoder layer; linear weights are `[in, out]` (transposed from PyTorch).
#[derive(Debug, Clone)]
pub struct LayerWeights<B: Backend> {
    /// RMSNorm weight before attention.
    pub input_norm: Tensor<B, 1>,
    /// q, k and v projections side by side: `[D, 3D]` (one matmul).
    pub qkv: Tensor<B, 2>,
    /// Attention output projection `[D, D]`.
    pub o: Tensor<B, 2>,
    /// RMSNorm weight before the MLP.
    pub post_norm: Tensor<B, 1>,
    /// gate and up projections side by side: `[D, 2I]` (one matmul).
    pub gate_up: Tensor<B, 2>,
    /// MLP down projection `[I, D]`.
    pub down: Tensor<B, 2>,
}

/// Decoder weights.
#[derive(Debug, Clone)]
pub struct DecoderWeights<B: Backend> {
    /// `[vocab, D]`.
    pub embed: Tensor<B, 2>,
    /// The layers, first to last.
    pub layers: Vec<LayerWeights<B>>,
    /// Final RMSNorm weight.
    pub norm: Tensor<B, 1>,
    /// `[D, vocab * K]`: head k uses columns `k*vocab .. (k+1)*vocab`.
    pub lm_head: Tensor<B, 2>,
    /// `[D, K]`.
    pub task_loss: Tensor<B, 2>,
}

/// All weights of a model.
#[derive(Debug, Clone)]
pub struct ModelWeights<B: Backend> {
    /// The vision encoder's.
    pub vision: VisionWeights<B>,
    /// Connector `[vision_tokens, D]`.
    pub pos_embed: Tensor<B, 2>,
    /// The gaze decoder's.
    pub decoder: DecoderWeights<B>,
}

const PREFIX: &str = "gazing_model.";

/// Every tensor name and shape the config implies (HF/PyTorch layout), in
/// the order [`build`] reads them.
pub fn expected_tensors(c: &AutoGazeConfig) -> Vec<(String, Vec<usize>)> {
    let (cv, d, p) = (c.vision_hidden, c.hidden, c.patch);
    let (kt, ks) = (c.trunk_temporal, c.trunk_spatial);
    let mut out = vec![
        (
            "vision_model.temporal_conv.weight".to_string(),
            vec![cv, 3, 1, p, p],
        ),
        ("vision_model.temporal_conv.bias".into(), vec![cv]),
        ("vision_model.norm.weight".into(), vec![cv]),
        ("vision_model.norm.bias".into(), vec![cv]),
        (
            "vision_model.blocks.0.conv3d.weight".into(),
            vec![cv, cv, kt, ks, ks],
        ),
        ("vision_model.blocks.0.conv3d.bias".into(), vec![cv]),
        (
            "vision_model.out_proj.weight".into(),
            vec![c.vision_out, cv, 1, 1, 1],
        ),
        ("vision_model.out_proj.bias".into(), vec![c.vision_out]),
        ("connector.pos_embed".into(), vec![c.vision_tokens(), d]),
        (
            "gaze_decoder.model.embed_tokens.weight".into(),
            vec![c.vocab(), d],
        ),
        ("gaze_decoder.model.norm.weight".into(), vec![d]),
        (
            "gaze_decoder.lm_head.weight".into(),
            vec![c.vocab() * c.multi_token, d],
        ),
        (
            "gaze_decoder.task_loss_prediction_head.weight".into(),
            vec![c.multi_token, d],
        ),
    ];
    for l in 0..c.layers {
        let pre = format!("gaze_decoder.model.layers.{l}.");
        for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            out.push((format!("{pre}self_attn.{proj}.weight"), vec![d, d]));
        }
        out.push((
            format!("{pre}mlp.gate_proj.weight"),
            vec![c.intermediate, d],
        ));
        out.push((format!("{pre}mlp.up_proj.weight"), vec![c.intermediate, d]));
        out.push((
            format!("{pre}mlp.down_proj.weight"),
            vec![d, c.intermediate],
        ));
        out.push((format!("{pre}input_layernorm.weight"), vec![d]));
        out.push((format!("{pre}post_attention_layernorm.weight"), vec![d]));
    }
    out.into_iter()
        .map(|(n, s)| (format!("{PREFIX}{n}"), s))
        .collect()
}

/// A source of named host tensors (a file, or the random initialiser).
trait HostSource {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>>;
}

struct FileSource<'a>(&'a TensorFile);

impl HostSource for FileSource<'_> {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        Ok(self.0.f32(name, Some(shape))?.values)
    }
}

/// Seeded initialiser: N(0, 0.02) for decoder matrices and embeddings,
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for convolutions, ones for norm
/// weights, zeros for norm biases, N(0, 1) for the position embedding (the
/// reference's recipe, not its random stream).
struct RandomSource {
    state: u64,
}

impl RandomSource {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

impl HostSource for RandomSource {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let n: usize = shape.iter().product();
        let values = if name.ends_with("norm.bias") {
            vec![0.0; n]
        } else if name.ends_with("norm.weight") || name.ends_with("layernorm.weight") {
            vec![1.0; n]
        } else if name.ends_with("pos_embed") {
            (0..n).map(|_| self.normal() as f32).collect()
        } else if name.contains("vision_model") {
            let fan_in: usize = if shape.len() > 1 {
                shape[1..].iter().product()
            } else {
                shape[0]
            };
            let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
            (0..n)
                .map(|_| ((2.0 * self.uniform() - 1.0) * bound) as f32)
                .collect()
        } else {
            (0..n).map(|_| (self.normal() * 0.02) as f32).collect()
        };
        Ok(values)
    }
}

fn tensor<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// `[out, in]` (PyTorch Linear) host values -> `[in, out]` tensor, stored
/// contiguously: transposed once here on the host, so no matmul ever sees a
/// strided view (the CPU backend would copy a transposed weight on every
/// call: 2 MB for `lm_head`).
fn linear_t<B: Backend>(
    values: Vec<f32>,
    out_dim: usize,
    in_dim: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    let mut t = vec![0f32; values.len()];
    for (o, row) in values.chunks_exact(in_dim).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            t[i * out_dim + o] = v;
        }
    }
    tensor::<B, 2>(t, [in_dim, out_dim], device)
}

/// Hands out the tensors of [`expected_tensors`]'s table, in its order,
/// with their shapes: the table is the one place that names them.
struct Pull<'a> {
    table: std::vec::IntoIter<(String, Vec<usize>)>,
    src: &'a mut dyn HostSource,
}

impl Pull<'_> {
    /// The next tensor's values and shape.
    fn next(&mut self) -> Result<(Vec<f32>, Vec<usize>)> {
        let (name, shape) = self
            .table
            .next()
            .expect("build reads exactly the table's tensors");
        Ok((self.src.get(&name, &shape)?, shape))
    }

    /// The next tensor, a vector.
    fn vector<B: Backend>(&mut self, device: &B::Device) -> Result<Tensor<B, 1>> {
        let (values, shape) = self.next()?;
        Ok(tensor::<B, 1>(values, [shape[0]], device))
    }

    /// The next tensor, a `[rows, cols]` matrix.
    fn matrix<B: Backend>(&mut self, device: &B::Device) -> Result<Tensor<B, 2>> {
        let (values, shape) = self.next()?;
        Ok(tensor::<B, 2>(values, [shape[0], shape[1]], device))
    }

    /// The next tensor, a PyTorch `[out, in, ...]` weight, as `[in..., out]`.
    fn linear<B: Backend>(&mut self, device: &B::Device) -> Result<Tensor<B, 2>> {
        let (values, shape) = self.next()?;
        let inputs = shape[1..].iter().product();
        Ok(linear_t::<B>(values, shape[0], inputs, device))
    }
}

/// The trunk convolution's weight `[o, i, kt, s, s]` as one matrix per
/// temporal tap `k`: row `(dy * s + dx) * C + i`, column `o`.
fn trunk_taps<B: Backend>(
    trunk: &[f32],
    c: &AutoGazeConfig,
    device: &B::Device,
) -> Vec<Tensor<B, 2>> {
    let (cv, kt, ks) = (c.vision_hidden, c.trunk_temporal, c.trunk_spatial);
    (0..kt)
        .map(|k| {
            let mut tap = vec![0f32; ks * ks * cv * cv];
            for o in 0..cv {
                for i in 0..cv {
                    for dy in 0..ks {
                        for dx in 0..ks {
                            let src = (((o * cv + i) * kt + k) * ks + dy) * ks + dx;
                            tap[((dy * ks + dx) * cv + i) * cv + o] = trunk[src];
                        }
                    }
                }
            }
            tensor::<B, 2>(tap, [ks * ks * cv, cv], device)
        })
        .collect()
}

/// The model's tensors from `src`, in [`expected_tensors`]'s order and
/// layout (linear weights transposed once, q/k/v and gate/up joined).
fn build<B: Backend>(
    c: &AutoGazeConfig,
    src: &mut dyn HostSource,
    device: &B::Device,
) -> Result<ModelWeights<B>> {
    let mut t = Pull {
        table: expected_tensors(c).into_iter(),
        src,
    };
    let patch_w = t.linear::<B>(device)?;
    let patch_b = t.vector::<B>(device)?;
    let norm_w = t.vector::<B>(device)?;
    let norm_b = t.vector::<B>(device)?;
    let trunk_w = trunk_taps::<B>(&t.next()?.0, c, device);
    let trunk_b = t.vector::<B>(device)?;
    let out_w = t.linear::<B>(device)?;
    let out_b = t.vector::<B>(device)?;
    let pos_embed = t.matrix::<B>(device)?;
    let embed = t.matrix::<B>(device)?;
    let norm = t.vector::<B>(device)?;
    let lm_head = t.linear::<B>(device)?;
    let task_loss = t.linear::<B>(device)?;
    let mut layers = Vec::with_capacity(c.layers);
    for _ in 0..c.layers {
        let [q, k, v, o, gate, up, down] = [(); 7].map(|_| t.linear::<B>(device));
        layers.push(LayerWeights {
            qkv: Tensor::cat(vec![q?, k?, v?], 1),
            o: o?,
            gate_up: Tensor::cat(vec![gate?, up?], 1),
            down: down?,
            input_norm: t.vector::<B>(device)?,
            post_norm: t.vector::<B>(device)?,
        });
    }
    debug_assert!(t.table.next().is_none(), "build reads every tensor");
    Ok(ModelWeights {
        vision: VisionWeights {
            patch_w,
            patch_b,
            norm_w,
            norm_b,
            trunk_w,
            trunk_b,
            out_w,
            out_b,
        },
        pos_embed,
        decoder: DecoderWeights {
            embed,
            layers,
            norm,
            lm_head,
            task_loss,
        },
    })
}

/// Loads `model.safetensors` strictly: a missing, unexpected or mis-shaped
/// tensor is an error naming it (and both shapes).
pub fn load_weights<B: Backend>(
    c: &AutoGazeConfig,
    path: &Path,
    device: &B::Device,
) -> Result<ModelWeights<B>> {
    load_weights_from(c, &TensorFile::open(path)?, device)
}

/// [`load_weights`] from a file already read (or safetensors bytes, through
/// [`TensorFile::from_bytes`]).
pub fn load_weights_from<B: Backend>(
    c: &AutoGazeConfig,
    file: &TensorFile,
    device: &B::Device,
) -> Result<ModelWeights<B>> {
    let path = file.path();
    let expected = expected_tensors(c);
    let names: BTreeSet<String> = expected.iter().map(|(n, _)| n.clone()).collect();
    // Non-persistent buffers some exporters still write are tolerated.
    if let Some(extra) = file
        .names()
        .into_iter()
        .find(|n| !names.contains(n) && !n.ends_with("rotary_emb.inv_freq"))
    {
        return Err(AutoGazeError::SafeTensors {
            path: path.to_path_buf(),
            reason: format!("unexpected tensor {extra} (not part of this config's model)"),
        });
    }
    build(c, &mut FileSource(file), device)
}

/// A seeded random initialisation at the configured size.
pub fn random_weights<B: Backend>(
    c: &AutoGazeConfig,
    seed: u64,
    device: &B::Device,
) -> ModelWeights<B> {
    let mut src = RandomSource { state: seed };
    build(c, &mut src, device).unwrap_or_else(|_| unreachable!("the random source never fails"))
}
