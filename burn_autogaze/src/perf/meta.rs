//! Who ran a case, where and when: the revision, the machine, the time.

/// First line of a command's standard output (none when it fails).
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .next()
        .map(str::to_string)
}

/// Short git revision, `-dirty` when tracked files changed, or the
/// `BURN_AUTOGAZE_REVISION` variable where it is set. In the browser
/// (no processes) it is the one the web build baked in
/// (`BURN_AUTOGAZE_REVISION`, set by `cargo xtask wasm-smoke`).
pub fn revision() -> String {
    if cfg!(target_arch = "wasm32") {
        return option_env!("BURN_AUTOGAZE_REVISION")
            .unwrap_or("unknown")
            .to_string();
    }
    // A binary run away from its checkout (a lent GPU machine has none)
    // is told its revision.
    if let Ok(rev) = std::env::var("BURN_AUTOGAZE_REVISION") {
        return rev;
    }
    let rev =
        first_line("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty { format!("{rev}-dirty") } else { rev }
}

/// CPU model, cores and memory of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / (1024.0 * 1024.0))
        .unwrap_or(0.0);
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB")
}

/// The current UTC time, ISO 8601.
pub fn utc_now() -> String {
    first_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_else(|| "unknown".into())
}

/// Who ran a case, where and when.
#[derive(Debug, Clone, Default)]
pub struct RunMeta {
    /// Case name.
    pub case: String,
    /// Frames run before the measured ones.
    pub warmup_frames: usize,
    /// Build profile of the harness.
    pub profile: String,
    /// Commit the harness ran at.
    pub revision: String,
    /// When the case ran (UTC).
    pub date: String,
    /// The machine (CPU, cores, memory).
    pub machine: String,
    /// The graphics adapter (or `none`).
    pub adapter: String,
}
