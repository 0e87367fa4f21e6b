//! `cargo xtask fuzz [--seconds N]`: every cargo-fuzz target of `fuzz/` in
//! turn, each for N seconds from its committed seed corpus, then one table
//! (target, seconds, executions, crashes). cargo-fuzz is installed when
//! missing. The only toolchain here is stable Rust: cargo-fuzz needs
//! nightly flags (`-Zsanitizer`, `-Cpasses=sancov-module`), so it runs with
//! `RUSTC_BOOTSTRAP=1`, which lets the stable compiler accept them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{Outcome, run_captured};

/// The targets, in run order (`web_query` builds the Bevy crate).
pub const TARGETS: &[&str] = &[
    "model_config",
    "preprocessor_config",
    "token_layout",
    "weights",
    "still_image",
    "image_dir",
    "gate_baseline",
    "web_query",
];

/// What to fuzz.
#[derive(Debug, Clone, clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=burn_autogaze::limits::MAX_TIMEOUT_S))]
    pub seconds: u64,
    /// Only these targets (comma separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Where the report goes.
    #[arg(long, default_value = "target/autogaze-fuzz")]
    pub out: PathBuf,
}

/// One target's run.
#[derive(Debug, Clone, PartialEq)]
pub struct FuzzRun {
    pub target: String,
    pub seconds: u64,
    pub execs: Option<u64>,
    /// Inputs in its working corpus after the run (seeds not counted).
    pub corpus: usize,
    /// Why it failed (a crash, a timeout, a build error), with the artifact.
    pub failure: Option<String>,
}

/// Executions libFuzzer reports at its end (`Done N runs in S second(s)`,
/// else the last `#N` status line).
pub fn parse_execs(log: &str) -> Option<u64> {
    let done = log.lines().rev().find_map(|l| {
        let rest = l.trim().strip_prefix("Done ")?;
        rest.split_whitespace().next()?.parse().ok()
    });
    done.or_else(|| {
        log.lines().rev().find_map(|l| {
            let rest = l.trim().strip_prefix('#')?;
            rest.split_whitespace().next()?.parse().ok()
        })
    })
}

/// The crash artifact libFuzzer names (`Test unit written to PATH`).
pub fn parse_artifact(log: &str) -> Option<String> {
    log.lines()
        .find_map(|l| l.split("Test unit written to ").nth(1))
        .map(|p| p.trim().to_string())
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let have = crate::cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    eprintln!("fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    let mut cmd = crate::cargo();
    cmd.args(["install", "cargo-fuzz", "--locked"]);
    crate::process::run_checked(&mut cmd, "installing cargo-fuzz", Duration::from_secs(1800))
}

fn fuzz_command(fuzz_dir: &Path, target_dir: &Path) -> Command {
    let mut cmd = crate::cargo();
    cmd.current_dir(fuzz_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir)
        .arg("fuzz");
    cmd
}

/// Where `target` builds: `web_query` (the Bevy crate with the
/// instrumentation, a build of most of an hour here) in a directory of its
/// own, so it never holds the other targets' build lock.
pub fn build_dir(target_dir: &Path, target: &str) -> PathBuf {
    if target == "web_query" {
        target_dir.with_file_name("fuzz-web")
    } else {
        target_dir.to_path_buf()
    }
}

fn run_target(fuzz_dir: &Path, target_dir: &Path, target: &str, args: &FuzzArgs) -> FuzzRun {
    let scratch = target_dir.join("corpus").join(target);
    let _ = std::fs::create_dir_all(&scratch);
    let seeds = fuzz_dir.join("corpus").join(target);
    let build = build_dir(target_dir, target);
    let mut cmd = fuzz_command(fuzz_dir, &build);
    cmd.args(["run", "-s", "none", "--debug-assertions", "--target-dir"])
        .arg(&build)
        .arg(target)
        .arg(&scratch)
        .arg(&seeds);
    if target == "web_query" {
        cmd.args(["--features", "web"]);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={}", args.seconds))
        // libFuzzer's timeout is wall time: 10 s fired on an 800-byte JPEG
        // that runs in 0.1 s of CPU while a fuzzer at `nice 19` was starved
        // by builds (2026-12-07); a unit still running after 60 s hangs.
        .args([
            "-rss_limit_mb=2048",
            "-timeout=60",
            "-max_len=65536",
            "-print_final_stats=1",
        ]);
    eprintln!("fuzz: {target} for {} s", args.seconds);
    // Building the target comes first: allow it an hour on top.
    let limit = Duration::from_secs(args.seconds + 3600);
    // libFuzzer reports on stderr: it goes to a log, read back after.
    let log_path = target_dir.join(format!("{target}.log"));
    if let Ok(f) = std::fs::File::create(&log_path) {
        cmd.stderr(f);
    }
    let (ok, stdout) = match run_captured(&mut cmd, limit) {
        Ok(Outcome::Exited { status, stdout }) => (status.success(), stdout),
        Ok(Outcome::TimedOut) => (false, "timed out".into()),
        Err(e) => (false, format!("cannot start cargo fuzz: {e}")),
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default() + &stdout;
    let failure = (!ok).then(|| match parse_artifact(&log) {
        Some(a) => format!("crash, input saved as {a}"),
        None => log.lines().rev().take(5).collect::<Vec<_>>().join(" | "),
    });
    FuzzRun {
        target: target.into(),
        seconds: args.seconds,
        execs: parse_execs(&log),
        corpus: std::fs::read_dir(&scratch).map_or(0, |d| d.count()),
        failure,
    }
}

/// The report: one row a target.
pub fn report(runs: &[FuzzRun]) -> String {
    let mut md = String::from(
        "| target | seconds | executions | corpus | result |\n|---|---|---|---|---|\n",
    );
    for r in runs {
        let execs = r.execs.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        let result = r.failure.as_deref().unwrap_or("no crash");
        md += &format!(
            "| {} | {} | {execs} | {} | {result} |\n",
            r.target, r.seconds, r.corpus
        );
    }
    md
}

/// Runs the targets; an error names every target that crashed or failed.
pub fn run(args: &FuzzArgs) -> Result<(), String> {
    let unknown: Vec<&String> = args
        .targets
        .iter()
        .filter(|t| !TARGETS.contains(&t.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown fuzz target(s) {unknown:?}; the targets: {}",
            TARGETS.join(", ")
        ));
    }
    ensure_cargo_fuzz()?;
    let fuzz_dir = crate::workspace_root().join("fuzz");
    let target_dir = crate::target_dir().join("fuzz");
    let runs: Vec<FuzzRun> = TARGETS
        .iter()
        .filter(|t| args.targets.is_empty() || args.targets.iter().any(|a| a == *t))
        .map(|t| run_target(&fuzz_dir, &target_dir, t, args))
        .collect();
    let md = report(&runs);
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let path = args.out.join("fuzz.md");
    std::fs::write(&path, &md).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{md}\nfuzz: wrote {}", path.display());
    let failed: Vec<String> = runs
        .iter()
        .filter_map(|r| r.failure.as_ref().map(|f| format!("{}: {f}", r.target)))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzz: {}", failed.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_output_is_read_for_executions_and_artifacts() {
        let log = "#2\tINITED cov: 10 ft: 10 corp: 3/30b exec/s: 0 rss: 40Mb\n\
                   #4096\tpulse  cov: 50 ft: 60 corp: 9/90b exec/s: 2048 rss: 41Mb\n\
                   Done 123456 runs in 61 second(s)\n";
        assert_eq!(parse_execs(log), Some(123_456));
        assert_eq!(parse_execs("#77\tNEW cov: 3\n"), Some(77));
        assert_eq!(parse_execs("nothing"), None);
        let crash = "==1== ERROR: libFuzzer: deadly signal\n\
                     artifact_prefix='a/'; Test unit written to fuzz/artifacts/weights/crash-abc\n";
        assert_eq!(
            parse_artifact(crash).as_deref(),
            Some("fuzz/artifacts/weights/crash-abc")
        );
        let md = report(&[FuzzRun {
            target: "weights".into(),
            seconds: 5,
            execs: Some(9),
            corpus: 4,
            failure: None,
        }]);
        assert!(md.contains("| weights | 5 | 9 | 4 | no crash |"), "{md}");
        let dir = Path::new("/t/fuzz");
        assert_eq!(build_dir(dir, "weights"), dir);
        assert_eq!(build_dir(dir, "web_query"), Path::new("/t/fuzz-web"));
        // Every target has a committed seed corpus.
        for t in TARGETS {
            let seeds = crate::workspace_root().join("fuzz/corpus").join(t);
            let n = std::fs::read_dir(&seeds).map(|d| d.count()).unwrap_or(0);
            assert!(n > 0, "no seeds in {}", seeds.display());
        }
    }
}
