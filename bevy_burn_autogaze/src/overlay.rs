//! The metrics overlay: an egui side panel (F12 toggles it) with frame-time
//! percentiles and history, per-stage bars, quality, counters and controls.
//! It runs only while shown; a right-hand panel reserves its width, so the
//! images laid out beside it are never covered.

use std::path::PathBuf;
use web_time::Instant;

use bevy::prelude::*;
use bevy_egui::egui::{self, Color32, LayerId, Stroke, Ui, UiBuilder};
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass};
use burn_autogaze::memory::mib;
use burn_autogaze::timing::Stage;

use crate::metrics::{AutoGazeMetrics, MetricsSnapshot};
use crate::settings::AutoGazeSettings;

/// Width (logical px) the overlay panel takes on the right.
pub const OVERLAY_WIDTH: f32 = 340.0;

/// Where "export JSON" writes.
#[derive(Resource, Debug, Clone)]
pub struct OverlayExportPath(pub PathBuf);

impl Default for OverlayExportPath {
    fn default() -> Self {
        Self(PathBuf::from("autogaze-metrics.json"))
    }
}

#[derive(Resource, Default)]
struct OverlayMessage(Option<String>);

/// Adds the overlay (and `EguiPlugin` when the app has none).
pub struct OverlayPlugin;

impl Plugin for OverlayPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<EguiPlugin>() {
            app.add_plugins(EguiPlugin::default());
        }
        app.init_resource::<OverlayExportPath>()
            .init_resource::<OverlayMessage>()
            .add_systems(
                EguiPrimaryContextPass,
                overlay.run_if(|s: Res<AutoGazeSettings>| s.overlay),
            );
    }
}

/// F12 flips the overlay (when the app has keyboard input).
pub(crate) fn toggle_overlay(
    keys: Option<Res<ButtonInput<KeyCode>>>,
    mut settings: ResMut<AutoGazeSettings>,
) {
    if keys.is_some_and(|k| k.just_pressed(KeyCode::F12)) {
        settings.overlay = !settings.overlay;
    }
}

fn ms(x: f64) -> String {
    format!("{x:.2}")
}

/// A delta against the baseline: green when lower (faster), red when higher.
fn delta(ui: &mut Ui, now: f64, base: Option<f64>) {
    let Some(base) = base else { return };
    let d = now - base;
    let colour = if d <= 0.0 {
        Color32::from_rgb(90, 200, 90)
    } else {
        Color32::from_rgb(230, 90, 80)
    };
    ui.colored_label(colour, format!("{d:+.2}"));
}

fn history(ui: &mut Ui, metrics: &AutoGazeMetrics, snap: &MetricsSnapshot) {
    let size = egui::vec2(ui.available_width(), 80.0);
    let (response, painter) = ui.allocate_painter(size, egui::Sense::hover());
    let rect = response.rect;
    painter.rect_filled(rect, 2.0, Color32::from_gray(24));
    let top = (snap.frame_long.max_ms * 1.1).max(40.0);
    let y = |v: f64| rect.bottom() - (v / top) as f32 * rect.height();
    for (fps, colour) in [
        (60.0, Color32::from_rgb(90, 200, 90)),
        (30.0, Color32::YELLOW),
    ] {
        let v = 1000.0 / fps;
        painter.hline(rect.x_range(), y(v), Stroke::new(1.0, colour));
        painter.text(
            egui::pos2(rect.left() + 2.0, y(v) - 10.0),
            egui::Align2::LEFT_TOP,
            format!("{fps:.0} fps"),
            egui::FontId::monospace(9.0),
            colour,
        );
    }
    let n = metrics.interval_history().count().max(2);
    let step = rect.width() / (n - 1) as f32;
    let points: Vec<egui::Pos2> = metrics
        .interval_history()
        .enumerate()
        .map(|(i, v)| egui::pos2(rect.left() + i as f32 * step, y(v).max(rect.top())))
        .collect();
    painter.add(egui::Shape::line(
        points,
        Stroke::new(1.0, Color32::LIGHT_BLUE),
    ));
}

fn stage_bars(ui: &mut Ui, snap: &MetricsSnapshot, base: Option<&MetricsSnapshot>) {
    let max = snap
        .stages
        .values()
        .map(|s| s.p95_ms)
        .fold(0.0f64, f64::max)
        .max(1e-6);
    egui::Grid::new("autogaze-stages").show(ui, |ui| {
        ui.label("stage");
        ui.label("p50");
        ui.label("p95");
        ui.label("");
        ui.end_row();
        for (stage, w) in &snap.stages {
            let dominant = snap.dominant == Some(*stage);
            let colour = if dominant {
                Color32::from_rgb(255, 150, 40)
            } else {
                Color32::from_rgb(90, 140, 220)
            };
            ui.colored_label(colour, stage.as_str());
            ui.label(ms(w.p50_ms));
            ui.label(ms(w.p95_ms));
            let (r, painter) = ui.allocate_painter(egui::vec2(90.0, 10.0), egui::Sense::hover());
            let mut bar = r.rect;
            bar.set_width((w.p50_ms / max) as f32 * r.rect.width());
            painter.rect_filled(bar, 1.0, colour);
            delta(
                ui,
                w.p50_ms,
                base.and_then(|b| b.stages.get(stage)).map(|b| b.p50_ms),
            );
            ui.end_row();
        }
    });
}

fn overlay(
    mut contexts: EguiContexts,
    mut settings: ResMut<AutoGazeSettings>,
    mut metrics: ResMut<AutoGazeMetrics>,
    export: Res<OverlayExportPath>,
    mut message: ResMut<OverlayMessage>,
) -> Result {
    let t = Instant::now();
    let ctx = contexts.ctx_mut()?;
    let snap = metrics.snapshot();
    let base = metrics.baseline.clone();
    let mut root = Ui::new(
        ctx.clone(),
        "autogaze-root".into(),
        UiBuilder::new()
            .layer_id(LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    let mut action = None;
    egui::Panel::right("autogaze-metrics")
        .resizable(false)
        .exact_size(OVERLAY_WIDTH)
        .show(&mut root, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                ui.heading("AutoGaze");
                ui.horizontal(|ui| {
                    let label = if settings.paused { "resume" } else { "pause" };
                    if ui.button(label).clicked() {
                        action = Some("pause");
                    }
                    if ui.button("reset").clicked() {
                        action = Some("reset");
                    }
                    if ui.button("set baseline").clicked() {
                        action = Some("baseline");
                    }
                    if ui.button("export JSON").clicked() {
                        action = Some("export");
                    }
                });
                if let Some(m) = &message.0 {
                    ui.label(m);
                }
                ui.separator();
                egui::Grid::new("autogaze-frame").show(ui, |ui| {
                    ui.label("frame ms");
                    ui.label("p50");
                    ui.label("p95");
                    ui.label("p99");
                    ui.end_row();
                    for (name, s, b) in [
                        (
                            "60",
                            &snap.frame_short,
                            base.as_ref().map(|b| b.frame_short),
                        ),
                        ("300", &snap.frame_long, base.as_ref().map(|b| b.frame_long)),
                    ] {
                        ui.label(format!("last {name}"));
                        ui.label(ms(s.p50_ms));
                        ui.label(ms(s.p95_ms));
                        ui.label(ms(s.p99_ms));
                        delta(ui, s.p95_ms, b.map(|b| b.p95_ms));
                        ui.end_row();
                    }
                });
                history(ui, &metrics, &snap);
                ui.separator();
                stage_bars(ui, &snap, base.as_ref());
                ui.separator();
                egui::Grid::new("autogaze-counters").show(ui, |ui| {
                    let mut row = |k: &str, v: String| {
                        ui.label(k);
                        ui.label(v);
                        ui.end_row();
                    };
                    row(
                        "gaze ratio",
                        format!("{:.3} (EMA {:.3})", snap.gaze_ratio, snap.gaze_ratio_ema),
                    );
                    row(
                        "PSNR dB",
                        match (snap.psnr_db, snap.psnr_ema_db) {
                            (Some(p), Some(e)) => format!("{p:.1} (EMA {e:.1})"),
                            (Some(p), None) => format!("{p:.1}"),
                            _ => "off".into(),
                        },
                    );
                    row(
                        "rects / spans",
                        format!("{} / {} ({} rows)", snap.rects, snap.spans, snap.row_spans),
                    );
                    row("updated px", snap.updated_pixels.to_string());
                    row(
                        "uploaded",
                        format!("{} B in {} writes", snap.bytes_uploaded, snap.upload_calls),
                    );
                    row(
                        "transfer",
                        format!(
                            "{} ({} device copies)",
                            snap.transfer.map(|t| t.as_str()).unwrap_or("-"),
                            snap.device_copies
                        ),
                    );
                    row(
                        "dispatch",
                        snap.dispatch_path
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_else(|| "-".into()),
                    );
                    if let Some(w) = snap.worker {
                        row(
                            "worker",
                            format!(
                                "in flight {}, dropped {}, stale {}, failed {}",
                                w.in_flight, w.dropped, w.stale, w.failed
                            ),
                        );
                    }
                    row(
                        "frames",
                        format!(
                            "{} (ring dropped {}, stale {}; host replaced {})",
                            snap.frames, snap.ring.dropped, snap.ring.stale, snap.host.replaced
                        ),
                    );
                    if let Some(p) = snap.pace {
                        row(
                            "realtime",
                            format!(
                                "{:.2}x ({} shown, {} dropped, {} late)",
                                p.realtime_factor, p.shown, p.dropped, p.late
                            ),
                        );
                    }
                    if let Some(d) = snap.decode {
                        row(
                            "decode",
                            format!(
                                "first frame {:.1} ms; {:.2} ms/frame; {} hits, {} waited, {} misses",
                                d.time_to_first_frame_ms,
                                d.decode_ms_mean(),
                                d.hits,
                                d.waited,
                                d.misses
                            ),
                        );
                    }
                    let m = snap.memory;
                    row(
                        "memory",
                        format!(
                            "RSS {} (peak {}); pooled {:.1} MiB, staging {:.1} MiB",
                            m.latest
                                .rss_bytes
                                .map(|b| format!("{:.0} MiB", mib(b)))
                                .unwrap_or_else(|| "-".into()),
                            m.peak_rss_bytes
                                .map(|b| format!("{:.0}", mib(b)))
                                .unwrap_or_else(|| "-".into()),
                            mib(m.latest.pooled_bytes as u64),
                            mib(m.latest.staging_bytes as u64),
                        ),
                    );
                    if snap.tensor_copies != (0, 0) {
                        row(
                            "tensor copies",
                            format!(
                                "{} on the device ({} refused)",
                                snap.tensor_copies.0, snap.tensor_copies.1
                            ),
                        );
                    }
                    row("errors", snap.errors.to_string());
                });
                if let Some(e) = &snap.last_error {
                    ui.colored_label(Color32::from_rgb(230, 90, 80), e);
                }
                ui.separator();
                ui.label("residency");
                for r in &snap.residency {
                    ui.label(format!("  {r}"));
                }
            });
        });
    match action {
        Some("pause") => settings.paused = !settings.paused,
        Some("reset") => metrics.reset(),
        Some("baseline") => metrics.baseline = Some(snap),
        Some("export") => {
            message.0 = Some(match export_json(&export.0, &snap) {
                Ok(()) => format!("exported to {}", export.0.display()),
                Err(e) => e,
            });
        }
        _ => {}
    }
    metrics.add_stage(Stage::Ui, t.elapsed());
    Ok(())
}

fn export_json(path: &std::path::Path, snap: &MetricsSnapshot) -> Result<(), String> {
    let text = serde_json::to_string_pretty(snap).map_err(|e| format!("export: {e}"))?;
    std::fs::write(path, text).map_err(|e| format!("export to {}: {e}", path.display()))
}
