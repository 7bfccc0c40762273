//! The admin API: keys (hashed, scoped, expiring, rotated without a restart), every request
//! audited, and what it does: state, purge, forced sync, backup files, the redacted config.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use maple_core::admin::{Scope, StoredKey, new_key};
use maple_core::likes::{BackupDir, Batch};
use maple_tests::tcp_fault::TcpFault;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Db, Options, Stack, fresh_name, metric_value, redis_addr, redis_url};

fn keys_file(dir: &Path, keys: &[StoredKey]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let path = dir.join("admin-keys.json");
    // Written aside and renamed, as an operator's tooling would.
    let temporary = dir.join("admin-keys.json.tmp");
    std::fs::write(&temporary, serde_json::json!({ "keys": keys }).to_string()).expect("write");
    std::fs::rename(&temporary, &path).expect("rename");
    path
}

fn key(name: &str, scopes: &[Scope]) -> (String, StoredKey) {
    new_key(name, scopes.iter().copied().collect::<BTreeSet<_>>())
}

async fn call(
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request = stack.http.request(method, stack.core(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("core answers");
    let (status, headers) = (response.status(), response.headers().clone());
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

fn admin_dir() -> PathBuf {
    std::env::temp_dir().join(format!("maple-admin-{}", fresh_name("d")))
}

/// An admin action runs to its end and is audited even when the client hangs up first: the
/// purge below waits on a partitioned Redis (up to its 1.5 s timeout) while the client gives
/// up after 200 ms. The hang-up used to drop the request's future with the action half done
/// and no audit row written.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_action_is_audited_when_the_client_hangs_up() {
    let dir = admin_dir();
    let (purger, stored) = key("purger", &[Scope::CachePurge, Scope::Read]);
    let file = keys_file(&dir, &[stored]);
    let redis = TcpFault::start(redis_addr()).await.expect("fault proxy");
    let stack = Stack::start_with(Options {
        core_env: vec![
            ("MAPLE_CORE_ADMIN_KEYS_FILE", file.display().to_string()),
            ("REDIS_URL", format!("redis://{}", redis.addr)),
            ("MAPLE_CORE_REDIS_TIMEOUT_MS", "1500".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let name = fresh_name("hu");
    let response = stack.get(&format!("/v1/characters/{name}/equipment")).await;
    assert_eq!(response.status(), StatusCode::OK);
    redis.partition();
    let hung_up = stack
        .http
        .post(stack.core(&format!("/v1/admin/characters/{name}/purge")))
        .bearer_auth(&purger)
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(
        hung_up.as_ref().is_err_and(reqwest::Error::is_timeout),
        "the client gave up first: {hung_up:?}"
    );
    redis.heal();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let entry = loop {
        let (status, body, _) = call(
            &stack,
            reqwest::Method::GET,
            "/v1/admin/audit?limit=500",
            Some(&purger),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let purge = body["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["action"] == "cache.purge")
            .cloned();
        if let Some(entry) = purge {
            break entry;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audit row for the purge whose client hung up: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(entry["target"], name.as_str(), "{entry}");
    assert_eq!(entry["key_name"], "purger", "{entry}");
    assert_eq!(entry["status"], 200, "the purge ran to its end: {entry}");
    // And it did purge: the next read goes past L1.
    let response = stack.get(&format!("/v1/characters/{name}/equipment")).await;
    assert_ne!(response.headers()["x-maple-source"], "l1");
    stack.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Refused attempts are bounded in the audit log (anyone can make them): 300 refusals with a
/// bound of 50 leave 50 to 55 refused rows (the bound plus a tenth), every admitted attempt
/// kept and the pruned count on `/metrics`. Every refusal used to stay. Both dialects.
#[tokio::test(flavor = "multi_thread")]
async fn refused_attempts_are_pruned_beyond_their_bound() {
    for db in [Db::Sqlite, Db::MySql] {
        let dir = admin_dir();
        let (reader, reader_stored) = key("reader", &[Scope::Read]);
        let file = keys_file(&dir, &[reader_stored]);
        let stack = Stack::start_with(Options {
            db,
            core_env: vec![
                ("MAPLE_CORE_ADMIN_KEYS_FILE", file.display().to_string()),
                ("MAPLE_CORE_AUDIT_REFUSED_KEEP", "50".to_owned()),
            ],
            ..Options::default()
        })
        .await;
        for i in 0..300 {
            // No key (401), or a key without the scope (403).
            let token = (i % 3 == 0).then_some(reader.as_str());
            let path = format!("/v1/admin/characters/refused{i}/purge");
            let (status, body, _) = call(&stack, reqwest::Method::POST, &path, token).await;
            assert!(
                matches!(status.as_u16(), 401 | 403),
                "{db:?} {i}: {status} {body}"
            );
            if i % 60 == 0 {
                let (status, _, _) = call(
                    &stack,
                    reqwest::Method::GET,
                    "/v1/admin/state",
                    Some(&reader),
                )
                .await;
                assert_eq!(status, StatusCode::OK);
            }
        }
        let (status, body, _) = call(
            &stack,
            reqwest::Method::GET,
            "/v1/admin/audit?limit=500",
            Some(&reader),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let entries = body["entries"].as_array().expect("entries");
        let refused = entries
            .iter()
            .filter(|e| matches!(e["status"].as_u64(), Some(401 | 403)))
            .count();
        let admitted = entries
            .iter()
            .filter(|e| e["action"] == "state.read")
            .count();
        assert!(
            (50..=55).contains(&refused),
            "{db:?}: {refused} refused rows kept"
        );
        assert_eq!(admitted, 5, "{db:?}: every admitted attempt kept");
        // The newest refusals are the ones kept.
        assert_eq!(entries[0]["target"], "refused299", "{db:?}: {}", entries[0]);
        let metrics = stack.core_metrics().await;
        let pruned = metric_value(&metrics, "maple_core_audit_pruned_total");
        assert!(
            (pruned - (300 - refused) as f64).abs() < 0.5,
            "{db:?}: pruned {pruned}, kept {refused}"
        );
        stack.stop().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The keys file's state is on `/metrics`: deleting it revokes every key (401 for the key
/// that worked), a broken file keeps the keys and shows `invalid` (the alert's input).
#[tokio::test(flavor = "multi_thread")]
async fn the_keys_file_state_is_on_metrics_and_deleting_it_revokes_the_keys() {
    let dir = admin_dir();
    let (reader, reader_stored) = key("reader", &[Scope::Read]);
    let file = keys_file(&dir, std::slice::from_ref(&reader_stored));
    let stack = Stack::start_with(Options {
        core_env: vec![("MAPLE_CORE_ADMIN_KEYS_FILE", file.display().to_string())],
        ..Options::default()
    })
    .await;
    let state_is = |metrics: &str, state: &str| {
        metric_value(
            metrics,
            &format!("maple_core_admin_keys_file{{state=\"{state}\"}}"),
        ) == 1.0
    };
    let metrics = stack.core_metrics().await;
    assert!(state_is(&metrics, "loaded"), "{metrics}");
    assert_eq!(metric_value(&metrics, "maple_core_admin_keys"), 1.0);
    let read_state = || {
        call(
            &stack,
            reqwest::Method::GET,
            "/v1/admin/state",
            Some(&reader),
        )
    };
    assert_eq!(read_state().await.0, StatusCode::OK);

    std::fs::write(&file, "{ broken").expect("write");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let metrics = stack.core_metrics().await;
    assert!(state_is(&metrics, "invalid"), "{metrics}");
    assert_eq!(
        read_state().await.0,
        StatusCode::OK,
        "the previous keys stay"
    );

    std::fs::remove_file(&file).expect("delete");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let metrics = stack.core_metrics().await;
    assert!(state_is(&metrics, "absent"), "{metrics}");
    assert_eq!(metric_value(&metrics, "maple_core_admin_keys"), 0.0);
    assert_eq!(read_state().await.0, StatusCode::UNAUTHORIZED, "revoked");
    stack.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A target cut to the audit's 256 bytes must be cut between characters: 255 ASCII bytes and
/// then `é` (two bytes) once made the cut land inside `é`, and the request answered 500 from a
/// panic, unaudited.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_multibyte_target_is_refused_and_audited_not_a_panic() {
    let dir = admin_dir();
    let (reader, reader_stored) = key("reader", &[Scope::Read]);
    let file = keys_file(&dir, &[reader_stored]);
    let stack = Stack::start_with(Options {
        core_env: vec![("MAPLE_CORE_ADMIN_KEYS_FILE", file.display().to_string())],
        ..Options::default()
    })
    .await;
    let target = format!("{}é", "a".repeat(255));
    let purge = format!("/v1/admin/characters/{target}/purge");
    for token in [None, Some(reader.as_str())] {
        let (status, body, _) = call(&stack, reqwest::Method::POST, &purge, token).await;
        let expected = if token.is_some() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, expected, "{body}");
    }
    let (status, body, _) = call(
        &stack,
        reqwest::Method::GET,
        "/v1/admin/audit?limit=10",
        Some(&reader),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let purges: Vec<&Value> = body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "cache.purge")
        .collect();
    assert_eq!(purges.len(), 2, "both attempts audited: {body}");
    for entry in purges {
        // Cut before the `é` that would not fit whole.
        assert_eq!(entry["target"], "a".repeat(255), "{entry}");
    }
    stack.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_checked_scoped_audited_and_rotated_without_a_restart() {
    let dir = admin_dir();
    let (reader, reader_stored) = key("reader", &[Scope::Read]);
    let (old, mut old_stored) = key("retired", &Scope::ALL);
    old_stored.expires_at_ms = Some(1_000);
    let file = keys_file(&dir, &[reader_stored.clone(), old_stored]);
    let stack = Stack::start_with(Options {
        core_env: vec![("MAPLE_CORE_ADMIN_KEYS_FILE", file.display().to_string())],
        ..Options::default()
    })
    .await;
    let get = reqwest::Method::GET;

    let (status, body, headers) = call(&stack, get.clone(), "/v1/admin/state", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, _) = call(&stack, get.clone(), "/v1/admin/state", Some("mk_wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body, _) = call(&stack, get.clone(), "/v1/admin/state", Some(&old)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "key_expired");

    let (status, body, _) = call(&stack, get.clone(), "/v1/admin/state", Some(&reader)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["database"]["dialect"], "sqlite");
    assert_eq!(body["database"]["breaker"]["state"], "closed");
    assert!(body["equipment"]["l1_entries"].is_u64());
    assert_eq!(body["likes"]["backup_files"], 0);

    let purge = format!("/v1/admin/characters/{}/purge", fresh_name("ad"));
    let (status, body, _) = call(&stack, reqwest::Method::POST, &purge, Some(&reader)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cache:purge"),
        "{body}"
    );

    // Every one of those is in the audit log: who (or "-"), what, how it ended.
    let (status, body, _) = call(
        &stack,
        get.clone(),
        "/v1/admin/audit?limit=10",
        Some(&reader),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entries = body["entries"].as_array().expect("entries");
    let seen: Vec<(String, String, i64)> = entries
        .iter()
        .map(|e| {
            (
                e["key_name"].as_str().unwrap_or_default().to_owned(),
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["status"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    for expected in [
        ("-".to_owned(), "state.read".to_owned(), 401),
        ("retired".to_owned(), "state.read".to_owned(), 401),
        ("reader".to_owned(), "state.read".to_owned(), 200),
        ("reader".to_owned(), "cache.purge".to_owned(), 403),
    ] {
        assert!(seen.contains(&expected), "{expected:?} in {seen:?}");
    }
    let (status, _, _) = call(
        &stack,
        get.clone(),
        "/v1/admin/audit?limit=9999",
        Some(&reader),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Rotation: the file now holds a new key only; within a second or so the old one is
    // refused and the new one admitted, with no restart.
    let (rotated, rotated_stored) = key("reader-2026-12", &[Scope::Read]);
    keys_file(&dir, &[rotated_stored]);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, _, _) = call(&stack, get.clone(), "/v1/admin/state", Some(&reader)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the rotated-out key");
    let (status, _, _) = call(&stack, get.clone(), "/v1/admin/state", Some(&rotated)).await;
    assert_eq!(status, StatusCode::OK, "the new key");
    // A broken file keeps the keys in force.
    std::fs::write(&file, b"{ not json").expect("write");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, _, _) = call(&stack, get, "/v1/admin/state", Some(&rotated)).await;
    assert_eq!(status, StatusCode::OK, "a typo does not lock everyone out");
    stack.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_makes_the_next_request_fetch_from_nexon() {
    let dir = admin_dir();
    let (purger, stored) = key("purger", &[Scope::CachePurge]);
    let file = keys_file(&dir, &[stored]);
    let stack = Stack::start_with(Options {
        core_env: vec![
            ("MAPLE_CORE_ADMIN_KEYS_FILE", file.display().to_string()),
            ("REDIS_URL", redis_url()),
        ],
        ..Options::uncached()
    })
    .await;
    let name = fresh_name("pg");
    let path = format!("/v1/characters/{name}/equipment");
    let source = |r: &reqwest::Response| {
        r.headers()
            .get("x-maple-source")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(source(&stack.get(&path).await), "upstream");
    assert_eq!(source(&stack.get(&path).await), "l1");
    // A second instance holds the character in its own L1 too.
    let other = stack.another_core(&[]).await;
    let other_get = || async {
        let response = stack
            .http
            .get(other.url(&path))
            .send()
            .await
            .expect("answers");
        source(&response)
    };
    assert_eq!(other_get().await, "l2");
    assert_eq!(other_get().await, "l1");
    let ocid = stack
        .lookup(&name)
        .await
        .json::<Value>()
        .await
        .expect("json")["ocid"]
        .as_str()
        .expect("ocid")
        .to_owned();
    let l2_key = format!("{}:equipment:{ocid}", stack.namespace);
    let mut redis = redis::Client::open(redis_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let old_copy: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
        .arg(&l2_key)
        .query_async(&mut redis)
        .await
        .expect("HGETALL");
    assert!(!old_copy.is_empty(), "the copy is in L2");
    let fetched = stack.sim.stats().total;
    let (status, body, _) = call(
        &stack,
        reqwest::Method::POST,
        &format!("/v1/admin/characters/{name}/purge"),
        Some(&purger),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["purged"]["redis"], true);
    assert_eq!(body["purged"]["database"], true);
    assert_eq!(source(&stack.get(&path).await), "upstream");
    assert!(
        stack.sim.stats().total > fetched,
        "fetched from Nexon again"
    );
    // A load that began before the purge writes the old copy back to L2 (as it may)...
    let mut restore = redis::cmd("HSET");
    restore.arg(&l2_key);
    for (field, value) in &old_copy {
        restore.arg(field).arg(value.as_slice());
    }
    let _: i64 = restore.query_async(&mut redis).await.expect("HSET");
    // ...yet the other instance, once it has read the purge from Redis's purge log, drops
    // its L1 copy and does not take that old copy from L2 either: it answers from the
    // database, which the refetch above refreshed.
    let started = std::time::Instant::now();
    let mut seen = other_get().await;
    while seen == "l1" && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = other_get().await;
    }
    assert_eq!(
        seen, "db",
        "the other instance dropped its L1 copy and refused the old one"
    );
    other.stop().await;
    // Unknown characters and bad names.
    let (status, _, _) = call(
        &stack,
        reqwest::Method::POST,
        "/v1/admin/characters/neverseen/purge",
        Some(&purger),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body, _) = call(
        &stack,
        reqwest::Method::POST,
        "/v1/admin/characters/bad%20name!/purge",
        Some(&purger),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    stack.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_sync_and_backup_files_through_the_admin_api() {
    let dir = admin_dir();
    let (operator, stored) = key(
        "operator",
        &[Scope::LikesSync, Scope::Backups, Scope::Config],
    );
    let file = keys_file(&dir, &[stored]);
    let stack = Stack::start_with(Options {
        db: Db::MySql,
        core_env: vec![
            ("MAPLE_CORE_ADMIN_KEYS_FILE", file.display().to_string()),
            ("REDIS_URL", redis_url()),
            // No background sync: only the forced one moves likes.
            ("MAPLE_CORE_LIKES_SYNC_MS", "3600000".to_owned()),
            (
                "MAPLE_PROXY_TOKEN",
                "core-to-proxy-secret-0123456789".to_owned(),
            ),
        ],
        ..Options::default()
    })
    .await;
    let name = fresh_name("fs");
    let likes = stack.core(&format!("/v1/characters/{name}/likes"));
    for _ in 0..5 {
        let response = stack.http.post(&likes).send().await.expect("answers");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let post = reqwest::Method::POST;
    let (status, body, _) = call(
        &stack,
        post.clone(),
        "/v1/admin/likes/sync",
        Some(&operator),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "synced");
    assert_eq!(body["likes"], 5);
    let store = stack.store().await;
    let ocid = store
        .find_ocid(&maple_core::character::CharacterName::parse(&name).expect("name"))
        .await
        .expect("db")
        .expect("known");
    let counts = store.like_counts(&[ocid.as_str()]).await.expect("db");
    assert_eq!(counts.get(ocid.as_str()), Some(&5));

    // Backup files: one good, one not.
    let backups = BackupDir::new(stack.backup_dir.clone());
    backups
        .write(&Batch {
            id: "1764000000001-00000000000000aa".into(),
            counts: [(ocid.as_str().to_owned(), 2)].into(),
            keyed: Vec::new(),
        })
        .expect("written");
    std::fs::write(stack.backup_dir.join("likes-broken.json"), b"[]").expect("write");
    let (status, body, _) = call(
        &stack,
        reqwest::Method::GET,
        "/v1/admin/backups",
        Some(&operator),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let files = body["files"].as_array().expect("files");
    assert_eq!(files.len(), 2, "{body}");
    assert!(files.iter().any(|f| f["problem"].is_string()), "{body}");
    let (status, body, _) = call(&stack, post, "/v1/admin/backups/apply", Some(&operator)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"], 1);
    assert_eq!(body["left"].as_array().map(Vec::len), Some(1));
    let count: Value = stack
        .http
        .get(&likes)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(count["likes"], 7);

    // The configuration, with secrets only as "set".
    let (status, body, _) = call(
        &stack,
        reqwest::Method::GET,
        "/v1/admin/config",
        Some(&operator),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["MAPLE_PROXY_TOKEN"], "<set>");
    assert_eq!(body["MAPLE_CORE_LIKES_SYNC_MS"], "3600000");
    let text = body.to_string();
    assert!(!text.contains("core-to-proxy-secret"), "{text}");
    stack.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
