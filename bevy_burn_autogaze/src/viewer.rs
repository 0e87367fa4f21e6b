//! The viewer's layout: input, mask and output side by side (and the model
//! input when shown), the overlay's
//! width reserved on the right. One host of the plugin among many; the
//! window and the headless modes share it.

use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::ui::IsDefaultUiCamera;
use burn_autogaze::FrameSize;

use crate::overlay::OVERLAY_WIDTH;
use crate::{AutoGazeImages, AutoGazeSettings, AutoGazeSystems, DisplayTransfer};

/// The viewer layout. `target: Some(size)` renders into an offscreen image
/// of that size (headless); none renders to the primary window.
pub struct ViewerPlugin {
    /// Offscreen target size (headless); none: the primary window.
    pub target: Option<FrameSize>,
    /// Which panel scales to fit to their displayed width.
    pub fit: PanelFit,
}

/// Which panel scales the viewer fits to their displayed width: the
/// largest downscale that still gives every displayed pixel a texel (fewer
/// bytes uploaded and sampled, no visible loss). A panel not fitted keeps
/// the scale in the settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PanelFit {
    /// Fit the mask panel's scale.
    pub mask: bool,
    /// Fit the input panel's scale.
    pub input: bool,
}

/// Outer padding and gap between panels, logical px.
const PAD: f32 = 6.0;

/// The downscale of a panel showing `frame_width` texels in `shown_width`
/// pixels: the largest factor (1 to 8) that keeps at least one texel per
/// displayed pixel.
pub fn fit_scale(frame_width: u32, shown_width: f32) -> u32 {
    if shown_width < 1.0 {
        return 1;
    }
    ((frame_width as f32 / shown_width).floor() as u32).clamp(1, 8)
}

/// The input panel's fitted scale: `scale`, but full size with the GPU
/// transfer, where the full-size frame goes up anyway (the device's copy
/// source): shown as the input panel it is the only upload, where a scaled
/// panel is a second one (the renderer samples either at the panel's size).
pub fn input_scale(transfer: DisplayTransfer, scale: u32) -> u32 {
    if transfer == DisplayTransfer::Gpu {
        1
    } else {
        scale
    }
}

/// The offscreen image the headless viewer renders into.
#[derive(Resource, Debug, Clone)]
pub struct ViewerTarget(pub Handle<Image>);

#[derive(Component)]
struct ImageRow;

#[derive(Component, Clone, Copy, PartialEq, Eq)]
enum Panel {
    Input,
    Mask,
    Output,
    /// What the model sees, from a Burn tensor on Bevy's device.
    ModelInput,
}

impl Panel {
    const ALL: [Panel; 4] = [Panel::Input, Panel::Mask, Panel::Output, Panel::ModelInput];

    /// Whether the settings show this panel (the output always).
    fn shown(self, settings: &AutoGazeSettings) -> bool {
        match self {
            Panel::Input => settings.show_input,
            Panel::Mask => settings.show_mask,
            Panel::Output => true,
            Panel::ModelInput => settings.show_model_input,
        }
    }
}

impl Plugin for ViewerPlugin {
    fn build(&self, app: &mut App) {
        let target = self.target;
        app.insert_resource(ClearColor(Color::srgb(0.08, 0.08, 0.09)))
            .add_systems(
                Startup,
                move |commands: Commands,
                      images: ResMut<Assets<Image>>,
                      handles: Res<AutoGazeImages>| {
                    setup(commands, images, handles, target)
                },
            )
            .add_systems(
                Update,
                (sync_layout, follow_input_view).after(AutoGazeSystems::Step),
            );
        let fit = self.fit;
        if fit.mask || fit.input {
            app.add_systems(
                Update,
                (move |settings: ResMut<AutoGazeSettings>,
                       handles: Res<AutoGazeImages>,
                       windows: Query<&Window>| {
                    fit_panels(settings, handles, windows, target, fit)
                })
                .before(AutoGazeSystems::Step),
            );
        }
    }
}

/// Sets the fitted panel scales from the width each panel is shown at:
/// the row's width (target or window, the overlay's reserve taken off)
/// shared by the shown panels.
fn fit_panels(
    mut settings: ResMut<AutoGazeSettings>,
    handles: Res<AutoGazeImages>,
    windows: Query<&Window>,
    target: Option<FrameSize>,
    fit: PanelFit,
) {
    // Logical width of the row, and physical pixels per logical pixel.
    let (width, pixels) = match target {
        Some(size) => (size.width as f32, 1.0),
        None => match windows.iter().next() {
            Some(w) => (w.width(), w.scale_factor()),
            None => return,
        },
    };
    let frame = handles.size.unwrap_or(settings.pipeline.source.size).width;
    let s = &*settings;
    let panels = Panel::ALL.iter().filter(|p| p.shown(s)).count() as f32;
    let reserve = if s.overlay { OVERLAY_WIDTH } else { 0.0 };
    let shown = (width - reserve - PAD * (panels + 1.0)) / panels;
    let scale = fit_scale(frame, shown * pixels);
    let input = input_scale(s.display_transfer, scale);
    if fit.mask && s.mask_panel_scale != scale {
        settings.mask_panel_scale = scale;
    }
    if fit.input && settings.input_panel_scale != input {
        settings.input_panel_scale = input;
    }
}

fn setup(
    mut commands: Commands,
    mut images: ResMut<Assets<Image>>,
    handles: Res<AutoGazeImages>,
    target: Option<FrameSize>,
) {
    // Image panels need no multisampling; 4x MSAA (Bevy's default)
    // quadruples the fragment and resolve work, the dominant cost on a
    // software adapter (PERF_LOOP.md, 2026-11-22).
    match target {
        Some(size) => {
            let mut image = Image::new_target_texture(
                size.width,
                size.height,
                TextureFormat::Rgba8UnormSrgb,
                None,
            );
            image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
            let handle = images.add(image);
            commands.insert_resource(ViewerTarget(handle.clone()));
            commands.spawn((
                Camera2d,
                RenderTarget::from(handle),
                IsDefaultUiCamera,
                Msaa::Off,
            ));
        }
        None => {
            commands.spawn((Camera2d, IsDefaultUiCamera, Msaa::Off));
        }
    }
    let panels = [
        (Panel::Input, "input", handles.input.clone()),
        (Panel::Mask, "mask", handles.mask.clone()),
        (Panel::Output, "output", handles.output.clone()),
        (
            Panel::ModelInput,
            "model input",
            handles.model_input.clone(),
        ),
    ];
    commands
        .spawn((
            ImageRow,
            Node {
                width: Val::Percent(100.0),
                height: Val::Percent(100.0),
                flex_direction: FlexDirection::Row,
                align_items: AlignItems::Center,
                justify_content: JustifyContent::SpaceEvenly,
                column_gap: Val::Px(PAD),
                padding: UiRect::all(Val::Px(PAD)),
                ..default()
            },
        ))
        .with_children(|row| {
            for (panel, label, handle) in panels {
                row.spawn((
                    panel,
                    // Equal shares of the row, whatever the images'
                    // own sizes: a column may shrink below its image's
                    // width (min_width 0), so every panel stays in view.
                    Node {
                        flex_direction: FlexDirection::Column,
                        align_items: AlignItems::Center,
                        flex_basis: Val::Px(0.0),
                        flex_grow: 1.0,
                        flex_shrink: 1.0,
                        min_width: Val::Px(0.0),
                        row_gap: Val::Px(4.0),
                        ..default()
                    },
                ))
                .with_children(|col| {
                    col.spawn((
                        Text::new(label),
                        TextFont::from_font_size(14.0),
                        TextColor(Color::srgb(0.85, 0.85, 0.85)),
                    ));
                    let mut image = col.spawn((
                        ImageNode::new(handle),
                        Node {
                            width: Val::Percent(100.0),
                            ..default()
                        },
                    ));
                    if panel == Panel::Input {
                        image.insert(InputImage);
                    }
                });
            }
        });
}

/// The input panel's image node.
#[derive(Component)]
pub(crate) struct InputImage;

/// Shows the image the plugin names for the input panel this frame (the
/// output, when it holds the frame whole: `input_from_output`).
fn follow_input_view(
    handles: Res<AutoGazeImages>,
    mut nodes: Query<&mut ImageNode, With<InputImage>>,
) {
    if !handles.is_changed() {
        return;
    }
    for mut node in &mut nodes {
        if node.image != *handles.input_view() {
            node.image = handles.input_view().clone();
        }
    }
}

/// Reserves the overlay's width and hides panels that are not uploaded.
fn sync_layout(
    settings: Res<AutoGazeSettings>,
    mut rows: Query<&mut Node, (With<ImageRow>, Without<Panel>)>,
    mut panels: Query<(&Panel, &mut Node), Without<ImageRow>>,
) {
    if !settings.is_changed() {
        return;
    }
    for mut node in &mut rows {
        let right = if settings.overlay {
            OVERLAY_WIDTH + PAD
        } else {
            PAD
        };
        node.padding.right = Val::Px(right);
    }
    for (panel, mut node) in &mut panels {
        node.display = if panel.shown(&settings) {
            Display::Flex
        } else {
            Display::None
        };
    }
}

#[cfg(test)]
mod tests {
    use super::{fit_scale, input_scale};
    use crate::DisplayTransfer;

    #[test]
    fn panels_keep_a_texel_per_displayed_pixel() {
        // Three panels in a 1920 px target beside the overlay: ~520 px each.
        assert_eq!(fit_scale(1920, 520.0), 3);
        assert_eq!(fit_scale(1280, 520.0), 2);
        assert_eq!(fit_scale(224, 520.0), 1);
        assert_eq!(fit_scale(3840, 100.0), 8, "capped");
        assert_eq!(fit_scale(1920, 0.0), 1, "no room: full size");
    }

    #[test]
    fn the_gpu_transfer_shows_the_uploaded_frame_as_the_input_panel() {
        assert_eq!(input_scale(DisplayTransfer::Gpu, 3), 1);
        assert_eq!(input_scale(DisplayTransfer::Cpu, 3), 3);
        assert_eq!(input_scale(DisplayTransfer::Auto, 2), 2);
    }
}
