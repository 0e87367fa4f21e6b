//! `wasm-smoke`: build the web viewer (wasm32 + wasm-bindgen), serve it on
//! 127.0.0.1, drive Debian's Chromium headless through playwright-core, and
//! check what the page did: it booted on its static source without asking
//! for a webcam, processed N frames, published a valid perf summary (the
//! headless schema) from a real adapter, drew a non-blank canvas, and logged
//! no error or panic. `--serve` only builds and serves (the web demo).
//!
//! What it needs, it installs: the wasm32 target (rustup), wasm-bindgen-cli at
//! the version in `Cargo.lock` (cargo install, into the target directory),
//! playwright-core (npm, into the target directory) and, as root on Debian,
//! `chromium` (apt-get). Otherwise it stops naming what is missing.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use burn_autogaze::perf::PerfSummary;
use serde::Deserialize;

use crate::preflight::{apt, is_debian_like, is_root};
use crate::process::{Outcome, run_captured, run_checked};

/// The playwright-core release the driver is written against.
const PLAYWRIGHT_CORE: &str = "1.64.1";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const WEB_PROFILE: &str = "web";
const DRIVER: &str = include_str!("wasm_smoke.mjs");

#[derive(Debug, Clone, clap::Args)]
pub struct WasmSmokeArgs {
    /// Measured frames the page must process before it publishes its summary.
    #[arg(long, default_value_t = 30)]
    pub frames: usize,
    /// Warm-up frames before measuring.
    #[arg(long, default_value_t = 5)]
    pub warmup_frames: usize,
    /// More viewer flags as a URL query (the page reads the same flags as the
    /// native viewer's command line).
    #[arg(
        long,
        default_value = "source=synthetic-pan&size=640x360&mask-source=patch-diff"
    )]
    pub query: String,
    /// Give up on the page after this many seconds.
    #[arg(long, default_value_t = 240)]
    pub timeout_s: u64,
    /// Where the bundle, screenshot and result go (default: TARGET/wasm-smoke).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Build, then serve the demo on 127.0.0.1:PORT until stopped (no browser).
    #[arg(long)]
    pub serve: bool,
    /// Port for `--serve` (the smoke test picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

/// What the browser driver reports.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriverResult {
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
    #[serde(default)]
    pub timed_out: bool,
    #[serde(default)]
    pub console_errors: Vec<String>,
    #[serde(default)]
    pub page_errors: Vec<String>,
    pub webcam_requests: Option<u64>,
    pub canvas: Option<CanvasSize>,
    pub seconds: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct CanvasSize {
    pub width: u32,
    pub height: u32,
}

/// The version of a package in `Cargo.lock`.
pub fn locked_version(lock: &str, package: &str) -> Option<String> {
    let needle = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == needle {
            let v = lines.next()?.trim().strip_prefix("version = ")?;
            return Some(v.trim_matches('"').to_string());
        }
    }
    None
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ensure_wasm_target() -> Result<(), String> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]));
    match installed {
        Some(list) if list.lines().any(|l| l.trim() == WASM_TARGET) => Ok(()),
        Some(_) => {
            println!("wasm-smoke: adding the {WASM_TARGET} target (rustup)");
            run_checked(
                Command::new("rustup").args(["target", "add", WASM_TARGET]),
                "rustup target add",
                Duration::from_secs(600),
            )
        }
        // No rustup: the build below says whether the target's std is there.
        None => Ok(()),
    }
}

/// wasm-bindgen at the version the bundle links (`Cargo.lock`), installed
/// into the target directory when missing.
fn ensure_wasm_bindgen(root: &Path, target: &Path) -> Result<PathBuf, String> {
    let lock =
        std::fs::read_to_string(root.join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let version = locked_version(&lock, "wasm-bindgen")
        .ok_or("Cargo.lock has no wasm-bindgen (the web build depends on it)")?;
    let prefix = target.join("tools").join(format!("wasm-bindgen-{version}"));
    let bin = prefix.join("bin").join("wasm-bindgen");
    let has = output(Command::new(&bin).arg("--version"))
        .is_some_and(|v| v.split_whitespace().nth(1) == Some(version.as_str()));
    if !has {
        println!(
            "wasm-smoke: installing wasm-bindgen-cli {version} into {}",
            prefix.display()
        );
        // Not `--locked`: the CLI's own lock file can name crate versions a
        // registry mirror lacks; the version of the CLI itself is exact.
        run_checked(
            crate::cargo()
                .args(["install", "wasm-bindgen-cli", "--version"])
                .arg(format!("={version}"))
                .arg("--root")
                .arg(&prefix),
            "cargo install wasm-bindgen-cli",
            Duration::from_secs(30 * 60),
        )?;
    }
    Ok(bin)
}

/// Builds the viewer for the browser and lays out the static site.
fn build_site(root: &Path, target: &Path, out: &Path) -> Result<PathBuf, String> {
    ensure_wasm_target()?;
    let bindgen = ensure_wasm_bindgen(root, target)?;
    println!("wasm-smoke: building the viewer for {WASM_TARGET} (profile {WEB_PROFILE})");
    // The page cannot ask git: the build bakes the revision in.
    let revision = burn_autogaze::perf::revision();
    run_checked(
        crate::cargo()
            .current_dir(root)
            .env("BURN_AUTOGAZE_REVISION", &revision)
            .args([
                "build",
                "--package",
                "bevy_burn_autogaze",
                "--bin",
                "bevy_burn_autogaze",
                "--target",
                WASM_TARGET,
                "--profile",
                WEB_PROFILE,
            ]),
        "cargo build (wasm32)",
        Duration::from_secs(60 * 60),
    )?;
    let wasm = target
        .join(WASM_TARGET)
        .join(WEB_PROFILE)
        .join("bevy_burn_autogaze.wasm");
    let site = out.join("site");
    let _ = std::fs::remove_dir_all(&site);
    std::fs::create_dir_all(&site).map_err(|e| format!("{}: {e}", site.display()))?;
    run_checked(
        Command::new(&bindgen)
            .args(["--target", "web", "--no-typescript", "--out-dir"])
            .arg(&site)
            .arg(&wasm),
        "wasm-bindgen",
        Duration::from_secs(600),
    )?;
    let page = root.join("bevy_burn_autogaze/web/index.html");
    std::fs::copy(&page, site.join("index.html"))
        .map_err(|e| format!("{}: {e}", page.display()))?;
    let size = std::fs::metadata(site.join("bevy_burn_autogaze_bg.wasm"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "wasm-smoke: site in {} (wasm {:.1} MB)",
        site.display(),
        size as f64 / 1e6
    );
    Ok(site)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The file a request path names inside `site` (none outside it).
pub fn resolve(site: &Path, request_path: &str) -> Option<PathBuf> {
    let path = request_path.split(['?', '#']).next().unwrap_or("/");
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    if rel.split('/').any(|part| part == ".." || part.is_empty()) {
        return None;
    }
    Some(site.join(rel))
}

fn answer(site: &Path, stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut stream = reader.into_inner();
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let file = resolve(site, path).filter(|_| method == "GET");
    match file.and_then(|f| std::fs::read(&f).ok().map(|b| (f, b))) {
        Some((f, body)) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
                content_type(&f),
                body.len()
            )?;
            stream.write_all(&body)
        }
        None => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}

/// Serves `site` on 127.0.0.1:`port` (0: any free port) from a thread.
fn serve(site: PathBuf, port: u16) -> Result<u16, String> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let site = site.clone();
            std::thread::spawn(move || {
                let _ = answer(&site, stream);
            });
        }
    });
    Ok(port)
}

fn chromium() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    let path = PathBuf::from("/usr/bin/chromium");
    if path.exists() {
        return Ok(path);
    }
    if !(is_root() && is_debian_like()) {
        return Err("no /usr/bin/chromium: install Debian's chromium (`apt-get install chromium`, as root) or set CHROMIUM to a Chromium binary".into());
    }
    println!("wasm-smoke: installing chromium with apt-get");
    let install = ["install", "-y", "-q", "--no-install-recommends", "chromium"];
    if apt(&install, Duration::from_secs(900)).is_err() {
        apt(&["update", "-q"], Duration::from_secs(300))?;
        apt(&install, Duration::from_secs(900))?;
    }
    Ok(path)
}

/// playwright-core in `TARGET/tools/node`, with the driver script beside it.
fn driver(target: &Path) -> Result<PathBuf, String> {
    let dir = target.join("tools").join("node");
    let package = dir.join("node_modules/playwright-core/package.json");
    let has = std::fs::read_to_string(&package)
        .is_ok_and(|p| p.contains(&format!("\"version\": \"{PLAYWRIGHT_CORE}\"")));
    if !has {
        if output(Command::new("npm").arg("--version")).is_none() {
            return Err(
                "npm not found: install Node.js (Debian: apt-get install nodejs npm)".into(),
            );
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        println!(
            "wasm-smoke: installing playwright-core {PLAYWRIGHT_CORE} (npm; no browser download)"
        );
        run_checked(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg(format!("playwright-core@{PLAYWRIGHT_CORE}"))
                .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
            "npm install playwright-core",
            Duration::from_secs(600),
        )?;
    }
    let script = dir.join("wasm_smoke.mjs");
    std::fs::write(&script, DRIVER).map_err(|e| format!("{}: {e}", script.display()))?;
    Ok(script)
}

/// How far the screenshot is from a blank canvas: the standard deviation of
/// its luma and the number of distinct colours (quantised to 5 bits).
pub fn canvas_content(png: &[u8]) -> Result<(f64, usize), String> {
    let image = image::load_from_memory(png)
        .map_err(|e| format!("screenshot: {e}"))?
        .to_rgb8();
    let n = (image.width() * image.height()).max(1) as f64;
    let (mut sum, mut sq) = (0.0, 0.0);
    let mut colours = std::collections::HashSet::new();
    for p in image.pixels() {
        let [r, g, b] = p.0;
        let y = 0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64;
        sum += y;
        sq += y * y;
        colours.insert((r >> 3, g >> 3, b >> 3));
    }
    let mean = sum / n;
    Ok(((sq / n - mean * mean).max(0.0).sqrt(), colours.len()))
}

/// Every way the page failed the smoke test (empty: it passed).
pub fn judge(result: &DriverResult, frames: usize, png: Option<&[u8]>) -> Vec<String> {
    let mut problems = Vec::new();
    if result.timed_out {
        problems.push("the page published no summary before the time limit".into());
    }
    if let Some(e) = &result.error {
        problems.push(format!("the page reported an error: {e}"));
    }
    for e in result.console_errors.iter().chain(&result.page_errors) {
        problems.push(format!("console: {e}"));
    }
    match result.webcam_requests {
        Some(0) => {}
        Some(n) => problems.push(format!("the page asked for a webcam {n} times")),
        None => problems.push("the driver could not read the webcam counter".into()),
    }
    match &result.summary {
        None => problems.push("no summary on window.__AUTOGAZE_SUMMARY__".into()),
        Some(value) => match serde_json::from_value::<PerfSummary>(value.clone()) {
            Err(e) => problems.push(format!("summary does not parse as the perf schema: {e}")),
            Ok(s) => {
                if let Err(p) = s.validate() {
                    problems.push(format!("invalid summary: {}", p.join("; ")));
                }
                if s.frames < frames {
                    problems.push(format!(
                        "summary has {} frames, expected {frames}",
                        s.frames
                    ));
                }
                if !(0.0..=1.0).contains(&s.gaze_ratio_mean) {
                    problems.push(format!("gaze ratio {} outside [0, 1]", s.gaze_ratio_mean));
                }
                if s.dispatch_histogram.values().sum::<u64>() == 0 {
                    problems.push("no dispatch path in the summary".into());
                }
                match &s.display {
                    None => problems.push("summary has no display section".into()),
                    Some(d) if d.adapter_backend.is_empty() => {
                        problems.push("no adapter: the page rendered on no backend".into())
                    }
                    Some(_) => {}
                }
            }
        },
    }
    match result.canvas {
        Some(CanvasSize { width, height }) if width > 0 && height > 0 => {}
        _ => problems.push("no canvas, or a canvas of zero size".into()),
    }
    match png.map(canvas_content) {
        None => problems.push("no screenshot of the canvas".into()),
        Some(Err(e)) => problems.push(e),
        Some(Ok((spread, colours))) if spread < 4.0 || colours < 16 => problems.push(format!(
            "the canvas looks blank (luma spread {spread:.1}, {colours} colours)"
        )),
        Some(Ok(_)) => {}
    }
    problems
}

pub fn run_smoke(args: &WasmSmokeArgs) -> Result<(), String> {
    let root = crate::workspace_root();
    let target = crate::target_dir();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| target.join("wasm-smoke"));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let site = build_site(&root, &target, &out)?;
    let query = format!(
        "frames={}&warmup-frames={}&case=wasm-smoke&{}",
        args.frames, args.warmup_frames, args.query
    );
    if args.serve {
        let port = serve(site, args.port)?;
        println!("wasm-smoke: serving http://127.0.0.1:{port}/?{query} (Ctrl-C stops)");
        loop {
            std::thread::park();
        }
    }
    let browser = chromium()?;
    let script = driver(&target)?;
    let port = serve(site, 0)?;
    let url = format!("http://127.0.0.1:{port}/?{query}");
    let shot = out.join("screenshot.png");
    let _ = std::fs::remove_file(&shot);
    println!("wasm-smoke: opening {url} in {}", browser.display());
    let limit = Duration::from_secs(args.timeout_s + 60);
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .arg(&url)
        .arg(&shot)
        .arg((args.timeout_s * 1000).to_string())
        .env("CHROMIUM", &browser)
        .current_dir(script.parent().unwrap_or(&out));
    let stdout = match run_captured(&mut cmd, limit) {
        Ok(Outcome::Exited { status, stdout }) if status.success() => stdout,
        Ok(Outcome::Exited { status, .. }) => {
            return Err(format!("the browser driver failed ({status})"));
        }
        Ok(Outcome::TimedOut) => {
            return Err(format!("the browser driver ran past {} s", limit.as_secs()));
        }
        Err(e) => return Err(format!("cannot run node: {e}")),
    };
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let result: DriverResult = serde_json::from_str(line)
        .map_err(|e| format!("the browser driver printed no result ({e}): {stdout}"))?;
    std::fs::write(out.join("result.json"), line).map_err(|e| format!("result.json: {e}"))?;
    let png = std::fs::read(&shot).ok();
    let problems = judge(&result, args.frames, png.as_deref());
    if let Some(s) = result.summary.as_ref() {
        println!(
            "wasm-smoke: {} frames in {:.1} s, {:.1} fps, gaze ratio {:.3}, adapter {}",
            s["frames"],
            result.seconds.unwrap_or(0.0),
            s["fps"].as_f64().unwrap_or(0.0),
            s["gaze_ratio_mean"].as_f64().unwrap_or(f64::NAN),
            s["display"]["adapter_backend"]
        );
    }
    println!("wasm-smoke: screenshot {}", shot.display());
    if problems.is_empty() {
        println!("wasm-smoke: passed");
        Ok(())
    } else {
        Err(format!("failed:\n  - {}", problems.join("\n  - ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locked_version_is_read_from_the_lock_file() {
        let lock = "[[package]]\nname = \"wasm-bindgen-macro\"\nversion = \"9\"\n\n[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n";
        assert_eq!(
            locked_version(lock, "wasm-bindgen").as_deref(),
            Some("0.2.130")
        );
        assert_eq!(locked_version(lock, "web-sys"), None);
    }

    #[test]
    fn requests_resolve_inside_the_site_only() {
        let site = Path::new("/site");
        assert_eq!(resolve(site, "/"), Some(site.join("index.html")));
        assert_eq!(
            resolve(site, "/?source=static"),
            Some(site.join("index.html"))
        );
        assert_eq!(resolve(site, "/a.wasm"), Some(site.join("a.wasm")));
        assert_eq!(resolve(site, "/../etc/passwd"), None);
        assert_eq!(resolve(site, "/x//y"), None);
    }

    fn png(pixels: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_fn(64, 32, |x, y| image::Rgb(pixels(x, y)));
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn a_blank_canvas_fails_and_a_drawn_one_passes() {
        let blank = png(|_, _| [17, 17, 17]);
        let drawn = png(|x, y| [(x * 4) as u8, (y * 8) as u8, ((x ^ y) * 3) as u8]);
        let result = DriverResult {
            webcam_requests: Some(0),
            canvas: Some(CanvasSize {
                width: 64,
                height: 32,
            }),
            ..DriverResult::default()
        };
        let blank_problems = judge(&result, 1, Some(&blank));
        assert!(
            blank_problems.iter().any(|p| p.contains("blank")),
            "{blank_problems:?}"
        );
        let drawn_problems = judge(&result, 1, Some(&drawn));
        assert!(
            !drawn_problems.iter().any(|p| p.contains("blank")),
            "{drawn_problems:?}"
        );
        // No summary is always a failure.
        assert!(drawn_problems.iter().any(|p| p.contains("no summary")));
    }

    #[test]
    fn webcam_requests_console_errors_and_bad_summaries_fail() {
        let result = DriverResult {
            webcam_requests: Some(2),
            console_errors: vec!["boom".into()],
            summary: Some(serde_json::json!({"frames": 3})),
            ..DriverResult::default()
        };
        let problems = judge(&result, 1, None);
        for needle in [
            "webcam 2 times",
            "console: boom",
            "perf schema",
            "no canvas",
            "no screenshot",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        }
    }
}
