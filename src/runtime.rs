//! The process: the only place a tokio runtime is built, signals are turned into a shutdown,
//! and logging is set up. Library crates export async functions and never build a runtime,
//! so anything can embed them.

use std::future::Future;
use std::process::ExitCode;

/// How many worker threads a command's runtime gets.
#[derive(Clone, Copy, Debug)]
pub enum Threads {
    /// One thread (short CLI commands: `meshes`, `install`).
    Current,
    /// A multi-threaded runtime (`None`: one worker per core).
    Multi(Option<usize>),
}

/// Runs `f` to completion on a new runtime; exit code 3 when no runtime can be built.
pub fn block_on(what: &str, threads: Threads, f: impl Future<Output = ExitCode>) -> ExitCode {
    let built = match threads {
        Threads::Current => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Threads::Multi(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = n {
                b.worker_threads(n);
            }
            b.enable_all().build()
        }
    };
    match built {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("meshbridge {what}: cannot start the async runtime: {e}");
            ExitCode::from(3)
        }
    }
}

/// Completes on SIGINT or SIGTERM (a graceful shutdown: the controller gives up its Lease).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One message per SIGUSR1 (`meshbridge local` restarts its control plane on each). Call
/// inside the runtime; without signal support the channel stays silent.
pub fn restart_signal() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::user_defined1()) {
            Ok(mut usr1) => {
                tokio::spawn(async move {
                    while usr1.recv().await.is_some() {
                        if tx.send(()).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => eprintln!("meshbridge: SIGUSR1 cannot be handled: {e}"),
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// Logs to stderr with `filter` (tracing EnvFilter syntax); `$RUST_LOG` wins.
pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
