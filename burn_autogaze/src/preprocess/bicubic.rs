//! PyTorch's `F.interpolate(mode="bicubic", align_corners=False)` on CHW f32.
//!
//! Cubic convolution with A = -0.75, no antialiasing, border indices clamped,
//! output not clamped. Arithmetic follows ATen's CPU kernel: source index
//! `scale * (dst + 0.5) - 0.5` in f32 (fused, as compiled), and each output is
//! `sum_i wy_i * (sum_j wx_j * in[y_i][x_j])`, summed in tap order.

const A: f32 = -0.75;

fn cubic1(x: f32) -> f32 {
    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
}

fn cubic2(x: f32) -> f32 {
    ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
}

/// Taps of one axis: four clamped source indices and weights per output.
#[derive(Debug, Clone)]
struct CubicAxis {
    index: Vec<[usize; 4]>,
    weight: Vec<[f32; 4]>,
}

impl CubicAxis {
    fn new(in_size: usize, out_size: usize) -> Self {
        let scale = in_size as f32 / out_size as f32;
        let mut index = Vec::with_capacity(out_size);
        let mut weight = Vec::with_capacity(out_size);
        for dst in 0..out_size {
            // ATen's compiled kernel contracts `scale * (dst + 0.5) - 0.5`
            // into one fused multiply-add; rounding once, as it does, keeps
            // far-right taps within 1 ulp of the reference (4.8e-5 off otherwise).
            let real = scale.mul_add(dst as f32 + 0.5, -0.5);
            let input_index = (real.floor() as i64).min(in_size as i64 - 1);
            let t = (real - input_index as f32).clamp(0.0, 1.0);
            weight.push([cubic2(t + 1.0), cubic1(t), cubic1(1.0 - t), cubic2(2.0 - t)]);
            let clamp = |i: i64| i.clamp(0, in_size as i64 - 1) as usize;
            index.push([
                clamp(input_index - 1),
                clamp(input_index),
                clamp(input_index + 1),
                clamp(input_index + 2),
            ]);
        }
        Self { index, weight }
    }
}

/// One axis's four clamped indices and weights an output, flat, as the
/// device kernels read them.
#[cfg(feature = "wgpu")]
pub(super) fn packed_cubic(in_size: usize, out_size: usize) -> (Vec<u32>, Vec<f32>) {
    let axis = CubicAxis::new(in_size, out_size);
    let index = axis.index.iter().flatten().map(|&i| i as u32).collect();
    let weight = axis.weight.iter().flatten().copied().collect();
    (index, weight)
}

/// A planned bicubic resize of CHW planes, with scratch for the horizontal
/// pass so repeated calls allocate nothing.
#[derive(Debug, Clone)]
pub struct TorchBicubic {
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    x: CubicAxis,
    y: CubicAxis,
    rows: Vec<f32>,
}

impl TorchBicubic {
    /// Plans `in_w x in_h` -> `out_w x out_h`.
    pub fn new(in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> Self {
        Self {
            in_w,
            in_h,
            out_w,
            out_h,
            x: CubicAxis::new(in_w, out_w),
            y: CubicAxis::new(in_h, out_h),
            rows: vec![0.0; in_h * out_w],
        }
    }

    /// Input size (width, height) of the plan.
    pub fn input_size(&self) -> (usize, usize) {
        (self.in_w, self.in_h)
    }

    /// Resizes `channels` planes of `input` (`[C, in_h, in_w]`) into `out`
    /// (`[C, out_h, out_w]`). A same-size resize is an exact copy, as in
    /// PyTorch (the weights are then 0, 1, 0, 0).
    pub fn run(&mut self, input: &[f32], channels: usize, out: &mut [f32]) {
        let (in_plane, out_plane) = (self.in_w * self.in_h, self.out_w * self.out_h);
        debug_assert_eq!(input.len(), channels * in_plane);
        debug_assert_eq!(out.len(), channels * out_plane);
        if self.in_w == self.out_w && self.in_h == self.out_h {
            out.copy_from_slice(input);
            return;
        }
        for c in 0..channels {
            let src = &input[c * in_plane..(c + 1) * in_plane];
            // Horizontal: every source row at every output column.
            for (row, dst) in src
                .chunks_exact(self.in_w)
                .zip(self.rows.chunks_exact_mut(self.out_w))
            {
                for ((d, idx), w) in dst.iter_mut().zip(&self.x.index).zip(&self.x.weight) {
                    let mut t = row[idx[0]] * w[0];
                    t += row[idx[1]] * w[1];
                    t += row[idx[2]] * w[2];
                    t += row[idx[3]] * w[3];
                    *d = t;
                }
            }
            // Vertical: combine four horizontal results per output.
            let dst = &mut out[c * out_plane..(c + 1) * out_plane];
            for ((line, idx), w) in dst
                .chunks_exact_mut(self.out_w)
                .zip(&self.y.index)
                .zip(&self.y.weight)
            {
                let r = |i: usize| &self.rows[idx[i] * self.out_w..(idx[i] + 1) * self.out_w];
                let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                for (x, o) in line.iter_mut().enumerate() {
                    let mut v = r0[x] * w[0];
                    v += r1[x] * w[1];
                    v += r2[x] * w[2];
                    v += r3[x] * w[3];
                    *o = v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_constants_survive() {
        let axis = CubicAxis::new(320, 224);
        for w in &axis.weight {
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        let input = vec![0.25f32; 2 * 7 * 9];
        let mut plan = TorchBicubic::new(9, 7, 4, 13);
        let mut out = vec![0.0; 2 * 13 * 4];
        plan.run(&input, 2, &mut out);
        assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn same_size_is_identity() {
        let input: Vec<f32> = (0..3 * 4 * 5).map(|i| i as f32 * 0.37 - 3.0).collect();
        let mut plan = TorchBicubic::new(5, 4, 5, 4);
        let mut out = vec![0.0; input.len()];
        plan.run(&input, 3, &mut out);
        assert_eq!(out, input);
        // The general path gives the identity too.
        let axis = CubicAxis::new(5, 5);
        assert!(axis.weight.iter().all(|w| *w == [0.0, 1.0, 0.0, 0.0]));
    }
}
