//! Core's equipment tiers with real Redis and databases: each tier answers in turn, gzip goes
//! out as stored, ETags give 304s, one fetch serves 500 concurrent requests over two instances,
//! stale copies stand in for a dead upstream, and a dead Redis costs nothing but speed.

use std::io::Read as _;
use std::time::{Duration, Instant};

use maple_common::nexon::PATH_ITEM_EQUIPMENT;
use maple_sim::faults::FaultSpec;
use maple_tests::tcp_fault::TcpFault;
use reqwest::StatusCode;

use crate::harness::{
    Db, Options, Stack, UNCACHED, error_code, free_port, fresh_name, inflate, metric_value,
    redis_addr, redis_url,
};
use crate::private::{PrivateMariaDb, PrivateRedis};

fn source(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-maple-source")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn with_redis(url: &str) -> Options {
    Options {
        core_env: vec![("REDIS_URL", url.to_owned())],
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_tier_answers_in_turn() {
    let stack = Stack::start_with(with_redis(&redis_url())).await;
    let path = format!("/v1/characters/{}/equipment", fresh_name("tier"));

    let first = stack.get(&path).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(source(&first), "upstream");
    let body = first.bytes().await.expect("body");

    let second = stack.get(&path).await;
    assert_eq!(source(&second), "l1");
    assert_eq!(second.bytes().await.expect("body"), body);

    // A second instance sharing Redis finds it there; one without Redis, in the database.
    let other = stack.another_core(&[]).await;
    let from_l2 = stack
        .http
        .get(other.url(&path))
        .send()
        .await
        .expect("answers");
    assert_eq!(source(&from_l2), "l2");
    assert_eq!(from_l2.bytes().await.expect("body"), body);
    other.stop().await;
    let embedded = stack.another_core(&[("REDIS_URL", "")]).await;
    let from_db = stack
        .http
        .get(embedded.url(&path))
        .send()
        .await
        .expect("answers");
    assert_eq!(source(&from_db), "db");
    assert_eq!(from_db.bytes().await.expect("body"), body);
    embedded.stop().await;

    assert_eq!(stack.sim.stats().calls(PATH_ITEM_EQUIPMENT), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_goes_out_as_stored_and_etags_give_304() {
    let stack = Stack::start().await;
    let path = format!("/v1/characters/{}/equipment", fresh_name("gz"));
    let plain = stack.get(&path).await;
    let etag = plain.headers()["etag"].to_str().expect("ascii").to_owned();
    let plain = plain.bytes().await.expect("body");

    let gzipped = stack
        .http
        .get(stack.core(&path))
        .header("accept-encoding", "br;q=1.0, gzip;q=0.8")
        .send()
        .await
        .expect("answers");
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let gzip_etag = gzipped.headers()["etag"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(
        gzip_etag,
        format!("{}-gz\"", etag.trim_end_matches('"')),
        "one ETag per representation"
    );
    let compressed = gzipped.bytes().await.expect("body");
    assert!(
        compressed.len() * 5 < plain.len(),
        "{} compressed bytes for {}",
        compressed.len(),
        plain.len()
    );
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_ref())
        .read_to_end(&mut inflated)
        .expect("valid gzip");
    assert_eq!(inflated, plain.to_vec());

    for refusing in ["gzip;q=0", "*;q=1, gzip;Q=0", "br"] {
        let refused = stack
            .http
            .get(stack.core(&path))
            .header("accept-encoding", refusing)
            .send()
            .await
            .expect("answers");
        assert!(
            refused.headers().get("content-encoding").is_none(),
            "{refusing}"
        );
    }
    for path_etag in [&etag, &gzip_etag] {
        let not_modified = stack
            .http
            .get(stack.core(&path))
            .header("if-none-match", path_etag.as_str())
            .send()
            .await
            .expect("answers");
        assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    }

    let not_modified = stack
        .http
        .get(stack.core(&path))
        .header("if-none-match", format!("\"other\", {etag}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert!(not_modified.bytes().await.expect("body").is_empty());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxys_gzip_goes_into_the_tiers_as_it_came() {
    let stack = Stack::start().await;
    let equipment = |path: String, gzip: bool| {
        let stack = &stack;
        async move {
            let mut request = stack.http.get(stack.core(&path));
            if gzip {
                request = request.header("accept-encoding", "gzip");
            }
            let response = request.send().await.expect("answers");
            assert_eq!(response.status(), StatusCode::OK);
            let etag = response.headers()["etag"]
                .to_str()
                .expect("ascii")
                .to_owned();
            (etag, response.bytes().await.expect("body").to_vec())
        }
    };
    // The simulator compresses at level 6, core and the proxy at level 1: core answering the
    // simulator's bytes means nobody inflated and compressed them again on the way.
    let name = fresh_name("wire");
    let ocid = maple_sim::characters::ocid_for(&name).as_str().to_owned();
    let path = format!("/v1/characters/{name}/equipment");
    let nexon_gzip = stack.nexon_equipment(&ocid, true).await;
    let nexon_json = stack.nexon_equipment(&ocid, false).await;
    let (gzip_etag, body) = equipment(path.clone(), true).await;
    assert_eq!(body, nexon_gzip, "Nexon's gzip bytes, as they came");
    let (etag, body) = equipment(path.clone(), false).await;
    assert_eq!(body, nexon_json);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&nexon_json));
    assert_eq!(etag, format!("\"{sha}\""), "the ETag names the JSON");
    assert_eq!(gzip_etag, format!("\"{sha}-gz\""));

    // Nexon sending identity only: the proxy's own gzip is what core keeps.
    stack.sim.set_gzip(false);
    let name = fresh_name("wire");
    let ocid = maple_sim::characters::ocid_for(&name).as_str().to_owned();
    let path = format!("/v1/characters/{name}/equipment");
    let nexon_json = stack.nexon_equipment(&ocid, true).await;
    let (_, body) = equipment(path.clone(), true).await;
    assert_eq!(inflate(&body), nexon_json);
    assert_eq!(equipment(path, false).await.1, nexon_json);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_requests_over_two_instances_make_one_fetch() {
    let stack = Stack::start_with(Options {
        db: Db::MySql,
        ..with_redis(&redis_url())
    })
    .await;
    let second = stack.another_core(&[]).await;
    let name = fresh_name("herd");
    // The character is known (ocid stored), its equipment is not: the stampede is on equipment.
    let ready = stack.get(&format!("/v1/characters/{name}")).await;
    assert_eq!(ready.status(), StatusCode::OK);
    stack
        .sim
        .faults()
        .set(FaultSpec::latency(500).on_path(PATH_ITEM_EQUIPMENT))
        .await
        .expect("valid fault");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let path = format!("/v1/characters/{name}/equipment");
    let urls = [stack.core(&path), second.url(&path)];
    let requests = (0..500).map(|i| {
        let client = client.clone();
        let url = urls[i % 2].clone();
        tokio::spawn(async move {
            let response = client.get(url).send().await.expect("answers");
            let status = response.status();
            let source = source(&response);
            let length = response.bytes().await.expect("body").len();
            (status, source, length)
        })
    });
    let mut sources = std::collections::BTreeMap::<String, usize>::new();
    for result in futures::future::join_all(requests).await {
        let (status, source, length) = result.expect("task");
        assert_eq!(status, StatusCode::OK);
        assert!(length > 300_000);
        *sources.entry(source).or_default() += 1;
    }
    let proxy_calls = stack
        .proxy_metric_settled(
            r#"maple_proxy_requests_total{route="/maplestory/v1/character/item-equipment",status="200"}"#,
            1.0,
        )
        .await;
    assert_eq!(
        proxy_calls, 1.0,
        "one fetch for both instances: {sources:?}"
    );
    assert_eq!(stack.sim.stats().calls(PATH_ITEM_EQUIPMENT), 1);
    assert_eq!(sources.values().sum::<usize>(), 500);
    second.stop().await;
    stack.stop().await;
}

/// A slow Nexon does not hold up a character whose copy is at hand: past the soft deadline
/// (`MAPLE_CORE_STALE_AFTER_MS`, 200 ms by default) the copy answers as stale with
/// `x-maple-stale-cause: refreshing`, while the one refresh goes on and lands in the tiers. A
/// character without a copy still waits for Nexon. The first request used to wait the 1.5 s
/// for Nexon (and answer `upstream`).
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_refresh_answers_the_copy_as_stale_and_lands_in_the_tiers() {
    let mut options = Options::uncached();
    options.core_env = vec![("MAPLE_CORE_EQUIPMENT_FRESH_S", "2".to_owned())];
    let stack = Stack::start_with(options).await;
    let known = format!("/v1/characters/{}/equipment", fresh_name("slow"));
    let unknown = format!("/v1/characters/{}/equipment", fresh_name("none"));
    let warm = stack.get(&known).await;
    assert_eq!(source(&warm), "upstream");
    let old = warm.bytes().await.expect("body");
    // The other character's ocid is known, its equipment never fetched.
    let id_only = unknown.trim_end_matches("/equipment");
    assert_eq!(stack.get(id_only).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2_100)).await;

    stack
        .sim
        .faults()
        .set(FaultSpec::latency(1_500).on_path(PATH_ITEM_EQUIPMENT))
        .await
        .expect("fault");
    stack.sim.reset_stats();
    for _ in 0..5 {
        let stale = stack.get(&known).await;
        assert_eq!(stale.status(), StatusCode::OK);
        assert_eq!(
            source(&stale),
            "stale",
            "the copy answers while Nexon is slow"
        );
        assert_eq!(stale.headers()["x-maple-stale-cause"], "refreshing");
        assert_eq!(stale.bytes().await.expect("body"), old);
    }
    // The refresh lands in the tiers: the next answers come from L1, fresh.
    let started = Instant::now();
    loop {
        let response = stack.get(&known).await;
        if source(&response) == "l1" {
            assert!(response.headers().get("x-maple-stale-cause").is_none());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the refresh never landed: {}",
            source(&response)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = stack.sim.stats().paths.get(PATH_ITEM_EQUIPMENT).copied();
    assert_eq!(calls, Some(1), "one refresh for every request");
    let metrics = stack.core_metrics().await;
    assert!(
        metric_value(
            &metrics,
            "maple_core_equipment_stale_total{cause=\"refreshing\"}"
        ) >= 5.0,
        "{metrics}"
    );
    // Without a copy there is nothing to stand in: the request waits for Nexon.
    let waited = stack.get(&unknown).await;
    assert_eq!(waited.status(), StatusCode::OK);
    assert_eq!(source(&waited), "upstream");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_copy_stands_in_for_a_dead_upstream() {
    let mut options = Options::uncached();
    options.core_env = vec![("MAPLE_CORE_EQUIPMENT_FRESH_S", "1".to_owned())];
    let mut stack = Stack::start_with(options).await;
    let known = format!("/v1/characters/{}/equipment", fresh_name("old"));
    let unknown = format!("/v1/characters/{}/equipment", fresh_name("new"));
    // The unknown character's ocid is known, its equipment never fetched.
    let warm = stack.get(&known).await;
    assert_eq!(source(&warm), "upstream");
    let body = warm.bytes().await.expect("body");
    let id_only = unknown.trim_end_matches("/equipment");
    assert_eq!(stack.get(id_only).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    stack.stop_simulator().await;
    let stale = stack.get(&known).await;
    assert_eq!(stale.status(), StatusCode::OK);
    assert_eq!(source(&stale), "stale");
    let age: u64 = stale.headers()["age"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(age >= 1);
    assert_eq!(stale.bytes().await.expect("body"), body);

    let nothing = stack.get(&unknown).await;
    assert_eq!(nothing.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(nothing).await, "upstream_unavailable");
    stack.stop().await;
}

/// A fetch that has stored its copy when the soft deadline passes, but not yet landed, answers
/// as what it is: fetched, not stale. Redis slowed to 400 ms a call puts the deadline
/// (1,450 ms) inside the last call (the latch's release, after L1 holds the fresh copy); the
/// stand-in used to take that fresh copy and answer it as `stale`, as CI once saw on a cold
/// first request.
#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_landing_at_the_soft_deadline_answers_fetched_not_stale() {
    let redis = TcpFault::start(redis_addr()).await.expect("fault proxy");
    let mut options = Options::uncached();
    options.core_env = vec![
        ("REDIS_URL", format!("redis://{}", redis.addr)),
        ("MAPLE_CORE_REDIS_TIMEOUT_MS", "3000".to_owned()),
        ("MAPLE_CORE_STALE_AFTER_MS", "1450".to_owned()),
    ];
    let stack = Stack::start_with(options).await;
    // Connections made and the character's ocid known before Redis slows down.
    let warm = format!("/v1/characters/{}/equipment", fresh_name("warm"));
    assert_eq!(source(&stack.get(&warm).await), "upstream");
    let name = fresh_name("edge");
    let id_only = format!("/v1/characters/{name}");
    assert_eq!(stack.get(&id_only).await.status(), StatusCode::OK);

    redis.set_latency(Duration::from_millis(400));
    let response = stack.get(&format!("{id_only}/equipment")).await;
    redis.set_latency(Duration::ZERO);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(source(&response), "upstream");
    assert!(response.headers().get("x-maple-stale-cause").is_none());
    let metrics = stack.core_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "maple_core_equipment_stale_total{cause=\"refreshing\"}"
        ),
        0.0,
        "{metrics}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_redis_costs_speed_not_answers_and_is_picked_up_again() {
    let port = free_port().port();
    let mut redis = PrivateRedis::start(port).await;
    let mut options = with_redis(&redis.url());
    options.proxy_env = UNCACHED
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    let stack = Stack::start_with(options).await;
    let before = format!("/v1/characters/{}/equipment", fresh_name("pre"));
    assert_eq!(source(&stack.get(&before).await), "upstream");

    redis.kill().await;
    // Every request is still answered: from L1, or fetched and stored in the database.
    for _ in 0..5 {
        let response = stack.get(&before).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(source(&response), "l1");
    }
    // New characters are fetched and stored in the database; the failed Redis calls open
    // its breaker, after which Redis is not even tried.
    for _ in 0..4 {
        let during = format!("/v1/characters/{}/equipment", fresh_name("mid"));
        for i in 0..3 {
            let response = stack.get(&during).await;
            assert_eq!(response.status(), StatusCode::OK, "request {i}");
        }
    }
    let metrics = stack
        .http
        .get(stack.core("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert_eq!(
        metric_value(
            &metrics,
            r#"maple_core_redis_breaker_state{use="equipment"}"#
        ),
        1.0,
        "the breaker took Redis out of the path:\n{metrics}"
    );
    assert!(metrics.contains(r#"result="breaker_open""#), "{metrics}");

    // Redis returns; after the open period a probe finds it and this instance writes new
    // entries there again (a second instance finds one in L2 without fetching).
    let _redis = PrivateRedis::start(port).await;
    let started = Instant::now();
    loop {
        let fresh = format!("/v1/characters/{}/equipment", fresh_name("post"));
        assert_eq!(stack.get(&fresh).await.status(), StatusCode::OK);
        let other = stack.another_core(&[]).await;
        let response = stack
            .http
            .get(other.url(&fresh))
            .send()
            .await
            .expect("answers");
        let from = source(&response);
        other.stop().await;
        if from == "l2" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Redis was never used again (last source {from})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_database_costs_persistence_not_answers_and_is_picked_up_again() {
    let mut db = PrivateMariaDb::install().await;
    let database_url = db.database_url().await;
    let options = Options {
        core_env: vec![("DATABASE_URL", database_url), ("REDIS_URL", redis_url())],
        ..Options::default()
    };
    let stack = Stack::start_with(options).await;
    let known = format!("/v1/characters/{}/equipment", fresh_name("dbk"));
    assert_eq!(source(&stack.get(&known).await), "upstream");
    // A second instance, started while the database is up (core needs it to start).
    let other = stack.another_core(&[]).await;

    db.kill().await;
    // Readiness says the database is gone and stays 200 (the instance stays in rotation);
    // answers keep coming from memory, Redis and Nexon.
    let ready = stack.get("/health/ready").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: serde_json::Value = ready.json().await.expect("JSON");
    assert_eq!(ready["status"], "degraded");
    assert_ne!(ready["checks"]["database"], "ok");
    assert_eq!(ready["checks"]["redis"], "ok");
    assert_eq!(source(&stack.get(&known).await), "l1");
    let from_l2 = stack
        .http
        .get(other.url(&known))
        .send()
        .await
        .expect("answers");
    assert_eq!(from_l2.status(), StatusCode::OK);
    assert_eq!(source(&from_l2), "l2");
    other.stop().await;
    let new = format!("/v1/characters/{}/equipment", fresh_name("dbn"));
    let fetched = stack.get(&new).await;
    assert_eq!(
        fetched.status(),
        StatusCode::OK,
        "a new character while the database is down"
    );
    assert_eq!(source(&fetched), "upstream");

    // The database returns: readiness sees it by itself and new data is stored again.
    db.start().await;
    let started = Instant::now();
    loop {
        let ready: serde_json::Value = stack.get("/health/ready").await.json().await.expect("JSON");
        if ready["status"] == "ready" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Its breaker lets a probe through within seconds; from then on new data is stored again
    // (an instance without Redis finds it in the database).
    let embedded = stack.another_core(&[("REDIS_URL", "")]).await;
    let started = Instant::now();
    loop {
        let path = format!("/v1/characters/{}/equipment", fresh_name("dba"));
        assert_eq!(stack.get(&path).await.status(), StatusCode::OK);
        let response = stack
            .http
            .get(embedded.url(&path))
            .send()
            .await
            .expect("answers");
        if source(&response) == "db" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing stored after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    embedded.stop().await;
    stack.stop().await;
}
