//! Pixel geometry: rectangles, cell rectangles, and the union of a set of
//! rectangles as disjoint row bands.

use crate::frame::FrameSize;

/// Half-open pixel rectangle `[x0, x1) x [y0, y1)`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Rect {
    /// Left edge (inclusive).
    pub x0: u32,
    /// Top edge (inclusive).
    pub y0: u32,
    /// Right edge (exclusive).
    pub x1: u32,
    /// Bottom edge (exclusive).
    pub y1: u32,
}

impl Rect {
    /// The whole frame.
    pub fn full(size: FrameSize) -> Self {
        Self {
            x0: 0,
            y0: 0,
            x1: size.width,
            y1: size.height,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.x1.saturating_sub(self.x0)
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.y1.saturating_sub(self.y0)
    }

    /// Pixel count.
    pub fn area(&self) -> u64 {
        self.width() as u64 * self.height() as u64
    }

    /// True when it holds no pixel.
    pub fn is_empty(&self) -> bool {
        self.x0 >= self.x1 || self.y0 >= self.y1
    }

    /// True when `other` lies inside `self`.
    pub fn contains(&self, other: &Rect) -> bool {
        self.x0 <= other.x0 && self.y0 <= other.y0 && self.x1 >= other.x1 && self.y1 >= other.y1
    }

    /// The overlap of two rectangles (possibly empty).
    pub fn intersect(&self, other: &Rect) -> Rect {
        Rect {
            x0: self.x0.max(other.x0),
            y0: self.y0.max(other.y0),
            x1: self.x1.min(other.x1),
            y1: self.y1.min(other.y1),
        }
    }
}

/// Pixels of cell `(row, col)` of a `grid x grid` partition of `size`:
/// `x in [floor(c*W/g), ceil((c+1)*W/g))`, likewise for y. Neighbouring
/// cells share a pixel row/column when `g` does not divide the side.
pub fn cell_rect(size: FrameSize, grid: u32, row: u32, col: u32) -> Rect {
    let (w, h, g) = (size.width as u64, size.height as u64, grid.max(1) as u64);
    let lo = |i: u64, n: u64| (i * n / g) as u32;
    let hi = |i: u64, n: u64| ((i + 1) * n).div_ceil(g) as u32;
    Rect {
        x0: lo(col as u64, w),
        y0: lo(row as u64, h),
        x1: hi(col as u64, w),
        y1: hi(row as u64, h),
    }
}

/// A band of rows `[y0, y1)` covering columns `[x0, x1)`: one piece of a
/// union. Spans of a union are disjoint and sorted by `(y0, x0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Span {
    /// First row (inclusive).
    pub y0: u32,
    /// Last row (exclusive).
    pub y1: u32,
    /// First column (inclusive).
    pub x0: u32,
    /// Last column (exclusive).
    pub x1: u32,
}

impl Span {
    /// Pixel count.
    pub fn area(&self) -> u64 {
        (self.y1 - self.y0) as u64 * (self.x1 - self.x0) as u64
    }

    /// As a rectangle.
    pub fn rect(&self) -> Rect {
        Rect {
            x0: self.x0,
            y0: self.y0,
            x1: self.x1,
            y1: self.y1,
        }
    }
}

/// Scratch for [`union_spans`] so repeated calls allocate nothing.
#[derive(Debug, Default, Clone)]
pub struct UnionScratch {
    ys: Vec<u32>,
    xs: Vec<(u32, u32)>,
}

impl UnionScratch {
    /// Scratch for unions of up to `rects` rectangles without reallocation.
    pub fn with_capacity(rects: usize) -> Self {
        Self {
            ys: Vec::with_capacity(2 * rects),
            xs: Vec::with_capacity(rects),
        }
    }
}

/// Writes the union of `rects` into `out` as disjoint row bands: rows are cut
/// at every rectangle edge, x-intervals merged within a band, and consecutive
/// bands with the same intervals joined. Returns the union's pixel count.
pub fn union_spans(
    rects: impl Iterator<Item = Rect> + Clone,
    scratch: &mut UnionScratch,
    out: &mut Vec<Span>,
) -> u64 {
    out.clear();
    scratch.ys.clear();
    for r in rects.clone().filter(|r| !r.is_empty()) {
        scratch.ys.push(r.y0);
        scratch.ys.push(r.y1);
    }
    scratch.ys.sort_unstable();
    scratch.ys.dedup();
    let mut area = 0u64;
    // Start of the previous band's spans in `out`, for vertical joining.
    let mut prev_start = 0usize;
    for i in 1..scratch.ys.len() {
        let (ya, yb) = (scratch.ys[i - 1], scratch.ys[i]);
        scratch.xs.clear();
        for r in rects.clone() {
            if r.y0 <= ya && r.y1 >= yb && r.x0 < r.x1 {
                scratch.xs.push((r.x0, r.x1));
            }
        }
        if scratch.xs.is_empty() {
            prev_start = out.len();
            continue;
        }
        scratch.xs.sort_unstable();
        let band_start = out.len();
        let mut cur = scratch.xs[0];
        for &(x0, x1) in &scratch.xs[1..] {
            if x0 <= cur.1 {
                cur.1 = cur.1.max(x1);
            } else {
                out.push(Span {
                    y0: ya,
                    y1: yb,
                    x0: cur.0,
                    x1: cur.1,
                });
                cur = (x0, x1);
            }
        }
        out.push(Span {
            y0: ya,
            y1: yb,
            x0: cur.0,
            x1: cur.1,
        });
        for s in &out[band_start..] {
            area += s.area();
        }
        // Join with the previous band when it ends here with the same intervals.
        let prev = &out[prev_start..band_start];
        let band = &out[band_start..];
        let same = prev.len() == band.len()
            && prev
                .iter()
                .zip(band)
                .all(|(p, b)| p.y1 == ya && p.x0 == b.x0 && p.x1 == b.x1);
        if same && !prev.is_empty() {
            for k in 0..band.len() {
                out[prev_start + k].y1 = yb;
            }
            out.truncate(band_start);
        } else {
            prev_start = band_start;
        }
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(w: u32, h: u32) -> FrameSize {
        FrameSize::new(w, h).unwrap()
    }

    #[test]
    fn cells_tile_the_frame_at_odd_sizes() {
        for (w, h) in [(1920, 1080), (1280, 720), (448, 448), (37, 23), (641, 359)] {
            for g in [2, 4, 7, 14] {
                let mut covered = vec![false; (w * h) as usize];
                for r in 0..g {
                    for c in 0..g {
                        let rect = cell_rect(size(w, h), g, r, c);
                        assert!(rect.x1 <= w && rect.y1 <= h && !rect.is_empty());
                        for y in rect.y0..rect.y1 {
                            for x in rect.x0..rect.x1 {
                                covered[(y * w + x) as usize] = true;
                            }
                        }
                    }
                }
                assert!(covered.iter().all(|c| *c), "{w}x{h} g{g}");
            }
        }
        // Floor for starts, ceil for ends: 37 / 7 = 5.29 -> cell 1 is [5, 11).
        assert_eq!(
            cell_rect(size(37, 23), 7, 0, 1),
            Rect {
                x0: 5,
                y0: 0,
                x1: 11,
                y1: 4
            }
        );
    }

    #[test]
    fn union_is_disjoint_and_counts_each_pixel_once() {
        let rects = [
            Rect {
                x0: 0,
                y0: 0,
                x1: 10,
                y1: 10,
            },
            Rect {
                x0: 5,
                y0: 5,
                x1: 15,
                y1: 15,
            },
            Rect {
                x0: 20,
                y0: 0,
                x1: 30,
                y1: 10,
            },
            Rect {
                x0: 0,
                y0: 0,
                x1: 10,
                y1: 10,
            },
        ];
        let mut out = Vec::new();
        let area = union_spans(
            rects.iter().copied(),
            &mut UnionScratch::default(),
            &mut out,
        );
        assert_eq!(area, 100 + 100 - 25 + 100);
        assert_eq!(out.iter().map(Span::area).sum::<u64>(), area);
        for (i, a) in out.iter().enumerate() {
            for b in &out[i + 1..] {
                assert!(a.rect().intersect(&b.rect()).is_empty(), "{a:?} {b:?}");
            }
        }
        // Identical bands join: two stacked equal rects -> one span.
        let stacked = [
            Rect {
                x0: 2,
                y0: 0,
                x1: 8,
                y1: 4,
            },
            Rect {
                x0: 2,
                y0: 4,
                x1: 8,
                y1: 9,
            },
        ];
        union_spans(
            stacked.iter().copied(),
            &mut UnionScratch::default(),
            &mut out,
        );
        assert_eq!(
            out,
            vec![Span {
                y0: 0,
                y1: 9,
                x0: 2,
                x1: 8
            }]
        );
    }
}
