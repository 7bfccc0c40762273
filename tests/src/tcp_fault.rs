//! A TCP fault proxy for tests: forwards connections to a target until told to partition, then
//! stops moving bytes both ways (connections stay open and silent, new ones are accepted and
//! held) — what a network partition looks like to the client — until healed.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy's handle; dropping it stops accepting.
#[derive(Debug)]
pub struct TcpFault {
    pub addr: SocketAddr,
    partitioned: Arc<watch::Sender<bool>>,
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
        let state = Arc::clone(&partitioned);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = state.subscribe();
                tokio::spawn(forward(client, target, state));
            }
        });
        Ok(Self {
            addr,
            partitioned,
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
}

impl Drop for TcpFault {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways in chunks; while partitioned, holds each chunk until healed.
async fn forward(
    mut client: TcpStream,
    target: SocketAddr,
    mut partitioned: watch::Receiver<bool>,
) {
    if partitioned.wait_for(|p| !*p).await.is_err() {
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let (mut up, mut down) = ([0_u8; 16 * 1024], [0_u8; 16 * 1024]);
    loop {
        tokio::select! {
            read = client_read.read(&mut up) => {
                let Ok(n @ 1..) = read else { return };
                if partitioned.wait_for(|p| !*p).await.is_err()
                    || upstream_write.write_all(&up[..n]).await.is_err()
                {
                    return;
                }
            }
            read = upstream_read.read(&mut down) => {
                let Ok(n @ 1..) = read else { return };
                if partitioned.wait_for(|p| !*p).await.is_err()
                    || client_write.write_all(&down[..n]).await.is_err()
                {
                    return;
                }
            }
        }
    }
}
