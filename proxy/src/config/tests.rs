use super::*;

#[test]
fn defaults_target_the_simulator_without_a_key() {
    let config = ProxyConfig::from_env(&Env::from_pairs::<_, &str, &str>([])).expect("valid");
    assert_eq!(config.upstream.to_string(), SIMULATOR_UPSTREAM);
    assert_eq!(config.api_key.expose(), SIMULATOR_API_KEY);
    assert_eq!(config.listen.port(), 8081);
    assert_eq!(config.admin_listen.port(), 9081);
    assert_eq!(config.read_timeout, Duration::from_secs(3));
}

#[test]
fn a_key_switches_to_nexon() {
    let config = ProxyConfig::from_env(&Env::from_pairs([(API_KEY, "test_abc")])).expect("valid");
    assert_eq!(config.upstream.to_string(), "https://open.api.nexon.com");
    assert!(config.upstream.tls);
    assert_eq!(config.upstream.port, 443);
    assert!(!format!("{config:?}").contains("test_abc"), "key redacted");
}

#[test]
fn nexon_without_a_key_is_refused() {
    let err = ProxyConfig::from_env(&Env::from_pairs([(UPSTREAM, NEXON_BASE_URL)]))
        .expect_err("needs a key");
    assert_eq!(err.0[0].var, API_KEY);
}

#[test]
fn upstream_urls_are_validated() {
    assert_eq!(
        Upstream::parse("http://127.0.0.1:8090").expect("ok"),
        Upstream {
            tls: false,
            host: "127.0.0.1".into(),
            port: 8090
        }
    );
    assert_eq!(
        Upstream::parse("https://[::1]:9443/").expect("ok").host,
        "::1"
    );
    for bad in [
        "ftp://x",
        "http://",
        "http://host/path",
        "http://host:port",
        "http://u@host",
        "http://host:0",
    ] {
        assert!(Upstream::parse(bad).is_err(), "{bad}");
    }
    let err = ProxyConfig::from_env(&Env::from_pairs([(UPSTREAM, "nope")])).expect_err("invalid");
    assert_eq!(err.0[0].var, UPSTREAM);
}

#[test]
fn breaker_settings_are_validated() {
    let config = ProxyConfig::from_env(&Env::from_pairs([
        (BREAKER_OPEN_MS, "1500"),
        (BREAKER_SLOW_CALL_MS, "800"),
    ]))
    .expect("valid");
    assert_eq!(config.breaker.open_for, Duration::from_millis(1500));
    assert_eq!(config.breaker.slow_call, Some(Duration::from_millis(800)));
    assert_eq!(config.breaker.window, 10);
    for (var, value) in [
        (BREAKER_WINDOW, "0"),
        (BREAKER_MIN_CALLS, "11"),
        (BREAKER_FAILURE_RATE, "101"),
        (BREAKER_PROBES, "0"),
        (BREAKER_OPEN_MS, "0"),
    ] {
        let err = ProxyConfig::from_env(&Env::from_pairs([(var, value)])).expect_err(var);
        assert_eq!(err.0[0].var, var);
    }
}

#[test]
fn every_variable_is_a_file_key() {
    for var in [
        LISTEN,
        ADMIN_LISTEN,
        UPSTREAM,
        CONNECT_TIMEOUT_MS,
        READ_TIMEOUT_MS,
        THREADS,
        GRACE_PERIOD_S,
        BREAKER_WINDOW,
        BREAKER_MIN_CALLS,
        BREAKER_FAILURE_RATE,
        BREAKER_OPEN_MS,
        BREAKER_PROBES,
        BREAKER_SLOW_CALL_MS,
        API_KEY_FILE,
        CLIENT_TOKENS,
        ADMIN_TOKEN,
        MAX_BODY_BYTES,
        CACHE_MAX_BYTES,
        CACHE_STALE_S,
        CACHE_REVALIDATE_S,
        CACHE_NOT_FOUND_S,
        RETRY_MAX_ATTEMPTS,
        RETRY_BASE_MS,
        RETRY_MAX_BACKOFF_MS,
        RETRY_BUDGET_PCT,
        RETRY_MIN_PER_S,
        RATELIMIT_RPS,
        RATELIMIT_BURST,
        RATELIMIT_MAX_WAIT_MS,
        BULKHEAD_MAX_CONCURRENT,
        BULKHEAD_MAX_WAIT_MS,
        ALERT_WEBHOOK_URL,
        ALERT_DEDUPE_S,
        ALERT_PER_MINUTE,
    ] {
        assert!(
            FILE_KEYS.iter().any(|key| env_var(key) == var),
            "{var} has no file key"
        );
    }
}

#[test]
fn the_file_sits_under_the_environment() {
    let dir = std::env::temp_dir().join(format!("maple-proxy-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("proxy.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:18081\nbreaker:\n  window: 20\n  min_calls: 8\nroutes:\n  id:\n    ttl_s: 60\n    deadline_ms: 1500\nclient_tokens: [aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb]\n",
    )
    .expect("write");
    let path_str = path.display().to_string();
    let config = ProxyConfig::load(&Env::from_pairs([
        (CONFIG_FILE, path_str.as_str()),
        (BREAKER_MIN_CALLS, "4"),
    ]))
    .expect("valid");
    assert_eq!(config.listen.port(), 18081);
    assert_eq!(config.breaker.window, 20);
    assert_eq!(config.breaker.minimum_calls, 4, "the variable wins");
    assert_eq!(config.routes.id.ttl, Duration::from_secs(60));
    assert_eq!(config.routes.id.deadline, Duration::from_millis(1500));
    assert_eq!(config.routes.basic, RouteTable::default().basic);
    assert_eq!(config.client_tokens.len(), 2);
    assert!(config.client_tokens[1].matches(b"bbbbbbbbbbbbbbbb"));

    std::fs::write(&path, "breaker:\n  windw: 3\n").expect("write");
    let err = ProxyConfig::load(&Env::from_pairs([(CONFIG_FILE, path_str.as_str())]))
        .expect_err("unknown key");
    assert!(err.0[0].reason.contains("breaker.windw"), "{err}");

    std::fs::write(&path, "breaker:\n  window: 0\n").expect("write");
    let err = ProxyConfig::load(&Env::from_pairs([(CONFIG_FILE, path_str.as_str())]))
        .expect_err("out of range");
    assert!(err.0[0].var.starts_with("breaker.window in "), "{err}");

    // A bad value in the file and two in the environment: all three at once.
    std::fs::write(&path, "breaker:\n  window: 0\n").expect("write");
    let err = ProxyConfig::load(&Env::from_pairs([
        (CONFIG_FILE, path_str.as_str()),
        (BREAKER_PROBES, "0"),
        (LISTEN, "nowhere"),
    ]))
    .expect_err("three bad values");
    let mut vars: Vec<&str> = err.0.iter().map(|e| e.var.as_str()).collect();
    vars.sort_unstable();
    assert_eq!(vars.len(), 3, "{err}");
    assert!(
        vars.contains(&BREAKER_PROBES) && vars.contains(&LISTEN),
        "{err}"
    );
    assert!(
        vars.iter().any(|v| v.starts_with("breaker.window in ")),
        "{err}"
    );

    std::fs::write(&path, "listen: [unclosed\n").expect("write");
    let err = ProxyConfig::load(&Env::from_pairs([(CONFIG_FILE, path_str.as_str())]))
        .expect_err("bad yaml");
    assert_eq!(err.0[0].var, CONFIG_FILE);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_key_can_come_from_a_file() {
    let dir = std::env::temp_dir().join(format!("maple-proxy-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("nexon.key");
    std::fs::write(&path, "test_0123456789abcdef\n").expect("write");
    let path_str = path.display().to_string();
    let config = ProxyConfig::from_env(&Env::from_pairs([(API_KEY_FILE, path_str.as_str())]))
        .expect("valid");
    assert_eq!(config.api_key.expose(), "test_0123456789abcdef", "trimmed");
    assert!(config.upstream.is_nexon(), "a real key means the real API");
    std::fs::write(&path, "\n").expect("write");
    let err = ProxyConfig::from_env(&Env::from_pairs([(API_KEY_FILE, path_str.as_str())]))
        .expect_err("empty");
    assert_eq!(err.0[0].var, API_KEY_FILE);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn secrets_compare_exactly() {
    let secret = Secret::new("0123456789abcdef".into()).expect("valid");
    assert!(secret.matches(b"0123456789abcdef"));
    assert!(!secret.matches(b"0123456789abcdeF"));
    assert!(!secret.matches(b"0123456789abcde"));
    assert!(!secret.matches(b"0123456789abcdef0"));
    assert!(!secret.matches(b""));
    let err =
        ProxyConfig::from_env(&Env::from_pairs([(CLIENT_TOKENS, "short")])).expect_err("too short");
    assert!(!err.to_string().contains("short\""), "{err}");
}

#[test]
fn zero_timeouts_are_rejected() {
    let err =
        ProxyConfig::from_env(&Env::from_pairs([(READ_TIMEOUT_MS, "0")])).expect_err("invalid");
    assert_eq!(err.0[0].var, READ_TIMEOUT_MS);
}
