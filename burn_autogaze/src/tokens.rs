//! The multi-scale token vocabulary, in one place.
//!
//! `scales` (e.g. `32+64+112+224`) and the tokens per frame (265) define the
//! layout: scale `s` gets `int(s^2 / sum(s^2) * N)` tokens on a square grid
//! (2x2, 4x4, 7x7, 14x14 for the release model), concatenated from coarse to
//! fine, each grid row-major. Frame-local id `N` is EOS/pad.

use crate::error::{AutoGazeError, Result};

/// One scale of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleGrid {
    /// Image side of the scale in the reference (32, 64, 112, 224).
    pub scale: u32,
    /// Cells per side (2, 4, 7, 14).
    pub grid: u32,
    /// First token id of this scale.
    pub offset: u32,
}

/// A decoded token: scale index (0 = coarsest), grid, row, column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    /// Scale index (0 = coarsest).
    pub scale: u8,
    /// Cells per side at this scale.
    pub grid: u16,
    /// Row of the cell, from the top.
    pub row: u16,
    /// Column of the cell, from the left.
    pub col: u16,
}

/// The token layout of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLayout {
    scales: Vec<ScaleGrid>,
    tokens: u32,
}

impl Default for TokenLayout {
    fn default() -> Self {
        Self::release()
    }
}

impl TokenLayout {
    /// The released model's layout: `32+64+112+224`, 265 tokens.
    pub fn release() -> Self {
        let scales = [(32, 2, 0), (64, 4, 4), (112, 7, 20), (224, 14, 69)]
            .into_iter()
            .map(|(scale, grid, offset)| ScaleGrid {
                scale,
                grid,
                offset,
            })
            .collect();
        Self {
            scales,
            tokens: 265,
        }
    }

    /// Builds a layout from a config's `scales` string and token count,
    /// following the reference's integer rules; a layout whose per-scale
    /// counts are not square or do not add up is an error.
    pub fn from_config(scales: &str, tokens: u32) -> Result<Self> {
        let bad = |why: String| AutoGazeError::setting("scales", scales, why);
        crate::limits::at_most(
            "num_vision_tokens_each_frame",
            tokens,
            crate::limits::MAX_LAYOUT_TOKENS,
            "MAX_LAYOUT_TOKENS",
        )?;
        if scales.len() > 256 {
            return Err(bad("1 to 8 positive scales".into()));
        }
        let mut values: Vec<u64> = scales
            .split('+')
            .map(|s| s.trim().parse::<u64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad("'+'-separated integers, e.g. 32+64+112+224".into()))?;
        if values.is_empty() || values.contains(&0) || values.len() > 8 {
            return Err(bad("1 to 8 positive scales".into()));
        }
        for &s in &values {
            crate::limits::at_most("scale", s, crate::limits::MAX_SCALE as u64, "MAX_SCALE")?;
        }
        values.sort_unstable();
        // At most 8 scales of at most 2^16: the sum of squares fits in u64.
        let sum_sq: u64 = values.iter().map(|s| s * s).sum();
        let mut offset = 0u32;
        let mut grids = Vec::with_capacity(values.len());
        for s in values {
            // int(s^2 / sum * N) in Python floats; exact here for the layouts in use.
            let n = ((s * s) as f64 / sum_sq as f64 * tokens as f64) as u32;
            let grid = (n as f64).sqrt().round() as u32;
            if grid == 0 || grid * grid != n {
                return Err(bad(format!("scale {s} gets {n} tokens, not a square grid")));
            }
            grids.push(ScaleGrid {
                scale: s as u32,
                grid,
                offset,
            });
            offset += n;
        }
        if offset != tokens {
            return Err(bad(format!(
                "the scales give {offset} tokens, the config says {tokens}"
            )));
        }
        Ok(Self {
            scales: grids,
            tokens,
        })
    }

    /// A layout from explicit `(scale, grid)` pairs, coarse to fine (the
    /// stitched vocabulary of tiled inference: 4, 8, 14, 28 for 448 px).
    /// At most [`crate::limits::MAX_LAYOUT_TOKENS`] tokens in all.
    pub fn from_grids(grids: &[(u32, u32)]) -> Result<Self> {
        if grids.is_empty() || grids.len() > 8 || grids.iter().any(|&(_, g)| g == 0) {
            return Err(AutoGazeError::setting(
                "grids",
                format!("{grids:?}"),
                "1 to 8 grids, each >= 1",
            ));
        }
        let mut offset = 0u64;
        let mut scales = Vec::with_capacity(grids.len());
        for &(scale, grid) in grids {
            scales.push(ScaleGrid {
                scale,
                grid,
                offset: offset as u32,
            });
            offset += grid as u64 * grid as u64;
            crate::limits::at_most(
                format!("tokens of the grids {grids:?}"),
                offset,
                crate::limits::MAX_LAYOUT_TOKENS as u64,
                "MAX_LAYOUT_TOKENS",
            )?;
        }
        Ok(Self {
            scales,
            tokens: offset as u32,
        })
    }

    /// Tokens per frame (265); also the pad/EOS id.
    pub fn tokens(&self) -> u32 {
        self.tokens
    }

    /// The pad/EOS id.
    pub fn pad_id(&self) -> u32 {
        self.tokens
    }

    /// The scales, coarse to fine.
    pub fn scales(&self) -> &[ScaleGrid] {
        &self.scales
    }

    /// Cells per side of the finest grid.
    pub fn finest_grid(&self) -> u32 {
        self.scales.last().map(|s| s.grid).unwrap_or(1)
    }

    /// Index of the scale whose grid is `grid`.
    pub fn scale_of_grid(&self, grid: u32) -> Option<usize> {
        self.scales.iter().position(|s| s.grid == grid)
    }

    /// Frame-local id -> cell; `None` for the pad id or anything above it.
    pub fn decode(&self, id: u32) -> Option<Cell> {
        if id >= self.tokens {
            return None;
        }
        let (i, s) = self
            .scales
            .iter()
            .enumerate()
            .rev()
            .find(|(_, s)| id >= s.offset)?;
        let local = id - s.offset;
        Some(Cell {
            scale: i as u8,
            grid: s.grid as u16,
            row: (local / s.grid) as u16,
            col: (local % s.grid) as u16,
        })
    }

    /// Cell -> frame-local id (`None` if the cell is not in this layout).
    pub fn encode(&self, scale: usize, row: u32, col: u32) -> Option<u32> {
        let s = self.scales.get(scale)?;
        (row < s.grid && col < s.grid).then(|| s.offset + row * s.grid + col)
    }
}

/// Frame-local gaze tokens of one frame, pads included as the model emits
/// them (use `padded`, not the id, to tell pads apart).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GazeTokens {
    /// Token ids, in the order the model emitted them.
    pub ids: Vec<u32>,
    /// Per token: true where it is a pad.
    pub padded: Vec<bool>,
}

impl GazeTokens {
    /// Tokens with no pads.
    pub fn from_ids(ids: impl IntoIterator<Item = u32>) -> Self {
        let ids: Vec<u32> = ids.into_iter().collect();
        let padded = vec![false; ids.len()];
        Self { ids, padded }
    }

    /// Empty, with room for `n` tokens.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            ids: Vec::with_capacity(n),
            padded: Vec::with_capacity(n),
        }
    }

    /// Removes every token, keeping the buffers.
    pub fn clear(&mut self) {
        self.ids.clear();
        self.padded.clear();
    }

    /// Appends one valid token.
    pub fn push(&mut self, id: u32) {
        self.ids.push(id);
        self.padded.push(false);
    }

    /// The valid (non-pad) ids.
    pub fn valid(&self) -> impl Iterator<Item = u32> + '_ {
        self.ids
            .iter()
            .zip(&self.padded)
            .filter(|(_, p)| !**p)
            .map(|(id, _)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_layout_matches_the_reference_rules() {
        let parsed = TokenLayout::from_config("224+32+112+64", 265).unwrap();
        assert_eq!(parsed, TokenLayout::release());
        let grids: Vec<u32> = parsed.scales().iter().map(|s| s.grid).collect();
        assert_eq!(grids, vec![2, 4, 7, 14]);
        let l = TokenLayout::release();
        assert_eq!(
            l.decode(0),
            Some(Cell {
                scale: 0,
                grid: 2,
                row: 0,
                col: 0
            })
        );
        assert_eq!(
            l.decode(3),
            Some(Cell {
                scale: 0,
                grid: 2,
                row: 1,
                col: 1
            })
        );
        assert_eq!(
            l.decode(19),
            Some(Cell {
                scale: 1,
                grid: 4,
                row: 3,
                col: 3
            })
        );
        assert_eq!(
            l.decode(20 + 7 * 2 + 3),
            Some(Cell {
                scale: 2,
                grid: 7,
                row: 2,
                col: 3
            })
        );
        assert_eq!(
            l.decode(264),
            Some(Cell {
                scale: 3,
                grid: 14,
                row: 13,
                col: 13
            })
        );
        assert_eq!(l.decode(265), None);
        for id in 0..265 {
            let c = l.decode(id).unwrap();
            assert_eq!(
                l.encode(c.scale as usize, c.row as u32, c.col as u32),
                Some(id)
            );
        }
    }

    #[test]
    fn unsupported_layouts_are_rejected_by_name() {
        for (scales, n) in [("224", 196), ("32+64", 20)] {
            assert!(TokenLayout::from_config(scales, n).is_ok(), "{scales}");
        }
        for (scales, n) in [
            ("32+64+112+224", 196),
            ("a+b", 4),
            ("", 4),
            ("0+4", 4),
            ("30+64", 20),
        ] {
            let err = TokenLayout::from_config(scales, n).unwrap_err().to_string();
            assert!(err.contains("scales"), "{err}");
        }
        // Sizes that would overflow the layout's arithmetic are limits.
        for (scales, n, limit) in [
            ("4294967296+1", 5, "MAX_SCALE"),
            ("18446744073709551615", 1, "MAX_SCALE"),
            ("224", u32::MAX, "MAX_LAYOUT_TOKENS"),
        ] {
            let err = TokenLayout::from_config(scales, n).unwrap_err().to_string();
            assert!(err.contains(limit), "{scales} {n}: {err}");
        }
        let err = TokenLayout::from_grids(&[(1, 65_535), (2, 65_535)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MAX_LAYOUT_TOKENS"), "{err}");
    }
}
