//! Preflight: find a Vulkan (or GL) adapter for wgpu, and FFmpeg (the
//! `video` source and the `autogaze` command drive its programs). On a
//! Debian/Ubuntu machine without them, as root, install Mesa's lavapipe
//! (`mesa-vulkan-drivers`) / Debian's `ffmpeg` and say so; otherwise stop
//! with a message naming the package. The probes run in child processes
//! with a time limit, so a broken driver cannot hang the harness.

use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::process::{Outcome, run_captured, run_checked};

/// The lavapipe package.
pub const LAVAPIPE_PACKAGE: &str = "mesa-vulkan-drivers";

/// Lavapipe before this Mesa release lets a workgroup's invocations past a
/// barrier after long work (PERF_LOOP, 2026-12-07), so the fused GPU
/// engine, whose kernels meet at barriers, is not built on it.
pub const LAVAPIPE_MIN_MESA: u32 = 23;

/// The Debian suite with a newer Mesa for bookworm (25.0 at the time).
const BACKPORTS: &str = "bookworm-backports";

/// The package with the `ffmpeg` and `ffprobe` programs.
pub const FFMPEG_PACKAGE: &str = "ffmpeg";

/// One adapter wgpu can open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterInfo {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

impl AdapterInfo {
    /// One line for logs and summaries.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, {}, {})",
            self.name, self.backend, self.device_type, self.driver
        )
    }
}

/// The probe itself (run as `xtask probe-adapter` in a child process):
/// prints the adapters as JSON on stdout.
pub fn probe_adapters_json() -> String {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::GL;
    }
    let backends = desc.backends;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let infos: Vec<AdapterInfo> = adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            AdapterInfo {
                name: info.name,
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_string(),
            }
        })
        .collect();
    serde_json::to_string(&infos).unwrap_or_else(|_| "[]".into())
}

fn probe_child() -> Result<Vec<AdapterInfo>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate xtask: {e}"))?;
    let mut cmd = Command::new(exe);
    // The probe only answers in JSON; its stderr holds windowing-system noise.
    cmd.arg("probe-adapter").stderr(std::process::Stdio::null());
    match run_captured(&mut cmd, Duration::from_secs(60)) {
        Ok(Outcome::Exited { status, stdout }) if status.success() => {
            let json = stdout.lines().last().unwrap_or("[]");
            serde_json::from_str(json).map_err(|e| format!("adapter probe printed {json:?}: {e}"))
        }
        Ok(Outcome::Exited { status, .. }) => Err(format!("adapter probe failed ({status})")),
        Ok(Outcome::TimedOut) => Err("adapter probe did not finish within 60 s".into()),
        Err(e) => Err(format!("cannot start the adapter probe: {e}")),
    }
}

pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

pub(crate) fn is_debian_like() -> bool {
    std::fs::read_to_string("/etc/os-release").is_ok_and(|s| {
        s.lines()
            .filter(|l| l.starts_with("ID=") || l.starts_with("ID_LIKE="))
            .any(|l| l.contains("debian") || l.contains("ubuntu"))
    }) && std::path::Path::new("/usr/bin/apt-get").exists()
}

pub(crate) fn apt(args: &[&str], limit: Duration) -> Result<(), String> {
    let mut cmd = Command::new("apt-get");
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    run_checked(&mut cmd, &format!("apt-get {}", args.join(" ")), limit)
}

fn vulkan(adapters: &[AdapterInfo]) -> Option<AdapterInfo> {
    adapters.iter().find(|a| a.backend == "Vulkan").cloned()
}

/// Finds an adapter, installing lavapipe when that is possible and needed.
///
/// Vulkan is what Burn and Bevy run on here; a GL-only machine gets lavapipe
/// installed when possible, and otherwise continues on GL with a warning.
pub fn preflight() -> Result<AdapterInfo, String> {
    let first = probe_child();
    let found = first.as_ref().map(|a| a.as_slice()).unwrap_or(&[]);
    if let Some(adapter) = vulkan(found) {
        println!("preflight: wgpu adapter {}", adapter.describe());
        return Ok(recent_lavapipe(adapter));
    }
    let gl = found.first().cloned();
    let why = match (&first, &gl) {
        (Err(e), _) => e.clone(),
        (Ok(_), Some(gl)) => format!("wgpu finds no Vulkan adapter (only {})", gl.describe()),
        (Ok(_), None) => "wgpu finds no Vulkan or GL adapter".into(),
    };
    let manual = format!(
        "install a Vulkan driver: on Debian/Ubuntu `apt-get install -y {LAVAPIPE_PACKAGE}` (Mesa lavapipe, a CPU Vulkan driver), or your GPU vendor's driver"
    );
    let cannot_install = if !is_debian_like() {
        Some("this is not a Debian/Ubuntu machine with apt-get")
    } else if !is_root() {
        Some("preflight is not running as root")
    } else {
        None
    };
    if let Some(reason) = cannot_install {
        return match gl {
            Some(gl) => {
                println!("preflight: warning: {why}; {reason}, so continuing on GL; {manual}");
                Ok(gl)
            }
            None => Err(format!("{why}; {reason}; {manual}")),
        };
    }
    println!("preflight: {why}; installing {LAVAPIPE_PACKAGE} (Mesa lavapipe) with apt-get");
    apt(&["update", "-q"], Duration::from_secs(300))?;
    apt(
        &[
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            LAVAPIPE_PACKAGE,
        ],
        Duration::from_secs(900),
    )?;
    let adapters = probe_child()?;
    let adapter = vulkan(&adapters).ok_or_else(|| {
        format!("installed {LAVAPIPE_PACKAGE}, but wgpu still finds no Vulkan adapter; {manual}")
    })?;
    println!(
        "preflight: installed {LAVAPIPE_PACKAGE}; wgpu adapter {}",
        adapter.describe()
    );
    Ok(recent_lavapipe(adapter))
}

/// Mesa's major version when `adapter` is lavapipe.
fn lavapipe_mesa_major(adapter: &AdapterInfo) -> Option<u32> {
    if !adapter.driver.contains("llvmpipe") {
        return None;
    }
    let version = adapter.driver.split("Mesa ").nth(1)?;
    version.split('.').next()?.parse().ok()
}

/// The `VERSION_CODENAME` of `/etc/os-release`.
fn codename() -> Option<String> {
    let release = std::fs::read_to_string("/etc/os-release").ok()?;
    release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
}

/// `adapter`, or lavapipe from Debian's backports where `adapter` is an
/// older lavapipe on bookworm and preflight runs as root; elsewhere a
/// warning that the model's wgpu engine falls back to Burn ops.
fn recent_lavapipe(adapter: AdapterInfo) -> AdapterInfo {
    let Some(major) = lavapipe_mesa_major(&adapter) else {
        return adapter;
    };
    if major >= LAVAPIPE_MIN_MESA {
        return adapter;
    }
    let warn = |why: &str| {
        println!(
            "preflight: warning: lavapipe from Mesa {major} does not hold workgroup barriers, so \
             the model's fused GPU engine falls back to Burn ops ({why}; install Mesa >= \
             {LAVAPIPE_MIN_MESA}, e.g. `apt-get install -t {BACKPORTS} {LAVAPIPE_PACKAGE}`)"
        );
    };
    if !is_root() || !is_debian_like() || codename().as_deref() != Some("bookworm") {
        warn("preflight installs a newer one only as root on Debian bookworm");
        return adapter;
    }
    println!(
        "preflight: lavapipe from Mesa {major}; installing {LAVAPIPE_PACKAGE} from {BACKPORTS}"
    );
    let list = "/etc/apt/sources.list.d/autogaze-backports.list";
    let line = format!("deb http://deb.debian.org/debian {BACKPORTS} main\n");
    let installed = std::fs::write(list, line)
        .map_err(|e| format!("cannot write {list}: {e}"))
        .and_then(|()| apt(&["update", "-q"], Duration::from_secs(300)))
        .and_then(|()| {
            apt(
                &[
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    "-t",
                    BACKPORTS,
                    LAVAPIPE_PACKAGE,
                ],
                Duration::from_secs(900),
            )
        })
        .and_then(|()| probe_child())
        .map(|adapters| vulkan(&adapters));
    match installed {
        Ok(Some(newer)) if lavapipe_mesa_major(&newer).is_some_and(|m| m >= LAVAPIPE_MIN_MESA) => {
            println!("preflight: wgpu adapter {}", newer.describe());
            newer
        }
        Ok(_) => {
            warn("the backports install did not give a newer lavapipe");
            adapter
        }
        Err(e) => {
            warn(&e);
            adapter
        }
    }
}

/// Whether `ffmpeg` and `ffprobe` (or the programs `AUTOGAZE_FFMPEG` /
/// `AUTOGAZE_FFPROBE` name) run.
fn ffmpeg_found() -> Result<(), String> {
    let tools = burn_autogaze::source::FfmpegTools::from_env();
    for program in [&tools.ffmpeg, &tools.ffprobe] {
        let mut cmd = Command::new(program);
        cmd.arg("-version").stderr(std::process::Stdio::null());
        match run_captured(&mut cmd, Duration::from_secs(30)) {
            Ok(Outcome::Exited { status, .. }) if status.success() => {}
            Ok(Outcome::Exited { status, .. }) => {
                return Err(format!(
                    "`{} -version` failed ({status})",
                    program.display()
                ));
            }
            Ok(Outcome::TimedOut) => {
                return Err(format!("`{} -version` did not finish", program.display()));
            }
            Err(e) => return Err(format!("cannot run {}: {e}", program.display())),
        }
    }
    Ok(())
}

/// Finds FFmpeg, installing Debian's package when that is possible and
/// needed; otherwise an error naming the package.
pub fn ffmpeg() -> Result<(), String> {
    let why = match ffmpeg_found() {
        Ok(()) => {
            println!("preflight: ffmpeg and ffprobe found");
            return Ok(());
        }
        Err(why) => why,
    };
    let manual = format!(
        "install FFmpeg: on Debian/Ubuntu `apt-get install -y {FFMPEG_PACKAGE}`, elsewhere your system's package (or name the programs with AUTOGAZE_FFMPEG / AUTOGAZE_FFPROBE)"
    );
    if !is_debian_like() {
        return Err(format!(
            "{why}; this is not a Debian/Ubuntu machine with apt-get; {manual}"
        ));
    }
    if !is_root() {
        return Err(format!("{why}; preflight is not running as root; {manual}"));
    }
    println!("preflight: {why}; installing {FFMPEG_PACKAGE} with apt-get");
    apt(&["update", "-q"], Duration::from_secs(300))?;
    apt(
        &[
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            FFMPEG_PACKAGE,
        ],
        Duration::from_secs(900),
    )?;
    ffmpeg_found().map_err(|e| format!("installed {FFMPEG_PACKAGE}, but {e}; {manual}"))?;
    println!("preflight: installed {FFMPEG_PACKAGE}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(driver: &str) -> AdapterInfo {
        AdapterInfo {
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            backend: "Vulkan".into(),
            device_type: "Cpu".into(),
            driver: driver.into(),
        }
    }

    #[test]
    fn lavapipe_versions_are_read_from_the_driver_line() {
        let old = adapter("llvmpipe Mesa 22.3.6 (LLVM 15.0.6)");
        let new = adapter("llvmpipe Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)");
        assert_eq!(lavapipe_mesa_major(&old), Some(22));
        assert_eq!(lavapipe_mesa_major(&new), Some(25));
        assert_eq!(lavapipe_mesa_major(&adapter("NVIDIA 550.54")), None);
        assert_eq!(lavapipe_mesa_major(&adapter("llvmpipe")), None);
    }
}
