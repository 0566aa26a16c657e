//! One file per subcommand group.

pub mod admin;
pub mod serve;
