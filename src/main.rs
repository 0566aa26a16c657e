//! The `roost` binary: command-line parsing, configuration, logging and
//! tracing, and the assembly of the actor tree from `roost-actors` and
//! `roost-webui`. Everything below `src/` receives typed settings from here;
//! nothing else reads the config file.

mod cli;
mod config;
mod telemetry;
mod tls;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "roost",
    version,
    about = "A complete mail server: SMTP, IMAP and webmail in one binary"
)]
struct Cli {
    /// Write logs as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on 127.0.0.1 with embedded defaults, for trying roost.
    Localserve {
        /// The data directory.
        #[arg(long, default_value = "roost-local")]
        dir: PathBuf,
        /// Added to every default port (SMTP 1025, IMAP 1143, ...).
        #[arg(long, default_value_t = 0)]
        port_offset: u16,
    },
    /// Run from a TOML configuration file.
    Serve {
        /// The configuration file (see deploy/roost.toml).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Talk to a running server over its admin socket.
    Admin(cli::admin::AdminArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Localserve { dir, port_offset } => cli::serve::run(
            config::Config::localserve(dir, port_offset),
            cli.log_json,
            true,
        ),
        Command::Serve { config } => match config::Config::load(&config) {
            Ok(c) => cli::serve::run(c, cli.log_json, false),
            Err(e) => Err(e),
        },
        Command::Admin(args) => cli::admin::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("roost: {e:#}");
            ExitCode::FAILURE
        }
    }
}
