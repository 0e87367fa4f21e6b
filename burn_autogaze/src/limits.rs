//! Every bound on what a user can feed the crate, in one place.
//!
//! A size, count, rate or ratio that comes from a flag, a URL query,
//! `config.json`, `preprocessor_config.json`, `meta.json`, a safetensors
//! header or an image header is checked against one of these before
//! anything is allocated or looped over; a value beyond its limit is an
//! [`AutoGazeError::Limit`] naming the value and the limit. The README lists
//! them (keep the two in step).

use std::io::Read;
use std::path::Path;

use crate::error::{AutoGazeError, Result};

/// Largest frame side, pixels (frames, the viewer's render target, decoded
/// images).
pub const MAX_FRAME_SIDE: u32 = 16_384;

/// Most pixels in one frame: 8K UHD (7680 x 4320, 127 MiB of RGBA8).
pub const MAX_FRAME_PIXELS: u64 = 7680 * 4320;

/// Largest long-side / short-side ratio of a frame on the model path (the
/// processor's resize and AnyRes tiling grow with it).
pub const MAX_MODEL_ASPECT_RATIO: u32 = 16;

/// Slowest frame rate (flags, `meta.json`): one frame in 1000 s.
pub const MIN_FPS: f64 = 1e-3;

/// Fastest frame rate (flags, `meta.json`): one frame a millisecond.
pub const MAX_FPS: f64 = 1000.0;

/// Most frames of one run (`--frames`, `--warmup-frames`, harness and soak
/// frame counts): about 19 days at 60 fps.
pub const MAX_RUN_FRAMES: u64 = 100_000_000;

/// Most frames of KV cache a model stream keeps (`--horizon`,
/// `ModelOptions::horizon`). Horizon 0, "every frame" (the reference),
/// keeps at most this many as well, so an endless source cannot grow the
/// cache without bound (its memory is proportional to the frames kept).
pub const MAX_HORIZON: usize = 1024;

/// Most frames preprocessed as one clip (a `[1, T, 3, S, S]` model input).
pub const MAX_CLIP_FRAMES: usize = 1024;

/// Per-frame records reserved up front; a longer run grows its storage as
/// it goes.
pub const MAX_PREALLOCATED_FRAMES: usize = 1 << 16;

/// Longest run timeout, seconds (one week).
pub const MAX_TIMEOUT_S: u64 = 7 * 24 * 3600;

/// Largest side of a video frame the `video` source accepts (the probed
/// stream and every decoded frame).
pub const MAX_VIDEO_SIDE: u32 = 8192;

/// Most pixels of a video frame the `video` source accepts (8K UHD,
/// 7680 x 4320: 133 MB of RGBA a frame).
pub const MAX_VIDEO_PIXELS: u64 = 7680 * 4320;

/// Most AnyRes tiles a frame may be covered with.
pub const MAX_ANYRES_TILES: usize = 64;

/// Most frames an image sequence decodes ahead.
pub const MAX_PREFETCH: usize = 256;

/// Largest decode cache of an image sequence, MiB (64 GiB).
pub const MAX_CACHE_MIB: usize = 1 << 16;

/// Most frame files in an image sequence directory.
pub const MAX_SEQUENCE_FILES: usize = 1_000_000;

/// Largest model width (`hidden_size`, vision `hidden_dim` / `out_dim`,
/// `intermediate_size`).
pub const MAX_MODEL_WIDTH: usize = 65_536;

/// Most decoder layers (`num_hidden_layers`).
pub const MAX_MODEL_LAYERS: usize = 256;

/// Most attention heads (`num_attention_heads`).
pub const MAX_MODEL_HEADS: usize = 1024;

/// Largest model input side (`input_img_size`).
pub const MAX_MODEL_INPUT_SIZE: usize = 4096;

/// Largest convolution kernel side (`kernel_size`, trunk kernels).
pub const MAX_KERNEL_SIZE: usize = 64;

/// Most tokens predicted per decoder step (`num_multi_token_pred`).
pub const MAX_MULTI_TOKEN: usize = 1024;

/// Most tokens per frame in a layout (`num_vision_tokens_each_frame`, a
/// stitched AnyRes vocabulary).
pub const MAX_LAYOUT_TOKENS: u32 = 1 << 16;

/// Largest image side of one scale (`scales`).
pub const MAX_SCALE: u32 = 1 << 16;

/// Most parameters a model config may imply (4 GiB of f32).
pub const MAX_MODEL_PARAMETERS: u64 = 1 << 30;

/// Largest side the processor resizes or crops to
/// (`preprocessor_config.json` `size`, `crop_size`).
pub const MAX_PREPROCESS_SIDE: u32 = 4096;

/// Largest JSON file read (`config.json`, `preprocessor_config.json`,
/// `meta.json`, baselines): 16 MiB.
pub const MAX_JSON_FILE_BYTES: u64 = 16 << 20;

/// Largest weights file read (`model.safetensors`): 4 GiB.
pub const MAX_WEIGHTS_FILE_BYTES: u64 = 4 << 30;

/// Largest image file read (one frame): 256 MiB.
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 << 20;

/// Most memory the image decoder may allocate for one image: 1 GiB.
pub const MAX_IMAGE_DECODE_BYTES: u64 = 1 << 30;

/// Longest web URL query, bytes.
pub const MAX_QUERY_BYTES: usize = 8192;

/// `Err(Limit)` unless `value <= max`.
pub fn at_most<T: PartialOrd + std::fmt::Display>(
    what: impl Into<String>,
    value: T,
    max: T,
    name: &str,
) -> Result<T> {
    if value <= max {
        Ok(value)
    } else {
        Err(AutoGazeError::limit(
            what,
            &value,
            format!("at most {max} (limits::{name})"),
        ))
    }
}

/// A frame rate within [`MIN_FPS`], [`MAX_FPS`] (finite, positive).
pub fn fps(what: impl Into<String>, fps: f64) -> Result<f64> {
    if fps.is_finite() && (MIN_FPS..=MAX_FPS).contains(&fps) {
        Ok(fps)
    } else {
        // Tiny and huge rates read better in exponent form (1e-20, not 0.0…01).
        let value = if fps != 0.0 && !(1e-3..=1e6).contains(&fps.abs()) {
            format!("{fps:e}")
        } else {
            fps.to_string()
        };
        Err(AutoGazeError::limit(
            what,
            value,
            format!("between {MIN_FPS} and {MAX_FPS} frames a second (limits::MIN_FPS, MAX_FPS)"),
        ))
    }
}

/// A frame size within [`MAX_FRAME_SIDE`] and [`MAX_FRAME_PIXELS`]. Runs
/// for every frame: allocates only on failure.
pub fn frame_size(what: impl Into<String>, width: u32, height: u32) -> Result<()> {
    let side_ok = width <= MAX_FRAME_SIDE && height <= MAX_FRAME_SIDE;
    if side_ok && width as u64 * height as u64 <= MAX_FRAME_PIXELS {
        return Ok(());
    }
    let what = what.into();
    let value = format!("{width}x{height}");
    if !side_ok {
        return Err(AutoGazeError::limit(
            what,
            value,
            format!("sides at most {MAX_FRAME_SIDE} px (limits::MAX_FRAME_SIDE)"),
        ));
    }
    Err(AutoGazeError::limit(
        what,
        value,
        format!("at most {MAX_FRAME_PIXELS} pixels (limits::MAX_FRAME_PIXELS, 7680x4320)"),
    ))
}

/// A frame that fits a device's 2D textures (`max_side`: the adapter's
/// `max_texture_dimension_2d`, 2048 on WebGL2, 8192 by wgpu's default): a
/// renderer's typed error before it makes a texture the device would refuse.
pub fn texture_size(width: u32, height: u32, max_side: u32) -> Result<()> {
    if width <= max_side && height <= max_side {
        return Ok(());
    }
    Err(AutoGazeError::limit(
        "frame size for a texture",
        format!("{width}x{height}"),
        format!("sides at most {max_side} px (the adapter's max_texture_dimension_2d)"),
    ))
}

/// A frame whose long side is at most [`MAX_MODEL_ASPECT_RATIO`] times its
/// short side (the model path).
pub fn model_aspect(width: u32, height: u32) -> Result<()> {
    let (long, short) = (width.max(height) as u64, width.min(height).max(1) as u64);
    if long > short * MAX_MODEL_ASPECT_RATIO as u64 {
        return Err(AutoGazeError::limit(
            "aspect ratio of a frame on the model path",
            format!("{width}x{height}"),
            format!(
                "long side at most {MAX_MODEL_ASPECT_RATIO} x the short side (limits::MAX_MODEL_ASPECT_RATIO)"
            ),
        ));
    }
    Ok(())
}

/// `a * b`, or a [`AutoGazeError::Limit`] naming `what` on overflow.
pub fn mul(what: &str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| AutoGazeError::limit(what, format!("{a} x {b}"), "fits in usize (overflow)"))
}

/// Reads a whole file of at most `cap` bytes. Only regular files are read
/// (a device or a pipe could be endless), and never more than `cap + 1`
/// bytes, so a file that grows while read is caught too.
pub fn read_file(path: &Path, cap: u64, name: &str) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| AutoGazeError::io(path, e))?;
    let meta = file.metadata().map_err(|e| AutoGazeError::io(path, e))?;
    if !meta.is_file() {
        return Err(AutoGazeError::limit(
            format!("file {}", path.display()),
            "not a regular file",
            "a regular file (a device or a pipe may never end)",
        ));
    }
    let too_big = |len: u64| {
        AutoGazeError::limit(
            format!("size of {}", path.display()),
            format!("{len} bytes"),
            format!("at most {cap} bytes (limits::{name})"),
        )
    };
    if meta.len() > cap {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| AutoGazeError::io(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_file`] for text (UTF-8).
pub fn read_text(path: &Path, cap: u64, name: &str) -> Result<String> {
    String::from_utf8(read_file(path, cap, name)?).map_err(|_| AutoGazeError::Config {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_value_and_the_limit() {
        let err = frame_size("frame size", 100_000, 100_000)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("100000x100000") && err.contains("16384"),
            "{err}"
        );
        let err = frame_size("frame size", 16_384, 16_384)
            .unwrap_err()
            .to_string();
        assert!(err.contains("MAX_FRAME_PIXELS"), "{err}");
        assert!(frame_size("f", 7680, 4320).is_ok());
        for bad in [1e10, 1e-20, 0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = fps("source fps", bad).unwrap_err().to_string();
            assert!(err.contains("source fps") && err.contains("1000"), "{err}");
        }
        assert!(model_aspect(1, 17).is_err() && model_aspect(16, 1).is_ok());
        assert!(mul("x", usize::MAX, 2).is_err());
        let err = at_most("tiles", 65, MAX_ANYRES_TILES, "MAX_ANYRES_TILES")
            .unwrap_err()
            .to_string();
        assert!(err.contains("65") && err.contains("at most 64"), "{err}");
        let err = texture_size(3840, 2160, 2048).unwrap_err().to_string();
        assert!(
            err.contains("3840x2160") && err.contains("2048") && err.contains("max_texture"),
            "{err}"
        );
        assert!(texture_size(2048, 2048, 2048).is_ok());
    }

    #[test]
    fn files_are_read_under_a_cap_and_devices_are_refused() {
        let dir = std::env::temp_dir().join(format!("autogaze-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.json");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_file(&path, 10, "CAP").unwrap().len(), 10);
        let err = read_file(&path, 9, "CAP").unwrap_err().to_string();
        assert!(err.contains("10 bytes") && err.contains("CAP"), "{err}");
        #[cfg(unix)]
        {
            let err = read_file(Path::new("/dev/zero"), 1 << 20, "CAP")
                .unwrap_err()
                .to_string();
            assert!(err.contains("regular file"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
