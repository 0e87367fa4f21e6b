//! The perf matrix chart: per case, the frame-time p50 as a bar split by
//! each stage's share of the frame, and a tick at p95.

use std::path::Path;

use burn_autogaze::perf::PerfSummary;
use burn_autogaze::timing::Stage;
use plotters::prelude::*;

use crate::matrix_data::{Case, interval};

fn colour(stage: Stage) -> RGBColor {
    const PALETTE: [RGBColor; 10] = [
        RGBColor(120, 120, 120),
        RGBColor(180, 180, 180),
        RGBColor(230, 160, 60),
        RGBColor(220, 80, 60),
        RGBColor(150, 100, 200),
        RGBColor(60, 140, 220),
        RGBColor(60, 180, 170),
        RGBColor(90, 190, 90),
        RGBColor(240, 200, 60),
        RGBColor(70, 70, 160),
    ];
    PALETTE[stage as usize % PALETTE.len()]
}

fn plot(path: &Path, rows: &[(Case, PerfSummary)]) -> Result<(), Box<dyn std::error::Error>> {
    let n = rows.len().max(1);
    let root = SVGBackend::new(path, (1200, 120 + 22 * n as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = rows
        .iter()
        .map(|(_, s)| interval(s).p95_ms)
        .fold(1.0f64, f64::max)
        * 1.1;
    let names: Vec<String> = rows.iter().map(|(c, _)| c.name.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "frame time: p50 split by stage share, | = p95 (ms)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(380)
        .build_cartesian_2d(0f64..max, (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("ms")
        .draw()?;
    for stage in Stage::ALL {
        if !rows.iter().any(|(_, s)| s.stages.contains_key(&stage)) {
            continue;
        }
        let c = colour(stage);
        let bars = rows.iter().enumerate().filter_map(|(i, (_, s))| {
            s.stages.get(&stage)?;
            let total: f64 = s.stages.values().map(|l| l.mean_ms).sum();
            if total <= 0.0 {
                return None;
            }
            let p50 = interval(s).p50_ms;
            let before: f64 = s
                .stages
                .iter()
                .filter(|(k, _)| **k < stage)
                .map(|(_, l)| l.mean_ms)
                .sum();
            let x0 = p50 * before / total;
            let x1 = x0 + p50 * s.stages[&stage].mean_ms / total;
            Some(Rectangle::new(
                [
                    (x0, SegmentValue::Exact(i)),
                    (x1, SegmentValue::Exact(i + 1)),
                ],
                c.filled(),
            ))
        });
        chart
            .draw_series(bars)?
            .label(stage.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
    }
    chart.draw_series(rows.iter().enumerate().map(|(i, (_, s))| {
        let p95 = interval(s).p95_ms;
        Rectangle::new(
            [
                (p95 - max * 0.002, SegmentValue::Exact(i)),
                (p95 + max * 0.002, SegmentValue::Exact(i + 1)),
            ],
            BLACK.filled(),
        )
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Writes the chart of `rows` as SVG.
pub fn write_svg(path: &Path, rows: &[(Case, PerfSummary)]) -> Result<(), String> {
    plot(path, rows).map_err(|e| format!("chart {}: {e}", path.display()))
}

/// The crossover chart: compose time of each path over coverage, and the
/// upload of the dirty regions against one whole-frame write, per size.
pub fn write_crossover_svg(
    path: &Path,
    table: &burn_autogaze::crossover::CrossoverTable,
) -> Result<(), String> {
    plot_crossover(path, table).map_err(|e| format!("chart {}: {e}", path.display()))
}

fn plot_crossover(
    path: &Path,
    table: &burn_autogaze::crossover::CrossoverTable,
) -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<(u32, u32)> = table.sizes.iter().map(|c| (c.width, c.height)).collect();
    let root = SVGBackend::new(path, (560 * sizes.len().max(1) as u32, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let columns = root.split_evenly((2, sizes.len().max(1)));
    for (col, &(w, h)) in sizes.iter().enumerate() {
        let points: Vec<_> = table
            .points
            .iter()
            .filter(|p| (p.width, p.height) == (w, h))
            .collect();
        type Lane = (
            &'static str,
            RGBColor,
            fn(&burn_autogaze::crossover::CrossoverPoint) -> Option<f64>,
        );
        let compose: [Lane; 4] = [
            ("sparse", RGBColor(60, 140, 220), |p| Some(p.sparse_us)),
            ("dense", RGBColor(220, 80, 60), |p| Some(p.dense_us)),
            ("full", RGBColor(90, 190, 90), |p| Some(p.full_us)),
            ("adaptive", BLACK, |p| Some(p.adaptive_us)),
        ];
        let upload: [Lane; 2] = [
            ("regions", RGBColor(60, 140, 220), |p| p.upload_regions_us),
            ("whole frame", RGBColor(90, 190, 90), |p| p.upload_full_us),
        ];
        for (row, (title, lanes)) in [("compose", &compose[..]), ("upload", &upload[..])]
            .into_iter()
            .enumerate()
        {
            let area = &columns[row * sizes.len() + col];
            let max = points
                .iter()
                .flat_map(|p| lanes.iter().filter_map(|l| (l.2)(p)))
                .fold(1.0f64, f64::max)
                * 1.1;
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{title} {w}x{h} (us)"), ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..100f64, 0f64..max)?;
            chart.configure_mesh().x_desc("coverage %").draw()?;
            for &(name, colour, value) in lanes {
                let series: Vec<(f64, f64)> = points
                    .iter()
                    .filter_map(|p| value(p).map(|v| (p.coverage * 100.0, v)))
                    .collect();
                if series.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(series, colour.stroke_width(2)))?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}
