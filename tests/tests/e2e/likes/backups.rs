//! Backup files: written when Redis and the database are dead, applied at boot, bad ones kept.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn with_redis_and_the_database_dead_likes_go_to_a_backup_file_and_come_back() {
    let mut db = PrivateMariaDb::install().await;
    let database_url = db.database_url().await;
    let redis_dir = std::env::temp_dir().join(format!("maple-redis-{}", free_port().port()));
    let mut redis = PrivateRedis::start_persistent(free_port().port(), &redis_dir).await;
    let options = Options {
        core_env: vec![
            ("DATABASE_URL", database_url),
            ("REDIS_URL", redis.url()),
            ("MAPLE_CORE_LIKES_SYNC_MS", "200".to_owned()),
        ],
        ..Options::default()
    };
    let stack = Stack::start_with(options).await;
    let base = format!("http://{}", stack.core_addr);
    let name = fresh_name("bk");
    like_n(&stack, &name, 5).await;
    let store = Store::connect(&db.database_url().await, 2)
        .await
        .expect("database");
    assert_eq!(
        wait_for_stored(&store, &name, 5, Duration::from_secs(10)).await,
        5
    );
    assert_eq!(read_likes(&stack.http, &base, &name).await, 5);

    db.kill().await;
    redis.kill().await;
    for _ in 0..10 {
        let (status, body, _) = like(&stack.http, &base, &name, None)
            .await
            .expect("answered");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let files = BackupDir::new(stack.backup_dir.clone()).pending();
    assert!(!files.is_empty(), "backup files written");
    // Still counted for readers of this instance (the stored count is remembered), marked
    // partial (Redis could not be asked).
    let body: Value = stack
        .http
        .get(format!("{base}/v1/characters/{name}/likes"))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(body["likes"], 15, "{body}");
    assert_eq!(body["partial"], true, "{body}");

    db.start().await;
    redis.restart().await;
    // Recovery (every 5 s) applies the files; the sync moves everything to the database.
    assert_eq!(
        wait_for_stored(&store, &name, 15, Duration::from_secs(40)).await,
        15
    );
    let started = Instant::now();
    while !BackupDir::new(stack.backup_dir.clone())
        .pending()
        .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "files archived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stack
            .backup_dir
            .join("archive")
            .read_dir()
            .expect("archive")
            .count()
            >= 1
    );
    stack.stop().await;
    drop(redis);
    let _ = std::fs::remove_dir_all(redis_dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_files_are_applied_at_boot_and_bad_ones_kept() {
    let stack = Stack::start().await;
    let (name, ocid) = known_character(&stack, "bt").await;

    // What a previous run left: one good file (written twice under two names would be two
    // batches; the same batch id twice must count once) and one that is not a backup.
    let dir = tempdir_beside(&stack.backup_dir);
    let backups = BackupDir::new(dir.clone());
    let batch = Batch {
        id: "1764000000000-0123456789abcdef".to_owned(),
        counts: [(ocid.clone(), 7)].into(),
        keyed: vec![(ocid.clone(), "boot-1".to_owned())],
    };
    let path = backups.write(&batch).expect("written");
    std::fs::copy(&path, dir.join("likes-1764000000000-0123456789abcdee.json")).expect("copy");
    std::fs::write(dir.join("likes-garbage.json"), b"{not json").expect("garbage");

    let booted = stack
        .another_core(&[("MAPLE_CORE_BACKUP_DIR", &dir.display().to_string())])
        .await;
    // 7 + 1 keyed, once: the copy carries the same batch id.
    assert_eq!(read_likes(&stack.http, &booted.url(""), &name).await, 8);
    let left: Vec<_> = backups.pending();
    assert_eq!(
        left,
        vec![dir.join("likes-garbage.json")],
        "only the bad file stays"
    );
    let metrics = metrics_of(&stack.http, &booted.url("")).await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"maple_core_like_backup_files{state="unreadable"}"#
        ),
        1.0
    );
    booted.stop().await;
    stack.stop().await;
}

/// The archive of applied backup files is bounded: it keeps the newest files within
/// `MAPLE_CORE_BACKUP_ARCHIVE_BYTES` and deletes the rest (it grew without bound, on the
/// volume whose full disk the chaos suite tests), and says what it holds.
#[tokio::test(flavor = "multi_thread")]
async fn the_backup_archive_keeps_the_newest_files_within_its_bound() {
    let stack = Stack::start().await;
    let (name, ocid) = known_character(&stack, "ar").await;
    let dir = tempdir_beside(&stack.backup_dir);
    let backups = BackupDir::new(dir.clone());
    let mut sizes = Vec::new();
    for i in 0..3 {
        let batch = Batch {
            id: format!("176400000000{i}-0123456789abcdef"),
            counts: [(ocid.clone(), 1)].into(),
            keyed: Vec::new(),
        };
        let path = backups.write(&batch).expect("written");
        sizes.push(std::fs::metadata(&path).expect("size").len());
    }
    // Room for the newest file only.
    let bound = sizes[2] + sizes[2] / 2;
    let booted = stack
        .another_core(&[
            ("MAPLE_CORE_BACKUP_DIR", &dir.display().to_string()),
            ("MAPLE_CORE_BACKUP_ARCHIVE_BYTES", &bound.to_string()),
        ])
        .await;
    assert_eq!(read_likes(&stack.http, &booted.url(""), &name).await, 3);
    assert!(backups.pending().is_empty(), "all three applied");
    let archived: Vec<String> = std::fs::read_dir(dir.join("archive"))
        .expect("archive")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        archived,
        vec!["likes-1764000000002-0123456789abcdef.json".to_owned()],
        "the newest kept, the older two deleted"
    );
    let metrics = metrics_of(&stack.http, &booted.url("")).await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"maple_core_like_backup_files{state="archived"}"#
        ),
        1.0
    );
    #[expect(clippy::cast_precision_loss, reason = "a few hundred bytes")]
    let expected = sizes[2] as f64;
    assert_eq!(
        metric_value(&metrics, "maple_core_like_backup_archive_bytes"),
        expected
    );
    booted.stop().await;
    stack.stop().await;
}

/// A new character with no like yet, known to the database: its name and ocid.
async fn known_character(stack: &Stack, prefix: &str) -> (String, String) {
    let name = fresh_name(prefix);
    let base = format!("http://{}", stack.core_addr);
    assert_eq!(read_likes(&stack.http, &base, &name).await, 0);
    let ocid = stack
        .store()
        .await
        .find_ocid(&CharacterName::parse(&name).expect("name"))
        .await
        .expect("db")
        .expect("known");
    (name, ocid.as_str().to_owned())
}

fn tempdir_beside(dir: &std::path::Path) -> std::path::PathBuf {
    let other = dir.with_file_name(format!("boot-{}", fresh_name("d")));
    std::fs::create_dir_all(&other).expect("dir");
    other
}

/// When no store confirms a like, the client is told whether it may be counted. The backup
/// directory cannot be created (its parent is a file) and the database is dead; a Redis with
/// no replica takes each batch, but `WAIT` comes up short: the like is in Redis, unconfirmed,
/// so the answer is 503 `outcome_unknown` (retry with the same key) — it used to be
/// `likes_unavailable`, "not counted". With Redis dead too (its breaker open, nothing sent),
/// it is `likes_unavailable`.
#[tokio::test(flavor = "multi_thread")]
async fn with_no_store_confirming_a_like_the_answer_says_whether_it_may_count() {
    let mut db = PrivateMariaDb::install().await;
    let database_url = db.database_url().await;
    let mut redis = PrivateRedis::start(free_port().port()).await;
    let blocked = std::env::temp_dir().join(format!("maple-not-a-dir-{}", free_port().port()));
    std::fs::write(&blocked, b"a file, so no directory can be made under it").expect("file");
    let options = Options {
        core_env: vec![
            ("DATABASE_URL", database_url),
            ("REDIS_URL", redis.url()),
            ("MAPLE_CORE_REDIS_MIN_REPLICAS", "1".to_owned()),
            (
                "MAPLE_CORE_BACKUP_DIR",
                blocked.join("backup").display().to_string(),
            ),
        ],
        ..Options::default()
    };
    let stack = Stack::start_with(options).await;
    let base = format!("http://{}", stack.core_addr);
    let name = fresh_name("ou");
    assert_eq!(read_likes(&stack.http, &base, &name).await, 0);
    db.kill().await;

    let response = stack
        .http
        .post(format!("{base}/v1/characters/{name}/likes"))
        .header("idempotency-key", "maybe-1")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "outcome_unknown", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Idempotency-Key"), "{message}");
    let metrics = metrics_of(&stack.http, &base).await;
    assert!(metric_value(&metrics, "maple_core_like_outcome_unknown_total") >= 1.0);

    // Redis dies too: once its breaker is open nothing is sent, and "not counted" is certain.
    redis.kill().await;
    let mut last = String::new();
    for _ in 0..20 {
        let (status, body, _) = like(&stack.http, &base, &name, None)
            .await
            .expect("answers");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        last = body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if last == "likes_unavailable" {
            break;
        }
        assert_eq!(last, "outcome_unknown", "{body}");
    }
    assert_eq!(last, "likes_unavailable");
    stack.stop().await;
    let _ = std::fs::remove_file(&blocked);
}
