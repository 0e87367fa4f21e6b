//! The viewer: input, mask and output side by side with the metrics overlay,
//! or `--headless`: measure N frames offscreen and write the perf summary.

//! In the browser (wasm32) the page's URL query is the command line: see
//! `bevy_burn_autogaze::web`.

#[cfg(target_arch = "wasm32")]
fn main() {
    bevy_burn_autogaze::web::run();
}

/// Counts allocations per thread, so a headless run reports those of its
/// per-frame path (`bevy_burn_autogaze::alloc_count`).
#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static ALLOCATOR: bevy_burn_autogaze::alloc_count::CountingAlloc =
    bevy_burn_autogaze::alloc_count::CountingAlloc;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    native::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::process::ExitCode;

    use bevy::prelude::*;
    use bevy_burn_autogaze::AutoGazePlugin;
    use bevy_burn_autogaze::cli::ViewerArgs;
    use bevy_burn_autogaze::headless::run_headless;
    use bevy_burn_autogaze::viewer::ViewerPlugin;
    use clap::Parser;

    pub fn main() -> ExitCode {
        if bevy_burn_autogaze::headless::no_wayland_session() {
            let (name, value) = bevy_burn_autogaze::headless::QUIET_DEVICE_SELECT;
            // SAFETY: first thing in main, before any thread exists.
            unsafe { std::env::set_var(name, value) };
        }
        let args = ViewerArgs::parse();
        if args.list_cameras {
            return match burn_autogaze::cli::camera_list() {
                Ok(list) => {
                    print!("{list}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        if let Err(e) = args.check() {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        let settings = args.settings();
        if args.headless {
            let options = match args.headless_options() {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            return match run_headless(settings, options) {
                Ok(s) => {
                    let interval = s
                        .display
                        .as_ref()
                        .map(|d| d.frame_interval_ms)
                        .unwrap_or_default();
                    println!(
                        "{}: {:.1} fps, frame p50 {:.2} ms p95 {:.2} ms, dominant {} ({:.0}%)",
                        s.case,
                        s.fps,
                        interval.p50_ms,
                        interval.p95_ms,
                        s.dominant_stage.map(|d| d.as_str()).unwrap_or("-"),
                        100.0 * s.dominant_share
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        let exit = App::new()
            .add_plugins(DefaultPlugins.set(WindowPlugin {
                primary_window: Some(Window {
                    title: "burn_autogaze".into(),
                    resolution: (1600u32, 600u32).into(),
                    ..default()
                }),
                ..default()
            }))
            .add_plugins(AutoGazePlugin::new(settings))
            .add_plugins(ViewerPlugin {
                target: None,
                fit: args.panel_fit(),
            })
            .run();
        match exit {
            AppExit::Success => ExitCode::SUCCESS,
            AppExit::Error(_) => ExitCode::FAILURE,
        }
    }
}
