//! The files `autogaze gaze` writes as it goes: `gaze.jsonl` (one line per
//! frame, flushed at once), `interframe.mp4` (raw frames piped into an
//! `ffmpeg` encoder), mask PNGs, and `summary.json` (written whole, then
//! renamed into place).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};

use serde::Serialize;

use crate::error::{AutoGazeError, Result, VideoProblem};
use crate::frame::FrameSize;
use crate::mask::MaskPlan;
use crate::source::FfmpegTools;

/// One token of a frame in `gaze.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TokenRecord {
    /// Token id in the model's layout (of its tile, when tiled).
    pub id: u32,
    /// Scale (0 = coarsest).
    pub scale: u8,
    /// Cells per side at that scale.
    pub grid: u16,
    /// Row of the cell.
    pub row: u16,
    /// Column of the cell.
    pub col: u16,
    /// The cell's pixels in the source frame: `[x0, y0, x1, y1]` (right and
    /// bottom exclusive).
    pub rect: [u32; 4],
    /// True for a pad (emitted after the gate stopped; updates nothing).
    pub padded: bool,
}

/// One line of `gaze.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FrameRecord {
    /// Frame index in this run (0, 1, ...).
    pub index: u64,
    /// Presentation time of the frame, seconds (the video's own, for a
    /// video file).
    pub pts: f64,
    /// Tokens in the order the model emitted them.
    pub tokens: Vec<TokenRecord>,
    /// Tokens the model emitted before its task-loss gate stopped it (the
    /// ones not padded).
    pub tokens_before_stop: usize,
    /// The union of the updated pixels over the frame's pixels.
    pub gaze_ratio: f64,
    /// Whether the frame was composed whole (the first one).
    pub keyframe: bool,
}

/// `gaze.jsonl`, one flushed line per frame: an interrupted run leaves only
/// complete lines.
#[derive(Debug)]
pub struct JsonlWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl JsonlWriter {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| AutoGazeError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file: BufWriter::new(file),
        })
    }

    /// Writes one frame's line and flushes it.
    pub fn write(&mut self, record: &FrameRecord) -> Result<()> {
        let io = |e: std::io::Error| AutoGazeError::io(&self.path, e);
        serde_json::to_writer(&mut self.file, record).map_err(|e| io(e.into()))?;
        self.file.write_all(b"\n").map_err(io)?;
        self.file.flush().map_err(io)
    }
}

/// An `ffmpeg` child encoding raw RGBA frames piped to it into an H.264
/// mp4. It runs in its own process group, so a Ctrl-C meant for the
/// command does not stop it mid-file: [`Mp4Writer::finish`] closes its
/// input and it writes a complete file.
#[derive(Debug)]
pub struct Mp4Writer {
    path: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    size: FrameSize,
    frames: u64,
}

impl Mp4Writer {
    /// Starts the encoder for `size` frames at `fps` into `path`.
    pub fn spawn(tools: &FfmpegTools, path: &Path, size: FrameSize, fps: f64) -> Result<Self> {
        let mut cmd = tools.ffmpeg_command();
        cmd.args(["-loglevel", "error", "-y"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgba", "-s"])
            .arg(size.to_string())
            .arg("-r")
            .arg(format!("{fps}"))
            .args(["-i", "pipe:0"])
            // H.264 in 4:2:0 needs even sides: pad odd ones by a pixel.
            .args(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"])
            .args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "18"])
            .args(["-pix_fmt", "yuv420p"])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = tools.spawn(&mut cmd)?;
        let stdin = child.stdin.take();
        Ok(Self {
            path: path.to_path_buf(),
            child,
            stdin,
            size,
            frames: 0,
        })
    }

    /// Pipes one frame (RGBA8 of the writer's size) to the encoder.
    pub fn write(&mut self, rgba: &[u8]) -> Result<()> {
        if rgba.len() != self.size.rgba_len() {
            return Err(AutoGazeError::PixelLength {
                width: self.size.width,
                height: self.size.height,
                expected: self.size.rgba_len(),
                actual: rgba.len(),
            });
        }
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.failed("the encoder's input is closed".into()));
        };
        if let Err(e) = stdin.write_all(rgba) {
            let status = self.child.wait().ok();
            return Err(self.failed(format!("the encoder stopped ({e}; exit {status:?})")));
        }
        self.frames += 1;
        Ok(())
    }

    fn failed(&self, reason: String) -> AutoGazeError {
        AutoGazeError::video(&self.path, VideoProblem::Decoder { reason })
    }

    /// Closes the encoder's input and waits for it to write the file: the
    /// frames written so far.
    pub fn finish(mut self) -> Result<u64> {
        self.stdin = None;
        let status = self
            .child
            .wait()
            .map_err(|e| AutoGazeError::io(&self.path, e))?;
        if !status.success() {
            return Err(self.failed(format!("the encoder exited with {status}")));
        }
        Ok(self.frames)
    }
}

impl Drop for Mp4Writer {
    fn drop(&mut self) {
        // Not finished (an error on the way): stop the encoder.
        if self.stdin.is_some() {
            self.stdin = None;
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The plan's union as a grey image: 255 where the frame was updated, 0
/// elsewhere.
pub fn mask_image(plan: &MaskPlan, size: FrameSize, out: &mut Vec<u8>) {
    out.clear();
    out.resize(size.pixels(), 0);
    let w = size.width as usize;
    for r in plan.rects() {
        let (x0, x1) = (r.rect.x0.min(size.width), r.rect.x1.min(size.width));
        for y in r.rect.y0.min(size.height)..r.rect.y1.min(size.height) {
            out[y as usize * w + x0 as usize..y as usize * w + x1 as usize].fill(255);
        }
    }
}

/// Writes a grey mask as a PNG.
pub fn write_mask_png(path: &Path, size: FrameSize, mask: &[u8]) -> Result<()> {
    image::save_buffer(
        path,
        mask,
        size.width,
        size.height,
        image::ExtendedColorType::L8,
    )
    .map_err(|e| AutoGazeError::Image {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Places RGBA panels of one size side by side into `out` (their total
/// width, the same height).
pub fn side_by_side(size: FrameSize, panels: &[&[u8]], out: &mut Vec<u8>) {
    let row = size.width as usize * 4;
    out.clear();
    out.reserve(row * panels.len() * size.height as usize);
    for y in 0..size.height as usize {
        for panel in panels {
            out.extend_from_slice(&panel[y * row..(y + 1) * row]);
        }
    }
}

/// Writes `value` as pretty JSON to `path` (via a temporary file renamed
/// into place, so a reader never sees half a summary).
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value).map_err(|e| AutoGazeError::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::fs::write(&tmp, text + "\n").map_err(|e| AutoGazeError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| AutoGazeError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_sit_side_by_side_row_by_row() {
        let size = FrameSize::new(2, 2).unwrap();
        let a = [1u8; 16];
        let b = [2u8; 16];
        let mut out = Vec::new();
        side_by_side(size, &[&a, &b], &mut out);
        assert_eq!(out.len(), 32);
        // Each output row: 8 bytes of a, then 8 of b.
        assert_eq!(&out[..16], &[[1u8; 8], [2u8; 8]].concat()[..]);
        assert_eq!(&out[16..], &out[..16]);
    }
}
