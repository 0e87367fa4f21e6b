//! The web site of the viewer: both bundles built for wasm32 (the `web`
//! profile), bound with wasm-bindgen, shrunk with `wasm-opt`, laid out
//! beside the loader page, and served on 127.0.0.1.
//!
//! Layout: `site/index.html` (the loader: WebGPU where the browser gives an
//! adapter, else WebGL2), `site/webgl2/` and `site/webgpu/` (each a bundle's
//! JS glue and `.wasm`). The bundles differ only in a cargo feature of the
//! plugin (`web-webgl2`, `web-webgpu`); every crate below Bevy's renderer
//! is built once for both.
//!
//! What it needs, it installs: the wasm32 target (rustup), wasm-bindgen-cli
//! at the version in `Cargo.lock` (cargo install, into the target
//! directory), and binaryen's `wasm-opt` (npm's `binaryen` package, into the
//! target directory).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::run_checked;

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const WEB_PROFILE: &str = "web";
/// The binaryen release `wasm-opt` comes from (npm).
const BINARYEN: &str = "132.0.0";

/// The wasm features of Rust's `wasm32-unknown-unknown` target (rustc 1.82
/// and later), for `wasm-opt`.
const WASM_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// A web bundle: its directory under the site and the plugin's feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bundle {
    /// WebGL2 rendering; no model on the page.
    Webgl2,
    /// WebGPU rendering; the model on the page's GPU.
    Webgpu,
}

impl Bundle {
    /// The directory name, and the name the loader and summary give it.
    pub fn name(self) -> &'static str {
        match self {
            Bundle::Webgl2 => "webgl2",
            Bundle::Webgpu => "webgpu",
        }
    }

    fn feature(self) -> &'static str {
        match self {
            Bundle::Webgl2 => "web-webgl2",
            Bundle::Webgpu => "web-webgpu",
        }
    }
}

/// A built bundle's sizes.
#[derive(Debug, Clone, Copy)]
pub struct BundleSize {
    pub bundle: Bundle,
    /// The `.wasm` as wasm-bindgen wrote it.
    pub bound_bytes: u64,
    /// After `wasm-opt` (what the site serves).
    pub served_bytes: u64,
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

/// `package@version` from npm in `TARGET/tools/node` unless its
/// `package.json` there has that version already.
pub fn npm_package(target: &Path, package: &str, version: &str) -> Result<PathBuf, String> {
    let dir = target.join("tools").join("node");
    let manifest = dir.join("node_modules").join(package).join("package.json");
    let has = std::fs::read_to_string(&manifest)
        .is_ok_and(|p| p.contains(&format!("\"version\": \"{version}\"")));
    if !has {
        if output(Command::new("npm").arg("--version")).is_none() {
            return Err(
                "npm not found: install Node.js (Debian: apt-get install nodejs npm)".into(),
            );
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        println!("wasm-smoke: installing {package} {version} (npm)");
        run_checked(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg(format!("{package}@{version}"))
                .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
            &format!("npm install {package}"),
            Duration::from_secs(600),
        )?;
    }
    Ok(dir)
}

/// How to run binaryen's `wasm-opt`: npm's `binaryen` package under Node.
/// (Debian's binaryen 108 is too old: it breaks wasm-bindgen's externref
/// table, and the page then fails at init.)
fn ensure_wasm_opt(target: &Path) -> Result<Vec<std::ffi::OsString>, String> {
    let dir = npm_package(target, "binaryen", BINARYEN)?;
    let bin = dir.join("node_modules/binaryen/bin/wasm-opt");
    if !bin.exists() {
        return Err(format!(
            "{} missing after npm install binaryen",
            bin.display()
        ));
    }
    Ok(vec!["node".into(), bin.into_os_string()])
}

/// Builds `bundles` for the browser and lays out the static site under
/// `out/site` (the loader page, one directory per bundle).
pub fn build_site(
    root: &Path,
    target: &Path,
    out: &Path,
    bundles: &[Bundle],
    optimise: bool,
) -> Result<(PathBuf, Vec<BundleSize>), String> {
    ensure_wasm_target()?;
    let bindgen = ensure_wasm_bindgen(root, target)?;
    let wasm_opt = if optimise {
        ensure_wasm_opt(target)?
    } else {
        Vec::new()
    };
    let site = out.join("site");
    let _ = std::fs::remove_dir_all(&site);
    std::fs::create_dir_all(&site).map_err(|e| format!("{}: {e}", site.display()))?;
    // The page cannot ask git: the build bakes the revision in.
    let revision = burn_autogaze::perf::revision();
    let mut sizes = Vec::new();
    for &bundle in bundles {
        println!(
            "wasm-smoke: building the {} bundle for {WASM_TARGET} (profile {WEB_PROFILE})",
            bundle.name()
        );
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
                    "--features",
                    bundle.feature(),
                ]),
            "cargo build (wasm32)",
            Duration::from_secs(60 * 60),
        )?;
        let wasm = target
            .join(WASM_TARGET)
            .join(WEB_PROFILE)
            .join("bevy_burn_autogaze.wasm");
        let dir = site.join(bundle.name());
        run_checked(
            Command::new(&bindgen)
                .args(["--target", "web", "--no-typescript", "--out-dir"])
                .arg(&dir)
                .arg(&wasm),
            "wasm-bindgen",
            Duration::from_secs(600),
        )?;
        let bound = dir.join("bevy_burn_autogaze_bg.wasm");
        let bound_bytes = file_size(&bound);
        if let Some((program, args)) = wasm_opt.split_first() {
            let optimised = dir.join("bevy_burn_autogaze_opt.wasm");
            println!("wasm-smoke: wasm-opt -Oz on the {} bundle", bundle.name());
            // The features rustc's wasm32 target emits, named: with
            // `--all-features`, binaryen 132 emits compact imports
            // Chromium 156 refuses.
            run_checked(
                Command::new(program)
                    .args(args)
                    .arg(&bound)
                    .args(WASM_FEATURES)
                    .args(["-Oz", "--strip-debug", "--strip-producers", "-o"])
                    .arg(&optimised),
                "wasm-opt",
                Duration::from_secs(30 * 60),
            )?;
            std::fs::rename(&optimised, &bound).map_err(|e| format!("{}: {e}", bound.display()))?;
        }
        sizes.push(BundleSize {
            bundle,
            bound_bytes,
            served_bytes: file_size(&bound),
        });
    }
    let page = root.join("bevy_burn_autogaze/web/index.html");
    std::fs::copy(&page, site.join("index.html"))
        .map_err(|e| format!("{}: {e}", page.display()))?;
    for s in &sizes {
        println!(
            "wasm-smoke: {} bundle: wasm {:.1} MB ({:.1} MB before wasm-opt)",
            s.bundle.name(),
            s.served_bytes as f64 / 1e6,
            s.bound_bytes as f64 / 1e6
        );
    }
    println!("wasm-smoke: site in {}", site.display());
    Ok((site, sizes))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
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
pub fn serve(site: PathBuf, port: u16) -> Result<u16, String> {
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
        assert_eq!(
            resolve(site, "/webgpu/bevy_burn_autogaze.js"),
            Some(site.join("webgpu/bevy_burn_autogaze.js"))
        );
        assert_eq!(resolve(site, "/../etc/passwd"), None);
        assert_eq!(resolve(site, "/x//y"), None);
    }
}
