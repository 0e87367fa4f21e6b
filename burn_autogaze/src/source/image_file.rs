//! Image files (PNG, JPEG) decoded to RGBA8, and the `static` source.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::FrameSource;
use super::sequence::FrameSequence;
use super::texture::Texture;
use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FrameSize};

/// File extensions the image sources accept (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

/// Decodes an image file into RGBA8. Grayscale, 16-bit and alpha inputs are
/// converted (16-bit channels are scaled to 8 bits; alpha is kept, the model
/// ignores it).
///
/// The file is read under [`crate::limits::MAX_IMAGE_FILE_BYTES`] and
/// decoded under explicit limits (sides [`crate::limits::MAX_FRAME_SIDE`],
/// pixels [`crate::limits::MAX_FRAME_PIXELS`], decoder memory
/// [`crate::limits::MAX_IMAGE_DECODE_BYTES`]), checked from the header
/// before the pixels are allocated.
pub fn load_rgba(path: &Path) -> Result<(FrameSize, Vec<u8>)> {
    let bytes = crate::limits::read_file(
        path,
        crate::limits::MAX_IMAGE_FILE_BYTES,
        "MAX_IMAGE_FILE_BYTES",
    )?;
    decode_rgba(&bytes).map_err(|e| match e {
        AutoGazeError::Image { reason, .. } => AutoGazeError::Image {
            path: path.to_path_buf(),
            reason,
        },
        AutoGazeError::Limit { what, value, limit } => AutoGazeError::Limit {
            what: format!("{what} of {}", path.display()),
            value,
            limit,
        },
        other => other,
    })
}

/// Decodes image bytes (PNG, JPEG, by their signature) into RGBA8 under the
/// limits of [`load_rgba`]; errors name the image as `<bytes>`.
pub fn decode_rgba(bytes: &[u8]) -> Result<(FrameSize, Vec<u8>)> {
    let image_err = |reason: String| AutoGazeError::Image {
        path: "<bytes>".into(),
        reason,
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| image_err(e.to_string()))?;
    // The header only (the side limits left to the check below, which
    // names them).
    let mut header_limits = limits_for_decode();
    header_limits.max_image_width = None;
    header_limits.max_image_height = None;
    reader.limits(header_limits);
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| image_err(e.to_string()))?;
    // The header's size against the frame limits before any pixel is
    // decoded (the decoder's limits bound its own allocations).
    crate::limits::frame_size("image size", width, height)?;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| image_err(e.to_string()))?;
    reader.limits(limits_for_decode());
    let decoded = reader.decode().map_err(|e| image_err(e.to_string()))?;
    let rgba = decoded.into_rgba8();
    let size = FrameSize::new(rgba.width(), rgba.height())?;
    Ok((size, rgba.into_raw()))
}

fn limits_for_decode() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(crate::limits::MAX_FRAME_SIDE);
    limits.max_image_height = Some(crate::limits::MAX_FRAME_SIDE);
    limits.max_alloc = Some(crate::limits::MAX_IMAGE_DECODE_BYTES);
    limits
}

/// `static`: one image repeated. Every frame shares the same pixel buffer, so
/// producing a frame costs no copy at all.
#[derive(Debug)]
pub struct StaticImage {
    size: FrameSize,
    pixels: Arc<Vec<u8>>,
    label: String,
    seq: FrameSequence,
}

impl StaticImage {
    /// Repeats the image file at `path`.
    pub fn open(path: &Path, fps: f64) -> Result<Self> {
        let (size, pixels) = load_rgba(path)?;
        Ok(Self {
            size,
            pixels: Arc::new(pixels),
            label: path.display().to_string(),
            seq: FrameSequence::new(fps),
        })
    }

    /// Repeats a still of the procedural texture (no file needed).
    pub fn procedural(size: FrameSize, fps: f64) -> Self {
        let (w, h) = (size.width as usize, size.height as usize);
        let texture = Texture::generate(w, h, (1, 1), 0x57A7);
        let mut pixels = vec![0u8; size.rgba_len()];
        texture.copy_window(0, 0, w, h, &mut pixels);
        Self {
            size,
            pixels: Arc::new(pixels),
            label: "procedural".into(),
            seq: FrameSequence::new(fps),
        }
    }

    /// Where the image came from (a path, or `procedural`).
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl FrameSource for StaticImage {
    fn name(&self) -> &str {
        "static"
    }

    fn size(&self) -> FrameSize {
        self.size
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        self.seq.skip(n);
        Ok(())
    }

    fn next_frame(&mut self) -> Result<Frame> {
        self.seq.frame(self.size, Arc::clone(&self.pixels))
    }

    fn pooled_bytes(&self) -> usize {
        self.pixels.len()
    }
}

/// True when `path` has one of [`IMAGE_EXTENSIONS`] (any case).
pub(crate) fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Image files of a directory, sorted by file name. One pass over the
/// listing: names are filtered and sorted as they come (no stat per file,
/// no path parsing per comparison), so thousands of frames list in a few
/// milliseconds.
pub(crate) fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| AutoGazeError::io(dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AutoGazeError::io(dir, e))?;
        let name = entry.file_name();
        if !is_image_path(Path::new(&name)) {
            continue;
        }
        // The entry's type comes with the listing; only a symbolic link is
        // followed to see what it points at.
        let kind = entry.file_type().map_err(|e| AutoGazeError::io(dir, e))?;
        if kind.is_file() || (kind.is_symlink() && dir.join(&name).is_file()) {
            if names.len() == crate::limits::MAX_SEQUENCE_FILES {
                return Err(AutoGazeError::limit(
                    format!("frame files in {}", dir.display()),
                    format!("more than {}", crate::limits::MAX_SEQUENCE_FILES),
                    "at most limits::MAX_SEQUENCE_FILES",
                ));
            }
            names.push(name);
        }
    }
    names.sort_unstable();
    let files: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    if files.is_empty() {
        return Err(AutoGazeError::EmptyDirectory {
            path: dir.to_path_buf(),
            extensions: IMAGE_EXTENSIONS.join(", "),
        });
    }
    Ok(files)
}
