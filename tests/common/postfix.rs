//! Postfix from Debian as a peer: started on loopback from its own
//! configuration in a temporary directory (Debian's master.cf without
//! chroot, smtpd on the given port, the log in the directory), stopped
//! when dropped. Postfix's queue belongs to the postfix user, so this needs
//! root.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const POSTFIX: &str = "/usr/sbin/postfix";

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Postfix on 127.0.0.1:`port`; stopped when dropped.
pub struct Postfix {
    dir: tempfile::TempDir,
    master: Child,
}

impl Postfix {
    /// `main_cf` is added to a base configuration that names the queue and
    /// data directories, listens on loopback and relays for loopback
    /// clients; it says where mail goes (relay_domains, transports).
    pub fn start(port: u16, main_cf: &str) -> Result<Postfix, String> {
        if !Path::new(POSTFIX).exists() {
            return Err("not installed (apt-get install postfix)".into());
        }
        if !is_root() {
            return Err("needs root (its queue belongs to the postfix user)".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let root = dir.path();
        // The postfix user must reach its queue inside it.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
        }
        let (etc, data) = (root.join("etc"), root.join("data"));
        for d in [&etc, &root.join("queue"), &data] {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        }
        let chown = Command::new("chown")
            .arg("postfix")
            .arg(&data)
            .status()
            .map_err(|e| e.to_string())?;
        if !chown.success() {
            return Err("cannot give the data directory to postfix".into());
        }
        let base = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {queue}\n\
             data_directory = {data}\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             myhostname = postfix.test\n\
             mydestination =\n\
             mynetworks = 127.0.0.0/8\n\
             maillog_file = /dev/stdout\n",
            queue = root.join("queue").display(),
            data = data.display(),
        );
        std::fs::write(etc.join("main.cf"), format!("{base}{main_cf}"))
            .map_err(|e| e.to_string())?;
        let master = std::fs::read_to_string("/etc/postfix/master.cf")
            .map_err(|e| format!("/etc/postfix/master.cf: {e}"))?;
        std::fs::write(etc.join("master.cf"), master_cf(&master, port))
            .map_err(|e| e.to_string())?;
        // start-fg logs to its standard output (maillog_file above).
        let log = std::fs::File::create(root.join("maillog")).map_err(|e| e.to_string())?;
        let master = Command::new(POSTFIX)
            .arg("-c")
            .arg(&etc)
            .arg("start-fg")
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("postfix: {e}"))?;
        let postfix = Postfix { dir, master };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let log = postfix.log();
                let last = log.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
                return Err(format!(
                    "postfix did not listen on {port}; its log ends: {last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(postfix)
    }

    fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// What Postfix logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }
}

/// Debian's master.cf with chroot off and smtpd on 127.0.0.1:`port`.
fn master_cf(debian: &str, port: u16) -> String {
    let mut out = String::new();
    for line in debian.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let service = line.starts_with(|c: char| c.is_ascii_alphanumeric());
        if service && fields.len() >= 8 {
            let name = if fields[0] == "smtp" && fields[1] == "inet" {
                format!("127.0.0.1:{port}")
            } else {
                fields[0].to_string()
            };
            out.push_str(&format!(
                "{name} {} {} {} n {} {} {}\n",
                fields[1],
                fields[2],
                fields[3],
                fields[5],
                fields[6],
                fields[7..].join(" ")
            ));
        } else if !service {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.etc())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}
