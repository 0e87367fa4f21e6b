//! Child processes with a time limit: nothing the harness starts can hang it.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a child process ended.
pub enum Outcome {
    Exited { status: ExitStatus, stdout: String },
    TimedOut,
}

/// Runs `cmd` with stdout captured (stderr passes through), killing it after
/// `limit`.
pub fn run_captured(cmd: &mut Command, limit: Duration) -> std::io::Result<Outcome> {
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(out) = stdout.as_mut() {
            let _ = out.read_to_string(&mut text);
        }
        text
    });
    Ok(match wait_with_limit(&mut child, limit)? {
        Some(status) => Outcome::Exited {
            status,
            stdout: reader.join().unwrap_or_default(),
        },
        None => Outcome::TimedOut,
    })
}

/// Waits for `child`, killing it after `limit` (then `None`).
fn wait_with_limit(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` with inherited output, killing it after `limit`: an error
/// naming `what` when it cannot start, fails or times out.
pub fn run_checked(cmd: &mut Command, what: &str, limit: Duration) -> Result<(), String> {
    match run_inherited(cmd, limit) {
        Ok(Some(s)) if s.success() => Ok(()),
        Ok(Some(s)) => Err(format!("{what} failed ({s})")),
        Ok(None) => Err(format!(
            "{what} did not finish within {} s",
            limit.as_secs()
        )),
        Err(e) => Err(format!("cannot run {what}: {e}")),
    }
}

/// Runs `cmd` with inherited output, killing it after `limit`. Returns the
/// exit status, or `None` when it timed out.
pub fn run_inherited(cmd: &mut Command, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    wait_with_limit(&mut cmd.spawn()?, limit)
}
