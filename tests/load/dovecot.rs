//! Dovecot from Debian (`/usr/sbin/dovecot`) for the side-by-side load
//! figures: started on loopback with its own configuration in a temporary
//! directory, maildir under a home per user, the accounts as a
//! passwd-file of plain passwords (Dovecot's cheapest login: nothing to
//! hash), and killed when dropped. It must run as root (Dovecot switches
//! to the mail user); the caller says so and skips Dovecot otherwise.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password every load-tool account gets, on both servers.
pub const PASSWORD: &str = "login-bench-secret";

/// One connection: greeting, LOGIN, LOGOUT; the LOGIN must succeed.
pub fn login(port: u16, user: &str, password: &str) -> Result<(), String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    r.get_mut()
        .write_all(format!("a LOGIN {user} {password}\r\nb LOGOUT\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("closed before LOGIN's answer".into());
        }
        if line.starts_with("a ") {
            return if line.starts_with("a OK") {
                Ok(())
            } else {
                Err(format!("LOGIN {user}: {line}"))
            };
        }
    }
}

/// Dovecot from Debian, on loopback, killed when dropped.
pub struct Dovecot {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Dovecot {
    const BINARY: &'static str = "/usr/sbin/dovecot";
    /// The uid and gid mail is kept under (nobody).
    const MAIL_ID: u32 = 65534;

    pub fn start(users: &[String], password: &str) -> Result<Dovecot, String> {
        if !Path::new(Self::BINARY).exists() {
            return Err(format!(
                "{} is not installed (apt-get install dovecot-imapd)",
                Self::BINARY
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| e.to_string())?;
        }
        let id = Self::MAIL_ID;
        let status = Command::new("chown")
            .arg(format!("{id}:{id}"))
            .arg(d.join("home"))
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("cannot chown its mail home (not root?)".into());
        }
        let passwd: String = users
            .iter()
            .map(|u| format!("{u}:{{PLAIN}}{password}\n"))
            .collect();
        std::fs::write(d.join("passwd"), passwd).map_err(|e| e.to_string())?;
        let conf = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
log_path = {d}/dovecot.log\nssl = no\ndisable_plaintext_auth = no\n\
auth_mechanisms = plain login\n\
passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
userdb {{\n  driver = static\n  args = uid={id} gid={id} home={d}/home/%u\n}}\n\
first_valid_uid = 1\nmail_location = maildir:~/Maildir\n\
service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n\
  inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
            d = d.display()
        );
        let conf_path = d.join("dovecot.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let child = Command::new(Self::BINARY)
            .arg("-F")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start dovecot: {e}"))?;
        let dovecot = Dovecot {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("dovecot did not come up".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        login(port, &users[0], password).map_err(|e| format!("dovecot login: {e}"))?;
        Ok(dovecot)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
