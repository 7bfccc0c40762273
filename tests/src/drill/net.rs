//! The drill's network: one namespace per host, each with a veth into a switch (a bridge in a
//! namespace of its own), addresses 10.77.0.0/24. Nothing is added to the machine's own
//! namespace: the drill's traffic stays on these addresses. Built and torn down with `ip` from
//! iproute2 (and `tc` for a bandwidth cap).

use tokio::process::Command;

use anyhow::{Context as _, bail};

/// The switch's namespace is `{prefix}-net`; a host's is `{prefix}-{host}`.
#[derive(Debug, Clone)]
pub struct Network {
    prefix: String,
}

/// The subnet's first three octets.
pub const SUBNET: &str = "10.77.0";

impl Network {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn namespace(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    fn switch(&self) -> String {
        self.namespace("net")
    }

    /// The namespaces of an earlier run with this prefix (one that was killed before it could
    /// tear down).
    pub async fn leftovers(&self) -> Vec<String> {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output().await else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|ns| ns.starts_with(&format!("{}-", self.prefix)))
            .map(str::to_owned)
            .collect()
    }

    /// Kills every process in each namespace of this prefix and deletes the namespaces.
    pub async fn tear_down(&self) {
        for ns in self.leftovers().await {
            kill_all(&ns).await;
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .status()
                .await;
        }
    }

    /// The switch: a bridge in its own namespace.
    pub async fn create_switch(&self) -> anyhow::Result<()> {
        let ns = self.switch();
        ip(&["netns", "add", &ns]).await?;
        ip(&["-n", &ns, "link", "add", "br0", "type", "bridge"]).await?;
        ip(&["-n", &ns, "link", "set", "br0", "up"]).await?;
        Ok(())
    }

    /// A host: its namespace, loopback up, and `eth0` at `10.77.0.{octet}` plugged into the
    /// switch's port `p{octet}`.
    pub async fn add_host(&self, host: &str, octet: u8) -> anyhow::Result<()> {
        let ns = self.namespace(host);
        let port = format!("p{octet}");
        ip(&["netns", "add", &ns]).await?;
        ip(&["-n", &ns, "link", "set", "lo", "up"]).await?;
        ip(&[
            "-n",
            &self.switch(),
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ])
        .await?;
        ip(&["-n", &self.switch(), "link", "set", &port, "master", "br0"]).await?;
        ip(&["-n", &self.switch(), "link", "set", &port, "up"]).await?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{SUBNET}.{octet}/24"),
            "dev",
            "eth0",
        ])
        .await?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"]).await?;
        Ok(())
    }

    /// Unplugs (`false`) or plugs back (`true`) the host's switch port: a partition. The
    /// host's processes live on and see their peers go silent.
    pub async fn set_plugged(&self, octet: u8, plugged: bool) -> anyhow::Result<()> {
        let state = if plugged { "up" } else { "down" };
        ip(&[
            "-n",
            &self.switch(),
            "link",
            "set",
            &format!("p{octet}"),
            state,
        ])
        .await
    }

    /// Caps what the host sends at `mbit` (a token bucket on its `eth0`).
    pub async fn cap_bandwidth(&self, host: &str, mbit: u32) -> anyhow::Result<()> {
        let ns = self.namespace(host);
        let status = Command::new("ip")
            .args([
                "netns", "exec", &ns, "tc", "qdisc", "replace", "dev", "eth0",
            ])
            .args(["root", "tbf", "rate", &format!("{mbit}mbit")])
            .args(["burst", "64kb", "latency", "50ms"])
            .status()
            .await
            .context("tc")?;
        if !status.success() {
            bail!("tc tbf on {host} failed");
        }
        Ok(())
    }

    /// `kill -9` every process in the host's namespace: the host is gone.
    pub async fn kill_host(&self, host: &str) {
        kill_all(&self.namespace(host)).await;
    }
}

async fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .await
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

async fn kill_all(ns: &str) {
    let Ok(out) = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .await
    else {
        return;
    };
    // The drill itself lives in the client host's namespace: it is not one of its processes.
    let own = std::process::id().to_string();
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if pid == own {
            continue;
        }
        if let Ok(pid) = pid.parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
