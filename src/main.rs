//! The `chorus` binary: parse configuration, set up logging, serve until SIGINT/SIGTERM —
//! or, with `chorus schema print|apply`, print or apply the ScyllaDB schema and exit.

use std::net::TcpListener;
use std::process::ExitCode;

use chorus::config::{Cli, Command, Config, SchemaAction};
use chorus::store::scylla;
use tracing_subscriber::EnvFilter;

/// glibc's malloc keeps up to eight arenas per core, and memory freed on another thread than
/// the one that allocated it stays in its arena: connections (allocated on the I/O threads)
/// and actors (on the actor threads) then cost twice their size. Two arenas halve the RSS of
/// an idle connection (`chorus-loadtest connect`: 8.9 KiB with glibc's default, 4.4 KiB with
/// two; mimalloc and jemalloc measured 11.4 and 9.5). `MALLOC_ARENA_MAX`, if set, wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tuning parameter of the allocator; it is called before
        // any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    actix_web::rt::System::new().block_on(serve())
}

async fn serve() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if cli.command.is_some() {
        // A command's output is stdout (`chorus schema print | cqlsh`): logs go to stderr.
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init();
    }
    let config = match Config::from_cli(&cli) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Schema { action }) = cli.command {
        return schema(action, &config).await;
    }
    let listener = match TcpListener::bind(config.listen) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    match chorus::run(listener, config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `chorus schema print` writes the CQL to stdout (nothing else goes there); `apply` runs it
/// against `--scylla-nodes`.
async fn schema(action: SchemaAction, config: &Config) -> ExitCode {
    let s = &config.scylla;
    match action {
        SchemaAction::Print => {
            if let Err(e) = config.check_scylla_schema() {
                tracing::error!("{e}");
                return ExitCode::from(2);
            }
            print!("{}", scylla::schema(&s.keyspace, &s.replication));
            ExitCode::SUCCESS
        }
        SchemaAction::Apply => {
            if let Err(e) = config.check_scylla() {
                tracing::error!("{e}");
                return ExitCode::from(2);
            }
            match scylla::apply_schema(s).await {
                Ok(()) => {
                    tracing::info!(keyspace = %s.keyspace, nodes = ?s.nodes, "schema applied");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!("applying the schema: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM ({e}); only SIGINT stops the server");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
