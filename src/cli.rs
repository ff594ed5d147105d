//! The command line (clap derive). Every `serve` flag also reads its `ACCESS_BROKER_*`
//! environment variable; clap puts the flag above the variable, and `Config::with_overrides`
//! puts both above the file. Credentials have variables but no flags (a flag would show in
//! `ps`): `Config::with_env_credentials` reads them.
//!
//! A variable set to the empty string counts as unset (`Cli::read_from`): systemd's
//! `EnvironmentFile`s and compose files write `ACCESS_BROKER_LISTEN=` for "not set", and clap
//! took it for a value (`--config` "a value is required … but none was supplied", `--listen`
//! `"" is not an address`). An empty value given as a flag is still the user's value.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "access-broker",
    version,
    about = "GMS-compatible access-number broker"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, the same flags as `serve`.
    #[command(flatten)]
    serve: ServeArgs,
}

impl Cli {
    /// Parses the process's arguments and environment; exits 2 with clap's message on an error.
    pub fn read() -> Self {
        Self::read_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (and the environment), an empty `ACCESS_BROKER_*` variable counting as
    /// unset.
    pub fn read_from(
        args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    ) -> Result<Self, clap::Error> {
        let matches = Self::command().try_get_matches_from(args)?;
        let mut cli = Self::from_arg_matches(&matches)?;
        let used = matches.subcommand().map_or(&matches, |(_, m)| m);
        let empty = |id: &str| empty_from_env(used, id);
        match cli.command.as_mut() {
            None => cli.serve.drop_empty(empty),
            Some(Command::Serve(args)) => args.drop_empty(empty),
            Some(Command::Backup(args)) => {
                if empty("config") {
                    args.config = None;
                }
                if empty("store") {
                    args.store = None;
                }
            }
            Some(Command::CheckConfig(_)) if empty("config") => {
                let mut check = Self::command()
                    .find_subcommand("check-config")
                    .cloned()
                    .unwrap_or_else(Self::command);
                return Err(check.error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "check-config needs --config FILE (ACCESS_BROKER_CONFIG is empty)",
                ));
            }
            Some(Command::CheckConfig(_)) => {}
        }
        Ok(cli)
    }

    /// The command to run; no subcommand means `serve`.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve(ServeArgs),
    /// Validate a config file and print its groups and services.
    CheckConfig(CheckArgs),
    /// Copy a live SQLite store to a file, consistently, while the node keeps serving.
    ///
    /// Restore by serving the copy: `access-broker serve --store sqlite://COPY`. For
    /// PostgreSQL use pg_dump; memory:// keeps nothing to copy.
    Backup(BackupArgs),
}

/// Whether `id`'s value came from its environment variable and is empty.
fn empty_from_env(matches: &ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(ValueSource::EnvVariable)
        && matches
            .get_raw(id)
            .is_some_and(|mut values| values.all(|v| v.is_empty()))
}

/// A path as given, empty included (clap's own path parser refuses an empty one before
/// `Cli::read_from` can tell an empty variable from a flag).
fn any_path() -> impl TypedValueParser<Value = PathBuf> {
    OsStringValueParser::new().map(PathBuf::from)
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Config file (TOML); without it, the built-in demo config.
    #[arg(long, env = "ACCESS_BROKER_CONFIG", value_parser = any_path())]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long, env = "ACCESS_BROKER_LISTEN")]
    pub listen: Option<String>,
    /// Store URL: sqlite://PATH, postgres://…, or memory://.
    #[arg(long, env = "ACCESS_BROKER_STORE", hide_env_values = true)]
    pub store: Option<String>,
}

impl ServeArgs {
    fn drop_empty(&mut self, empty: impl Fn(&str) -> bool) {
        if empty("config") {
            self.config = None;
        }
        if empty("listen") {
            self.listen = None;
        }
        if empty("store") {
            self.store = None;
        }
    }
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Config file (TOML) whose `server.store` names the store; without it, the default store.
    #[arg(long, env = "ACCESS_BROKER_CONFIG", value_parser = any_path())]
    pub config: Option<PathBuf>,
    /// Store URL (beats the config file): sqlite://PATH.
    #[arg(long, env = "ACCESS_BROKER_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// File to write the copy to. An existing file is refused unless it is empty or
    /// --force is given; it is replaced only once the new copy is complete.
    #[arg(long)]
    pub to: PathBuf,
    /// Replace an existing --to file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Config file to validate.
    #[arg(long, env = "ACCESS_BROKER_CONFIG", value_parser = any_path())]
    pub config: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_subcommand_means_serve_with_its_flags() {
        let cli =
            Cli::try_parse_from(["access-broker", "--listen", "127.0.0.1:0"]).expect("parses");
        match cli.into_command() {
            Command::Serve(args) => assert_eq!(args.listen.as_deref(), Some("127.0.0.1:0")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subcommands() {
        let cli = Cli::try_parse_from(["access-broker", "check-config", "--config", "a.toml"])
            .expect("parses");
        assert!(
            matches!(cli.into_command(), Command::CheckConfig(a) if a.config.as_os_str() == "a.toml")
        );
        let cli = Cli::try_parse_from(["access-broker", "serve", "--store", "memory://"])
            .expect("parses");
        assert!(
            matches!(cli.into_command(), Command::Serve(a) if a.store.as_deref() == Some("memory://"))
        );
        let cli = Cli::try_parse_from(["access-broker", "backup", "--to", "b.db", "--force"])
            .expect("parses");
        assert!(
            matches!(cli.into_command(), Command::Backup(a) if a.to.as_os_str() == "b.db" && a.force)
        );
        assert!(
            Cli::try_parse_from(["access-broker", "check-config"]).is_err()
                || std::env::var_os("ACCESS_BROKER_CONFIG").is_some()
        );
    }
}
