//! The project's chores: `cargo xtask <command>`.
//!
//! - `test`: preflight (a wgpu adapter, FFmpeg), then the whole workspace
//!   test suite.
//! - `perf`: preflight, then the headless harness in release (`--dev` runs it
//!   in this build instead, for quick checks and CI).
//! - `bevy-perf-matrix`: preflight, then the headless Bevy viewer over the
//!   case matrix (`--dry-run`: plan it and run one tiny case).
//! - `wasm-smoke`: build the web viewer and check it in headless Chromium
//!   (`--serve`: build and serve the web demo).
//! - `gaze`: run the model on one case and print the reference's outputs
//!   as JSON (a thin wrapper of `autogaze reference`: the same library
//!   call, `burn_autogaze::export::reference`).
//! - `soak`: the headless viewer for 10,000 frames per mode, judged on
//!   memory growth, per-frame allocations and its counters.
//! - `preflight`: only find (or install) a wgpu adapter and FFmpeg.

mod chart;
mod crossover;
mod fuzz;
mod gate;
mod imports;
mod matrix;
mod matrix_data;
mod matrix_report;
mod matrix_run;
mod paired;
mod perf;
mod preflight;
mod process;
mod soak;
mod stats;
mod upload_bench;
mod wasm_site;
mod wasm_smoke;

use std::ffi::OsString;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "burn_autogaze project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Preflight, then `cargo test --workspace` (parity tolerances are printed).
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Preflight, then the headless perf harness (release build).
    Perf {
        #[command(flatten)]
        args: perf::PerfArgs,
        /// Run in this build of xtask instead of a release build.
        #[arg(long)]
        dev: bool,
    },
    /// Measure the compositor's paths over coverage and write the cost table
    /// (release build unless --dev).
    Crossover {
        #[command(flatten)]
        args: crossover::CrossoverArgs,
        /// Run in this build of xtask instead of a release build.
        #[arg(long)]
        dev: bool,
    },
    /// The headless Bevy viewer over the perf matrix (720p and 1080p,
    /// static / synthetic-pan / synthetic-local, patch-diff / autogaze,
    /// cpu / gpu transfer, forced dispatch and geometry lanes, real video).
    BevyPerfMatrix {
        #[command(flatten)]
        args: matrix::MatrixArgs,
    },
    /// Build the web viewer's two bundles (WebGL2, WebGPU) and the loader,
    /// serve them on 127.0.0.1 and check each in headless Chromium: the
    /// loader's pick, N frames, a valid summary, the model's mask updates on
    /// WebGPU, a drawn canvas, no console errors (`--serve`: only serve).
    WasmSmoke {
        #[command(flatten)]
        args: wasm_smoke::WasmSmokeArgs,
    },
    /// Run the AutoGaze model on one case and print `gazing_pos`,
    /// `if_padded_gazing` and `num_gazing_each_frame` as JSON (the same
    /// call as `autogaze reference`).
    Gaze {
        #[command(flatten)]
        args: burn_autogaze::export::reference::ReferenceArgs,
    },
    /// Run every cargo-fuzz target of fuzz/ from its seed corpus for N
    /// seconds each (installs cargo-fuzz when missing; RUSTC_BOOTSTRAP=1 on
    /// the stable toolchain) and write the table of runs.
    Fuzz {
        #[command(flatten)]
        args: fuzz::FuzzArgs,
    },
    /// Run the headless viewer (release) for N frames at 1280x720 on
    /// synthetic-pan with patch-diff and with the model, RSS sampled, a
    /// mask failure injected mid-run; judge memory growth, per-frame
    /// allocations, the pacing and worker counters (fails when one is
    /// missed).
    Soak {
        #[command(flatten)]
        args: soak::SoakArgs,
    },
    /// Find a wgpu adapter (installing lavapipe when possible and needed).
    Preflight,
    /// List the import loops between the modules of each crate (the house
    /// rule: none); fails when there is one.
    Imports,
    /// Internal: the crossover body in a release build.
    #[command(hide = true)]
    CrossoverRun {
        #[command(flatten)]
        args: crossover::CrossoverArgs,
    },
    /// Internal: print the wgpu adapters as JSON (run by preflight).
    #[command(hide = true)]
    ProbeAdapter,
    /// Internal: the harness body, run by `perf` in a release build.
    #[command(hide = true)]
    PerfRun {
        #[command(flatten)]
        args: perf::PerfArgs,
        #[arg(long, default_value = "unknown")]
        adapter: String,
    },
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The workspace root (xtask's parent directory).
fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else the workspace's `target`.
fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    }
}

fn status_code(status: Option<std::process::ExitStatus>, what: &str, limit: Duration) -> ExitCode {
    match status {
        Some(s) if s.success() => ExitCode::SUCCESS,
        Some(s) => {
            eprintln!("xtask: {what} failed ({s})");
            ExitCode::FAILURE
        }
        None => {
            eprintln!(
                "xtask: {what} did not finish within {} min and was stopped",
                limit.as_secs() / 60
            );
            ExitCode::FAILURE
        }
    }
}

/// The arguments after `xtask <task>`, to hand to the release child verbatim
/// (one parser: clap reads them again there, so nothing is re-serialised).
fn task_args() -> Vec<OsString> {
    std::env::args_os().skip(2).collect()
}

/// Runs `xtask <subcommand> <args>` from a release build (built on demand),
/// with a one-hour limit.
fn run_release(subcommand: &str, args: &[OsString], what: &str) -> ExitCode {
    let limit = Duration::from_secs(60 * 60);
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "--package",
        "xtask",
        "--",
        subcommand,
    ])
    .args(args);
    status_code(
        process::run_inherited(&mut cmd, limit).ok().flatten(),
        what,
        limit,
    )
}

fn report(result: Result<(), String>, what: &str) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{what}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Task::ProbeAdapter => {
            println!("{}", preflight::probe_adapters_json());
            ExitCode::SUCCESS
        }
        Task::Preflight => match preflight::preflight().and_then(|_| preflight::ffmpeg()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("preflight: {e}");
                ExitCode::FAILURE
            }
        },
        Task::Test { cargo_args } => {
            if let Err(e) = preflight::preflight().and_then(|_| preflight::ffmpeg()) {
                eprintln!("preflight: {e}");
                return ExitCode::FAILURE;
            }
            let limit = Duration::from_secs(80 * 60);
            let mut cmd = cargo();
            // Without a Wayland session, keep Mesa's Vulkan device-select
            // layer from asking for one (a spurious `XDG_RUNTIME_DIR` error
            // per wgpu instance); the viewer binary does the same
            // (`bevy_burn_autogaze::headless::no_wayland_session`).
            let absolute = |name: &str| {
                std::env::var_os(name).is_some_and(|v| v.to_string_lossy().starts_with('/'))
            };
            if !absolute("XDG_RUNTIME_DIR") && !absolute("WAYLAND_DISPLAY") {
                cmd.env("NODEVICE_SELECT", "1");
            }
            cmd.args(["test", "--workspace"])
                .args(&cargo_args)
                .args(["--", "--show-output"]);
            status_code(
                process::run_inherited(&mut cmd, limit).ok().flatten(),
                "cargo test",
                limit,
            )
        }
        Task::Perf { args, dev } => {
            let adapter = match preflight::preflight() {
                Ok(a) => a.describe(),
                Err(e) => {
                    eprintln!("preflight: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if dev {
                let info = perf::RunInfo {
                    profile: profile().into(),
                    adapter,
                };
                return report(perf::run(&args, &info).map(|_| ()), "perf");
            }
            eprintln!("perf: building the harness in release (a cold build takes several minutes)");
            let mut cli: Vec<OsString> = vec!["--adapter".into(), adapter.into()];
            cli.extend(task_args());
            run_release("perf-run", &cli, "perf harness")
        }
        Task::Crossover { args, dev } => {
            if dev {
                return report(crossover::run(&args).map(|_| ()), "crossover");
            }
            run_release("crossover-run", &task_args(), "crossover")
        }
        Task::Fuzz { args } => report(fuzz::run(&args), "fuzz"),
        Task::Soak { args } => {
            if let Err(e) = preflight::preflight() {
                eprintln!("preflight: {e}");
                return ExitCode::FAILURE;
            }
            report(soak::run(&args), "soak")
        }
        Task::BevyPerfMatrix { args } => {
            let adapter = match preflight::preflight() {
                Ok(a) => a.describe(),
                Err(e) => {
                    eprintln!("preflight: {e}");
                    return ExitCode::FAILURE;
                }
            };
            report(matrix::run(&args, &adapter), "bevy-perf-matrix")
        }
        Task::Gaze { args } => burn_autogaze::export::reference::reference_command(&args, "gaze"),
        Task::Imports => report(imports::check(&workspace_root()), "imports"),
        Task::WasmSmoke { args } => report(wasm_smoke::run_smoke(&args), "wasm-smoke"),
        Task::CrossoverRun { args } => report(crossover::run(&args).map(|_| ()), "crossover"),
        Task::PerfRun { args, adapter } => {
            let info = perf::RunInfo {
                profile: profile().into(),
                adapter,
            };
            report(perf::run(&args, &info).map(|_| ()), "perf")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `perf` forwards parses in `perf-run` to the same settings.
    #[test]
    fn forwarded_perf_arguments_reach_the_release_run_unchanged() {
        let args = [
            "--frames",
            "3",
            "--sizes",
            "64x36,33x17",
            "--mask-source",
            "autogaze",
            "--gazing-ratio",
            "0.1",
            "--source-fps",
            "native",
            "--decoupled",
            "--psnr-floor",
            "30",
            "--filter",
            "pan",
        ];
        let parent = Cli::parse_from(["xtask", "perf"].iter().chain(args.iter()));
        let child = Cli::parse_from(
            ["xtask", "perf-run", "--adapter", "a"]
                .iter()
                .chain(args.iter()),
        );
        match (parent.command, child.command) {
            (
                Task::Perf {
                    args: p,
                    dev: false,
                },
                Task::PerfRun { args: c, adapter },
            ) => {
                assert_eq!(format!("{p:?}"), format!("{c:?}"));
                assert_eq!(adapter, "a");
            }
            _ => panic!("wrong subcommands"),
        }
        let parent = Cli::parse_from(["xtask", "crossover", "--reps", "24", "--sizes", "720p"]);
        let child = Cli::parse_from(["xtask", "crossover-run", "--reps", "24", "--sizes", "720p"]);
        match (parent.command, child.command) {
            (
                Task::Crossover {
                    args: p,
                    dev: false,
                },
                Task::CrossoverRun { args: c },
            ) => {
                assert_eq!(format!("{p:?}"), format!("{c:?}"));
            }
            _ => panic!("wrong subcommands"),
        }
    }

    /// Counts, sizes and rates beyond the limits are refused by the flag
    /// parser, naming the flag and the value.
    #[test]
    fn harness_flags_beyond_the_limits_are_refused() {
        for argv in [
            &["perf", "--frames", "1000000000000"][..],
            &["perf", "--warmup-frames", "1000000000000"],
            &["perf", "--sizes", "100000x100000"],
            &["perf", "--source-fps", "1e10"],
            &["perf", "--source-fps", "1e-20"],
            &["perf", "--anyres-tiles", "1000"],
            &["bevy-perf-matrix", "--frames", "1000000000000"],
            &["bevy-perf-matrix", "--rounds", "1000000000000"],
            &[
                "bevy-perf-matrix",
                "--case-timeout-s",
                "18446744073709551615",
            ],
            &["crossover", "--reps", "1000000000000"],
            &["crossover", "--sizes", "100000x100000"],
        ] {
            let err = match Cli::try_parse_from(std::iter::once(&"xtask").chain(argv)) {
                Ok(_) => panic!("{argv:?} must be refused"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.contains(argv[1]) && err.contains(argv[2]),
                "{argv:?}: {err}"
            );
        }
    }
}
