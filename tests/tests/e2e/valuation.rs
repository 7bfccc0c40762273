//! A character's valuation served like its equipment: ready bytes in both encodings (the same
//! JSON after inflating), strong ETags that stay the same for the same content (on another
//! instance too) and give 304s, the tier in the headers, and a changed equipment body that
//! never answers with the old valuation.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode as AxumStatus;
use axum::response::{IntoResponse, Response};
use maple_common::nexon::{API_KEY_HEADER, PATH_ITEM_EQUIPMENT};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Options, Stack, fresh_name, header, inflate};

async fn get(stack: &Stack, base: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = stack.http.get(format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("core answers")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expectation_goes_out_in_both_encodings_with_stable_etags_and_304s() {
    let stack = Stack::start().await;
    let core = stack.core("");
    let path = format!("/v1/characters/{}/expectation", fresh_name("ready"));

    let plain = get(&stack, &core, &path, &[]).await;
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(header(&plain, "x-maple-valuation"), "computed");
    assert_eq!(header(&plain, "x-maple-source"), "upstream");
    assert_eq!(header(&plain, "vary"), "accept-encoding");
    assert_eq!(header(&plain, "content-type"), "application/json");
    assert!(plain.headers().get("content-encoding").is_none());
    let etag = header(&plain, "etag");
    assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");
    let plain = plain.bytes().await.expect("body");
    let json: Value = serde_json::from_slice(&plain).expect("JSON");
    assert!(json["valuation"]["total_mesos"].as_f64() > Some(0.0));

    let gzipped = get(&stack, &core, &path, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(header(&gzipped, "x-maple-valuation"), "cached");
    assert_eq!(header(&gzipped, "x-maple-source"), "l1");
    assert_eq!(header(&gzipped, "content-encoding"), "gzip");
    let gzip_etag = header(&gzipped, "etag");
    assert_eq!(gzip_etag, format!("{}-gz\"", etag.trim_end_matches('"')));
    let compressed = gzipped.bytes().await.expect("body");
    assert!(
        compressed.len() * 3 < plain.len(),
        "{} of {}",
        compressed.len(),
        plain.len()
    );
    assert_eq!(
        inflate(&compressed),
        plain.to_vec(),
        "the same JSON after inflating"
    );

    // Repeats are the same bytes; a client refusing gzip gets the JSON.
    for refusing in ["gzip;q=0", "identity", "br"] {
        let again = get(&stack, &core, &path, &[("accept-encoding", refusing)]).await;
        assert!(
            again.headers().get("content-encoding").is_none(),
            "{refusing}"
        );
        assert_eq!(header(&again, "etag"), etag);
        assert_eq!(again.bytes().await.expect("body"), plain);
    }

    // Either ETag (weak comparison, in a list) answers 304 with no body, in either encoding.
    for (tag, encoding) in [
        (etag.clone(), "gzip"),
        (gzip_etag.clone(), "identity"),
        (format!("\"other\", W/{etag}"), "gzip"),
    ] {
        let not_modified = get(
            &stack,
            &core,
            &path,
            &[("if-none-match", &tag), ("accept-encoding", encoding)],
        )
        .await;
        assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED, "{tag}");
        assert_eq!(header(&not_modified, "x-maple-valuation"), "cached");
        assert!(!header(&not_modified, "etag").is_empty());
        assert!(not_modified.bytes().await.expect("body").is_empty());
    }
    let other_tag = get(&stack, &core, &path, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(other_tag.status(), StatusCode::OK);

    // Other options are another valuation: another ETag, and the old one does not match it.
    let red_path = format!("{path}?method=red");
    let red = get(&stack, &core, &red_path, &[("if-none-match", &etag)]).await;
    assert_eq!(red.status(), StatusCode::OK);
    assert_eq!(header(&red, "x-maple-valuation"), "computed");
    assert_ne!(header(&red, "etag"), etag);

    // Another instance prices the same content afresh: byte for byte the same answer, the
    // same ETags (a client's cached copy stays valid behind a load balancer).
    let other = stack.another_core(&[]).await;
    let fresh = get(&stack, &other.url(""), &path, &[]).await;
    assert_eq!(header(&fresh, "x-maple-valuation"), "computed");
    assert_eq!(header(&fresh, "etag"), etag);
    assert_eq!(fresh.bytes().await.expect("body"), plain);
    let fresh_gzip = get(
        &stack,
        &other.url(""),
        &path,
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(header(&fresh_gzip, "etag"), gzip_etag);
    other.stop().await;
    stack.stop().await;
}

/// What the stand-in upstream does to item-equipment bodies.
#[derive(Debug, Default)]
struct Rewrite {
    /// Serve this ocid's body instead of the one asked for.
    body_of: Option<String>,
    /// Set every equipped item's stars to this.
    stars: Option<u32>,
}

/// An upstream in front of the simulator that passes everything through, except that it can
/// rewrite item-equipment bodies (the simulator's are fixed per ocid).
async fn rewriting_upstream(sim: SocketAddr, rewrite: Arc<Mutex<Rewrite>>) -> SocketAddr {
    async fn pass(
        State((sim, rewrite)): State<(SocketAddr, Arc<Mutex<Rewrite>>)>,
        request: Request,
    ) -> Response {
        let uri = request.uri().clone();
        let mut query = uri.query().unwrap_or_default().to_owned();
        let (body_of, stars) = {
            let rewrite = rewrite.lock().expect("rewrite");
            (rewrite.body_of.clone(), rewrite.stars)
        };
        let equipment = uri.path() == PATH_ITEM_EQUIPMENT;
        if let (true, Some(ocid)) = (equipment, &body_of) {
            query = format!("ocid={ocid}");
        }
        let mut forward = reqwest::Client::new().get(format!("http://{sim}{}?{query}", uri.path()));
        if let Some(key) = request.headers().get(API_KEY_HEADER) {
            forward = forward.header(API_KEY_HEADER, key.as_bytes());
        }
        let Ok(answer) = forward.send().await else {
            return AxumStatus::BAD_GATEWAY.into_response();
        };
        let status = AxumStatus::from_u16(answer.status().as_u16()).expect("status");
        let body = answer.bytes().await.unwrap_or_default();
        let body = match (equipment, stars) {
            (true, Some(stars)) if status.is_success() => {
                let mut json: Value = serde_json::from_slice(&body).expect("JSON");
                for item in json["item_equipment"].as_array_mut().expect("items") {
                    item["starforce"] = Value::from(stars.to_string());
                }
                Bytes::from(serde_json::to_vec(&json).expect("JSON"))
            }
            _ => body,
        };
        (status, [("content-type", "application/json")], body).into_response()
    }
    let app = Router::new().fallback(pass).with_state((sim, rewrite));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Starts a stack whose proxy reaches a simulator of its own through [`rewriting_upstream`]
/// (the stack's own simulator stays idle), with nothing cached by the proxy and equipment
/// fresh for no time in core: each request asks again, so a body changed upstream is seen at
/// once.
async fn rewriting_stack() -> (Stack, Arc<Mutex<Rewrite>>) {
    let sim = maple_sim::Simulator::new(maple_sim::SimConfig::default()).expect("templates");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sim_addr = listener.local_addr().expect("addr");
    tokio::spawn(sim.serve(listener, std::future::pending()));
    let rewrite = Arc::new(Mutex::new(Rewrite::default()));
    let upstream = rewriting_upstream(sim_addr, Arc::clone(&rewrite)).await;
    let mut options = Options::uncached();
    options
        .proxy_env
        .push(("MAPLE_PROXY_UPSTREAM", format!("http://{upstream}")));
    options
        .core_env
        .push(("MAPLE_CORE_EQUIPMENT_FRESH_S", "0".to_owned()));
    (Stack::start_with(options).await, rewrite)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_equipment_body_never_answers_with_the_old_valuation() {
    let (stack, rewrite) = rewriting_stack().await;
    let core = stack.core("");
    let path = format!("/v1/characters/{}/expectation", fresh_name("change"));

    let first = get(&stack, &core, &path, &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    let etag = header(&first, "etag");
    let first: Value = first.json().await.expect("JSON");
    let again = get(&stack, &core, &path, &[("if-none-match", &etag)]).await;
    assert_eq!(
        again.status(),
        StatusCode::NOT_MODIFIED,
        "unchanged content"
    );

    // Nexon's body changes (every item now 0★): a new valuation, a new ETag; the old ETag no
    // longer matches, in either encoding.
    rewrite.lock().expect("rewrite").stars = Some(0);
    for encoding in ["identity", "gzip"] {
        let changed = get(
            &stack,
            &core,
            &path,
            &[("if-none-match", &etag), ("accept-encoding", encoding)],
        )
        .await;
        assert_eq!(changed.status(), StatusCode::OK, "{encoding}");
        assert_ne!(header(&changed, "etag"), etag);
        let gzip = encoding == "gzip";
        if !gzip {
            assert_eq!(header(&changed, "x-maple-valuation"), "computed");
        }
        let body = changed.bytes().await.expect("body");
        let body = if gzip { inflate(&body) } else { body.to_vec() };
        let changed: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(changed["valuation"]["total_starforce_mesos"], 0.0);
        assert_ne!(
            changed["valuation"]["total_mesos"],
            first["valuation"]["total_mesos"]
        );
    }

    // And back: the first content's valuation (still cached by its hash) is the right one.
    rewrite.lock().expect("rewrite").stars = None;
    let back = get(&stack, &core, &path, &[("if-none-match", &etag)]).await;
    assert_eq!(back.status(), StatusCode::NOT_MODIFIED);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_names_with_the_same_equipment_each_get_their_own_answer() {
    let (stack, rewrite) = rewriting_stack().await;
    let core = stack.core("");
    let (first_name, second_name) = (fresh_name("twina"), fresh_name("twinb"));
    let first = get(
        &stack,
        &core,
        &format!("/v1/characters/{first_name}/expectation"),
        &[],
    )
    .await;
    assert_eq!(header(&first, "x-maple-valuation"), "computed");
    let first_etag = header(&first, "etag");
    let first: Value = first.json().await.expect("JSON");

    // The second name's equipment is the first one's, byte for byte.
    rewrite.lock().expect("rewrite").body_of =
        Some(first["ocid"].as_str().expect("ocid").to_owned());
    let second_path = format!("/v1/characters/{second_name}/expectation");
    let second = get(&stack, &core, &second_path, &[]).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(
        header(&second, "x-maple-valuation"),
        "cached",
        "priced once"
    );
    assert_ne!(header(&second, "etag"), first_etag, "another answer");
    let second: Value = second.json().await.expect("JSON");
    assert_eq!(second["name"], second_name.as_str());
    assert_ne!(second["ocid"], first["ocid"]);
    assert_eq!(second["valuation"], first["valuation"]);
    // Each name keeps being answered with its own name.
    let first_again = get(
        &stack,
        &core,
        &format!("/v1/characters/{first_name}/expectation"),
        &[],
    )
    .await;
    assert_eq!(header(&first_again, "etag"), first_etag);
    let first_again: Value = first_again.json().await.expect("JSON");
    assert_eq!(first_again["name"], first_name.as_str());
    stack.stop().await;
}

/// One client sends 600 valuations with distinct `spare_mesos`, 64 at a time (each misses
/// every cache): the pricing gate holds it to its share (2 at once, the rest 429), and another
/// client's first valuation of a new character during the flood is answered. The times are
/// printed, not asserted (docs/benchmarks.md has the release build's).
#[tokio::test(flavor = "multi_thread")]
async fn a_pricing_flood_from_one_client_does_not_hold_up_another() {
    let stack = crate::harness::Stack::start_with(crate::harness::Options {
        core_env: vec![
            ("MAPLE_CORE_TRUSTED_PROXIES", "127.0.0.1".to_owned()),
            ("MAPLE_CORE_PRICING_PER_CLIENT", "2".to_owned()),
            ("MAPLE_CORE_PRICING_QUEUE", "64".to_owned()),
            ("MAPLE_CORE_PRICING_WAIT_MS", "2000".to_owned()),
        ],
        ..crate::harness::Options::default()
    })
    .await;
    let mut tag = crate::harness::fresh_name("pf");
    tag.truncate(11);
    let report =
        maple_tests::flood::run(&format!("http://{}", stack.core_addr), 600, 64, &tag).await;
    eprintln!("pricing flood (debug build): {report}");
    assert_eq!(report.alone.0, 200, "{report}");
    assert_eq!(report.during.0, 200, "{report}");
    assert!(
        report
            .flood
            .keys()
            .all(|status| [200, 429].contains(status)),
        "the flood is answered or refused 429, never left to time out: {report}"
    );
    assert!(report.flood.get(&429).copied().unwrap_or(0) > 0, "{report}");
    let metrics = stack.core_metrics().await;
    assert!(
        crate::harness::metric_value(
            &metrics,
            "maple_core_pricing_admissions_total{result=\"client_busy\"}"
        ) > 0.0
    );
    stack.stop().await;
}

/// A valuation whose client hangs up mid-way stops before its next item (counted
/// `abandoned`) and gives its place back: the client's next valuation is admitted though its
/// share is one.
#[tokio::test(flavor = "multi_thread")]
async fn a_valuation_whose_client_left_stops_and_gives_its_place_back() {
    let stack = crate::harness::Stack::start_with(crate::harness::Options {
        core_env: vec![("MAPLE_CORE_PRICING_PER_CLIENT", "1".to_owned())],
        ..crate::harness::Options::default()
    })
    .await;
    let name = crate::harness::fresh_name("gone");
    // Fetched and parsed first: what the impatient client asks for next is pricing alone.
    let warm = stack
        .get(&format!("/v1/characters/{name}/expectation?spare_mesos=1"))
        .await;
    assert_eq!(warm.status(), StatusCode::OK);
    let abandoned = |metrics: &str| {
        crate::harness::metric_value(
            metrics,
            "maple_core_pricing_admissions_total{result=\"abandoned\"}",
        )
    };
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(30))
        .build()
        .expect("client");
    // Each new `spare_mesos` simulates the items' star-force spreads again (tens of ms each
    // in a debug build): the client is gone long before the last item.
    let mut spare = 2;
    let started = std::time::Instant::now();
    while abandoned(&stack.core_metrics().await) < 1.0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no valuation was abandoned"
        );
        // Usually the client times out; a 429 (its place still held by the work it left) or a
        // quick answer just means another try.
        let _ = impatient
            .get(stack.core(&format!(
                "/v1/characters/{name}/expectation?spare_mesos={spare}"
            )))
            .send()
            .await;
        spare += 1;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // Its place is free again: with a share of one, the next valuation is admitted.
    let next = stack
        .get(&format!(
            "/v1/characters/{name}/expectation?spare_mesos=999"
        ))
        .await;
    assert_eq!(next.status(), StatusCode::OK);
    stack.stop().await;
}
