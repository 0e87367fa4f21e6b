//! Tiled inference, the reference's `target_scales` / `target_patch_size`
//! path: a square S x S clip is cut into n x n tiles of `14 * p` pixels
//! (row-major), each tile runs as its own clip, and each scale's tile masks
//! are stitched into a global grid of `target_scales[i] / p` cells. Stitched
//! ids live in a larger vocabulary (1060 tokens for 448/16), ascending per
//! frame (generation order does not survive stitching, as in the reference).

use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::autogaze::AutoGaze;
use super::options::{FrameGaze, GenerateOptions};
use super::values::host_values;
use crate::error::{AutoGazeError, Result};
use crate::preprocess::TorchBicubic;
use crate::tokens::TokenLayout;

/// The tile geometry of one `target_scales` / `target_patch_size` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileGrid {
    /// Input side S (= the largest target scale).
    pub side: usize,
    /// Tile side in input pixels (`14 * p`).
    pub tile_side: usize,
    /// Tiles per side (n).
    pub tiles: usize,
    /// Per-tile grids of the model layout (2, 4, 7, 14).
    tile_grids: Vec<u32>,
    /// The stitched vocabulary (grids `target_scales[i] / p`).
    stitched: TokenLayout,
}

impl TileGrid {
    /// Plans tiling for a model `layout`. Only the exact case is accepted:
    /// every `target_scales[i] / p` must equal `n * grid_i` (e.g. 448 with
    /// p = 16, or 392 with p = 14); otherwise the reference's coarse cells are
    /// misaligned and the stitched grid means nothing, so it is an error.
    pub fn new(layout: &TokenLayout, target_scales: &[u32], patch: u32) -> Result<Self> {
        let bad = |why: String| {
            AutoGazeError::setting(
                "target_scales",
                format!("{target_scales:?} / patch {patch}"),
                why,
            )
        };
        let grids: Vec<u32> = layout.scales().iter().map(|s| s.grid).collect();
        if target_scales.len() != grids.len() {
            return Err(bad(format!("{} scales, one per model scale", grids.len())));
        }
        if patch == 0 || target_scales.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("ascending scales and a patch size >= 1".into()));
        }
        if target_scales.iter().any(|s| s % patch != 0) {
            return Err(bad("every scale a multiple of the patch size".into()));
        }
        let finest = *grids.last().unwrap_or(&1);
        let side = *target_scales.last().unwrap_or(&0);
        let tiles = (side / patch).div_ceil(finest);
        crate::limits::at_most(
            format!("tiles of target_scales {target_scales:?}"),
            tiles as u64 * tiles as u64,
            crate::limits::MAX_ANYRES_TILES as u64,
            "MAX_ANYRES_TILES",
        )?;
        let mut stitched = Vec::with_capacity(grids.len());
        for (&s, &g) in target_scales.iter().zip(&grids) {
            let of = s / patch;
            if of as u64 != tiles as u64 * g as u64 {
                return Err(bad(format!(
                    "scale {s} gives a {of}-cell grid, but {tiles} tiles of {g} cells make {}: misaligned",
                    tiles * g
                )));
            }
            stitched.push((s, of));
        }
        Ok(Self {
            side: side as usize,
            tile_side: (finest * patch) as usize,
            tiles: tiles as usize,
            tile_grids: grids,
            stitched: TokenLayout::from_grids(&stitched)?,
        })
    }

    /// The stitched vocabulary (plan masks with a `MaskPlanner` on it).
    pub fn stitched_layout(&self) -> &TokenLayout {
        &self.stitched
    }

    /// Stitches one frame's per-tile outputs (row-major tiles, tile-local
    /// ids of `layout`) into ascending stitched ids.
    pub fn stitch(&self, layout: &TokenLayout, tiles: &[&FrameGaze]) -> Vec<u32> {
        let mut ids = Vec::new();
        for (k, tile) in tiles.iter().enumerate() {
            let (tr, tc) = ((k / self.tiles) as u32, (k % self.tiles) as u32);
            for id in tile.valid() {
                let Some(cell) = layout.decode(id) else {
                    continue;
                };
                let i = cell.scale as usize;
                let g = self.tile_grids[i];
                let (row, col) = (tr * g + cell.row as u32, tc * g + cell.col as u32);
                if let Some(global) = self.stitched.encode(i, row, col) {
                    ids.push(global);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Per-tile and stitched outputs of a tiled clip.
#[derive(Debug, Clone, PartialEq)]
pub struct TiledGaze {
    /// `tiles[k][t]`: tile k (row-major), frame t.
    pub tiles: Vec<Vec<FrameGaze>>,
    /// `frames[t]`: stitched ids, ascending.
    pub frames: Vec<Vec<u32>>,
}

impl<B: Backend> AutoGaze<B> {
    /// Tiled inference of `video` (`[1, T, 3, S, S]`, S = the largest target
    /// scale): each tile is its own clip (bicubic-resized to the model input
    /// when `14 * p` differs from it), then the outputs are stitched.
    pub fn generate_tiled(
        &self,
        video: Tensor<B, 5>,
        grid: &TileGrid,
        options: &GenerateOptions,
    ) -> Result<TiledGaze> {
        let [b, t, ch, h, w] = video.dims();
        if b != 1 || ch != 3 || h != grid.side || w != grid.side || t == 0 {
            return Err(AutoGazeError::TensorShape {
                name: "tiled video".into(),
                expected: vec![1, t.max(1), 3, grid.side, grid.side],
                actual: vec![b, t, ch, h, w],
            });
        }
        let (n, ts, s) = (grid.tiles, grid.tile_side, self.config.input_size);
        // Zero-pad bottom/right to n tiles (no-op in the exact cases).
        let full = n * ts;
        let video = video.reshape([t, ch, h, w]);
        let video = if full > h {
            let device = video.device();
            let right = Tensor::zeros([t, ch, h, full - w], &device);
            let wide = Tensor::cat(vec![video, right], 3);
            let bottom = Tensor::zeros([t, ch, full - h, full], &device);
            Tensor::cat(vec![wide, bottom], 2)
        } else {
            video
        };
        let mut resize = (ts != s).then(|| TorchBicubic::new(ts, ts, s, s));
        let mut tiles = Vec::with_capacity(n * n);
        for k in 0..n * n {
            let (r, c) = (k / n, k % n);
            let tile =
                video
                    .clone()
                    .slice([0..t, 0..ch, r * ts..(r + 1) * ts, c * ts..(c + 1) * ts]);
            let tile = match resize.as_mut() {
                None => tile,
                Some(plan) => {
                    let device = tile.device();
                    let host = host_values(tile);
                    self.counts.read(1, 4 * host.len());
                    let mut out = vec![0f32; t * ch * s * s];
                    for (src, dst) in host
                        .chunks_exact(ch * ts * ts)
                        .zip(out.chunks_exact_mut(ch * s * s))
                    {
                        plan.run(src, ch, dst);
                    }
                    self.counts.input(out.len());
                    Tensor::from_data(TensorData::new(out, [t, ch, s, s]), &device)
                }
            };
            tiles.push(self.generate(tile.unsqueeze::<5>(), options, None)?);
        }
        let layout = &self.config.layout;
        let frames = (0..t)
            .map(|f| {
                let per_tile: Vec<&FrameGaze> = tiles.iter().map(|tile| &tile[f]).collect();
                grid.stitch(layout, &per_tile)
            })
            .collect();
        Ok(TiledGaze { tiles, frames })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_grids_are_accepted_and_misaligned_ones_named() {
        let layout = TokenLayout::release();
        let g = TileGrid::new(&layout, &[64, 128, 224, 448], 16).unwrap();
        assert_eq!((g.side, g.tile_side, g.tiles), (448, 224, 2));
        assert_eq!(g.stitched_layout().tokens(), 1060);
        let g = TileGrid::new(&layout, &[56, 112, 196, 392], 14).unwrap();
        assert_eq!((g.tile_side, g.tiles), (196, 2));
        let err = TileGrid::new(&layout, &[64, 128, 240, 480], 16)
            .unwrap_err()
            .to_string();
        assert!(err.contains("misaligned"), "{err}");
        assert!(TileGrid::new(&layout, &[64, 128, 448], 16).is_err());
        assert!(TileGrid::new(&layout, &[128, 64, 224, 448], 16).is_err());
        // 2^31 / 16 px: 9.6 million tiles a side, refused by the tile limit.
        let err = TileGrid::new(&layout, &[1 << 28, 1 << 29, 1 << 30, 1 << 31], 16)
            .unwrap_err()
            .to_string();
        assert!(err.contains("MAX_ANYRES_TILES"), "{err}");
    }

    #[test]
    fn stitching_places_tile_cells_in_the_global_grid() {
        let layout = TokenLayout::release();
        let g = TileGrid::new(&layout, &[64, 128, 224, 448], 16).unwrap();
        // Tile 3 (bottom right), its 2x2 cell (1, 0) -> global 4x4 cell (3, 2) = 14.
        // Tile 0, its 14x14 cell (0, 13) -> global 28x28 cell (0, 13) = 276 + 13.
        let t0 = FrameGaze {
            ids: vec![69 + 13, 265],
            padded: vec![false, true],
        };
        let t3 = FrameGaze {
            ids: vec![2],
            padded: vec![false],
        };
        let empty = FrameGaze::default();
        assert_eq!(
            g.stitch(&layout, &[&t0, &empty, &empty, &t3]),
            vec![14, 276 + 13]
        );
    }
}
