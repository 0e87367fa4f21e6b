//! A host app with its own camera and layout. It feeds the plugin from a
//! thread the way a camera crate would (`HostFrames`), and shows the composed
//! output and the mask panel as sprites where it likes.
//!
//! `cargo run --release -p bevy_burn_autogaze --example minimal`

use std::time::Duration;

use bevy::prelude::*;
use bevy_burn_autogaze::{AutoGazeImages, AutoGazePlugin, AutoGazeSettings, FrameFeed, HostFrames};
use burn_autogaze::source::{SourceKind, SourceOptions, open_source};

fn main() {
    let settings = AutoGazeSettings {
        feed: FrameFeed::Host,
        ..AutoGazeSettings::default()
    };
    App::new()
        .add_plugins((DefaultPlugins, AutoGazePlugin::new(settings)))
        .add_systems(Startup, (setup, start_camera_thread))
        .run();
}

fn setup(mut commands: Commands, images: Res<AutoGazeImages>) {
    commands.spawn(Camera2d);
    // The host decides where the plugin's images go.
    let place = |x: f32| Transform::from_xyz(x, 0.0, 0.0).with_scale(Vec3::splat(0.45));
    commands.spawn((Sprite::from_image(images.mask.clone()), place(-300.0)));
    commands.spawn((Sprite::from_image(images.output.clone()), place(300.0)));
}

/// Stands in for a camera: a synthetic source pushed at ~30 fps.
fn start_camera_thread(host: Res<HostFrames>) {
    let host = host.clone();
    let options = SourceOptions {
        kind: SourceKind::SyntheticLocal,
        ..SourceOptions::default()
    };
    std::thread::spawn(move || {
        let Ok(mut camera) = open_source(&options) else {
            return;
        };
        while let Ok(frame) = camera.next_frame() {
            host.push(frame);
            std::thread::sleep(Duration::from_millis(33));
        }
    });
}
