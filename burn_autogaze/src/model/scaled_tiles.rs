//! The reference's tiled inference (`target_scales` / `target_patch_size`)
//! on a stream: each frame is resized to the largest target scale S (a
//! square, as the reference's processor does), cut into the [`TileGrid`]'s
//! n x n tiles of `14 * p` pixels, and each tile runs as its own decoder
//! stream (the tiles of a frame encoded as one batch, as AnyRes does). The
//! tiles' tokens come back with their rectangles in source pixels (the
//! tile grid scaled back to the frame), so the plan covers the frame.
//!
//! The whole-clip path (`AutoGaze::generate_tiled`, stitched ids) is the
//! one compared with the reference (`cargo xtask gaze --target-scales`);
//! here each tile's preprocessing is the model's own resize of a square
//! tile (a no-op at p = 16).

use burn::tensor::backend::Backend;

use super::anyres::AnyResStream;
use super::autogaze::AutoGaze;
use super::options::GenerateOptions;
use super::tiling::TileGrid;
use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FramePool, FrameSize};
use crate::mask::Rect;
use crate::preprocess::{PilFilter, PilResize, Preprocessor};

/// A model running the reference's tiled inference on a stream of frames.
pub struct ScaledTiles<B: Backend> {
    grid: TileGrid,
    source: FrameSize,
    resize: PilResize,
    rgb: Vec<u8>,
    pool: FramePool,
    stream: AnyResStream<B>,
}

impl<B: Backend> ScaledTiles<B> {
    /// Streams for `frame`-sized input tiled by `target_scales` / `patch`
    /// (a typed error where the scales do not tile the model's grids).
    pub fn new(
        model: &AutoGaze<B>,
        preprocessor: Preprocessor,
        frame: FrameSize,
        target_scales: &[u32],
        patch: u32,
        horizon: usize,
    ) -> Result<Self> {
        let grid = TileGrid::new(&model.config().layout, target_scales, patch)?;
        let side = grid.side as u32;
        let square = FrameSize::new(side, side)?;
        let stream = AnyResStream::new(
            model,
            preprocessor,
            square,
            grid.tiles * grid.tiles,
            horizon,
        )?;
        let g = stream.grid();
        if (g.rows as usize, g.cols as usize, g.side as usize)
            != (grid.tiles, grid.tiles, grid.tile_side)
        {
            return Err(AutoGazeError::setting(
                "target_scales",
                format!("{target_scales:?} / patch {patch}"),
                "a square grid of 14 x patch tiles",
            ));
        }
        let s = grid.side;
        Ok(Self {
            resize: PilResize::new(
                frame.width as usize,
                frame.height as usize,
                s,
                s,
                PilFilter::Bicubic,
            ),
            rgb: vec![0; s * s * 3],
            pool: FramePool::new(s * s * 4, 2),
            grid,
            source: frame,
            stream,
        })
    }

    /// The tile geometry.
    pub fn grid(&self) -> &TileGrid {
        &self.grid
    }

    /// Decodes one frame into `out`: each tile's source rectangle and its
    /// valid tokens (row-major tiles).
    pub fn step(
        &mut self,
        model: &AutoGaze<B>,
        frame: &Frame,
        options: &GenerateOptions,
        out: &mut Vec<(Rect, Vec<u32>)>,
    ) -> Result<()> {
        crate::wait::block_on(
            "target-scales step",
            self.step_async(model, frame, options, out),
        )
    }

    /// [`ScaledTiles::step`], the frame's readback awaited.
    pub async fn step_async(
        &mut self,
        model: &AutoGaze<B>,
        frame: &Frame,
        options: &GenerateOptions,
        out: &mut Vec<(Rect, Vec<u32>)>,
    ) -> Result<()> {
        if frame.size() != self.source {
            return Err(AutoGazeError::MismatchedFrameSize {
                context: "target_scales stream".into(),
                index: frame.seq as usize,
                expected_w: self.source.width,
                expected_h: self.source.height,
                actual_w: frame.width(),
                actual_h: frame.height(),
            });
        }
        self.resize.run(frame.rgba(), 4, &mut self.rgb);
        let rgb = &self.rgb;
        let pixels = self.pool.fill(|rgba| {
            for (px, c) in rgba.chunks_exact_mut(4).zip(rgb.chunks_exact(3)) {
                px.copy_from_slice(&[c[0], c[1], c[2], 255]);
            }
        });
        let s = self.grid.side as u32;
        let square = Frame::new(frame.seq, s, s, pixels, frame.timestamp)?;
        let gaze = self.stream.step_async(model, &square, options).await?;
        self.stream.tile_tokens(&gaze, out);
        let (w, h) = (self.source.width as u64, self.source.height as u64);
        let scale = |v: u32, full: u64| ((v as u64 * full).div_ceil(s as u64)) as u32;
        for (rect, _) in out.iter_mut() {
            *rect = Rect {
                x0: scale(rect.x0, w),
                y0: scale(rect.y0, h),
                x1: scale(rect.x1, w),
                y1: scale(rect.y1, h),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AutoGazeConfig;

    #[test]
    fn tiles_cover_the_source_frame_and_bad_scales_are_refused() {
        type B = burn::backend::NdArray<f32>;
        let device = Default::default();
        let model = AutoGaze::<B>::random(AutoGazeConfig::release(), 1, &device);
        let frame_size = FrameSize::new(96, 54).unwrap();
        let mut tiled = ScaledTiles::new(
            &model,
            Preprocessor::release(),
            frame_size,
            &[64, 128, 224, 448],
            16,
            4,
        )
        .unwrap();
        assert_eq!((tiled.grid().tiles, tiled.grid().tile_side), (2, 224));
        let rgba: Vec<u8> = (0..96 * 54 * 4).map(|i| (i * 7 % 251) as u8).collect();
        let frame = Frame::new(0, 96, 54, std::sync::Arc::new(rgba), Default::default()).unwrap();
        let options = GenerateOptions {
            gazing_ratio: 0.2,
            task_loss_requirement: None,
        };
        let mut out = Vec::new();
        tiled.step(&model, &frame, &options, &mut out).unwrap();
        let rects: Vec<Rect> = out.iter().map(|(r, _)| *r).collect();
        let q = |x0, y0, x1, y1| Rect { x0, y0, x1, y1 };
        assert_eq!(
            rects,
            [
                q(0, 0, 48, 27),
                q(48, 0, 96, 27),
                q(0, 27, 48, 54),
                q(48, 27, 96, 54)
            ]
        );
        assert!(out.iter().all(|(_, ids)| !ids.is_empty()));
        let err = ScaledTiles::new(
            &model,
            Preprocessor::release(),
            frame_size,
            &[64, 128, 240, 480],
            16,
            4,
        )
        .err()
        .expect("misaligned scales")
        .to_string();
        assert!(err.contains("target_scales"), "{err}");
    }
}
