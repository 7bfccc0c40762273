//! `compose.yaml` checked against the code, since the machines here have no Docker engine to
//! run it: the services the design names are there; every build points at a Dockerfile that
//! exists; every health-gated dependency has a health check; every mounted file exists; the
//! core and proxy environments are accepted by the binaries' own configuration parsers and
//! documented in docs/configuration.md; every address (core → proxy, core → MySQL/Redis, Prometheus →
//! targets) names a service and the port it listens on; the proxy is published only with
//! client tokens; and each core's backup directory is a named volume of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use maple_common::config::Env;
use serde_yaml::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut value: Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    value.apply_merge().expect("YAML merge keys resolve");
    value
}

/// `${VAR:-default}` → default (what compose uses when VAR is unset).
fn with_defaults(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let inner = &rest[start + 2..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, default)| default));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => s.clone(),
                        other => serde_yaml::to_string(other)
                            .expect("scalar")
                            .trim()
                            .to_owned(),
                    };
                    (k.as_str().expect("key").to_owned(), with_defaults(&value))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `host:port` of a URL or socket address.
fn host_port(address: &str) -> (String, u16) {
    let without_scheme = address.split_once("://").map_or(address, |(_, rest)| rest);
    let authority = without_scheme.split('/').next().expect("authority");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = authority.rsplit_once(':').expect("port");
    (host.to_owned(), port.parse().expect("numeric port"))
}

fn listen_port(service: &Value, var: &str) -> u16 {
    host_port(&environment(service)[var]).1
}

#[test]
fn compose_matches_the_code_and_the_repository() {
    let root = repo();
    let compose = load(&root.join("compose.yaml"));
    let services = compose["services"].as_mapping().expect("services");
    let service = |name: &str| -> &Value {
        services
            .get(Value::from(name))
            .unwrap_or_else(|| panic!("service {name} missing"))
    };
    for name in [
        "mysql",
        "redis-primary",
        "redis-replica",
        "sentinel-1",
        "sentinel-2",
        "sentinel-3",
        "nexon-sim",
        "proxy",
        "core-1",
        "core-2",
        "lb",
        "prometheus",
        "grafana",
        "otel-collector",
    ] {
        service(name);
    }
    let settings =
        std::fs::read_to_string(root.join("docs/configuration.md")).expect("configuration doc");

    for (name, definition) in services {
        let name = name.as_str().expect("name");
        if let Some(dockerfile) = definition["build"]["dockerfile"].as_str() {
            assert!(
                root.join(dockerfile).is_file(),
                "{name}: {dockerfile} missing"
            );
            let text = std::fs::read_to_string(root.join(dockerfile)).expect("dockerfile");
            assert!(text.contains(" AS build"), "{name}: multi-stage build");
            assert!(text.contains("USER "), "{name}: runs unprivileged");
        }
        if let Some(depends) = definition["depends_on"].as_mapping() {
            for (target, condition) in depends {
                let target = target.as_str().expect("service");
                assert!(
                    services.contains_key(target),
                    "{name} depends on unknown {target}"
                );
                if condition["condition"].as_str() == Some("service_healthy") {
                    assert!(
                        !service(target)["healthcheck"].is_null(),
                        "{name} waits for {target} to be healthy, which has no health check"
                    );
                }
            }
        }
        for volume in definition["volumes"].as_sequence().into_iter().flatten() {
            let host = volume
                .as_str()
                .expect("volume")
                .split(':')
                .next()
                .expect("host");
            if host.starts_with('.') {
                assert!(root.join(host).exists(), "{name}: {host} does not exist");
            }
        }
    }

    // The binaries accept their environments, and every variable is documented.
    for name in ["core-1", "core-2", "proxy", "nexon-sim"] {
        for var in environment(service(name)).keys() {
            assert!(
                settings.contains(&format!("`{var}`"))
                    || settings.contains(&format!("`{var}` /"))
                    || var == "NEXON_API_KEY",
                "{name}: {var} is not in docs/configuration.md"
            );
        }
    }
    let core_env = environment(service("core-1"));
    maple_core::CoreConfig::from_env(&Env::from_pairs(core_env.clone()))
        .unwrap_or_else(|e| panic!("core-1's environment is refused: {e}"));
    let proxy_env = environment(service("proxy"));
    maple_proxy::ProxyConfig::from_env(&Env::from_pairs(proxy_env.clone()))
        .unwrap_or_else(|e| panic!("the proxy's environment is refused: {e}"));

    // Addresses point at services and the ports they listen on.
    let proxy_port = listen_port(service("proxy"), "MAPLE_PROXY_LISTEN");
    assert_eq!(
        host_port(&core_env["MAPLE_PROXY_URL"]),
        ("proxy".into(), proxy_port)
    );
    assert_eq!(host_port(&core_env["DATABASE_URL"]).0, "mysql");
    let sentinel_port = 26379;
    for sentinel in core_env["REDIS_SENTINELS"].split(',') {
        let (host, port) = host_port(sentinel);
        assert!(
            services.contains_key(host.as_str()),
            "sentinel {host} is no service"
        );
        assert_eq!(port, sentinel_port, "{sentinel}");
        let command = serde_yaml::to_string(&service(&host)["command"]).expect("command");
        assert!(command.contains("port 26379"), "{host}: {command}");
        assert!(
            command.contains(&format!(
                "monitor {} redis-primary 6379",
                core_env["REDIS_SENTINEL_MASTER"]
            )),
            "{host} watches the master core asks for: {command}"
        );
    }
    assert_eq!(
        host_port(&proxy_env["MAPLE_PROXY_UPSTREAM"]),
        (
            "nexon-sim".into(),
            listen_port(service("nexon-sim"), "MAPLE_SIM_LISTEN")
        )
    );
    // The proxy spends the API key for whoever reaches it: published only when it requires
    // client tokens, and then every core presents one (a client without a token can neither
    // call it nor, with `no-cache`, skip its cache).
    let proxy_config = maple_proxy::ProxyConfig::from_env(&Env::from_pairs(proxy_env.clone()))
        .expect("proxy config");
    let published = service("proxy")["ports"]
        .as_sequence()
        .is_some_and(|ports| !ports.is_empty());
    assert!(
        !published || !proxy_config.client_tokens.is_empty(),
        "the proxy is published without client tokens: anyone reaching the host spends the key"
    );
    if !proxy_config.client_tokens.is_empty() {
        for name in ["core-1", "core-2"] {
            let token = environment(service(name))
                .get("MAPLE_PROXY_TOKEN")
                .cloned()
                .unwrap_or_default();
            assert!(
                proxy_config
                    .client_tokens
                    .iter()
                    .any(|t| t.matches(token.as_bytes())),
                "{name} presents no token the proxy accepts"
            );
        }
    }

    // The load balancer runs deploy/haproxy.cfg: the file tests/tests/e2e/balancer.rs runs and
    // the drill's balancer host runs (`maple_tests::drill::HAPROXY_CFG`), so the three are one
    // file. It sends to each core's listen port, and a draining core leaves its rotation
    // before it stops accepting: the drain delay outlasts the checks that take it out.
    let lb = service("lb");
    let drill_config = maple_tests::drill::HAPROXY_CFG;
    let mounted = lb["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|v| v == format!("./{drill_config}:/usr/local/etc/haproxy/haproxy.cfg:ro"));
    assert!(
        mounted,
        "lb: {drill_config} (the drill's) is not its configuration"
    );
    let lb_env = environment(lb);
    let haproxy = std::fs::read_to_string(root.join(drill_config)).expect("haproxy.cfg");
    for (i, name) in ["core-1", "core-2"].into_iter().enumerate() {
        let var = format!("MAPLE_CORE_{}", i + 1);
        assert!(
            haproxy.contains(&format!("\"${{{var}}}\" check")),
            "{var} unused"
        );
        assert_eq!(
            host_port(&lb_env[&var]),
            (
                name.to_owned(),
                listen_port(service(name), "MAPLE_CORE_LISTEN")
            )
        );
    }
    for var in ["MAPLE_LB_LISTEN", "MAPLE_LB_ADMIN_LISTEN"] {
        assert!(
            haproxy.contains(&format!("bind \"${{{var}}}\"")),
            "{var} unused"
        );
        assert!(lb_env.contains_key(var), "lb: {var} unset");
    }
    let check = haproxy
        .lines()
        .find_map(|line| line.trim().strip_prefix("default-server "))
        .expect("default-server line");
    let setting = |word: &str| -> u64 {
        let mut words = check.split_whitespace();
        words.find(|w| *w == word);
        let value = words.next().expect("value");
        value.trim_end_matches('s').parse().expect("number")
    };
    let takes_out_ms = setting("inter") * 1000 * setting("fall");
    let core_config =
        maple_core::CoreConfig::from_env(&Env::from_pairs(core_env.clone())).expect("core config");
    assert!(
        core_config.drain_delay.as_millis() > u128::from(takes_out_ms),
        "a draining core stops accepting before the load balancer takes it out"
    );

    // Each core's like backups survive its container: the backup directory is a named
    // volume of its own, and the image creates that directory writable for its user.
    let named: Vec<&str> = compose["volumes"]
        .as_mapping()
        .map(|m| m.keys().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let dockerfile = std::fs::read_to_string(root.join("docker/core.Dockerfile")).expect("core");
    let mut backup_volumes = Vec::new();
    for name in ["core-1", "core-2"] {
        let dir = environment(service(name))["MAPLE_CORE_BACKUP_DIR"].clone();
        let volume = service(name)["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|v| v.split_once(':').filter(|(_, inside)| *inside == dir))
            .map(|(source, _)| source.to_owned())
            .unwrap_or_else(|| panic!("{name}: {dir} is on no volume"));
        assert!(
            named.contains(&volume.as_str()),
            "{name}: {volume} is not a named volume"
        );
        assert!(
            dockerfile.contains(&format!("install -d -o maple -m 0750 {dir}")),
            "the core image does not create {dir} for its user"
        );
        backup_volumes.push(volume);
    }
    assert_ne!(
        backup_volumes[0], backup_volumes[1],
        "each core has its own backup volume"
    );

    // Clients come in through the load balancer alone: the cores publish nothing, and the
    // balancer publishes its listen port.
    for name in ["core-1", "core-2"] {
        assert!(
            service(name)["ports"].is_null(),
            "{name} is published: clients would bypass the load balancer"
        );
    }
    let lb_port = host_port(&lb_env["MAPLE_LB_LISTEN"]).1;
    let published = service("lb")["ports"][0].as_str().expect("port mapping");
    assert!(
        published.ends_with(&format!(":{lb_port}")),
        "lb publishes {published}, listens on {lb_port}"
    );
    let core_port = listen_port(service("core-1"), "MAPLE_CORE_LISTEN");
    let prometheus = load(&root.join("observability/prometheus.yml"));
    let admin_port = listen_port(service("proxy"), "MAPLE_PROXY_ADMIN_LISTEN");
    for job in prometheus["scrape_configs"].as_sequence().expect("jobs") {
        for target in job["static_configs"][0]["targets"]
            .as_sequence()
            .expect("targets")
        {
            let (host, port) = host_port(target.as_str().expect("target"));
            assert!(
                services.contains_key(host.as_str()),
                "scrape target {host} is no service"
            );
            let expected = if host == "proxy" {
                admin_port
            } else {
                core_port
            };
            assert_eq!(port, expected, "scrape target {host}:{port}");
        }
    }
    load(&root.join("observability/otel-collector.yaml"));
}
