//! The small drill (`drill --small`): two core hosts behind HAProxy (`deploy/haproxy.cfg`),
//! Redis, MariaDB, one proxy and the simulator, each on a host of its own (a network
//! namespace) with a delayed link; one core host is killed (`kill -9`) under the users' load.
//! No acknowledged like may be lost or counted twice, and once the balancer shows the host
//! `DOWN` no request fails. Needs root (CI runs as root), as the drill makes namespaces.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::processes::workspace_binary;

#[tokio::test(flavor = "multi_thread")]
async fn a_core_host_killed_behind_the_balancer_loses_no_like_and_is_routed_around() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the drill makes network namespaces: run the tests as root"
    );
    let dir = std::env::temp_dir().join(format!("maple-drill-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("run dir");
    let report_path = dir.join("report.json");
    // A prefix of this run's own: a drill tears down what another with its prefix left.
    let prefix = format!("mdt{}", std::process::id());
    let mut drill = Command::new(workspace_binary("drill"))
        .args(["--small", "--prefix", &prefix])
        .arg("--run-dir")
        .arg(dir.join("hosts"))
        .arg("--report")
        .arg(&report_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("drill starts");
    let stdout = drill.stdout.take().expect("stdout");
    let stderr = drill.stderr.take().expect("stderr");
    let read = |mut stream: Box<dyn tokio::io::AsyncRead + Unpin + Send>| async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut text).await;
        text
    };
    let (out, err) = (
        tokio::spawn(read(Box::new(stdout))),
        tokio::spawn(read(Box::new(stderr))),
    );
    let status = match tokio::time::timeout(Duration::from_secs(150), drill.wait()).await {
        Ok(status) => status.expect("wait"),
        Err(_) => {
            // SIGTERM: the drill tears its hosts down before it exits.
            crate::processes::send(&drill, "TERM", "drill");
            let _ = tokio::time::timeout(Duration::from_secs(20), drill.wait()).await;
            tear_down(&prefix).await;
            panic!("the drill did not finish within 150 s");
        }
    };
    tear_down(&prefix).await;
    let (out, err) = (out.await.expect("stdout"), err.await.expect("stderr"));
    assert!(status.success(), "drill: {status}\n{out}\n{err}");
    let summary = out
        .lines()
        .find(|line| line.starts_with("drill: "))
        .unwrap_or_else(|| panic!("no summary line:\n{out}"));
    assert!(
        summary.contains(", lost 0, double 0, "),
        "{summary}\n{out}\n{err}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).expect("report")).expect("json");
    let number = |field: &str| report[field].as_u64().unwrap_or_else(|| panic!("{field}"));
    assert!(number("likes_acknowledged") > 0, "{report}");
    assert_eq!(number("likes_counted"), number("likes_acknowledged"));
    assert_eq!(
        (number("lost"), number("double"), number("unresolved")),
        (0, 0, 0)
    );
    let windows = report["windows"].as_array().expect("windows");
    assert_eq!(windows.len(), 2, "{report}");
    for window in windows {
        assert!(window["requests"].as_u64() > Some(0), "{window}");
    }
    // The balancer took the dead host out, and from then on nothing failed.
    let balancer = &report["balancer"];
    assert!(
        balancer["down_after_ms"].is_u64(),
        "HAProxy never marked core-1 DOWN: {report}"
    );
    assert_eq!(balancer["failures_after_down"], 0, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whatever the drill left (it tears down itself; this covers a drill that was killed).
async fn tear_down(prefix: &str) {
    let _ = Command::new(workspace_binary("drill"))
        .args(["--tear-down", "--prefix", prefix])
        .status()
        .await;
}

/// `link-relay`, the drill's links, moves every byte both ways in order, passes a half-close
/// on, and closes a client whose server is not there.
#[tokio::test(flavor = "multi_thread")]
async fn link_relay_passes_every_byte_both_ways_and_passes_the_end_on() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    // An echo server that answers everything it reads, then closes once its client has.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = echo.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    let listen = crate::harness::free_port();
    let nowhere = crate::harness::free_port();
    let control = std::env::temp_dir().join(format!("maple-relay-{}", std::process::id()));
    let mut relay = Command::new(workspace_binary("link-relay"))
        .arg("--forward")
        .arg(format!("{listen}={target}"))
        .arg("--forward")
        .arg(format!("{nowhere}=127.0.0.1:1"))
        .args(["--delay-us", "300", "--jitter-us", "100", "--control"])
        .arg(&control)
        .kill_on_drop(true)
        .spawn()
        .expect("link-relay starts");
    let mut stream = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(listen).await {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stream = stream.expect("the relay listens");
    // 4 MiB of varied bytes, written while the answer is read, then the end of the stream.
    let sent: Vec<u8> = (0..4 * 1024 * 1024_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (mut read, mut write) = stream.split();
    let writing = async {
        for chunk in sent.chunks(10_000) {
            write.write_all(chunk).await.expect("write");
        }
        write.shutdown().await.expect("half-close");
    };
    let mut received = Vec::new();
    let reading = read.read_to_end(&mut received);
    let ((), got) = tokio::join!(writing, reading);
    got.expect("read to the end: the server's close came through");
    assert_eq!(received.len(), sent.len());
    assert!(
        received == sent,
        "the bytes came back changed or out of order"
    );

    // A forward whose server is not listening: the client's connection is closed.
    let mut orphan = tokio::net::TcpStream::connect(nowhere)
        .await
        .expect("the relay accepts");
    let mut byte = [0_u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), orphan.read(&mut byte))
        .await
        .expect("closed, not left hanging");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let _ = relay.kill().await;
    let _ = std::fs::remove_file(&control);
}
