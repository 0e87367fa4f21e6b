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
