//! The perf matrix's plain data, shared by the runner, the report, the
//! gate and the chart: a case, how one case ended, and the frame interval a
//! case is judged by.

use burn_autogaze::perf::PerfSummary;
use burn_autogaze::timing::LatencySummary;
use serde::Serialize;

/// One case: its name and the viewer flags that make it.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub name: String,
    pub size: String,
    pub source: String,
    pub mask_source: String,
    pub transfer: String,
    pub geometry: String,
    pub dispatch: String,
    pub args: Vec<String>,
    /// Cases of one group run consecutively (index of the group's first
    /// case in the plan).
    pub group: usize,
}

/// How one case ended.
#[derive(Debug, Clone, Serialize)]
pub struct CaseRun {
    pub case: Case,
    pub ok: bool,
    pub error: Option<String>,
    pub wall_s: f64,
    pub log: String,
    /// Frame-interval p95 of each successful round, in round order, ms.
    pub p95_rounds: Vec<f64>,
}

/// The interval (what a user sees) of a viewer summary, the stage sum
/// otherwise.
pub fn interval(s: &PerfSummary) -> LatencySummary {
    s.display
        .as_ref()
        .map(|d| d.frame_interval_ms)
        .unwrap_or(s.frame_ms)
}
