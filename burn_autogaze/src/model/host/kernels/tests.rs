//! The host kernels against plain loops.

use super::*;

fn seeded(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for r in 0..m {
        for c in 0..n {
            out[r * n + c] = (0..k).map(|i| a[r * k + i] * b[i * n + c]).sum();
        }
    }
    out
}

#[test]
fn gemm_over_panels_equals_the_plain_product_at_ragged_sizes() {
    // One row spans up to 4 panels a tile: 1, 4, 5 and 10 panels here,
    // the last ragged or whole.
    for (m, k, n) in [
        (1, 1, 1),
        (1, 37, 64),
        (1, 9, 70),
        (1, 192, 150),
        (1, 3, 160),
        (7, 5, 17),
        (13, 192, 40),
        (6, 33, 16),
        (20, 3, 2),
    ] {
        let (a, b) = (seeded(m * k, 1), seeded(k * n, 2));
        let want = naive(&a, &b, m, k, n);
        let packed = Packed::new(&b, k, n);
        let lhs = Lhs {
            data: &a,
            m,
            row_stride: k,
            col_stride: 1,
        };
        let mut out = vec![7f32; m * (n + 3)];
        gemm(lhs, packed.panels(), &mut out, n + 3, false);
        for r in 0..m {
            for c in 0..n {
                let (g, w) = (out[r * (n + 3) + c], want[r * n + c]);
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{m}x{k}x{n} ({r},{c}): {g} vs {w}"
                );
            }
            // Columns past n are left alone.
            assert_eq!(&out[r * (n + 3) + n..r * (n + 3) + n + 3], &[7.0; 3]);
        }
        // `add` sums onto what is there; the plain kernel agrees.
        let mut twice = out.clone();
        gemm(lhs, packed.panels(), &mut twice, n + 3, true);
        let mut plain = vec![0f32; m * (n + 3)];
        let p = packed.panels();
        let mut r0 = 0;
        while r0 < m {
            let rows = ROWS.min(m - r0);
            for q in 0..n.div_ceil(PANEL) {
                plain_tile(
                    Tile {
                        a: &a[r0 * k..],
                        ars: k,
                        acs: 1,
                        b: &p.data[q * p.panel_stride..],
                        brs: PANEL,
                        bps: p.panel_stride,
                        panels: 1,
                        k,
                        out: &mut plain[r0 * (n + 3) + q * PANEL..],
                        ldc: n + 3,
                        cols: PANEL.min(n - q * PANEL),
                        add: false,
                    },
                    rows,
                );
            }
            r0 += rows;
        }
        for r in 0..m {
            for c in 0..n {
                let i = r * (n + 3) + c;
                assert!((twice[i] - 2.0 * out[i]).abs() <= 1e-5 * (1.0 + out[i].abs()));
                assert!((plain[i] - out[i]).abs() <= 1e-5 * (1.0 + out[i].abs()));
            }
        }
    }
}

#[test]
fn gemm_reads_transposed_operands_through_strides() {
    // a^T @ b with a stored [k, m]: row stride 1, column stride m.
    let (m, k, n) = (9, 11, 16);
    let at = seeded(k * m, 3);
    let a: Vec<f32> = (0..m * k).map(|i| at[(i % k) * m + i / k]).collect();
    let b = seeded(k * n, 4);
    let want = naive(&a, &b, m, k, n);
    let lhs = Lhs {
        data: &at,
        m,
        row_stride: 1,
        col_stride: m,
    };
    let panels = Panels {
        data: &b,
        k,
        n,
        panel_stride: 0,
        row_stride: n,
    };
    let mut out = vec![0f32; m * n];
    gemm(lhs, panels, &mut out, n, false);
    for (g, w) in out.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()));
    }
}

#[test]
fn a_column_range_of_packed_panels_is_that_slice_of_the_product() {
    let (m, k, n) = (7, 9, 40);
    let (a, b) = (seeded(m * k, 8), seeded(k * n, 9));
    let want = naive(&a, &b, m, k, n);
    let packed = Packed::new(&b, k, n);
    let lhs = Lhs {
        data: &a,
        m,
        row_stride: k,
        col_stride: 1,
    };
    // Columns 16..40 written from column 16 of each output row.
    let mut out = vec![0f32; m * n];
    gemm(lhs, packed.columns(16..n), &mut out[16..], n, false);
    for r in 0..m {
        assert_eq!(
            &out[r * n..r * n + 16],
            &[0.0; 16],
            "row {r} left of the range"
        );
        for c in 16..n {
            let (g, w) = (out[r * n + c], want[r * n + c]);
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "({r},{c}): {g} vs {w}"
            );
        }
    }
}

#[test]
fn a_plain_one_row_tile_spans_panels() {
    // The fallback kernel's one-row tile over 3 panels, the last ragged.
    let (k, n) = (11, 40);
    let (a, b) = (seeded(k, 10), seeded(k * n, 11));
    let want = naive(&a, &b, 1, k, n);
    let packed = Packed::new(&b, k, n);
    let p = packed.panels();
    let mut out = vec![0f32; n];
    plain_tile(
        Tile {
            a: &a,
            ars: k,
            acs: 1,
            b: p.data,
            brs: PANEL,
            bps: p.panel_stride,
            panels: 3,
            k,
            out: &mut out,
            ldc: n,
            cols: n - 2 * PANEL,
            add: false,
        },
        1,
    );
    for (c, (g, w)) in out.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "column {c}: {g} vs {w}"
        );
    }
}

#[test]
#[should_panic(expected = "off panel boundaries")]
fn a_column_range_off_panel_boundaries_is_refused() {
    Packed::new(&[1.0; 64], 2, 32).columns(8..32);
}

#[test]
#[should_panic(expected = "left operand too short")]
fn gemm_refuses_a_short_operand() {
    let b = Packed::new(&[1.0; 4], 2, 2);
    let mut out = [0f32; 4];
    gemm(
        Lhs {
            data: &[1.0; 3],
            m: 2,
            row_stride: 2,
            col_stride: 1,
        },
        b.panels(),
        &mut out,
        2,
        false,
    );
}

#[test]
fn exp_is_within_two_ulp_of_the_library_and_zero_at_minus_infinity() {
    let mut x: Vec<f32> = (-8700..=8800).map(|i| i as f32 / 100.0).collect();
    x.extend([f32::NEG_INFINITY, -1e30, -87.4, 0.0, -0.0, 1e-8]);
    let want: Vec<f32> = x.iter().map(|v| v.exp()).collect();
    let mut got = x.clone();
    exp_in_place(&mut got);
    for ((g, w), v) in got.iter().zip(&want).zip(&x) {
        if *v < -87.3 {
            assert_eq!(*g, 0.0, "exp({v})");
        } else {
            assert!((g - w).abs() <= 2.5e-7 * w, "exp({v}) = {g}, library {w}");
        }
    }
}

#[test]
fn softmax_rows_masks_limits_and_normalises() {
    let (rows, keys, ld) = (4, 21, 24);
    let mut s = seeded(rows * ld, 5);
    let orig = s.clone();
    let mut bias = vec![0f32; keys];
    bias[1] = f32::NEG_INFINITY;
    bias[12] = f32::NEG_INFINITY;
    // Row i sees keys ..(5 * i + 2) (row 3 sees all, past the end
    // clamped); row 0 sees keys 0 and 1, key 1 masked.
    let visible = |i: usize| 5 * i + 2 + usize::from(i == 3) * 10;
    let mut inv = vec![9f32; rows];
    softmax_rows(&mut s, ld, &bias, visible, &mut inv);
    for i in 0..rows {
        let seen: Vec<usize> = (0..visible(i).min(keys))
            .filter(|&j| bias[j] == 0.0)
            .collect();
        let row = |j: usize| orig[i * ld + j];
        let m = seen.iter().map(|&j| row(j)).fold(f32::MIN, f32::max);
        let z: f32 = seen.iter().map(|&j| (row(j) - m).exp()).sum();
        assert!((inv[i] - 1.0 / z).abs() < 1e-6 / z, "row {i}: 1 / sum");
        for j in 0..keys {
            let want = if seen.contains(&j) {
                (row(j) - m).exp() / z
            } else {
                0.0
            };
            let got = s[i * ld + j] * inv[i];
            assert!(
                (got - want).abs() < 1e-6,
                "row {i} key {j}: {got} vs {want}"
            );
        }
        // Past the keys, the row is left alone.
        assert_eq!(
            &s[i * ld + keys..(i + 1) * ld],
            &orig[i * ld + keys..(i + 1) * ld]
        );
    }
    // A row that sees only masked keys sums to nothing.
    let mut s = vec![1f32; 8];
    let mut inv = [9f32];
    softmax_rows(&mut s, 8, &[f32::NEG_INFINITY; 3], |_| 2, &mut inv);
    assert_eq!(inv, [0.0]);
    assert_eq!(&s[..3], &[0.0; 3]);
}

#[test]
fn silu_mul_matches_its_definition() {
    let mut x = seeded(37, 6).iter().map(|v| v * 20.0).collect::<Vec<_>>();
    let y = seeded(37, 7);
    let want: Vec<f32> = x
        .iter()
        .zip(&y)
        .map(|(v, u)| v / (1.0 + (-v).exp()) * u)
        .collect();
    silu_mul(&mut x, &y);
    for (g, w) in x.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()));
    }
}
