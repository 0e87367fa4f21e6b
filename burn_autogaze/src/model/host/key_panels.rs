//! One attention head's cached keys, stored transposed in panels of 16
//! keys (`[head_dim, 16]` each, zero past the last key): the right-hand
//! operand of `scores = Q @ K^T` as the CPU GEMM reads it, so a decode
//! step's few queries are the product's rows and nothing is padded to 16
//! queries.

use super::kernels::{PANEL, Panels};

/// A head's keys as `K^T` panels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPanels {
    head_dim: usize,
    len: usize,
    data: Vec<f32>,
}

impl KeyPanels {
    /// No keys of `head_dim` values.
    pub fn new(head_dim: usize) -> Self {
        Self {
            head_dim,
            len: 0,
            data: Vec::new(),
        }
    }

    /// The keys of row-major `[keys, head_dim]` rows.
    pub fn from_rows(rows: &[f32], head_dim: usize) -> Self {
        assert!(
            head_dim > 0 && rows.len().is_multiple_of(head_dim),
            "key panels: {} values are not rows of {head_dim}",
            rows.len()
        );
        let mut keys = Self::new(head_dim);
        for key in rows.chunks_exact(head_dim) {
            keys.push(key);
        }
        keys
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    fn panel_len(&self) -> usize {
        self.head_dim * PANEL
    }

    /// Appends one key (`head_dim` values).
    pub fn push(&mut self, key: &[f32]) {
        assert_eq!(key.len(), self.head_dim, "key panels: a key's length");
        let (panel, col) = (self.len / PANEL, self.len % PANEL);
        if col == 0 {
            self.data.resize((panel + 1) * self.panel_len(), 0.0);
        }
        let base = panel * self.panel_len() + col;
        for (r, v) in key.iter().enumerate() {
            self.data[base + r * PANEL] = *v;
        }
        self.len += 1;
    }

    /// Keeps the first `keep` keys.
    pub fn truncate(&mut self, keep: usize) {
        if keep >= self.len {
            return;
        }
        self.data.truncate(keep.div_ceil(PANEL) * self.panel_len());
        let col = keep % PANEL;
        if col != 0 {
            // Zero the dropped keys' columns of the last panel.
            let last = (keep / PANEL) * self.panel_len();
            for row in self.data[last..].chunks_exact_mut(PANEL) {
                row[col..].fill(0.0);
            }
        }
        self.len = keep;
    }

    /// Drops the oldest `n` keys.
    pub fn drain_front(&mut self, n: usize) {
        let n = n.min(self.len);
        let panel_len = self.panel_len();
        self.data.drain(..n / PANEL * panel_len);
        self.len -= n;
        let shift = n % PANEL;
        if shift == 0 {
            return;
        }
        // Every key moves `shift` columns left: within its panel, or from
        // the front of the next panel (zeros past the last) to the back.
        let panels = self.data.len() / panel_len;
        for p in 0..panels {
            for r in 0..self.head_dim {
                let at = p * panel_len + r * PANEL;
                self.data.copy_within(at + shift..at + PANEL, at);
                let back = at + PANEL - shift..at + PANEL;
                if p + 1 < panels {
                    self.data
                        .copy_within(at + panel_len..at + panel_len + shift, back.start);
                } else {
                    self.data[back].fill(0.0);
                }
            }
        }
        self.data.truncate(self.len.div_ceil(PANEL) * panel_len);
    }

    /// The keys as row-major `[keys, head_dim]` rows.
    pub fn rows(&self) -> Vec<f32> {
        let mut rows = vec![0f32; self.len * self.head_dim];
        for (j, key) in rows.chunks_exact_mut(self.head_dim).enumerate() {
            let base = (j / PANEL) * self.panel_len() + j % PANEL;
            for (r, v) in key.iter_mut().enumerate() {
                *v = self.data[base + r * PANEL];
            }
        }
        rows
    }

    /// `K^T` (`[head_dim, keys]`) as a product operand.
    pub fn panels(&self) -> Panels<'_> {
        Panels {
            data: &self.data,
            k: self.head_dim,
            n: self.len,
            panel_stride: self.panel_len(),
            row_stride: PANEL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(keys: usize, hd: usize) -> Vec<f32> {
        (0..keys * hd).map(|i| i as f32 + 1.0).collect()
    }

    #[test]
    fn rows_round_trip_through_panels_at_ragged_lengths() {
        for keys in [0, 1, 15, 16, 17, 40] {
            let r = rows(keys, 3);
            let p = KeyPanels::from_rows(&r, 3);
            assert_eq!(p.len(), keys);
            assert_eq!(p.rows(), r, "{keys} keys");
            assert_eq!(p.data.len(), keys.div_ceil(PANEL) * 3 * PANEL);
        }
    }

    #[test]
    fn panels_hold_the_transpose_with_zeros_past_the_last_key() {
        let p = KeyPanels::from_rows(&rows(18, 2), 2);
        // Panel 1, row 1 (dimension 1): keys 16 and 17, then zeros.
        let second = &p.data[2 * PANEL..];
        assert_eq!(&second[PANEL..PANEL + 3], &[34.0, 36.0, 0.0]);
        // Panel 0, row 0: dimension 0 of keys 0..16.
        assert_eq!(p.data[..4], [1.0, 3.0, 5.0, 7.0]);
    }

    #[test]
    fn truncate_and_drain_keep_the_rest_and_zero_the_tail() {
        let r = rows(40, 3);
        let mut p = KeyPanels::from_rows(&r, 3);
        p.truncate(21);
        assert_eq!(p.rows(), r[..21 * 3]);
        assert_eq!(p, KeyPanels::from_rows(&r[..21 * 3], 3), "the tail zeroed");
        p.truncate(30);
        assert_eq!(p.len(), 21, "truncating past the end keeps everything");
        for n in [5, 16, 21, 37] {
            let mut q = KeyPanels::from_rows(&r, 3);
            q.drain_front(n);
            assert_eq!(q, KeyPanels::from_rows(&r[n * 3..], 3), "drain {n}");
        }
        let mut q = KeyPanels::from_rows(&r, 3);
        q.drain_front(99);
        assert_eq!(q.len(), 0);
    }
}
