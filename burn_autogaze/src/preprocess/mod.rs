//! RGBA8 frames to the model input `[1, T, 3, S, S]` (S = 224), exactly as
//! the reference does it:
//!
//! 1. the HF processor: Pillow resize of the uint8 frame (shortest edge 224,
//!    bilinear with antialiasing), optional centre crop, `x/127.5 - 1`
//!    (f64 multiply, f32 result), ImageNet mean/std in f32 -> CHW f32;
//! 2. the model's own `F.interpolate(bicubic, align_corners=False)` squash to
//!    S x S.
//!
//! Steps on u8 values collapse into a 3x256 lookup table, so normalisation is
//! one table read per value. Plans and scratch are kept per input size:
//! steady-state calls allocate nothing. This is the CPU path; with `wgpu`,
//! `DevicePreprocessor` is the same computation on the device (its
//! kernels in `device_kernels`), tested equal to this one.

mod bicubic;
mod config;
#[cfg(feature = "wgpu")]
mod device;
#[cfg(feature = "wgpu")]
mod device_kernels;
mod pil_resize;
#[cfg(feature = "wgpu")]
mod share;

pub use bicubic::TorchBicubic;
pub use config::{CropSize, PreprocessorConfig, ResizeTarget};
#[cfg(feature = "wgpu")]
pub use device::{DISPATCHES_A_FRAME, DeviceCounts, DeviceFrame, DevicePreprocessor};
pub use pil_resize::{PilFilter, PilResize};
#[cfg(feature = "wgpu")]
pub use share::{FrameAsk, FrameShare, LEND_WGSL, LendCounts};

use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FrameSize};

/// Side of the square model input (`input_img_size` of the model config).
pub const MODEL_INPUT_SIZE: usize = 224;

/// A preprocessed clip: `[1, T, 3, size, size]` f32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInput {
    frames: usize,
    size: usize,
    data: Vec<f32>,
}

impl ModelInput {
    /// An empty clip buffer for `size x size` frames (filled by
    /// [`Preprocessor::clip_into`]).
    pub fn new(size: usize) -> Self {
        Self {
            frames: 0,
            size,
            data: Vec::new(),
        }
    }

    /// A clip of `frames` frames already at the model input (`[1, T, 3, S,
    /// S]` values, row-major), e.g. preprocessed elsewhere.
    pub fn from_vec(frames: usize, size: usize, data: Vec<f32>) -> Result<Self> {
        let expected = crate::limits::mul("model input values", frames, 3)
            .and_then(|n| crate::limits::mul("model input values", n, size))
            .and_then(|n| crate::limits::mul("model input values", n, size))?;
        if data.len() != expected {
            return Err(AutoGazeError::setting(
                "model input",
                format!("{} values", data.len()),
                format!("{expected} ([1, {frames}, 3, {size}, {size}])"),
            ));
        }
        Ok(Self { frames, size, data })
    }

    /// `[1, T, 3, S, S]`.
    pub fn shape(&self) -> [usize; 5] {
        [1, self.frames, 3, self.size, self.size]
    }

    /// Number of frames T.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// All values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Frame `t` as `[3, S, S]`.
    pub fn frame(&self, t: usize) -> &[f32] {
        let n = 3 * self.size * self.size;
        &self.data[t * n..(t + 1) * n]
    }

    /// Uploads the clip to a Burn device as a `[1, T, 3, S, S]` tensor.
    pub fn to_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 5> {
        Tensor::from_data(TensorData::new(self.data.clone(), self.shape()), device)
    }
}

/// The processor and model-side resize, with cached plans and scratch.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    config: PreprocessorConfig,
    filter: PilFilter,
    lut: [[f32; 256]; 3],
    model_size: usize,
    resize: Option<PilResize>,
    bicubic: Option<TorchBicubic>,
    rgb: Vec<u8>,
    processed: Vec<f32>,
}

impl Preprocessor {
    /// A preprocessor for `config` producing `model_size x model_size` frames.
    pub fn new(config: PreprocessorConfig, model_size: usize) -> Result<Self> {
        config.validate()?;
        if model_size == 0 {
            return Err(AutoGazeError::setting("model input size", 0, "at least 1"));
        }
        crate::limits::at_most(
            "model input size",
            model_size,
            crate::limits::MAX_MODEL_INPUT_SIZE,
            "MAX_MODEL_INPUT_SIZE",
        )?;
        let filter = PilFilter::from_code(config.resample)?;
        let lut = value_table(&config);
        Ok(Self {
            config,
            filter,
            lut,
            model_size,
            resize: None,
            bicubic: None,
            rgb: Vec::new(),
            processed: Vec::new(),
        })
    }

    /// The released processor (shortest edge 224, bilinear, ImageNet stats) and S = 224.
    pub fn release() -> Self {
        // The default config is valid by construction.
        Self::new(PreprocessorConfig::default(), MODEL_INPUT_SIZE)
            .unwrap_or_else(|_| unreachable!("default preprocessor config is valid"))
    }

    /// The processor settings.
    pub fn config(&self) -> &PreprocessorConfig {
        &self.config
    }

    /// Side of the model input.
    pub fn model_size(&self) -> usize {
        self.model_size
    }

    /// Size after the processor's resize (before any crop).
    pub fn resized_size(&self, input: FrameSize) -> FrameSize {
        if !self.config.do_resize {
            return input;
        }
        match self.config.size {
            ResizeTarget::Exact { height, width } => FrameSize { width, height },
            ResizeTarget::ShortestEdge { shortest_edge } => {
                let (w, h) = (input.width as f64, input.height as f64);
                let edge = shortest_edge as f64;
                // Python: int(edge * long / short), truncated.
                if input.width <= input.height {
                    FrameSize {
                        width: shortest_edge,
                        height: (edge * h / w) as u32,
                    }
                } else {
                    FrameSize {
                        width: (edge * w / h) as u32,
                        height: shortest_edge,
                    }
                }
            }
        }
    }

    /// Size of the processor output (after resize and crop): the `video`
    /// tensor's H x W.
    /// A frame beyond [`crate::limits::MAX_MODEL_ASPECT_RATIO`], or one that
    /// resizes beyond the frame limits, is an error.
    pub fn processed_size(&self, input: FrameSize) -> Result<FrameSize> {
        crate::limits::model_aspect(input.width, input.height)?;
        let resized = self.resized_size(input);
        if resized.width == 0 || resized.height == 0 {
            return Err(AutoGazeError::setting(
                "frame size",
                format!("{input} (resizes to {resized})"),
                "a frame whose aspect ratio keeps both sides >= 1 px after the resize",
            ));
        }
        // Runs every frame: the name is static (no allocation unless it fails).
        crate::limits::frame_size(
            "frame size after the processor's resize",
            resized.width,
            resized.height,
        )?;
        match (self.config.do_center_crop, self.config.crop_size) {
            (true, Some(crop)) => {
                if crop.width > resized.width || crop.height > resized.height {
                    return Err(AutoGazeError::setting(
                        "crop_size",
                        format!("{}x{}", crop.width, crop.height),
                        format!("at most the resized frame, {resized}"),
                    ));
                }
                FrameSize::new(crop.width, crop.height)
            }
            _ => Ok(resized),
        }
    }

    /// Runs the HF processor on one frame; returns the CHW f32 result (the
    /// reference's `video[0, t]`) and its size.
    pub fn process_frame(&mut self, frame: &Frame) -> Result<(&[f32], FrameSize)> {
        let input = frame.size();
        let processed = self.processed_size(input)?;
        let resized = self.resized_size(input);
        let (rw, rh) = (resized.width as usize, resized.height as usize);
        let plan_fits = self.resize.as_ref().is_some_and(|p| {
            p.input_size() == (input.width as usize, input.height as usize)
                && p.output_size() == (rw, rh)
        });
        if !plan_fits {
            self.resize = Some(PilResize::new(
                input.width as usize,
                input.height as usize,
                rw,
                rh,
                self.filter,
            ));
        }
        self.rgb.resize(rw * rh * 3, 0);
        if let Some(plan) = self.resize.as_mut() {
            plan.run(frame.rgba(), 4, &mut self.rgb);
        }
        let (pw, ph) = (processed.width as usize, processed.height as usize);
        let (left, top) = ((rw - pw) / 2, (rh - ph) / 2);
        self.processed.resize(3 * pw * ph, 0.0);
        let plane = pw * ph;
        for y in 0..ph {
            let src = &self.rgb[((top + y) * rw + left) * 3..((top + y) * rw + left + pw) * 3];
            for (x, px) in src.chunks_exact(3).enumerate() {
                for (c, (&v, table)) in px.iter().zip(&self.lut).enumerate() {
                    self.processed[c * plane + y * pw + x] = table[v as usize];
                }
            }
        }
        Ok((&self.processed, processed))
    }

    /// Processor plus the model's bicubic squash: writes `[3, S, S]` into `out`.
    pub fn model_frame_into(&mut self, frame: &Frame, out: &mut [f32]) -> Result<()> {
        let s = self.model_size;
        if out.len() != 3 * s * s {
            return Err(AutoGazeError::TensorShape {
                name: "model input frame".into(),
                expected: vec![3, s, s],
                actual: vec![out.len()],
            });
        }
        let (_, size) = self.process_frame(frame)?;
        let (w, h) = (size.width as usize, size.height as usize);
        if self.bicubic.as_ref().map(|b| b.input_size()) != Some((w, h)) {
            self.bicubic = Some(TorchBicubic::new(w, h, s, s));
        }
        if let Some(plan) = self.bicubic.as_mut() {
            plan.run(&self.processed, 3, out);
        }
        Ok(())
    }

    /// Preprocesses a clip of at most [`crate::limits::MAX_CLIP_FRAMES`]
    /// frames into `out` (reusing its buffer).
    pub fn clip_into(&mut self, frames: &[Frame], out: &mut ModelInput) -> Result<()> {
        if frames.len() > crate::limits::MAX_CLIP_FRAMES {
            crate::limits::at_most(
                "frames in one clip",
                frames.len(),
                crate::limits::MAX_CLIP_FRAMES,
                "MAX_CLIP_FRAMES",
            )?;
        }
        let first = frames
            .first()
            .ok_or_else(|| AutoGazeError::EmptyClip("preprocess".into()))?
            .size();
        if let Some((index, bad)) = frames.iter().enumerate().find(|(_, f)| f.size() != first) {
            return Err(AutoGazeError::MismatchedFrameSize {
                context: "clip".into(),
                index,
                expected_w: first.width,
                expected_h: first.height,
                actual_w: bad.width(),
                actual_h: bad.height(),
            });
        }
        let s = self.model_size;
        let n = 3 * s * s;
        out.size = s;
        out.frames = frames.len();
        out.data.resize(frames.len() * n, 0.0);
        for (frame, dst) in frames.iter().zip(out.data.chunks_exact_mut(n)) {
            self.model_frame_into(frame, dst)?;
        }
        Ok(())
    }

    /// Per channel, `(scale, offset)` that take a model-input value back to
    /// display intensity in [0, 1] (`value * scale + offset`): the inverse
    /// of the rescale and normalisation steps (up to their rounding), for
    /// showing what the model sees.
    pub fn display_affine(&self) -> [(f32, f32); 3] {
        let c = &self.config;
        let (rescale, shift) = if c.do_rescale {
            (c.rescale_factor, if c.offset { 1.0 } else { 0.0 })
        } else {
            (1.0, 0.0)
        };
        std::array::from_fn(|i| {
            let (mean, std) = if c.do_normalize {
                (c.image_mean[i], c.image_std[i])
            } else {
                (0.0, 1.0)
            };
            let to_unit = 1.0 / (rescale * 255.0);
            ((std * to_unit) as f32, ((mean + shift) * to_unit) as f32)
        })
    }

    /// Preprocesses a clip into a new `[1, T, 3, S, S]` buffer.
    pub fn clip(&mut self, frames: &[Frame]) -> Result<ModelInput> {
        let mut out = ModelInput::new(self.model_size);
        self.clip_into(frames, &mut out)?;
        Ok(out)
    }
}

/// The processor's value mapping for every u8 value of every channel, with
/// the reference's exact float steps.
fn value_table(config: &PreprocessorConfig) -> [[f32; 256]; 3] {
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (x, v) in table.iter_mut().enumerate() {
            let mut value = x as f32;
            if config.do_rescale {
                // numpy: astype(float64) * scale, astype(float32), then - 1 in f32.
                value = (x as f64 * config.rescale_factor) as f32;
                if config.offset {
                    value -= 1.0;
                }
            }
            if config.do_normalize {
                value = (value - config.image_mean[c] as f32) / config.image_std[c] as f32;
            }
            *v = value;
        }
    }
    lut
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_display_affine_inverts_the_value_mapping() {
        let pre = Preprocessor::release();
        let lut = value_table(pre.config());
        for (c, (scale, offset)) in pre.display_affine().into_iter().enumerate() {
            for x in [0usize, 1, 77, 128, 254, 255] {
                let unit = lut[c][x] * scale + offset;
                assert!(
                    (unit * 255.0 - x as f32).abs() < 1e-3,
                    "c {c} x {x}: {unit}"
                );
            }
        }
    }

    fn solid(w: u32, h: u32, rgb: [u8; 3]) -> Frame {
        let px: Vec<u8> = (0..w * h)
            .flat_map(|_| [rgb[0], rgb[1], rgb[2], 9])
            .collect();
        Frame::new(0, w, h, px, Duration::ZERO).unwrap()
    }

    #[test]
    fn shortest_edge_sizes_follow_the_reference() {
        let p = Preprocessor::release();
        let size = |w, h| p.resized_size(FrameSize::new(w, h).unwrap());
        assert_eq!(
            size(1920, 1080),
            FrameSize {
                width: 398,
                height: 224
            }
        );
        assert_eq!(
            size(1280, 720),
            FrameSize {
                width: 398,
                height: 224
            }
        );
        assert_eq!(
            size(448, 448),
            FrameSize {
                width: 224,
                height: 224
            }
        );
        assert_eq!(
            size(320, 128),
            FrameSize {
                width: 560,
                height: 224
            }
        );
        assert_eq!(
            size(101, 303),
            FrameSize {
                width: 224,
                height: 672
            }
        );
    }

    #[test]
    fn white_and_black_map_to_the_documented_values() {
        let mut p = Preprocessor::release();
        let mut out = vec![0.0; 3 * 224 * 224];
        p.model_frame_into(&solid(300, 200, [255, 255, 255]), &mut out)
            .unwrap();
        let plane = 224 * 224;
        for (c, want) in [2.2489, 2.4286, 2.6400].iter().enumerate() {
            assert!(
                (out[c * plane + 1000] - want).abs() < 1e-3,
                "c{c}: {}",
                out[c * plane]
            );
        }
        p.model_frame_into(&solid(17, 9, [0, 0, 0]), &mut out)
            .unwrap();
        for (c, want) in [-6.4847, -6.4993, -6.2489].iter().enumerate() {
            assert!((out[c * plane + 5] - want).abs() < 1e-3);
        }
    }

    #[test]
    fn clip_errors_name_the_problem() {
        let mut p = Preprocessor::release();
        let message = |r: Result<ModelInput>| r.err().map(|e| e.to_string()).unwrap_or_default();
        let err = message(p.clip(&[]));
        assert!(err.contains("at least one frame"), "{err}");
        let err = message(p.clip(&[solid(8, 8, [1, 2, 3]), solid(8, 9, [1, 2, 3])]));
        assert!(
            err.contains("frame 1") && err.contains("8x9") && err.contains("8x8"),
            "{err}"
        );
        let mut out = vec![0.0; 5];
        let err = p
            .model_frame_into(&solid(8, 8, [0, 0, 0]), &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[3, 224, 224]"), "{err}");
        // A strip 1 px high would resize to 224 x 229376 px: refused by its
        // aspect ratio before anything is allocated.
        let err = message(p.clip(&[solid(1024, 1, [0, 0, 0])]));
        assert!(
            err.contains("1024x1") && err.contains("MAX_MODEL_ASPECT_RATIO"),
            "{err}"
        );
        assert!(Preprocessor::new(PreprocessorConfig::default(), 1 << 20).is_err());
        // Frames share one buffer: 1025 of them cost nothing to build.
        let err = message(p.clip(&vec![solid(2, 2, [0, 0, 0]); 1025]));
        assert!(
            err.contains("1025") && err.contains("MAX_CLIP_FRAMES"),
            "{err}"
        );
        assert!(ModelInput::from_vec(usize::MAX, 224, Vec::new()).is_err());
    }

    #[test]
    fn clip_buffer_is_reused() {
        let mut p = Preprocessor::release();
        let frames = vec![solid(64, 48, [10, 20, 30]); 2];
        let mut input = ModelInput::new(224);
        p.clip_into(&frames, &mut input).unwrap();
        let ptr = input.data().as_ptr();
        p.clip_into(&frames, &mut input).unwrap();
        assert_eq!(input.data().as_ptr(), ptr);
        assert_eq!(input.shape(), [1, 2, 3, 224, 224]);
    }
}
