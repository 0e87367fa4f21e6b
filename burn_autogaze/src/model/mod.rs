//! AutoGaze in Burn: configuration, weights, vision encoder, gaze decoder and
//! greedy multi-token generation (full clip or streaming).

mod anyres;
mod config;
mod cpu_decoder;
mod cpu_encoder;
mod cpu_kernels;
mod decoder;
mod generate;
mod key_panels;
mod tiling;
mod vision;
mod weights;

use std::path::Path;
use std::sync::Arc;

use burn::tensor::backend::Backend;

pub use anyres::{AnyResGrid, AnyResStream, DEFAULT_MAX_TILES};
pub use config::{AutoGazeConfig, RopeScaling};
pub use decoder::{KvCache, inv_freq};
pub use generate::{
    DecodeStep, FrameGaze, GenerateOptions, Selection, StreamState, lockstep, max_tokens,
};
pub use tiling::{TileGrid, TiledGaze};
pub use vision::ConvCache;
pub use weights::{ModelWeights, expected_tensors, load_weights, random_weights};

/// A tensor's values on the host, as f32 in row-major order (on the CPU
/// backend a copy; on a GPU backend a readback).
fn host_values<B: Backend, const D: usize>(t: burn::tensor::Tensor<B, D>) -> Vec<f32> {
    #[cfg(feature = "ndarray")]
    if let Some(values) = ndarray_f32_values(&t) {
        return values;
    }
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 values after the conversion to f32")
}

/// An f32 burn-ndarray tensor's values, copied from a view when they lie
/// contiguous in row-major order (None on other backends, dtypes or
/// layouts).
///
/// Why: `into_data` of a tensor whose array is shared (a clone of it is
/// alive, as with a frame the caller keeps) walks ndarray's dynamic-rank
/// element iterator, ~15 ns a value (PERF_LOOP, 2026-11-23: 3 ms of a
/// 224x224 frame's encode); a view of the same values is one `memcpy`.
#[cfg(feature = "ndarray")]
fn ndarray_f32_values<B: Backend, const D: usize>(
    t: &burn::tensor::Tensor<B, D>,
) -> Option<Vec<f32>> {
    use burn::backend::ndarray::NdArrayTensor;
    use burn::tensor::TensorPrimitive;
    let TensorPrimitive::Float(primitive) = t.clone().into_primitive() else {
        return None;
    };
    match (&primitive as &dyn std::any::Any).downcast_ref::<NdArrayTensor>()? {
        NdArrayTensor::F32(storage) => storage.view().as_slice().map(<[f32]>::to_vec),
        _ => None,
    }
}

/// A loaded model on one device.
#[derive(Debug, Clone)]
pub struct AutoGaze<B: Backend> {
    config: AutoGazeConfig,
    weights: ModelWeights<B>,
    rope: decoder::Rope<B>,
    /// Where selection runs (None: [`AutoGaze::selection_for`]'s rule).
    selection: Option<Selection>,
    /// Burn's CPU backend (`ndarray`): its "readback" is a copy.
    cpu: bool,
    /// Share decoder calls between streams in lockstep (None: on a GPU
    /// backend only).
    batch_streams: Option<bool>,
    /// The fused host kernels, when the model runs on the CPU outside Burn
    /// ops (see [`AutoGaze::set_cpu_kernels`]).
    cpu_kernels: Option<Arc<CpuKernels>>,
}

/// The encoder's and decoder's weights packed for the host kernels.
#[derive(Debug)]
struct CpuKernels {
    encoder: cpu_encoder::CpuEncoder,
    decoder: cpu_decoder::CpuDecoder,
}

impl<B: Backend> AutoGaze<B> {
    /// Loads a Hugging Face model directory (`config.json` + `model.safetensors`).
    pub fn load(dir: &Path, device: &B::Device) -> crate::Result<Self> {
        let config = AutoGazeConfig::from_file(&dir.join("config.json"))?;
        let weights = load_weights(&config, &dir.join("model.safetensors"), device)?;
        Ok(Self::from_parts(config, weights))
    }

    /// A seeded random model of `config`'s size (no weights file needed).
    pub fn random(config: AutoGazeConfig, seed: u64, device: &B::Device) -> Self {
        let weights = random_weights(&config, seed, device);
        Self::from_parts(config, weights)
    }

    fn from_parts(config: AutoGazeConfig, weights: ModelWeights<B>) -> Self {
        let device = weights.decoder.embed.device();
        let rope = decoder::Rope::new(&config, &device);
        let cpu = B::name(&device).to_ascii_lowercase().contains("ndarray");
        let mut model = Self {
            config,
            weights,
            rope,
            selection: None,
            cpu,
            batch_streams: None,
            cpu_kernels: None,
        };
        model.set_cpu_kernels(cpu);
        model
    }

    /// Runs the encoder and the decoder's calls on the host CPU in fused
    /// kernels instead of through Burn ops: products in one packed-panel
    /// GEMM (AVX2 + FMA when the CPU has them) over weights packed once,
    /// attention and softmax in one pass per head, the KV cache grown in
    /// place. The default on Burn's CPU backend (ndarray), where it is
    /// several times faster (PERF_LOOP, 2026-11-23). On a GPU backend it
    /// reads each frame and each decoder call's input back and uploads the
    /// results: possible, rarely useful. Same tokens either way (tested); a
    /// stream's caches move over on their next use.
    pub fn set_cpu_kernels(&mut self, on: bool) {
        self.cpu_kernels = on.then(|| {
            Arc::new(CpuKernels {
                encoder: cpu_encoder::CpuEncoder::new(&self.weights, &self.config),
                decoder: cpu_decoder::CpuDecoder::new(&self.weights, &self.config),
            })
        });
    }

    /// Whether the model runs in the fused CPU kernels
    /// ([`AutoGaze::set_cpu_kernels`]).
    pub fn uses_cpu_kernels(&self) -> bool {
        self.cpu_kernels.is_some()
    }

    /// The selection set with [`AutoGaze::set_selection`], if any.
    pub fn selection(&self) -> Option<Selection> {
        self.selection
    }

    /// Chooses where untraced decoding selects tokens, overriding
    /// [`AutoGaze::selection_for`]'s rule; both give the same tokens.
    pub fn set_selection(&mut self, selection: Selection) {
        self.selection = Some(selection);
    }

    /// Where untraced decoding with `options` selects tokens: the one set
    /// with [`AutoGaze::set_selection`], else
    /// - `Host` on Burn's CPU backend (`ndarray`), where a readback is a copy;
    /// - `Host` with a task-loss requirement: the gate ends frames early, and
    ///   a readback per decoder call costs less than the calls `Device`
    ///   would decode past the stop (on an H100, 6-8 ms against 81-139 ms for
    ///   a frame stopped after its first chunk: PERF_LOOP, 2026-11-23);
    /// - `Device` otherwise (the whole budget is decoded anyway: one
    ///   readback per frame instead of one per call).
    pub fn selection_for(&self, options: &GenerateOptions) -> Selection {
        match self.selection {
            Some(s) => s,
            None if self.cpu || options.task_loss_requirement.is_some() => Selection::Host,
            None => Selection::Device,
        }
    }

    /// Whether [`AutoGaze::decode_frames`] shares decoder calls between
    /// streams in lockstep (which excludes a task-loss gate). By default it
    /// does on a GPU backend (one chain of kernels for all tiles: 2.5-4x
    /// faster than one tile after another on an H100) and not on burn-ndarray
    /// (15-35 % slower there; PERF_LOOP, 2026-11-23). Same tokens either way.
    pub fn batches_streams(&self) -> bool {
        self.batch_streams.unwrap_or(!self.cpu)
    }

    /// Overrides [`AutoGaze::batches_streams`].
    pub fn set_batch_streams(&mut self, on: bool) {
        self.batch_streams = Some(on);
    }

    /// The configuration.
    pub fn config(&self) -> &AutoGazeConfig {
        &self.config
    }
}

#[cfg(all(test, feature = "ndarray"))]
mod tests {
    use burn::backend::NdArray;
    use burn::tensor::Tensor;

    use super::{host_values, ndarray_f32_values};

    #[test]
    fn host_values_of_shared_and_strided_ndarray_tensors() {
        let t = Tensor::<NdArray, 2>::from_data(
            [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
            &Default::default(),
        );
        let kept = t.clone();
        // Shared and contiguous: the view's copy.
        assert_eq!(
            ndarray_f32_values(&t),
            Some(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        );
        assert_eq!(host_values(t), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // A row at an offset: still contiguous.
        assert_eq!(
            host_values(kept.clone().slice([1..2, 0..3])),
            vec![4.0, 5.0, 6.0]
        );
        // Not row-major: no view; into_data's copy in row-major order.
        let transposed = kept.clone().transpose();
        assert_eq!(ndarray_f32_values(&transposed), None);
        assert_eq!(host_values(transposed), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(
            host_values(kept.slice([0..2, 1..3])),
            vec![2.0, 3.0, 5.0, 6.0]
        );
    }
}
