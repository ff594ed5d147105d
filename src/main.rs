//! The `access-broker` binary: parses the command line, loads the config, opens the store and
//! runs the app until SIGTERM or Ctrl-C. Any startup problem prints one line naming the file,
//! key or URL and exits with code 2.

use std::process::ExitCode;

use access_broker::app::App;
use access_broker::cli::{Cli, Command};
use access_broker::config::{Config, check_config_report};
use access_broker::store;
use access_broker::telemetry;

/// mimalloc: less memory per small allocation than glibc's malloc (a node holds millions of
/// them) and it gives freed pages back, so RSS follows the live state.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let command = Cli::read().into_command();
    if let Command::Serve(_) = command {
        // Before any other thread exists (they all inherit it): a SIGTERM from here on waits
        // until `shutdown_signal` has registered the handlers, instead of killing the
        // process by its default action in the milliseconds the runtime takes to start.
        signals::hold();
    }
    telemetry::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => return fail(&format!("cannot start the runtime: {err}")),
    };
    let result = runtime.block_on(run(command));
    // What a start left running when SIGTERM came (a large store still loading on a blocking
    // thread) must not hold the exit: dropping the runtime would wait for it to finish. The
    // store's own files stay consistent however the process ends (SQLite's journal, a
    // PostgreSQL transaction rolled back with its connection).
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&format!("{err:#}")),
    }
}

/// Writes to the terminal's stream, ignoring a failure: `eprintln!` and `println!` panic when
/// the stream cannot take the text (a full disk under a redirected log, a closed pipe), which
/// turned an exit 2 or 0 into a panic's 101 with no message (an outside audit).
fn say(out: &mut impl std::io::Write, text: std::fmt::Arguments<'_>) {
    let _ = out.write_fmt(text);
}

fn fail(message: &str) -> ExitCode {
    say(
        &mut std::io::stderr(),
        format_args!("access-broker: {message}\n"),
    );
    ExitCode::from(2)
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::CheckConfig(args) => {
            let (config, warnings) = Config::load(Some(&args.config))?;
            // The environment's layer too, as `serve` would apply it (the report printed the
            // file's store and address when the environment named others).
            let listen = env("ACCESS_BROKER_LISTEN");
            let store = env("ACCESS_BROKER_STORE");
            let config = config
                .with_overrides(listen.as_deref(), store.as_deref())?
                .with_env_credentials(env)?;
            for w in warnings {
                say(&mut std::io::stderr(), format_args!("warning: {w}\n"));
            }
            say(
                &mut std::io::stdout(),
                format_args!("{}", check_config_report(&config)),
            );
            Ok(())
        }
        Command::Serve(args) => {
            // The handlers come first, before the config is even read: a SIGTERM at any
            // moment of the start (a large SQLite file loading, a database that does not
            // answer yet) stops us cleanly with 0, not with the signal's default action.
            let mut shutdown = Box::pin(shutdown_signal());
            // Delivered now to this thread (the one `block_on` runs on), if it came already.
            signals::release();
            // Read on a blocking thread, raced against the signal: a file of millions of
            // numbers takes seconds to expand, and SIGTERM meanwhile ends the start at once.
            let path = args.config.clone();
            let load = tokio::task::spawn_blocking(move || Config::load(path.as_deref()));
            let (config, warnings) = tokio::select! {
                loaded = load => loaded??,
                () = &mut shutdown => {
                    tracing::info!("stopped before serving");
                    return Ok(());
                }
            };
            // Every layer first: a bad one stops the start with its single line, no warnings.
            let config = config
                .with_overrides(args.listen.as_deref(), args.store.as_deref())?
                .with_env_credentials(env)?;
            for w in warnings {
                tracing::warn!("{w}");
            }
            let listen_from = match args.listen {
                Some(_) => "--listen (ACCESS_BROKER_LISTEN)",
                None => "server.listen",
            };
            serve(config, listen_from, shutdown).await
        }
        Command::Backup(args) => {
            // The same layering as `serve` for the store URL; credentials are not needed.
            let (config, _) = Config::load(args.config.as_deref())?;
            let config = config.with_overrides(None, args.store.as_deref())?;
            backup(&config.server.store, args.to, args.force).await
        }
    }
}

/// A variable of ours; one that is empty or not valid UTF-8 counts as unset (as in `cli.rs`).
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn backup(url: &store::StoreUrl, to: std::path::PathBuf, force: bool) -> anyhow::Result<()> {
    let path = match url {
        store::StoreUrl::Sqlite(path) => path.clone(),
        store::StoreUrl::Memory => {
            anyhow::bail!("backup: store {url} keeps nothing on disk; there is nothing to back up")
        }
        store::StoreUrl::Postgres(_) => {
            anyhow::bail!("backup: store {url} is PostgreSQL: use pg_dump for PostgreSQL")
        }
    };
    #[cfg(feature = "sqlite")]
    {
        use store::sqlite::backup as copy;
        let partial = copy::partial_path(&to);
        let copying = tokio::task::spawn_blocking(move || copy::backup(&path, &to, force));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stopped = async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => 130,
                _ = term.recv() => 143,
            }
        };
        let report = tokio::select! {
            done = copying => done?.map_err(anyhow::Error::msg)?,
            // Stopped half-way: the hidden copy goes, and the target was never touched.
            code = stopped => {
                copy::remove_partial(&partial);
                std::process::exit(code);
            }
        };
        say(
            &mut std::io::stdout(),
            format_args!(
                "backup of {url} written to {} ({} bytes) in {:.2} s\n",
                report.path.display(),
                report.bytes,
                report.elapsed.as_secs_f64()
            ),
        );
        Ok(())
    }
    #[cfg(not(feature = "sqlite"))]
    {
        let _ = (path, to, force);
        anyhow::bail!("backup: store {url}: this build has no SQLite support")
    }
}

/// Starts, unless `shutdown` comes first (then exits cleanly at once), and serves until it.
async fn serve(
    config: Config,
    listen_from: &'static str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut shutdown = Box::pin(shutdown);
    // A task of its own: parts of a start work without yielding for seconds (a local store
    // applying a config of millions of numbers), and polled beside the signal in one task
    // they kept it from being seen (SIGTERM 1.5 s into such a start: exit 14 s later).
    let mut starting = tokio::spawn(start(config, listen_from));
    let app = tokio::select! {
        started = &mut starting => started.map_err(|e| anyhow::anyhow!("start: {e}"))??,
        () = &mut shutdown => {
            starting.abort();
            tracing::info!("stopped before serving");
            return Ok(());
        }
    };
    app.run(shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Binds the listener, opens the store and builds the app, ready to run. The address comes
/// first: one that is taken stops the start before the store is created or changed. An error
/// names where the address came from (`listen_from`: the flag and its variable, or the file).
async fn start(config: Config, listen_from: &str) -> anyhow::Result<App> {
    let listen = config.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("{listen_from} {listen}: {e}"))?;
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = config.server.store.clone();
    let options = access_broker::app::store_options(&config);
    let store = store::open_waiting(&url, &options, config.groups.clone()).await?;
    let node = config.server.node_id.to_string();
    if !listen.ip().to_canonical().is_loopback() && config.auth.is_none() {
        tracing::warn!(
            addr = %listen,
            "listening beyond loopback without [auth]: anyone who reaches {listen} can reserve numbers and read session data; set [auth] username and password"
        );
    }
    // The file's groups, in its order, with their sizes as given (the store's are read once
    // the file has been applied).
    let listed: Vec<(access_broker::domain::GroupName, u64)> = config
        .groups
        .iter()
        .map(|g| (g.settings.name.clone(), g.numbers.len() as u64))
        .collect();
    let app = App::on_applied(config, listener, store.clone())
        .map_err(|e| anyhow::anyhow!("store {url}: {e}"))?;
    let groups = start_line_groups(&listed, &store.groups().await.unwrap_or_default());
    tracing::info!(addr = %app.local_addr(), store = %url, node = %node, groups = %groups.join(","), "access-broker listening on {} ({scheme})", app.local_addr());
    Ok(app)
}

/// The start line's `groups=`: each group the file defines with its size as the store holds
/// it once the file is applied (a number the file lists may have stayed in another group an
/// operator moved it to; numbers an operator added and the file does not list have left),
/// the file's own while the store cannot answer yet; then the store's groups the file does
/// not define (made through the admin API, or left by an earlier file).
fn start_line_groups(
    listed: &[(access_broker::domain::GroupName, u64)],
    held: &[access_broker::store::GroupStats],
) -> Vec<String> {
    let mut groups: Vec<String> = listed
        .iter()
        .map(|(name, given)| {
            let size = held
                .iter()
                .find(|h| h.name == *name)
                .map_or(*given, |h| h.size);
            format!("{}={size}", shown(name.as_str()))
        })
        .collect();
    groups.extend(
        held.iter()
            .filter(|h| !listed.iter().any(|(name, _)| *name == h.name))
            .map(|h| format!("{}={}", shown(h.name.as_str()), h.size)),
    );
    groups
}

/// A group name as the start line shows it: as it is when it is a plain word, else quoted
/// and escaped, so a name with a space, `=` or `,` (the admin API allows them) cannot make the
/// line read as other fields or other groups.
fn shown(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | ':'));
    match plain {
        true => name.to_owned(),
        false => format!("{name:?}"),
    }
}

/// SIGTERM, SIGINT and SIGHUP blocked on the calling thread (`hold`, and so on every thread it starts
/// afterwards) and unblocked again (`release`). Failures are ignored: the mask only narrows
/// the moments at start when a signal would end the process by its default action.
mod signals {
    #[cfg(unix)]
    fn mask(how: nix::sys::signal::SigmaskHow) {
        use nix::sys::signal::{SigSet, Signal, pthread_sigmask};
        let mut set = SigSet::empty();
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGINT);
        set.add(Signal::SIGHUP);
        let _ = pthread_sigmask(how, Some(&set), None);
    }

    pub fn hold() {
        #[cfg(unix)]
        mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
    }

    pub fn release() {
        #[cfg(unix)]
        mask(nix::sys::signal::SigmaskHow::SIG_UNBLOCK);
    }
}

/// Registers the handlers of Ctrl-C, SIGTERM and SIGHUP now and returns what resolves on any
/// of them. SIGHUP stops the node as SIGTERM does (there is no reload: a restart reads the
/// config again); by its default action it killed the node at once, requests in flight
/// dropped, when a terminal closed or a supervisor sent it for a reload.
/// (Why not an `async fn`: its body, and so the registration, would wait for the first poll.)
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let mut signals: Vec<(tokio::signal::unix::Signal, &'static str)> = {
        use tokio::signal::unix::{SignalKind, signal};
        [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
        ]
        .into_iter()
        .filter_map(|(kind, name)| signal(kind).ok().map(|s| (s, name)))
        .collect()
    };
    async move {
        #[cfg(unix)]
        let name = match signals.is_empty() {
            true => std::future::pending::<&str>().await,
            false => {
                let each = signals.iter_mut().map(|(signal, name)| {
                    Box::pin(async move {
                        signal.recv().await;
                        *name
                    })
                });
                futures::future::select_all(each).await.0
            }
        };
        #[cfg(not(unix))]
        let name = {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        };
        match name {
            "SIGHUP" => tracing::info!(
                "SIGHUP: shutting down as for SIGTERM (no reload; start again to read the config): finishing requests in flight"
            ),
            _ => tracing::info!("{name}: shutting down: finishing requests in flight"),
        }
    }
}
