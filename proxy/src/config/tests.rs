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
    let config =
        ProxyConfig::from_env(&Env::from_pairs([(API_KEY.var, "test_abc")])).expect("valid");
    assert_eq!(config.upstream.to_string(), "https://open.api.nexon.com");
    assert!(config.upstream.tls);
    assert_eq!(config.upstream.port, 443);
    assert!(!format!("{config:?}").contains("test_abc"), "key redacted");
}

#[test]
fn nexon_without_a_key_is_refused() {
    let err = ProxyConfig::from_env(&Env::from_pairs([(UPSTREAM.var, NEXON_BASE_URL)]))
        .expect_err("needs a key");
    assert_eq!(err.0[0].var, API_KEY.var);
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
    let err =
        ProxyConfig::from_env(&Env::from_pairs([(UPSTREAM.var, "nope")])).expect_err("invalid");
    assert_eq!(err.0[0].var, UPSTREAM.var);
}

#[test]
fn breaker_settings_are_validated() {
    let config = ProxyConfig::from_env(&Env::from_pairs([
        (BREAKER_OPEN_MS.var, "1500"),
        (BREAKER_SLOW_CALL_MS.var, "800"),
    ]))
    .expect("valid");
    assert_eq!(config.breaker.open_for, Duration::from_millis(1500));
    assert_eq!(config.breaker.slow_call, Some(Duration::from_millis(800)));
    assert_eq!(config.breaker.window, 10);
    for (var, value) in [
        (BREAKER_WINDOW.var, "0"),
        (BREAKER_MIN_CALLS.var, "11"),
        (BREAKER_FAILURE_RATE.var, "101"),
        (BREAKER_PROBES.var, "0"),
        (BREAKER_OPEN_MS.var, "0"),
    ] {
        let err = ProxyConfig::from_env(&Env::from_pairs([(var, value)])).expect_err(var);
        assert_eq!(err.0[0].var, var);
    }
}

/// Every declared setting but the key itself and the file's own name has a file key, and
/// every file key is a declared setting.
#[test]
fn every_variable_is_a_file_key_and_every_key_a_variable() {
    let declared: Vec<&str> = vars::SECTIONS
        .iter()
        .flat_map(|(_, settings)| settings.iter().map(|setting| setting.var()))
        .collect();
    for var in &declared {
        if [API_KEY.var, CONFIG_FILE.var].contains(var) {
            continue;
        }
        assert!(
            FILE_KEYS.iter().any(|key| env_var(key) == *var),
            "{var} has no file key"
        );
    }
    for key in FILE_KEYS {
        assert!(
            declared.contains(&env_var(key).as_str()),
            "{key} is no declared setting"
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
        (CONFIG_FILE.var, path_str.as_str()),
        (BREAKER_MIN_CALLS.var, "4"),
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
    let err = ProxyConfig::load(&Env::from_pairs([(CONFIG_FILE.var, path_str.as_str())]))
        .expect_err("unknown key");
    assert!(err.0[0].reason.contains("breaker.windw"), "{err}");

    std::fs::write(&path, "breaker:\n  window: 0\n").expect("write");
    let err = ProxyConfig::load(&Env::from_pairs([(CONFIG_FILE.var, path_str.as_str())]))
        .expect_err("out of range");
    assert!(err.0[0].var.starts_with("breaker.window in "), "{err}");

    // A bad value in the file and two in the environment: all three at once.
    std::fs::write(&path, "breaker:\n  window: 0\n").expect("write");
    let err = ProxyConfig::load(&Env::from_pairs([
        (CONFIG_FILE.var, path_str.as_str()),
        (BREAKER_PROBES.var, "0"),
        (LISTEN.var, "nowhere"),
    ]))
    .expect_err("three bad values");
    let mut vars: Vec<&str> = err.0.iter().map(|e| e.var.as_str()).collect();
    vars.sort_unstable();
    assert_eq!(vars.len(), 3, "{err}");
    assert!(
        vars.contains(&BREAKER_PROBES.var) && vars.contains(&LISTEN.var),
        "{err}"
    );
    assert!(
        vars.iter().any(|v| v.starts_with("breaker.window in ")),
        "{err}"
    );

    std::fs::write(&path, "listen: [unclosed\n").expect("write");
    let err = ProxyConfig::load(&Env::from_pairs([(CONFIG_FILE.var, path_str.as_str())]))
        .expect_err("bad yaml");
    assert_eq!(err.0[0].var, CONFIG_FILE.var);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_key_can_come_from_a_file() {
    let dir = std::env::temp_dir().join(format!("maple-proxy-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("nexon.key");
    std::fs::write(&path, "test_0123456789abcdef\n").expect("write");
    let path_str = path.display().to_string();
    let config = ProxyConfig::from_env(&Env::from_pairs([(API_KEY_FILE.var, path_str.as_str())]))
        .expect("valid");
    assert_eq!(config.api_key.expose(), "test_0123456789abcdef", "trimmed");
    assert!(config.upstream.is_nexon(), "a real key means the real API");
    std::fs::write(&path, "\n").expect("write");
    let err = ProxyConfig::from_env(&Env::from_pairs([(API_KEY_FILE.var, path_str.as_str())]))
        .expect_err("empty");
    assert_eq!(err.0[0].var, API_KEY_FILE.var);
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
    let err = ProxyConfig::from_env(&Env::from_pairs([(CLIENT_TOKENS.var, "short")]))
        .expect_err("too short");
    assert!(!err.to_string().contains("short\""), "{err}");
}

#[test]
fn zero_timeouts_are_rejected() {
    let err =
        ProxyConfig::from_env(&Env::from_pairs([(READ_TIMEOUT_MS.var, "0")])).expect_err("invalid");
    assert_eq!(err.0[0].var, READ_TIMEOUT_MS.var);
}

/// The breaker's defaults live in `maple-common` (core's breakers use them too); the proxy's
/// declared defaults are the same.
#[test]
fn the_declared_breaker_defaults_are_the_breakers() {
    let defaults = maple_common::breaker::BreakerConfig::default();
    assert_eq!(BREAKER_WINDOW.default_value(), defaults.window);
    assert_eq!(BREAKER_MIN_CALLS.default_value(), defaults.minimum_calls);
    assert_eq!(
        BREAKER_FAILURE_RATE.default_value(),
        defaults.failure_rate_pct
    );
    assert_eq!(
        Duration::from_millis(BREAKER_OPEN_MS.default_value()),
        defaults.open_for
    );
    assert_eq!(BREAKER_PROBES.default_value(), defaults.probes);
    assert_eq!(defaults.slow_call, None);
}

/// The doc's tables of these settings are rendered from the declarations
/// (`MAPLE_BLESS=1 cargo test --workspace --lib` rewrites them).
#[test]
fn the_configuration_doc_shows_the_declared_settings() {
    maple_common::setting::check_doc(env!("CARGO_MANIFEST_DIR"), vars::SECTIONS);
}
