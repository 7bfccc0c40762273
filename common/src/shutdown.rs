//! The process signals that begin a graceful shutdown.
//!
//! Rule: binaries install [`Signals`] at start-up, wait on [`Signals::recv`] and then cancel
//! one `CancellationToken`; everything else takes that token (or any future) as a parameter
//! and never installs handlers of its own. Installing first means that handlers which cannot
//! be installed stop the start with an error — not a shutdown that begins at once.

use tokio::signal::unix::{SignalKind, signal as unix_signal};

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

/// The SIGINT (Ctrl-C) and SIGTERM handlers, installed.
#[derive(Debug)]
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs both handlers (call it inside a Tokio runtime, before serving).
    ///
    /// # Errors
    /// When a handler cannot be installed.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: unix_signal(SignalKind::interrupt())?,
            terminate: unix_signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on the first SIGINT or SIGTERM.
    pub async fn recv(mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Interrupt,
            _ = self.terminate.recv() => Signal::Terminate,
        }
    }
}
