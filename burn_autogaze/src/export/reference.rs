//! `autogaze reference` (and `cargo xtask gaze`, a thin wrapper over the
//! same call): the model on one case, printed as the reference's outputs in
//! JSON: `gazing_pos` (global ids, `local + tokens * t`),
//! `if_padded_gazing` and `num_gazing_each_frame`.
//!
//! This is the parity tool, not the research export ([`super::run_gaze`]):
//! it runs the reference's whole-clip `generate` (or the stitched
//! `generate_tiled`, or one frame per `step` with `--streaming`) on
//! preprocessed tensors, so its output compares with the fixtures id for id.
//! Input is a tensor file's `video` (`[1, T, 3, H, W]`, preprocessed) or a
//! directory of frames (`--rgba-dir`, preprocessed here with the model
//! directory's `preprocessor_config.json`, or the released one). On
//! `ndarray` (CPU) or `wgpu`, where selection can run on the device with one
//! readback per frame (`--selection`; a streamed run reports the readback
//! count).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde::Serialize;

use crate::error::{AutoGazeError, Result};
use crate::mask_source::ModelBackend;
use crate::model::{AutoGaze, GenerateOptions, Selection, TileGrid};
use crate::preprocess::Preprocessor;
use crate::source::{FrameSource, ImageSequence};
use crate::tensor_file::TensorFile;
use crate::{Frame, PreprocessorConfig};

/// The flags of `autogaze reference` and `cargo xtask gaze`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReferenceArgs {
    /// Model directory (`config.json` + `model.safetensors`).
    #[arg(long)]
    pub model_dir: PathBuf,
    /// Tensor file with a `video` tensor `[1, T, 3, H, W]` (preprocessed).
    #[arg(
        long,
        required_unless_present = "rgba_dir",
        conflicts_with = "rgba_dir"
    )]
    pub input: Option<PathBuf>,
    /// Directory of frames (PNG/JPEG, in name order), preprocessed here.
    #[arg(long)]
    pub rgba_dir: Option<PathBuf>,
    /// Fraction of the tokens a frame may use, in (0, 1].
    #[arg(long)]
    pub gazing_ratio: f32,
    /// Stop a frame once a token's predicted task loss is at or below this
    /// (may be negative).
    #[arg(long, allow_negative_numbers = true)]
    pub task_loss_requirement: Option<f32>,
    /// Tiled inference: the target scales (e.g. 64,128,224,448).
    #[arg(long, value_delimiter = ',', requires = "target_patch_size")]
    pub target_scales: Vec<u32>,
    /// Tiled inference: the patch size of the target scales (e.g. 16).
    #[arg(long, requires = "target_scales")]
    pub target_patch_size: Option<u32>,
    /// Feed one frame per call (streaming state) instead of the whole clip.
    #[arg(long, conflicts_with = "target_scales")]
    pub streaming: bool,
    /// Burn backend: ndarray (CPU) or wgpu (the default adapter).
    #[arg(long, default_value = "ndarray")]
    pub backend: ModelBackend,
    /// Where tokens are selected: host (per decoder call) or device (one
    /// readback per frame). Default: `AutoGaze::selection_for` (host on
    /// ndarray and with a task-loss requirement, device otherwise).
    #[arg(long, value_enum)]
    pub selection: Option<SelectionArg>,
    /// The model engine (`burn-ops`, `host`, `fused-gpu`). Default: the
    /// backend's (`host` on ndarray, `fused-gpu` on wgpu where the adapter
    /// takes it, `burn-ops` otherwise).
    #[arg(long)]
    pub engine: Option<String>,
}

/// Where tokens are selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SelectionArg {
    /// On the host, per decoder call.
    Host,
    /// On the device, one readback per frame.
    Device,
}

/// The reference's outputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferenceOutput {
    /// Global ids (`local + tokens * t`), frame after frame.
    pub gazing_pos: Vec<i64>,
    /// Whether each id is a pad.
    pub if_padded_gazing: Vec<bool>,
    /// Ids per frame.
    pub num_gazing_each_frame: Vec<i64>,
    /// Device-to-host reads of a streamed decoding (not in the JSON).
    #[serde(skip)]
    pub readbacks: Option<u64>,
}

/// Runs the case on the chosen backend.
pub fn run_reference(args: &ReferenceArgs) -> Result<ReferenceOutput> {
    match args.backend {
        #[cfg(feature = "ndarray")]
        ModelBackend::Ndarray => run::<burn::backend::NdArray<f32>>(args, &Default::default()),
        #[cfg(not(feature = "ndarray"))]
        ModelBackend::Ndarray => Err(ModelBackend::Ndarray.not_built()),
        #[cfg(feature = "wgpu")]
        ModelBackend::Wgpu => run::<burn::backend::Wgpu>(args, &Default::default()),
        #[cfg(not(feature = "wgpu"))]
        ModelBackend::Wgpu => Err(ModelBackend::Wgpu.not_built()),
    }
}

/// The command: runs [`run_reference`], prints its JSON on stdout (and a
/// streamed run's readback count on stderr), or the error on stderr with a
/// failing exit code. `tool` names the command in its messages.
pub fn reference_command(args: &ReferenceArgs, tool: &str) -> ExitCode {
    let out = run_reference(args).and_then(|out| {
        let json = serde_json::to_string(&out)
            .map_err(|e| AutoGazeError::setting("output", "JSON", e.to_string()))?;
        Ok((json, out.readbacks))
    });
    match out {
        Ok((json, readbacks)) => {
            if let Some(n) = readbacks {
                eprintln!("{tool}: {n} device-to-host readbacks");
            }
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{tool}: {e}");
            ExitCode::FAILURE
        }
    }
}

// A build without a backend (`cli` alone) refuses every run: this and the
// two functions below are then unused.
#[cfg_attr(not(any(feature = "ndarray", feature = "wgpu")), allow(dead_code))]
/// `video` of a tensor file, on `device`.
fn video_file<B: Backend>(path: &Path, device: &B::Device) -> Result<Tensor<B, 5>> {
    let file = TensorFile::open(path)?;
    let video = file.f32("video", None)?;
    let shape: [usize; 5] = video.shape.clone().try_into().map_err(|_| {
        AutoGazeError::setting(
            "tensor video",
            format!("{} in {}", dims(&video.shape), path.display()),
            "[1, T, 3, H, W]",
        )
    })?;
    Ok(Tensor::from_data(
        TensorData::new(video.values, shape),
        device,
    ))
}

#[cfg_attr(not(any(feature = "ndarray", feature = "wgpu")), allow(dead_code))]
/// The frames of `dir`, preprocessed to `side` x `side`.
fn video_frames<B: Backend>(
    dir: &Path,
    model_dir: &Path,
    side: usize,
    device: &B::Device,
) -> Result<Tensor<B, 5>> {
    let config = model_dir.join("preprocessor_config.json");
    let config = if config.exists() {
        PreprocessorConfig::from_file(&config)?
    } else {
        Preprocessor::release().config().clone()
    };
    let mut source = ImageSequence::open_with(dir, 30.0, usize::MAX, 0)?;
    // One clip: refused before any frame is decoded when it is too long.
    crate::limits::at_most(
        format!("frames in {}", dir.display()),
        source.len(),
        crate::limits::MAX_CLIP_FRAMES,
        "MAX_CLIP_FRAMES",
    )?;
    let frames: Vec<Frame> = (0..source.len())
        .map(|_| source.next_frame())
        .collect::<Result<_, _>>()?;
    let input = Preprocessor::new(config, side)?.clip(&frames)?;
    Ok(input.to_tensor::<B>(device))
}

#[cfg_attr(not(any(feature = "ndarray", feature = "wgpu")), allow(dead_code))]
fn run<B: Backend>(args: &ReferenceArgs, device: &B::Device) -> Result<ReferenceOutput> {
    let mut model = AutoGaze::<B>::load(&args.model_dir, device)?;
    if let Some(engine) = &args.engine {
        model.set_engine(engine)?;
    }
    match args.selection {
        Some(SelectionArg::Host) => model.set_selection(Selection::Host),
        Some(SelectionArg::Device) => model.set_selection(Selection::Device),
        None => {}
    }
    let config = model.config();
    let grid = match args.target_patch_size {
        Some(patch) => Some(TileGrid::new(&config.layout, &args.target_scales, patch)?),
        None => None,
    };
    let side = grid.as_ref().map(|g| g.side).unwrap_or(config.input_size);
    let video = match (&args.input, &args.rgba_dir) {
        (Some(path), _) => video_file::<B>(path, device)?,
        (None, Some(dir)) => video_frames::<B>(dir, &args.model_dir, side, device)?,
        (None, None) => {
            return Err(AutoGazeError::setting(
                "input",
                "none",
                "--input FILE or --rgba-dir DIR",
            ));
        }
    };
    let options = GenerateOptions {
        gazing_ratio: args.gazing_ratio,
        task_loss_requirement: args.task_loss_requirement,
    };
    if let Some(grid) = &grid {
        let tiled = model.generate_tiled(video, grid, &options)?;
        let tokens = grid.stitched_layout().tokens() as i64;
        return Ok(ReferenceOutput {
            gazing_pos: tiled
                .frames
                .iter()
                .enumerate()
                .flat_map(|(t, ids)| ids.iter().map(move |&id| id as i64 + tokens * t as i64))
                .collect(),
            if_padded_gazing: tiled.frames.iter().flatten().map(|_| false).collect(),
            num_gazing_each_frame: tiled.frames.iter().map(|f| f.len() as i64).collect(),
            readbacks: None,
        });
    }
    let [b, t, ch, h, w] = video.dims();
    let s = config.input_size;
    let (frames, readbacks) = if args.streaming {
        if b != 1 || ch != 3 || h != s || w != s || t == 0 {
            return Err(AutoGazeError::setting(
                "tensor video",
                dims(&[b, t, ch, h, w]),
                format!("[1, T >= 1, 3, {s}, {s}] for --streaming"),
            ));
        }
        let mut state = model.new_stream();
        let clip = video.reshape([t, ch, h, w]);
        let frames = (0..t)
            .map(|i| {
                let frame = clip.clone().narrow(0, i, 1).reshape([ch, h, w]);
                model.step(&mut state, frame, &options)
            })
            .collect::<Result<Vec<_>, _>>()?;
        (frames, Some(state.readbacks()))
    } else {
        // `generate` keeps its state inside: its readbacks are not counted.
        (model.generate(video, &options, None)?, None)
    };
    let tokens = config.layout.tokens() as i64;
    Ok(ReferenceOutput {
        gazing_pos: frames
            .iter()
            .enumerate()
            .flat_map(|(t, f)| f.ids.iter().map(move |&id| id as i64 + tokens * t as i64))
            .collect(),
        if_padded_gazing: frames
            .iter()
            .flat_map(|f| f.padded.iter().copied())
            .collect(),
        num_gazing_each_frame: frames.iter().map(|f| f.ids.len() as i64).collect(),
        readbacks,
    })
}

/// `[a, b, c]`, as the messages print a shape.
fn dims(shape: &[usize]) -> String {
    format!("{shape:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReferenceArgs,
    }

    fn fixtures() -> PathBuf {
        std::env::var_os("AUTOGAZE_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures"))
    }

    fn args(extra: &[&str]) -> ReferenceArgs {
        let base = fixtures().join("autogaze-random-k10");
        let model = base.to_string_lossy().into_owned();
        let mut argv = vec!["reference", "--model-dir", &model];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("flags").args
    }

    fn reference(case: &str) -> (Vec<i64>, Vec<bool>, Vec<i64>) {
        let file = TensorFile::open(
            &fixtures().join(format!("autogaze-random-k10/cases/{case}.safetensors")),
        )
        .unwrap();
        let i64s = |name: &str| file.i64(name, None).unwrap().values;
        let pads = i64s("if_padded_gazing").iter().map(|&p| p != 0).collect();
        (i64s("gazing_pos"), pads, i64s("num_gazing_each_frame"))
    }

    /// The command prints the reference's outputs, whole-clip, streamed
    /// and tiled; bad input is an error naming what is wrong.
    #[test]
    fn reference_reproduces_the_reference_and_refuses_bad_input() {
        let cases = fixtures().join("autogaze-random-k10/cases");
        let case = |name: &str| cases.join(format!("{name}.safetensors"));
        let tl = case("clip224_r075_tl070");
        let tl = tl.to_string_lossy();
        for streaming in [false, true] {
            let mut flags = vec![
                "--input",
                &*tl,
                "--gazing-ratio",
                "0.75",
                "--task-loss-requirement",
                "0.7",
            ];
            if streaming {
                flags.extend(["--streaming", "--selection", "device"]);
            }
            let out = run_reference(&args(&flags)).unwrap();
            let (pos, pads, counts) = reference("clip224_r075_tl070");
            assert_eq!(out.gazing_pos, pos, "streaming {streaming}");
            assert_eq!(out.if_padded_gazing, pads, "streaming {streaming}");
            assert_eq!(out.num_gazing_each_frame, counts, "streaming {streaming}");
            if streaming {
                // Device-side selection: one readback per frame.
                assert_eq!(out.readbacks, Some(counts.len() as u64));
            }
        }
        let tile = case("tile448_r050");
        let tile = tile.to_string_lossy();
        let out = run_reference(&args(&[
            "--input",
            &tile,
            "--gazing-ratio",
            "0.5",
            "--target-scales",
            "64,128,224,448",
            "--target-patch-size",
            "16",
        ]))
        .unwrap();
        let (pos, _, counts) = reference("tile448_r050");
        assert_eq!((out.gazing_pos, out.num_gazing_each_frame), (pos, counts));
        let json = serde_json::to_value(
            run_reference(&args(&["--input", &tl, "--gazing-ratio", "0.1"])).unwrap(),
        )
        .unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["gazing_pos", "if_padded_gazing", "num_gazing_each_frame"]
        );

        // A negative requirement is a number, not a flag.
        let negative = args(&[
            "--input",
            &tl,
            "--gazing-ratio",
            "0.75",
            "--task-loss-requirement",
            "-0.3",
        ]);
        assert_eq!(negative.task_loss_requirement, Some(-0.3));

        // Frames as images, preprocessed by the command.
        let file = TensorFile::open(&case("video_rgba_r030")).unwrap();
        let rgba = file.u8("rgba_u8", None).unwrap();
        let (t, h, w) = (rgba.shape[0], rgba.shape[1], rgba.shape[2]);
        let dir = std::env::temp_dir().join(format!("autogaze-gaze-rgba-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, px) in rgba.values.chunks_exact(h * w * 4).enumerate().take(t) {
            let image = image::RgbaImage::from_raw(w as u32, h as u32, px.to_vec()).unwrap();
            image.save(dir.join(format!("frame_{i:03}.png"))).unwrap();
        }
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(cases.join("video_rgba_r030.json")).unwrap(),
        )
        .unwrap();
        let ratio = meta["gazing_ratio"].as_f64().unwrap().to_string();
        let mut flags = vec!["--rgba-dir".to_string(), dir.to_string_lossy().into_owned()];
        flags.extend(["--gazing-ratio".to_string(), ratio]);
        if let Some(r) = meta["task_loss_requirement"].as_f64() {
            flags.extend(["--task-loss-requirement".to_string(), r.to_string()]);
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let out = run_reference(&args(&flags));
        let _ = std::fs::remove_dir_all(&dir);
        let (pos, pads, counts) = reference("video_rgba_r030");
        let out = out.unwrap();
        assert_eq!(
            (
                out.gazing_pos,
                out.if_padded_gazing,
                out.num_gazing_each_frame
            ),
            (pos, pads, counts)
        );

        // Bad input: typed errors naming the problem.
        for (flags, needle) in [
            (
                vec!["--input", &*tl, "--gazing-ratio", "1.5"],
                "gazing ratio",
            ),
            (
                vec!["--input", &*tl, "--gazing-ratio", "NaN"],
                "gazing ratio",
            ),
            (
                vec![
                    "--input",
                    "/nonexistent.safetensors",
                    "--gazing-ratio",
                    "0.1",
                ],
                "nonexistent",
            ),
            (vec!["--input", &*tile, "--gazing-ratio", "0.1"], "video"),
            (
                vec!["--input", &*tile, "--gazing-ratio", "0.1", "--streaming"],
                "[1, T >= 1, 3, 224, 224]",
            ),
            (
                vec!["--rgba-dir", "/nonexistent-dir", "--gazing-ratio", "0.1"],
                "nonexistent-dir",
            ),
        ] {
            let e = run_reference(&args(&flags)).unwrap_err().to_string();
            assert!(e.contains(needle), "{flags:?}: {e}");
        }
        let mut bad_model = args(&["--input", &tl, "--gazing-ratio", "0.1"]);
        bad_model.model_dir = PathBuf::from("/nonexistent-model");
        assert!(
            run_reference(&bad_model)
                .unwrap_err()
                .to_string()
                .contains("nonexistent-model")
        );
    }
}
