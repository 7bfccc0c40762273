//! `link-relay`: a network link's delay, in user space, for the drill's hosts (the kernel here
//! has no `netem`). Sits on a host in front of its servers: each `--forward LISTEN=TARGET`
//! accepts on the host's address and relays to the server on the host's loopback, holding
//! every chunk, both ways, for the link's delay (plus a uniform jitter) before passing it on.
//!
//! ```text
//! link-relay --forward 10.77.0.21:8080=127.0.0.1:18080 [--forward …]
//!            [--delay-us 250] [--jitter-us 50] [--control FILE]
//! ```
//!
//! `--control FILE`, when the file exists, holds `DELAY_US JITTER_US` and wins over the flags;
//! it is read again every 100 ms, so a drill turns a link slow (or back) by writing it. A chunk
//! keeps the delay it was read under, and chunks leave in the order they came (jitter never
//! reorders a byte stream).
//!
//! Threads, not async: tokio's timer ticks in whole milliseconds and a link's delay is a
//! fraction of one. Each connection takes four small threads (a reader and a writer each way)
//! and eight descriptors; the relay raises its open-file limit to the hard limit at start.
//!
//! A connection ends as TCP's do: an end of stream read on one side is passed on as a
//! half-close of the other, and a failed write shuts both sockets. A peer that goes silent for
//! good (a host partitioned and never healed) keeps its connection's threads until the relay
//! stops; the drill stops every relay when it ends.
#![allow(
    clippy::print_stderr,
    reason = "a relay that cannot bind says so on stderr and exits"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "no async runtime here: blocking threads are the design (see above); the \
              tests' ban on blocking calls guards runtime threads"
)]

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

/// Chunks read ahead of a blocked writer, per direction: back-pressure, as a link's buffers
/// give.
const CHUNKS_IN_FLIGHT: usize = 64;
use std::time::{Duration, Instant};

use rand::Rng as _;

/// The link's delay and jitter now, in µs (one word each, read per chunk).
#[derive(Default)]
struct Link {
    delay_us: AtomicU64,
    jitter_us: AtomicU64,
}

impl Link {
    /// When a chunk read now may leave: now + delay ± jitter.
    fn due(&self) -> Instant {
        let delay = self.delay_us.load(Ordering::Relaxed);
        let jitter = self.jitter_us.load(Ordering::Relaxed);
        let spread = if jitter == 0 {
            0
        } else {
            rand::rng().random_range(0..=2 * jitter)
        };
        Instant::now() + Duration::from_micros((delay + spread).saturating_sub(jitter))
    }
}

struct Args {
    forwards: Vec<(SocketAddr, SocketAddr)>,
    delay_us: u64,
    jitter_us: u64,
    control: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        forwards: Vec::new(),
        delay_us: 250,
        jitter_us: 0,
        control: None,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let value = raw.next().ok_or(format!("{flag} needs a value"))?;
        let micros = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--forward" => {
                let (listen, target) = value
                    .split_once('=')
                    .ok_or(format!("--forward {value}: LISTEN=TARGET"))?;
                let listen = listen
                    .parse()
                    .map_err(|e| format!("--forward {listen}: {e}"))?;
                let target = target
                    .parse()
                    .map_err(|e| format!("--forward {target}: {e}"))?;
                args.forwards.push((listen, target));
            }
            "--delay-us" => args.delay_us = micros()?,
            "--jitter-us" => args.jitter_us = micros()?,
            "--control" => args.control = Some(value.into()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.forwards.is_empty() {
        return Err("at least one --forward LISTEN=TARGET".into());
    }
    if args.jitter_us > args.delay_us {
        return Err("--jitter-us must not exceed --delay-us".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("link-relay: {problem}");
            return ExitCode::from(64);
        }
    };
    // A sleeping thread wakes up to its timer slack late (50 µs by default), on each side of
    // a round trip; threads inherit the slack of the thread that starts them.
    let _ = nix::sys::prctl::set_timerslack(1_000);
    // Eight descriptors per connection: the usual soft limit of 1,024 is 128 connections.
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    let link = Arc::new(Link::default());
    link.delay_us.store(args.delay_us, Ordering::Relaxed);
    link.jitter_us.store(args.jitter_us, Ordering::Relaxed);
    let mut listeners = Vec::new();
    for (listen, target) in &args.forwards {
        match TcpListener::bind(listen) {
            Ok(listener) => listeners.push((listener, *target)),
            Err(e) => {
                eprintln!("link-relay: cannot listen on {listen}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if let Some(control) = args.control {
        let link = Arc::clone(&link);
        let defaults = (args.delay_us, args.jitter_us);
        spawn(move || watch_control(&control, &link, defaults));
    }
    let mut accepting = Vec::new();
    for (listener, target) in listeners {
        let link = Arc::clone(&link);
        accepting.push(std::thread::spawn(move || accept(&listener, target, &link)));
    }
    for thread in accepting {
        let _ = thread.join();
    }
    ExitCode::SUCCESS
}

/// Small stacks: a relay may hold a few thousand threads.
fn spawn(work: impl FnOnce() + Send + 'static) {
    let _ = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(work);
}

fn watch_control(path: &std::path::Path, link: &Link, defaults: (u64, u64)) {
    loop {
        let (delay, jitter) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| {
                let mut words = text.split_whitespace().map(str::parse::<u64>);
                let delay = words.next()?.ok()?;
                let jitter = words.next().and_then(Result::ok).unwrap_or(0).min(delay);
                Some((delay, jitter))
            })
            .unwrap_or(defaults);
        link.delay_us.store(delay, Ordering::Relaxed);
        link.jitter_us.store(jitter, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn accept(listener: &TcpListener, target: SocketAddr, link: &Arc<Link>) {
    for client in listener.incoming() {
        let Ok(client) = client else {
            // Out of descriptors or memory: wait rather than spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let link = Arc::clone(link);
        spawn(move || connect(client, target, link));
    }
}

/// Connects to the server (within the link's delay, as a SYN would take) and starts both
/// directions. A server that does not answer closes the client's connection.
fn connect(client: TcpStream, target: SocketAddr, link: Arc<Link>) {
    sleep_until(link.due());
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client_2), Ok(server_2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up_link = Arc::clone(&link);
    spawn(move || pipe(client, server, &up_link));
    pipe(server_2, client_2, &link);
}

/// One direction: a reader stamps each chunk with its due time, a writer sends it then. The
/// end of `from` becomes a half-close of `to`; a failed write shuts both sockets, which ends
/// this direction's reader and the other direction too.
fn pipe(mut from: TcpStream, to: TcpStream, link: &Arc<Link>) {
    let (chunks, due) = mpsc::sync_channel::<(Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT);
    let (writer_to, writer_from) = (to.try_clone(), from.try_clone());
    spawn(move || {
        let (Ok(mut to), Ok(from)) = (writer_to, writer_from) else {
            return;
        };
        while let Ok((at, chunk)) = due.recv() {
            sleep_until(at);
            if to.write_all(&chunk).is_err() {
                // Wakes the reader (its read ends) and the other direction's threads.
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
        // The reader ended (end of stream or error): pass the end on.
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if chunks.send((link.due(), buffer[..n].to_vec())).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }
}

/// Sleeps until `at`. `thread::sleep` wakes within tens of µs of its target here, which is
/// what makes a sub-millisecond delay possible at all.
fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}
