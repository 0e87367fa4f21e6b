//! RoPE's inverse frequencies, shared by every engine.

use super::config::AutoGazeConfig;

/// RoPE inverse frequencies in f32, llama3-scaled, computed as the reference
/// does (f32 arithmetic throughout).
pub fn inv_freq(c: &AutoGazeConfig) -> Vec<f32> {
    let dim = c.head_dim;
    let base = c.rope_theta as f32;
    let mut inv: Vec<f32> = (0..dim / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
        .collect();
    if let Some(s) = c.rope_scaling {
        let factor = s.factor as f32;
        let low = s.low_freq_factor as f32;
        let high = s.high_freq_factor as f32;
        let old = s.original_max_position_embeddings as f32;
        let low_wavelen = old / low;
        let high_wavelen = old / high;
        for f in &mut inv {
            let wavelen = 2.0 * std::f32::consts::PI / *f;
            if wavelen < high_wavelen {
                continue;
            }
            if wavelen > low_wavelen {
                *f /= factor;
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                *f = (1.0 - smooth) * *f / factor + smooth * *f;
            }
        }
    }
    inv
}

/// The cos and sin tables `[positions, head_dim]` of `positions`: each row
/// is `cat(freqs, freqs)` with `freqs = position * inv_freq` in f32, as
/// the reference computes them.
pub fn rope_tables(inv_freq: &[f32], positions: &[i64]) -> (Vec<f32>, Vec<f32>) {
    let half = inv_freq.len();
    let mut cos = vec![0f32; positions.len() * 2 * half];
    let mut sin = vec![0f32; positions.len() * 2 * half];
    for ((&p, cs), sn) in positions
        .iter()
        .zip(cos.chunks_exact_mut(2 * half))
        .zip(sin.chunks_exact_mut(2 * half))
    {
        for (i, f) in inv_freq.iter().enumerate() {
            let (s, c) = (p as f32 * f).sin_cos();
            (cs[i], cs[i + half]) = (c, c);
            (sn[i], sn[i + half]) = (s, s);
        }
    }
    (cos, sin)
}
