//! Secrets never leak: the three binaries run as processes with a Nexon key, proxy client and
//! admin tokens and a core admin key; traffic goes through every path that could echo one
//! (success, 4xx, 401s, the admin config dump, both metrics pages, shutdown), with debug logs
//! on. Then every log line, response body and header is searched for each secret.

use std::time::Duration;

use maple_core::admin::{Scope, new_key};
use reqwest::StatusCode;

use crate::harness::{free_port, wait_until_healthy};
use crate::processes::{Process, temp_sqlite};

const NEXON_KEY: &str = "test_nexon_key_5ecret_a1b2c3d4e5f6";
const CLIENT_TOKEN: &str = "client-token-5ecret-0123456789abcdef";
const PROXY_ADMIN_TOKEN: &str = "proxy-admin-5ecret-fedcba9876543210";

/// A response as text: status, headers and body.
async fn record(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let mut text = format!("{status}\n");
    for (name, value) in response.headers() {
        text.push_str(&format!(
            "{name}: {}\n",
            value.to_str().unwrap_or("<binary>")
        ));
    }
    text.push_str(&response.text().await.unwrap_or_default());
    (status, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_in_logs_metrics_errors_or_the_config_dump() {
    let (sim, proxy, proxy_admin, core) = (free_port(), free_port(), free_port(), free_port());
    let (dir, database_url) = temp_sqlite();
    let log = dir.join("all.log");
    let (admin_key, stored) = new_key("auditor", Scope::ALL.into_iter().collect());
    let keys = dir.join("admin-keys.json");
    std::fs::write(&keys, serde_json::json!({ "keys": [stored] }).to_string()).expect("keys");

    let processes = [
        Process::spawn_logged(
            "nexon-sim",
            &[
                ("MAPLE_SIM_LISTEN", sim.to_string()),
                ("MAPLE_SIM_API_KEY", NEXON_KEY.to_owned()),
            ],
            &log,
            "debug",
        ),
        Process::spawn_logged(
            "maple-proxy",
            &[
                ("MAPLE_PROXY_LISTEN", proxy.to_string()),
                ("MAPLE_PROXY_ADMIN_LISTEN", proxy_admin.to_string()),
                ("MAPLE_PROXY_UPSTREAM", format!("http://{sim}")),
                ("MAPLE_PROXY_GRACE_PERIOD_S", "0".into()),
                ("NEXON_API_KEY", NEXON_KEY.to_owned()),
                ("MAPLE_PROXY_CLIENT_TOKENS", CLIENT_TOKEN.to_owned()),
                ("MAPLE_PROXY_ADMIN_TOKEN", PROXY_ADMIN_TOKEN.to_owned()),
            ],
            &log,
            "debug",
        ),
        Process::spawn_logged(
            "maple-core",
            &[
                ("MAPLE_CORE_LISTEN", core.to_string()),
                ("MAPLE_PROXY_URL", format!("http://{proxy}")),
                ("MAPLE_PROXY_TOKEN", CLIENT_TOKEN.to_owned()),
                ("DATABASE_URL", database_url),
                ("MAPLE_CORE_ADMIN_KEYS_FILE", keys.display().to_string()),
            ],
            &log,
            "debug",
        ),
    ];
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    wait_until_healthy(&http, &format!("http://{sim}/-/stats")).await;
    wait_until_healthy(&http, &format!("http://{proxy_admin}/health")).await;
    wait_until_healthy(&http, &format!("http://{core}/health/ready")).await;

    let core_url = |path: &str| format!("http://{core}{path}");
    let proxy_url = |path: &str| format!("http://{proxy}{path}");
    let mut seen = Vec::new();
    let mut expect = |(status, text): (StatusCode, String), wanted: StatusCode| {
        assert_eq!(status, wanted, "{text}");
        seen.push(text);
    };
    let get = |url: String| http.get(url).send();

    // Core: success, not found, bad input, likes, the admin API with and without its key.
    expect(
        record(
            get(core_url("/v1/characters/SecretFan/equipment"))
                .await
                .expect("core"),
        )
        .await,
        StatusCode::OK,
    );
    expect(
        record(get(core_url("/v1/characters/ghostly")).await.expect("core")).await,
        StatusCode::NOT_FOUND,
    );
    expect(
        record(get(core_url("/v1/characters/no!pe")).await.expect("core")).await,
        StatusCode::BAD_REQUEST,
    );
    expect(
        record(
            http.post(core_url("/v1/characters/SecretFan/likes"))
                .send()
                .await
                .expect("core"),
        )
        .await,
        StatusCode::ACCEPTED,
    );
    for path in ["/v1/admin/config", "/v1/admin/state", "/v1/admin/audit"] {
        expect(
            record(
                http.get(core_url(path))
                    .bearer_auth(&admin_key)
                    .send()
                    .await
                    .expect("core"),
            )
            .await,
            StatusCode::OK,
        );
    }
    expect(
        record(
            http.get(core_url("/v1/admin/config"))
                .bearer_auth(PROXY_ADMIN_TOKEN)
                .send()
                .await
                .expect("core"),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    );
    // The proxy: no token, a wrong one, the right one, purge without the admin token.
    let id = format!("{}?character_name=SecretFan", maple_common::nexon::PATH_ID);
    expect(
        record(get(proxy_url(&id)).await.expect("proxy")).await,
        StatusCode::UNAUTHORIZED,
    );
    expect(
        record(
            http.get(proxy_url(&id))
                .bearer_auth("wrong-token-0123456789abcdef")
                .send()
                .await
                .expect("proxy"),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    );
    expect(
        record(
            http.get(proxy_url(&id))
                .bearer_auth(CLIENT_TOKEN)
                .send()
                .await
                .expect("proxy"),
        )
        .await,
        StatusCode::OK,
    );
    expect(
        record(
            http.post(format!("http://{proxy_admin}/cache/purge?prefix=/"))
                .bearer_auth(CLIENT_TOKEN)
                .send()
                .await
                .expect("proxy admin"),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    );
    expect(
        record(
            get(format!("http://{proxy_admin}/metrics"))
                .await
                .expect("metrics"),
        )
        .await,
        StatusCode::OK,
    );
    expect(
        record(get(core_url("/metrics")).await.expect("metrics")).await,
        StatusCode::OK,
    );
    // The simulator refuses a wrong key (400, as Nexon does): its error must not echo ours.
    expect(
        record(
            http.get(format!("http://{sim}{id}"))
                .header(maple_common::nexon::API_KEY_HEADER, "not-the-key")
                .send()
                .await
                .expect("sim"),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );

    for process in processes.into_iter().rev() {
        let name = process.name;
        assert!(
            process.stop("TERM").await.success(),
            "{name} stopped cleanly"
        );
    }
    let logs = std::fs::read_to_string(&log).expect("log");
    // Lines inside a request carry its trace id (JSON: the span's fields).
    assert!(
        logs.lines()
            .any(|l| l.contains("\"trace_id\":\"") && l.contains("character not found")),
        "the not-found line carries the trace id:\n{logs}"
    );
    assert!(
        logs.lines().count() > 20,
        "debug logs were written:\n{logs}"
    );
    let config_dump = &seen[4];
    assert!(
        config_dump.contains("\"MAPLE_PROXY_TOKEN\":\"<set>\""),
        "{config_dump}"
    );
    for secret in [
        NEXON_KEY,
        CLIENT_TOKEN,
        PROXY_ADMIN_TOKEN,
        admin_key.as_str(),
    ] {
        assert!(!logs.contains(secret), "a secret is in the logs:\n{logs}");
        for text in &seen {
            assert!(!text.contains(secret), "a secret is in a response:\n{text}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
