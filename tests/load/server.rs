//! The running server the load tools measure: the release `roost`
//! binary started with `localserve` on a fresh temporary data directory
//! and a free port offset, reached on 127.0.0.1 only, and killed when
//! dropped, whatever happened. Shared by the benches under tests/load.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for the server to come up, or for any single reply.
pub const WAIT: Duration = Duration::from_secs(60);
/// Base ports of localserve; the offset is added to each.
const BASE_PORTS: [u16; 7] = [1025, 1587, 1465, 1143, 1993, 1080, 1443];
const SMTP_BASE: u16 = 1025;
const IMAP_BASE: u16 = 1143;
const IMAPS_BASE: u16 = 1993;
/// How many port offsets to try before giving up.
const OFFSET_ATTEMPTS: u16 = 200;
/// The account localserve creates on first start.
pub const LOCAL_ACCOUNT: &str = "roost@localhost";

/// The release `roost` next to this bench executable
/// (`target/release/deps/smtp_load-*` -> `target/release/roost`), else under
/// the manifest directory's `target/release`.
pub fn roost_binary() -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join("roost"));
        }
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/roost"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!(
                "the roost binary is missing (tried {}); run `cargo build --release` first",
                tried.join(", ")
            )
        })
}

/// A running `roost localserve`, killed when dropped.
pub struct Server {
    pub child: Child,
    binary: PathBuf,
    dir: PathBuf,
    offset: u16,
    _tmp: tempfile::TempDir,
}

impl Server {
    pub fn start(binary: &Path) -> Result<Server, String> {
        let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let dir = tmp.path().to_path_buf();
        let offset = free_offset()?;
        let log = std::fs::File::create(dir.join("server.log"))
            .map_err(|e| format!("server log: {e}"))?;
        let child = Command::new(binary)
            .arg("localserve")
            .arg("--dir")
            .arg(&dir)
            .args(["--port-offset", &offset.to_string()])
            // localserve's own default level, whatever the caller's shell says.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut server = Server {
            child,
            binary: binary.to_path_buf(),
            dir,
            offset,
            _tmp: tmp,
        };
        server.wait_ready()?;
        Ok(server)
    }

    pub fn smtp_port(&self) -> u16 {
        SMTP_BASE + self.offset
    }

    pub fn imap_port(&self) -> u16 {
        IMAP_BASE + self.offset
    }

    /// localserve's IMAPS port (993's stand-in).
    pub fn imaps_port(&self) -> u16 {
        IMAPS_BASE + self.offset
    }

    /// localserve's self-signed certificate (PEM).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("localserve-cert.pem")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let smtp = TcpStream::connect(("127.0.0.1", self.smtp_port())).is_ok();
            // The socket file appears at bind, a moment before listen.
            let admin =
                std::os::unix::net::UnixStream::connect(self.dir.join("roost.sock")).is_ok();
            if smtp && admin {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "roost exited early ({status}); log:\n{}",
                    self.log()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "roost did not come up in {WAIT:?}; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// `roost admin --dir DIR args...`; its stdout, or an error with both streams.
    pub fn admin(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.binary)
            .arg("admin")
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run roost admin: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "roost admin {args:?} failed: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(stdout)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL: the data directory is thrown away anyway.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port offset at which every localserve port is free on 127.0.0.1 now.
fn free_offset() -> Result<u16, String> {
    let start = 20_000 + (std::process::id() % 200) as u16 * 100;
    for i in 0..OFFSET_ATTEMPTS {
        let offset = start.wrapping_add(i * 7) % 40_000 + 10_000;
        let free = BASE_PORTS
            .iter()
            .all(|base| TcpListener::bind(("127.0.0.1", base + offset)).is_ok());
        if free {
            return Ok(offset);
        }
    }
    Err(format!("no free port offset in {OFFSET_ATTEMPTS} attempts"))
}

/// The resident memory of process `pid`, from /proc, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc status".to_string())
}

/// A free port on 127.0.0.1 now.
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Waits (up to 30 s) until something listens on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            return Err(format!("nothing listens on port {port}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// A child process killed (and reaped) when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Postfix's smtp-sink on 127.0.0.1:`port` (as nobody when root), ready.
pub fn start_sink(port: u16) -> Result<Killed, String> {
    let mut cmd = std::process::Command::new("/usr/sbin/smtp-sink");
    let root = std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")));
    if root {
        cmd.args(["-u", "nobody"]);
    }
    let child = cmd
        .arg(format!("127.0.0.1:{port}"))
        .arg("256")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("smtp-sink: {e}"))?;
    let sink = Killed(child);
    wait_for_port(port)?;
    Ok(sink)
}
