//! A host app with its own mask source: a box sweeping across the frame
//! stands in for a detector's output. The plugin plans, composes and shows
//! only the cells under the box (the rest of the output keeps its last
//! content), on the mask worker thread like the built-in sources.
//!
//! `cargo run --release -p bevy_burn_autogaze --example custom_mask`

use bevy::prelude::*;
use bevy_burn_autogaze::{
    AutoGazeFrame, AutoGazeImages, AutoGazePlugin, AutoGazeSettings, CustomMaskSource,
};
use burn_autogaze::mask::Rect;
use burn_autogaze::mask_source::{MaskSource, MaskTiles, push_region_tokens};
use burn_autogaze::timing::{Stage, StageTimes};
use burn_autogaze::tokens::{GazeTokens, TokenLayout};
use burn_autogaze::{Frame, Result};

/// The "detector": a box a quarter of the frame wide, moving right a few
/// pixels a frame and wrapping around.
struct SweepingBox {
    layout: TokenLayout,
}

impl MaskSource for SweepingBox {
    fn tokens_into(
        &mut self,
        frame: &Frame,
        _reference: Option<&[u8]>,
        out: &mut GazeTokens,
        _tiles: &mut MaskTiles,
        times: &mut StageTimes,
    ) -> Result<()> {
        let t = std::time::Instant::now();
        let size = frame.size();
        let width = size.width / 4;
        let x0 = (frame.seq * 6 % u64::from(size.width)) as u32;
        let region = Rect {
            x0,
            y0: size.height / 4,
            x1: (x0 + width).min(size.width),
            y1: size.height * 3 / 4,
        };
        push_region_tokens(&self.layout, size, region, out);
        times.add(Stage::MaskSource, t.elapsed());
        Ok(())
    }
}

fn main() {
    let box_source = CustomMaskSource::new("sweeping-box", || SweepingBox {
        layout: TokenLayout::release(),
    });
    let settings = AutoGazeSettings {
        custom_mask_source: Some(box_source),
        ..AutoGazeSettings::default()
    };
    App::new()
        .add_plugins((DefaultPlugins, AutoGazePlugin::new(settings)))
        .add_systems(Startup, setup)
        .add_systems(Update, log_gaze)
        .run();
}

fn setup(mut commands: Commands, images: Res<AutoGazeImages>) {
    commands.spawn(Camera2d);
    let place = |x: f32| Transform::from_xyz(x, 0.0, 0.0).with_scale(Vec3::splat(0.45));
    commands.spawn((Sprite::from_image(images.mask.clone()), place(-300.0)));
    commands.spawn((Sprite::from_image(images.output.clone()), place(300.0)));
}

/// Once a second or so: how much of the frame the box covers.
fn log_gaze(mut frames: MessageReader<AutoGazeFrame>) {
    for frame in frames.read().filter(|f| f.seq % 60 == 0) {
        println!(
            "frame {}: {} tokens, gaze ratio {:.2}",
            frame.seq,
            frame.tokens.len(),
            frame.gaze_ratio
        );
    }
}
