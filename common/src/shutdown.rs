//! The process signal that begins a graceful shutdown.
//!
//! Rule: binaries wait on [`signal`] and then cancel one `CancellationToken`; everything else
//! takes that token (or any future) as a parameter and never installs handlers of its own.

use tokio::signal::unix::{SignalKind, signal as unix_signal};

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
///
/// # Errors
/// Fails only if the signal handlers cannot be installed.
pub async fn signal() -> std::io::Result<Signal> {
    let mut interrupt = unix_signal(SignalKind::interrupt())?;
    let mut terminate = unix_signal(SignalKind::terminate())?;
    tokio::select! {
        _ = interrupt.recv() => Ok(Signal::Interrupt),
        _ = terminate.recv() => Ok(Signal::Terminate),
    }
}
