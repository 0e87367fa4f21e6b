//! Game logic on the plugin's results: every processed frame arrives as an
//! `AutoGazeFrame` message; this app counts the frames whose mask puts more
//! than `MIN_TOKENS` tokens into the left half of the frame, and reports
//! failures. It runs without a window or GPU (`MinimalPlugins`) for
//! `FRAMES` frames, prints the count and exits.
//!
//! `cargo run -p bevy_burn_autogaze --example game_logic`

use bevy::asset::AssetPlugin;
use bevy::prelude::*;
use bevy_burn_autogaze::{
    AutoGazeFailure, AutoGazeFrame, AutoGazeLatest, AutoGazePlugin, AutoGazeSettings,
};
use burn_autogaze::FrameSize;
use burn_autogaze::mask::Rect;
use burn_autogaze::source::{SourceKind, SourceOptions};

/// Frames to watch before exiting.
const FRAMES: u64 = 60;
/// More tokens than this in the region makes a frame "busy".
const MIN_TOKENS: usize = 8;

/// What the game logic counted.
#[derive(Resource, Default)]
struct Activity {
    frames: u64,
    busy: u64,
}

fn main() -> AppExit {
    let mut settings = AutoGazeSettings::default();
    settings.pipeline.source = SourceOptions {
        kind: SourceKind::SyntheticLocal,
        size: FrameSize {
            width: 320,
            height: 180,
        },
        ..SourceOptions::default()
    };
    settings.overlay = false;
    App::new()
        .add_plugins((MinimalPlugins, AssetPlugin::default()))
        .init_asset::<Image>()
        .add_plugins(AutoGazePlugin::new(settings).without_overlay())
        .init_resource::<Activity>()
        .add_systems(Update, (react, report_failures))
        .run()
}

/// Reads this update's frame messages (no `ResMut` on the plugin's state).
fn react(
    mut frames: MessageReader<AutoGazeFrame>,
    latest: Res<AutoGazeLatest>,
    mut activity: ResMut<Activity>,
    mut exit: MessageWriter<AppExit>,
) {
    for frame in frames.read() {
        let left = Rect {
            x0: 0,
            y0: 0,
            x1: frame.size.width / 2,
            y1: frame.size.height,
        };
        let tokens = frame.tokens_in(left).count();
        activity.frames += 1;
        if tokens > MIN_TOKENS {
            activity.busy += 1;
            println!(
                "frame {}: {tokens} tokens on the left ({} path, gaze ratio {:.2})",
                frame.seq, frame.path, frame.gaze_ratio
            );
        }
    }
    if activity.frames >= FRAMES {
        println!(
            "{} of {} frames had more than {MIN_TOKENS} tokens in the left half \
             ({} published, last frame {:?})",
            activity.busy,
            activity.frames,
            latest.frames(),
            latest.frame().map(|f| f.seq)
        );
        exit.write(AppExit::Success);
    }
}

fn report_failures(mut failures: MessageReader<AutoGazeFailure>, mut exit: MessageWriter<AppExit>) {
    for failure in failures.read() {
        eprintln!("autogaze {:?}: {}", failure.kind, failure.message);
        if failure.kind == bevy_burn_autogaze::AutoGazeFailureKind::Setup {
            exit.write(AppExit::error());
        }
    }
}
