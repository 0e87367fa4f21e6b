//! Finding cameras and the FFmpeg input that captures one.
//!
//! Linux: the Video4Linux2 device nodes `/dev/videoN` (`N` is the index
//! `--source camera:N` names), their names from sysfs, their pixel formats
//! and sizes from FFmpeg's `-list_formats all`. Other platforms' capture
//! inputs (AVFoundation, DirectShow) are not wired yet: opening a camera
//! there is a typed [`CameraProblem::Unsupported`] error.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::ffmpeg::FfmpegTools;
use super::pixel_format::CameraFormat;
use crate::error::{AutoGazeError, CameraProblem, Result};

/// Where Linux puts its device nodes.
pub const DEVICE_DIR: &str = "/dev";
/// Where Linux names its Video4Linux2 devices.
const SYSFS_DIR: &str = "/sys/class/video4linux";

/// One format a camera offers, as FFmpeg lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CameraMode {
    /// FFmpeg's name of the format (`mjpeg`, `yuyv422`, `nv12`, ...).
    pub format: String,
    /// Whether this crate converts it ([`CameraFormat`]).
    pub supported: bool,
    /// The frame sizes, as FFmpeg prints them (`640x480 1280x720`, or a
    /// range for stepwise devices).
    pub sizes: String,
}

/// A camera found on this machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CameraInfo {
    /// The index `--source camera:N` names.
    pub index: u32,
    /// The device (`/dev/video0`).
    pub device: PathBuf,
    /// Its name, where the platform says (`Integrated Camera`).
    pub name: String,
    /// The formats it offers (empty where FFmpeg lists none: a metadata
    /// node, a device in use).
    pub modes: Vec<CameraMode>,
}

/// The `videoN` nodes of `dir` as (index, path), by index.
pub fn device_nodes(dir: &Path) -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut nodes: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let index = name.strip_prefix("video")?.parse().ok()?;
            Some((index, e.path()))
        })
        .collect();
    nodes.sort();
    nodes
}

/// The device node of camera `index` among the nodes of `dir`: a typed
/// error when there is none at all, or none with that index.
pub fn find_camera_in(dir: &Path, index: u32) -> Result<PathBuf> {
    let label = format!("camera:{index}");
    let nodes = device_nodes(dir);
    if nodes.is_empty() {
        return Err(AutoGazeError::camera(
            label,
            CameraProblem::NoCamera {
                looked: format!("no video device nodes in {}", dir.display()),
            },
        ));
    }
    match nodes.iter().find(|(i, _)| *i == index) {
        Some((_, path)) => Ok(path.clone()),
        None => Err(AutoGazeError::camera(
            label,
            CameraProblem::NoSuchIndex {
                index,
                available: nodes
                    .iter()
                    .map(|(i, _)| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        )),
    }
}

/// The cameras on this machine, with their formats (Linux). An empty list
/// where there are none; other platforms are
/// [`CameraProblem::Unsupported`].
pub fn list_cameras(tools: &FfmpegTools) -> Result<Vec<CameraInfo>> {
    check_platform("camera:list")?;
    device_nodes(Path::new(DEVICE_DIR))
        .into_iter()
        .map(|(index, device)| {
            let name =
                std::fs::read_to_string(Path::new(SYSFS_DIR).join(format!("video{index}/name")))
                    .map(|n| n.trim().to_string())
                    .unwrap_or_default();
            let modes = list_modes(tools, &device)?;
            Ok(CameraInfo {
                index,
                device,
                name,
                modes,
            })
        })
        .collect()
}

/// A typed error on platforms whose capture input is not wired.
pub(crate) fn check_platform(label: &str) -> Result<()> {
    if cfg!(target_os = "linux") {
        Ok(())
    } else {
        Err(AutoGazeError::camera(
            label,
            CameraProblem::Unsupported {
                reason: format!(
                    "camera capture is implemented for Linux (Video4Linux2) only, not {}",
                    std::env::consts::OS
                ),
            },
        ))
    }
}

/// FFmpeg's `-list_formats all` for one device, parsed.
pub fn list_modes(tools: &FfmpegTools, device: &Path) -> Result<Vec<CameraMode>> {
    let mut cmd = tools.ffmpeg_command();
    cmd.args(["-f", "v4l2", "-list_formats", "all", "-i"])
        .arg(device)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = tools.spawn(&mut cmd)?;
    // FFmpeg lists and exits at once ("Immediate exit requested").
    let out = child
        .wait_with_output()
        .map_err(|e| AutoGazeError::io(&tools.ffmpeg, e))?;
    Ok(parse_modes(&String::from_utf8_lossy(&out.stderr)))
}

/// The format lines of `-list_formats all`:
/// `[video4linux2,v4l2 @ 0x..] Raw : yuyv422 : YUYV 4:2:2 : 640x480 1280x720`.
pub fn parse_modes(log: &str) -> Vec<CameraMode> {
    log.lines()
        .filter(|l| l.contains("v4l2 @"))
        .filter_map(|line| {
            // `Raw       :     yuyv422 :` / `Compressed:       mjpeg :`; the
            // description may hold colons (`YUYV 4:2:2`), not ` : `.
            let (kind, rest) = line.split_once("] ")?.1.split_once(':')?;
            let kind = kind.trim();
            let fields: Vec<&str> = rest.split(" : ").map(str::trim).collect();
            let [format, _, sizes] = fields.as_slice() else {
                return None;
            };
            if !["Raw", "Compressed", "Emulated"]
                .iter()
                .any(|k| kind.starts_with(k))
            {
                return None;
            }
            Some(CameraMode {
                format: format.to_string(),
                supported: CameraFormat::from_ffmpeg(format).is_some(),
                sizes: sizes.to_string(),
            })
        })
        .collect()
}

/// The format to ask for when none is named: MJPEG (full frame rates at
/// large sizes over USB), then NV12, then YUYV; none when the camera
/// offers none of them (FFmpeg then takes the device's current format,
/// refused later if it is not one of these).
pub fn preferred_format(modes: &[CameraMode]) -> Option<CameraFormat> {
    [CameraFormat::Mjpeg, CameraFormat::Nv12, CameraFormat::Yuyv]
        .into_iter()
        .find(|f| modes.iter().any(|m| m.format == f.ffmpeg_name()))
}

/// FFmpeg's input arguments for a Video4Linux2 device: the format, size
/// and rate asked for, where given.
pub fn v4l2_input(
    device: &Path,
    format: Option<CameraFormat>,
    size: Option<(u32, u32)>,
    fps: Option<f64>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-f".into(), "v4l2".into()];
    if let Some(format) = format {
        args.extend(["-input_format".into(), format.ffmpeg_name().into()]);
    }
    if let Some((w, h)) = size {
        args.extend(["-video_size".into(), format!("{w}x{h}").into()]);
    }
    if let Some(fps) = fps {
        args.extend(["-framerate".into(), format!("{fps}").into()]);
    }
    args.extend(["-i".into(), device.as_os_str().to_owned()]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("autogaze_cam_{name}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn no_device_nodes_is_no_camera_and_a_missing_index_names_the_others() {
        let dir = scratch("nodes");
        match find_camera_in(&dir, 0) {
            Err(AutoGazeError::Camera {
                problem: CameraProblem::NoCamera { looked },
                ..
            }) => assert!(looked.contains(&dir.display().to_string()), "{looked}"),
            other => panic!("{other:?}"),
        }
        for name in ["video0", "video2", "videox", "vbi0"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert_eq!(find_camera_in(&dir, 2).unwrap(), dir.join("video2"));
        let err = find_camera_in(&dir, 5).unwrap_err();
        match &err {
            AutoGazeError::Camera {
                camera,
                problem: CameraProblem::NoSuchIndex { index, available },
            } => {
                assert_eq!((camera.as_str(), *index), ("camera:5", 5));
                assert_eq!(available, "0, 2");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("--list-cameras"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn format_lists_parse_and_mjpeg_is_preferred() {
        let log = "\
[video4linux2,v4l2 @ 0x55d] Compressed:       mjpeg :          Motion-JPEG : 640x480 1280x720 1920x1080
[video4linux2,v4l2 @ 0x55d] Raw       :     yuyv422 :           YUYV 4:2:2 : 640x480 1280x720
[video4linux2,v4l2 @ 0x55d] Raw       :       gray8 :            8-bit Greyscale : {32-4096, 2}x{16-2304, 2}
/dev/video0: Immediate exit requested";
        let modes = parse_modes(log);
        let names: Vec<_> = modes
            .iter()
            .map(|m| (m.format.as_str(), m.supported))
            .collect();
        assert_eq!(
            names,
            [("mjpeg", true), ("yuyv422", true), ("gray8", false)]
        );
        assert_eq!(modes[0].sizes, "640x480 1280x720 1920x1080");
        assert_eq!(preferred_format(&modes), Some(CameraFormat::Mjpeg));
        assert_eq!(preferred_format(&modes[1..]), Some(CameraFormat::Yuyv));
        assert_eq!(preferred_format(&modes[2..]), None);
        let args = v4l2_input(
            Path::new("/dev/video3"),
            Some(CameraFormat::Nv12),
            Some((640, 480)),
            Some(30.0),
        );
        let args: Vec<_> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "-f",
                "v4l2",
                "-input_format",
                "nv12",
                "-video_size",
                "640x480",
                "-framerate",
                "30",
                "-i",
                "/dev/video3"
            ]
        );
    }
}
