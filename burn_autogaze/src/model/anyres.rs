//! AnyRes: 720p / 1080p frames as square model tiles, never stretched.
//!
//! The reference squashes any frame to 224 x 224 (a 16:9 frame loses 44 % of
//! its horizontal resolution relative to the vertical). Here the frame is
//! covered by a grid of *square* tiles in source pixels: `rows` tiles of side
//! `ceil(H / rows)` per column and as many columns as the width needs, the
//! last column / row overhanging the frame on the right / bottom (the
//! overhang is black). `rows` is the largest count whose grid stays within
//! `max_tiles`. Each tile is preprocessed like a frame (shortest edge 224 on
//! a square tile: an isotropic resize) and runs as its own stream; the
//! tiles of a frame go through the encoder as one batch, then each stream
//! decodes its tile. Cells map back to source rectangles clipped to the
//! frame.
//!
//! 1920x1080 with 8 tiles: 2 x 4 tiles of 540 px (240 px of overhang);
//! 1280x720: 2 x 4 tiles of 360 px (160 px).

use burn::tensor::backend::Backend;

use super::autogaze::AutoGaze;
use super::options::{FrameGaze, GenerateOptions};
use super::stream::StreamState;
use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FramePool, FrameSize};
use crate::mask::Rect;
use crate::preprocess::{ModelInput, Preprocessor};

/// Default tile budget of AnyRes.
pub const DEFAULT_MAX_TILES: usize = 8;

/// The tile grid of one frame size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnyResGrid {
    /// The frame the grid covers.
    pub frame: FrameSize,
    /// Tile rows.
    pub rows: u32,
    /// Tile columns.
    pub cols: u32,
    /// Tile side in source pixels.
    pub side: u32,
}

impl AnyResGrid {
    /// The finest square grid of at most `max_tiles` tiles covering `frame`
    /// (`max_tiles` within [`crate::limits::MAX_ANYRES_TILES`]; a frame
    /// needing more tiles than that, by its aspect ratio, is an error).
    pub fn new(frame: FrameSize, max_tiles: usize) -> Result<Self> {
        if max_tiles == 0 {
            return Err(AutoGazeError::setting("AnyRes tiles", 0, "at least 1"));
        }
        crate::limits::at_most(
            "AnyRes tiles",
            max_tiles,
            crate::limits::MAX_ANYRES_TILES,
            "MAX_ANYRES_TILES",
        )?;
        crate::limits::model_aspect(frame.width, frame.height)?;
        let (w, h) = (frame.width, frame.height);
        let grid = |rows: u32| {
            let side = h.div_ceil(rows).max(1);
            let cols = w.div_ceil(side).max(1);
            Self {
                frame,
                rows,
                cols,
                side,
            }
        };
        // Tall frames: tile along the short side instead.
        let mut best = if h <= w {
            grid(1)
        } else {
            Self::tall(frame, 1)
        };
        for n in 2..=max_tiles as u32 {
            let g = if h <= w {
                grid(n)
            } else {
                Self::tall(frame, n)
            };
            if (g.rows as u64 * g.cols as u64) <= max_tiles as u64 {
                best = g;
            } else {
                break;
            }
        }
        // One row of tiles may need more than the budget (a wide frame).
        crate::limits::at_most(
            format!("AnyRes tiles a {frame} frame needs"),
            best.len(),
            max_tiles.max(crate::limits::MAX_MODEL_ASPECT_RATIO as usize),
            "MAX_ANYRES_TILES, MAX_MODEL_ASPECT_RATIO",
        )?;
        Ok(best)
    }

    fn tall(frame: FrameSize, cols: u32) -> Self {
        let side = frame.width.div_ceil(cols).max(1);
        let rows = frame.height.div_ceil(side).max(1);
        Self {
            frame,
            rows,
            cols,
            side,
        }
    }

    /// Number of tiles.
    pub fn len(&self) -> usize {
        (self.rows * self.cols) as usize
    }

    /// Always false: a grid has at least one tile.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every tile's source rectangle, row-major ([`AnyResGrid::tile_rect`]).
    pub fn rects(&self) -> impl Iterator<Item = Rect> + '_ {
        (0..self.len()).map(|k| self.tile_rect(k))
    }

    /// Source rectangle of tile `k` (row-major); may overhang the frame.
    pub fn tile_rect(&self, k: usize) -> Rect {
        let (r, c) = (k as u32 / self.cols, k as u32 % self.cols);
        Rect {
            x0: c * self.side,
            y0: r * self.side,
            x1: (c + 1) * self.side,
            y1: (r + 1) * self.side,
        }
    }
}

/// The square tile `r` of `frame` (it may overhang the frame: that part is
/// opaque black) as a frame, its pixels in a buffer of `pool`.
pub fn crop_tile(frame: &Frame, r: Rect, pool: &mut FramePool) -> Result<Frame> {
    let side = r.width() as usize;
    let (fw, fh) = (frame.width() as usize, frame.height() as usize);
    let pixels = pool.fill(|tile| {
        for (y, row) in tile.chunks_exact_mut(side * 4).enumerate() {
            let sy = r.y0 as usize + y;
            let x0 = r.x0 as usize;
            let inside = if sy < fh {
                fw.saturating_sub(x0).min(side)
            } else {
                0
            };
            if inside > 0 {
                row[..inside * 4].copy_from_slice(
                    &frame.rgba()[(sy * fw + x0) * 4..(sy * fw + x0 + inside) * 4],
                );
            }
            for px in row[inside * 4..].chunks_exact_mut(4) {
                px.copy_from_slice(&[0, 0, 0, 255]);
            }
        }
    });
    Frame::new(frame.seq, side as u32, side as u32, pixels, frame.timestamp)
}

/// A model running AnyRes on a stream of frames: one decoder stream per tile.
pub struct AnyResStream<B: Backend> {
    grid: AnyResGrid,
    streams: Vec<StreamState<B>>,
    preprocessor: Preprocessor,
    tiles: FramePool,
    input: ModelInput,
}

impl<B: Backend> AnyResStream<B> {
    /// Streams for `frame`-sized input with at most `max_tiles` tiles.
    pub fn new(
        model: &AutoGaze<B>,
        preprocessor: Preprocessor,
        frame: FrameSize,
        max_tiles: usize,
        horizon: usize,
    ) -> Result<Self> {
        let grid = AnyResGrid::new(frame, max_tiles)?;
        let streams = (0..grid.len())
            .map(|_| {
                let mut s = model.new_stream();
                s.set_horizon(horizon);
                s
            })
            .collect();
        Ok(Self {
            tiles: FramePool::new((grid.side * grid.side * 4) as usize, grid.len()),
            input: ModelInput::new(preprocessor.model_size()),
            grid,
            streams,
            preprocessor,
        })
    }

    /// The tile grid.
    pub fn grid(&self) -> &AnyResGrid {
        &self.grid
    }

    /// Decodes one frame: one `FrameGaze` per tile (row-major).
    pub fn step(
        &mut self,
        model: &AutoGaze<B>,
        frame: &Frame,
        options: &GenerateOptions,
    ) -> Result<Vec<FrameGaze>> {
        crate::wait::block_on("AnyRes step", self.step_async(model, frame, options))
    }

    /// [`AnyResStream::step`], the frame's readback awaited.
    pub async fn step_async(
        &mut self,
        model: &AutoGaze<B>,
        frame: &Frame,
        options: &GenerateOptions,
    ) -> Result<Vec<FrameGaze>> {
        if frame.size() != self.grid.frame {
            return Err(AutoGazeError::MismatchedFrameSize {
                context: "AnyRes stream".into(),
                index: frame.seq as usize,
                expected_w: self.grid.frame.width,
                expected_h: self.grid.frame.height,
                actual_w: frame.width(),
                actual_h: frame.height(),
            });
        }
        let mut tiles = Vec::with_capacity(self.grid.len());
        for r in self.grid.rects() {
            tiles.push(crop_tile(frame, r, &mut self.tiles)?);
        }
        // Every tile preprocessed into one input, encoded as one batch.
        self.preprocessor.clip_into(&tiles, &mut self.input)?;
        drop(tiles);
        model
            .step_streams_input_async(&mut self.streams, &self.input, options)
            .await
    }

    /// Decodes one frame whose tiles are already the model's inputs on
    /// its device (`[n, 3, S, S]`, the tiles of [`AnyResGrid::rects`] in
    /// order: [`DevicePreprocessor::tiles_input`](crate::preprocess::DevicePreprocessor::tiles_input)).
    pub fn step_tiles(
        &mut self,
        model: &AutoGaze<B>,
        tiles: burn::tensor::Tensor<B, 4>,
        options: &GenerateOptions,
    ) -> Result<Vec<FrameGaze>> {
        model.step_streams(&mut self.streams, tiles, options)
    }

    /// [`AnyResStream::step_tiles`], the frame's readback awaited.
    pub async fn step_tiles_async(
        &mut self,
        model: &AutoGaze<B>,
        tiles: burn::tensor::Tensor<B, 4>,
        options: &GenerateOptions,
    ) -> Result<Vec<FrameGaze>> {
        model
            .step_streams_async(&mut self.streams, tiles, options)
            .await
    }

    /// The tiles' source rectangles paired with their valid tokens, for
    /// `MaskPlanner::plan_tiles_into`.
    pub fn tile_tokens(&self, gaze: &[FrameGaze], out: &mut Vec<(Rect, Vec<u32>)>) {
        out.clear();
        for (k, g) in gaze.iter().enumerate() {
            out.push((self.grid.tile_rect(k), g.valid().collect()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(w: u32, h: u32, n: usize) -> AnyResGrid {
        AnyResGrid::new(FrameSize::new(w, h).unwrap(), n).unwrap()
    }

    /// AnyRes tiles made on the device equal the host's crops preprocessed
    /// on the host (within the model input's rounding), overhang included.
    #[cfg(feature = "wgpu")]
    #[test]
    fn tiles_made_on_the_device_equal_the_hosts() {
        use crate::preprocess::DevicePreprocessor;
        let device = burn::backend::wgpu::WgpuDevice::default();
        let mut host = Preprocessor::release();
        let mut pre = DevicePreprocessor::new(host.clone(), &device);
        for (w, h, n) in [(1280, 720, 8), (96, 54, 2), (61, 130, 3)] {
            let rgba: Vec<u8> = (0..w * h * 4u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            let frame = Frame::new(3, w, h, std::sync::Arc::new(rgba), Default::default()).unwrap();
            let g = grid(w, h, n);
            let rects: Vec<Rect> = g.rects().collect();
            let mut pool = FramePool::new((g.side * g.side * 4) as usize, g.len());
            let tiles: Vec<Frame> = rects
                .iter()
                .map(|r| crop_tile(&frame, *r, &mut pool).unwrap())
                .collect();
            let mut input = ModelInput::new(host.model_size());
            host.clip_into(&tiles, &mut input).unwrap();
            let on_device = pre.tiles_input(&frame, g.side, &rects).unwrap();
            let s = host.model_size();
            assert_eq!(on_device.dims(), [g.len(), 3, s, s]);
            let got = on_device.into_data().to_vec::<f32>().unwrap();
            assert_eq!(got.len(), input.data().len());
            let diff = got
                .iter()
                .zip(input.data())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff <= 1e-5, "{w}x{h} in {n} tiles: {diff}");
        }
        // Tiles of another size than the one named are refused.
        let frame = Frame::new(
            0,
            8,
            8,
            std::sync::Arc::new(vec![0; 256]),
            Default::default(),
        )
        .unwrap();
        let r = Rect {
            x0: 0,
            y0: 0,
            x1: 4,
            y1: 4,
        };
        assert!(pre.tiles_input(&frame, 8, &[r]).is_err());
        assert!(pre.tiles_input(&frame, 8, &[]).is_err());
    }

    #[test]
    fn grids_are_square_and_cover_the_frame() {
        let g = grid(1920, 1080, 8);
        assert_eq!((g.rows, g.cols, g.side), (2, 4, 540));
        let g = grid(1280, 720, 8);
        assert_eq!((g.rows, g.cols, g.side), (2, 4, 360));
        let g = grid(448, 448, 8);
        assert_eq!((g.rows, g.cols), (2, 2));
        let g = grid(448, 448, 1);
        assert_eq!((g.rows, g.cols, g.side), (1, 1, 448));
        // Budgets and aspect ratios beyond the limits are errors naming them.
        let size = |w, h| FrameSize::new(w, h).unwrap();
        let err = AnyResGrid::new(size(1280, 720), 1_000_000_000_000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("MAX_ANYRES_TILES"), "{err}");
        let err = AnyResGrid::new(size(16_384, 1), 8).unwrap_err().to_string();
        assert!(
            err.contains("16384x1") && err.contains("MAX_MODEL_ASPECT_RATIO"),
            "{err}"
        );
        for (w, h, n) in [(1920, 1080, 8), (641, 359, 5), (300, 1000, 6), (37, 23, 3)] {
            let g = grid(w, h, n);
            assert!(
                g.len() <= n && g.cols * g.side >= w && g.rows * g.side >= h,
                "{w}x{h}: {g:?}"
            );
            let last = g.tile_rect(g.len() - 1);
            assert!(last.x1 >= w && last.y1 >= h);
        }
        assert!(AnyResGrid::new(FrameSize::new(10, 10).unwrap(), 0).is_err());
    }
}
