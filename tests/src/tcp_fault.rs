//! A TCP fault proxy for tests: forwards connections to a target until told to partition, then
//! stops moving bytes both ways (connections stay open and silent, new ones are accepted and
//! held) — what a network partition looks like to the client — until healed; or adds a
//! latency to what the client sends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy's handle; dropping it stops accepting.
#[derive(Debug)]
pub struct TcpFault {
    pub addr: SocketAddr,
    partitioned: Arc<watch::Sender<bool>>,
    latency: Arc<watch::Sender<Duration>>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpFault {
    /// Listens on a free loopback port and forwards to `target`.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let partitioned = Arc::new(watch::Sender::new(false));
        let latency = Arc::new(watch::Sender::new(Duration::ZERO));
        let (state, delay) = (Arc::clone(&partitioned), Arc::clone(&latency));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = Fault {
                    partitioned: state.subscribe(),
                    latency: delay.subscribe(),
                };
                tokio::spawn(forward(client, target, fault));
            }
        });
        Ok(Self {
            addr,
            partitioned,
            latency,
            task,
        })
    }

    /// From now on no byte passes, either way.
    pub fn partition(&self) {
        self.partitioned.send_replace(true);
    }

    pub fn heal(&self) {
        self.partitioned.send_replace(false);
    }

    /// From now on each chunk sent towards the target waits `latency` first (zero: none).
    pub fn set_latency(&self, latency: Duration) {
        self.latency.send_replace(latency);
    }
}

/// What one connection watches.
struct Fault {
    partitioned: watch::Receiver<bool>,
    latency: watch::Receiver<Duration>,
}

impl Drop for TcpFault {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways in chunks; while partitioned, holds each chunk until healed. Each chunk
/// towards the target waits the latency set at the time it was read.
async fn forward(mut client: TcpStream, target: SocketAddr, fault: Fault) {
    let mut partitioned = fault.partitioned.clone();
    if partitioned.wait_for(|p| !*p).await.is_err() {
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    // Towards the target: each chunk is stamped when read and written once its latency has
    // passed, so chunks are delayed, not queued behind each other's delays.
    let (chunks, mut due) =
        tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let read_up = async {
        let mut chunk = [0_u8; 16 * 1024];
        loop {
            let Ok(n @ 1..) = client_read.read(&mut chunk).await else {
                return;
            };
            let at = tokio::time::Instant::now() + *fault.latency.borrow();
            if chunks.send((at, chunk[..n].to_vec())).is_err() {
                return;
            }
        }
    };
    let write_up = async {
        let mut partitioned = fault.partitioned.clone();
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if partitioned.wait_for(|p| !*p).await.is_err()
                || upstream_write.write_all(&chunk).await.is_err()
            {
                return;
            }
        }
    };
    let up = async {
        tokio::select! {
            () = read_up => {}
            () = write_up => {}
        }
    };
    let down = async {
        let mut partitioned = fault.partitioned.clone();
        let mut chunk = [0_u8; 16 * 1024];
        loop {
            let Ok(n @ 1..) = upstream_read.read(&mut chunk).await else {
                return;
            };
            if partitioned.wait_for(|p| !*p).await.is_err()
                || client_write.write_all(&chunk[..n]).await.is_err()
            {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
