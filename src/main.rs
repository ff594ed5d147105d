//! The `access-broker` binary: parses the command line, loads the config, opens the store and
//! runs the app until SIGTERM or Ctrl-C. Any startup problem prints one line naming the file,
//! key or URL and exits with code 2.

use std::process::ExitCode;

use access_broker::app::App;
use access_broker::cli::{Cli, Command};
use access_broker::config::{Config, check_config_report};
use access_broker::store;
use access_broker::telemetry;
use clap::Parser;

/// mimalloc: less memory per small allocation than glibc's malloc (a node holds millions of
/// them) and it gives freed pages back, so RSS follows the live state.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => return fail(&format!("cannot start the runtime: {err}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&format!("{err:#}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("access-broker: {message}");
    ExitCode::from(2)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.into_command() {
        Command::CheckConfig(args) => {
            let (config, warnings) = Config::load(Some(&args.config))?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", check_config_report(&config));
            Ok(())
        }
        Command::Serve(args) => {
            let (config, warnings) = Config::load(args.config.as_deref())?;
            for w in warnings {
                tracing::warn!("{w}");
            }
            let config = config.with_overrides(args.listen.as_deref(), args.store.as_deref())?;
            serve(config).await
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let url = config.server.store.clone();
    let options = access_broker::app::store_options(&config);
    let store = store::open(&url, &options).await?;
    let listen = config.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("server.listen {listen}: {e}"))?;
    let groups: Vec<String> = config
        .groups
        .iter()
        .map(|g| format!("{}={}", g.settings.name, g.numbers.len()))
        .collect();
    let node = config.server.node_id.to_string();
    let app = App::build(config, listener, store)
        .await
        .map_err(|e| anyhow::anyhow!("store {url}: {e}"))?;
    tracing::info!(addr = %app.local_addr(), store = %url, node = %node, groups = %groups.join(","), "access-broker listening on {}", app.local_addr());
    app.run(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}
