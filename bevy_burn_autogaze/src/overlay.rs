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

/// The counter rows of the overlay, (label, value): labels short and long
/// values split over two rows, so that each row fits [`OVERLAY_WIDTH`]
/// (the test `counter_rows_fit_the_panel_at_720p` lays them out with
/// egui's fonts on a worst-case snapshot).
pub(crate) fn counter_rows(snap: &MetricsSnapshot) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        (
            "gaze ratio",
            format!("{:.3} (EMA {:.3})", snap.gaze_ratio, snap.gaze_ratio_ema),
        ),
        (
            "PSNR dB",
            match (snap.psnr_db, snap.psnr_ema_db) {
                (Some(p), Some(e)) => format!("{p:.1} (EMA {e:.1})"),
                (Some(p), None) => format!("{p:.1}"),
                _ => "off".into(),
            },
        ),
        (
            "rects/spans",
            format!("{} / {} ({} rows)", snap.rects, snap.spans, snap.row_spans),
        ),
        ("updated px", snap.updated_pixels.to_string()),
        (
            "uploaded",
            format!(
                "{:.2} MiB in {} writes",
                mib(snap.bytes_uploaded),
                snap.upload_calls
            ),
        ),
        (
            "transfer",
            format!(
                "{}, {} device copies",
                snap.transfer.map(|t| t.as_str()).unwrap_or("-"),
                snap.device_copies
            ),
        ),
        (
            "dispatch",
            snap.dispatch_path
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "-".into()),
        ),
    ];
    if let Some(w) = snap.worker {
        rows.push((
            "worker",
            format!("{} in flight, {} failed", w.in_flight, w.failed),
        ));
        rows.push(("  dropped", format!("{}, stale {}", w.dropped, w.stale)));
    }
    if let Some(m) = snap.model {
        rows.push((
            "model",
            format!("{}, {} calls/frame", m.engine, m.decoder_calls),
        ));
        let launches = match m.dispatches {
            Some(d) => format!("{d} dispatches"),
            None => "Burn ops".into(),
        };
        rows.push(("  device", format!("{launches}, {} readbacks", m.readbacks)));
        if let (Some(up), Some(back)) = (m.upload_bytes, m.readback_bytes) {
            rows.push((
                "  transfers",
                format!(
                    "{} KiB up, {} KiB back",
                    up.div_ceil(1024),
                    back.div_ceil(1024)
                ),
            ));
        }
        if m.lent_frames > 0 {
            // One upload of the frame served the display and the model.
            rows.push(("  input", "the display's upload".into()));
        }
    }
    match snap.gpu_timing.as_deref() {
        Some("timestamp queries") => {
            for &(stage, ms) in &snap.gpu_stages {
                rows.push((crate::gpu_timing::label(stage), format!("{ms:.3} ms")));
            }
        }
        Some(_) => rows.push(("GPU stages", "no timestamps".into())),
        None => {}
    }
    rows.push(("frames", snap.frames.to_string()));
    rows.push((
        "  ring",
        format!("{} dropped, {} stale", snap.ring.dropped, snap.ring.stale),
    ));
    rows.push(("  host", format!("{} replaced", snap.host.replaced)));
    if let Some(p) = snap.pace {
        rows.push((
            "realtime",
            format!("{:.2}x, {} shown", p.realtime_factor, p.shown),
        ));
        rows.push(("  late", format!("{}, dropped {}", p.late, p.dropped)));
    }
    if let Some(d) = snap.decode {
        rows.push((
            "decode",
            format!(
                "{:.2} ms/frame, 1st {:.0} ms",
                d.decode_ms_mean(),
                d.time_to_first_frame_ms
            ),
        ));
        rows.push((
            "  cache",
            format!("{} hit, {} wait, {} miss", d.hits, d.waited, d.misses),
        ));
    }
    let m = snap.memory;
    let rss = |b: Option<u64>| b.map_or_else(|| "-".into(), |b| format!("{:.0}", mib(b)));
    rows.push((
        "RSS MiB",
        format!(
            "{} (peak {})",
            rss(m.latest.rss_bytes),
            rss(m.peak_rss_bytes)
        ),
    ));
    rows.push((
        "buffers MiB",
        format!(
            "pool {:.1}, staging {:.1}",
            mib(m.latest.pooled_bytes as u64),
            mib(m.latest.staging_bytes as u64)
        ),
    ));
    if snap.tensor_copies != (0, 0) {
        rows.push((
            "copies",
            format!(
                "{} tensor ({} refused)",
                snap.tensor_copies.0, snap.tensor_copies.1
            ),
        ));
    }
    rows.push(("errors", snap.errors.to_string()));
    rows
}

/// The counter rows as a two-column grid.
fn counter_grid(ui: &mut Ui, rows: &[(&'static str, String)]) {
    egui::Grid::new("autogaze-counters").show(ui, |ui| {
        for (k, v) in rows {
            ui.label(*k);
            ui.label(v);
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
                counter_grid(ui, &counter_rows(&snap));
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn_autogaze::interframe::ComposePath;
    use burn_autogaze::pacing::PaceStats;
    use burn_autogaze::source::DecodeStats;
    use burn_autogaze::worker::WorkerCounters;

    use crate::DisplayTransfer;

    /// A snapshot with every optional row present and numbers as wide as
    /// a long 1080p run gives.
    fn worst_case() -> MetricsSnapshot {
        let mut snap = MetricsSnapshot {
            frames: 9_999_999,
            gaze_ratio: 0.999,
            gaze_ratio_ema: 0.999,
            psnr_db: Some(99.9),
            psnr_ema_db: Some(99.9),
            rects: 9999,
            spans: 9999,
            row_spans: 999_999,
            updated_pixels: 2_073_600,
            bytes_uploaded: 8_294_400,
            upload_calls: 9999,
            dispatch_path: Some(ComposePath::Sparse),
            transfer: Some(DisplayTransfer::Gpu),
            device_copies: 9999,
            model: Some(burn_autogaze::timing::ModelWork {
                engine: "fused-gpu",
                frames: 1,
                decoder_calls: 9999,
                dispatches: Some(9_999_999),
                readbacks: 9999,
                upload_bytes: Some(999_999_999),
                readback_bytes: Some(999_999_999),
                lent_frames: 1,
            }),
            worker: Some(WorkerCounters {
                in_flight: 1,
                dropped: 9_999_999,
                stale: 9_999_999,
                failed: 9999,
                ..WorkerCounters::default()
            }),
            errors: 9999,
            pace: Some(PaceStats {
                realtime_factor: 0.99,
                shown: 9_999_999,
                dropped: 9_999_999,
                late: 9_999_999,
            }),
            decode: Some(DecodeStats {
                time_to_first_frame_ms: 99_999.0,
                decoded: 1,
                decode_ms_total: 999.99,
                hits: 9_999_999,
                waited: 9_999_999,
                misses: 9_999_999,
                ..DecodeStats::default()
            }),
            tensor_copies: (9_999_999, 9999),
            gpu_stages: vec![("device_compose", 9999.999), ("mask_panel", 9999.999)],
            gpu_timing: Some("timestamp queries".into()),
            ..MetricsSnapshot::default()
        };
        snap.ring.dropped = 9_999_999;
        snap.ring.stale = 9_999_999;
        snap.host.replaced = 9_999_999;
        snap.memory.latest.rss_bytes = Some(99_999 << 20);
        snap.memory.peak_rss_bytes = Some(99_999 << 20);
        snap.memory.latest.pooled_bytes = 9999 << 20;
        snap.memory.latest.staging_bytes = 9999 << 20;
        snap
    }

    /// Lays `rows` out in the overlay's panel of a 1280x720 window with
    /// egui's own fonts and returns how far the widest row reaches past
    /// the panel's content (negative: room to spare).
    fn overflow(rows: &[(&'static str, String)]) -> f32 {
        let ctx = egui::Context::default();
        let input = || egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(1280.0, 720.0),
            )),
            ..Default::default()
        };
        let mut worst = f32::NEG_INFINITY;
        // Twice: the grid sizes its columns from the previous pass.
        for _ in 0..2 {
            let mut output = ctx.run_ui(input(), |root| {
                egui::Panel::right("autogaze-metrics")
                    .resizable(false)
                    .exact_size(OVERLAY_WIDTH)
                    .show(root, |ui| {
                        egui::ScrollArea::vertical().show(ui, |ui| {
                            let right = ui.max_rect().right();
                            counter_grid(ui, rows);
                            worst = ui.min_rect().right() - right;
                        });
                    });
            });
            // Nothing renders here: the font atlas' upload is dropped.
            output.textures_delta.clear();
        }
        worst
    }

    #[test]
    fn counter_rows_fit_the_panel_at_720p() {
        // The check itself: the old one-row `frames` value does not fit.
        let old = "9999999 (ring dropped 9999999, stale 9999999; host replaced 9999999)";
        assert!(overflow(&[("frames", old.to_string())]) > 0.0);
        let rows = counter_rows(&worst_case());
        for (k, v) in &rows {
            let over = overflow(&[(k, v.clone())]);
            assert!(
                over <= 0.0,
                "row {k:?} = {v:?} is {over:.0} px wider than the panel"
            );
        }
        let over = overflow(&rows);
        let each: Vec<(&str, i32)> = rows
            .iter()
            .map(|(k, v)| (*k, overflow(&[(k, v.clone())]) as i32))
            .collect();
        assert!(
            over <= 0.0,
            "the grid is {over:.0} px wider than the panel: {each:?}"
        );
        let labels: Vec<_> = rows.iter().map(|(k, _)| *k).collect();
        for want in [
            "frames",
            "RSS MiB",
            "buffers MiB",
            "decode",
            "worker",
            "model",
            "realtime",
        ] {
            assert!(labels.contains(&want), "{want} missing: {labels:?}");
        }
    }
}
