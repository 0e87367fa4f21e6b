//! Progress of a run: a bar with an ETA for a terminal, a plain line
//! otherwise.

use std::time::Duration;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Frames done.
    pub done: u64,
    /// Frames in all, when known.
    pub total: Option<u64>,
    /// Time since the run started.
    pub elapsed: Duration,
}

impl Progress {
    /// Frames a second so far.
    pub fn fps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.done as f64 / s } else { 0.0 }
    }

    /// Time left at the rate so far, when the total is known.
    pub fn eta(&self) -> Option<Duration> {
        let total = self.total?;
        let fps = self.fps();
        (fps > 0.0).then(|| Duration::from_secs_f64(total.saturating_sub(self.done) as f64 / fps))
    }
}

/// `m:ss` (or `h:mm:ss`).
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// One line about `p`: with `bar`, a 30-cell bar (for a terminal, redrawn
/// in place); otherwise plain text for logs.
pub fn format_progress(p: &Progress, bar: bool) -> String {
    let count = match p.total {
        Some(t) => format!("{}/{t} frames", p.done),
        None => format!("{} frames", p.done),
    };
    let eta = p
        .eta()
        .map_or_else(String::new, |d| format!(", ETA {}", clock(d)));
    let rate = format!("{:.1} fps, {} elapsed{eta}", p.fps(), clock(p.elapsed));
    match (bar, p.total) {
        (true, Some(t)) if t > 0 => {
            let filled = ((p.done.min(t) * 30) / t) as usize;
            format!(
                "[{}{}] {count} {rate}",
                "#".repeat(filled),
                " ".repeat(30 - filled)
            )
        }
        _ => format!("gaze: {count}, {rate}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_lines_show_the_count_rate_and_eta() {
        let p = Progress {
            done: 10,
            total: Some(40),
            elapsed: Duration::from_secs(5),
        };
        assert_eq!(p.eta(), Some(Duration::from_secs(15)));
        let bar = format_progress(&p, true);
        assert!(bar.starts_with("[#######        "), "{bar}");
        assert!(
            bar.contains("10/40 frames") && bar.contains("2.0 fps") && bar.contains("ETA 0:15"),
            "{bar}"
        );
        let line = format_progress(&p, false);
        assert_eq!(line, "gaze: 10/40 frames, 2.0 fps, 0:05 elapsed, ETA 0:15");
        let open = Progress {
            total: None,
            elapsed: Duration::from_secs(4000),
            ..p
        };
        assert_eq!(
            format_progress(&open, true),
            "gaze: 10 frames, 0.0 fps, 1:06:40 elapsed"
        );
    }
}
