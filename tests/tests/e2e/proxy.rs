//! The proxy used directly, as any other service would: key handling and what it refuses.

use maple_common::nexon::{API_KEY_HEADER, PATH_ID, PATH_ITEM_EQUIPMENT};
use maple_sim::characters;
use maple_sim::faults::FaultSpec;
use reqwest::StatusCode;

use crate::harness::{Stack, error_code, header, inflate};

#[tokio::test(flavor = "multi_thread")]
async fn the_client_key_is_replaced_by_the_configured_one() {
    let stack = Stack::start().await;
    let response = stack
        .http
        .get(stack.proxy(PATH_ID))
        .query(&[("character_name", "keythief")])
        .header(API_KEY_HEADER, "a-stolen-key")
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the simulator saw the proxy's key"
    );
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["ocid"], characters::ocid_for("keythief").as_str());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn equipment_goes_out_gzip_to_clients_that_take_it_and_identity_to_the_rest() {
    let stack = Stack::start().await;
    let get = |ocid: String, encoding: Option<&'static str>| {
        let mut request = stack
            .http
            .get(stack.proxy(PATH_ITEM_EQUIPMENT))
            .query(&[("ocid", ocid)]);
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        async move {
            let response = request.send().await.expect("proxy answers");
            assert_eq!(response.status(), StatusCode::OK);
            let cache = header(&response, "x-cache");
            let coding = header(&response, "content-encoding");
            assert_eq!(header(&response, "vary"), "accept-encoding", "{encoding:?}");
            let length: usize = header(&response, "content-length")
                .parse()
                .expect("content-length");
            let body = response.bytes().await.expect("body").to_vec();
            assert_eq!(length, body.len(), "{encoding:?}");
            (cache, coding, body)
        }
    };
    // A miss answered in gzip: the compressed form is made before the first answer.
    let first = characters::ocid_for("gzipfirst").as_str().to_owned();
    let (cache, coding, gzip) = get(first.clone(), Some("gzip")).await;
    assert_eq!((cache.as_str(), coding.as_str()), ("MISS", "gzip"));
    let (cache, coding, identity) = get(first, None).await;
    assert_eq!((cache.as_str(), coding.as_str()), ("HIT", ""));
    assert_eq!(
        inflate(&gzip),
        identity,
        "gzip inflates to the identity bytes"
    );
    serde_json::from_slice::<serde_json::Value>(&identity).expect("identity is the JSON");
    assert!(
        gzip.len() * 4 < identity.len(),
        "{} gzip bytes for {} identity bytes",
        gzip.len(),
        identity.len()
    );

    // A miss answered in identity; then every way of asking, from the cache.
    let second = characters::ocid_for("gzipsecond").as_str().to_owned();
    let (cache, coding, identity) = get(second.clone(), None).await;
    assert_eq!((cache.as_str(), coding.as_str()), ("MISS", ""));
    for (encoding, gzipped) in [
        ("gzip", true),
        ("br, gzip;q=0.5", true),
        ("*", true),
        ("gzip;q=0, *", false),
        ("identity", false),
        ("br", false),
    ] {
        let (cache, coding, body) = get(second.clone(), Some(encoding)).await;
        assert_eq!(cache, "HIT", "{encoding}");
        if gzipped {
            assert_eq!(coding, "gzip", "{encoding}");
            assert_eq!(inflate(&body), identity, "{encoding}");
        } else {
            assert_eq!(coding, "", "{encoding}");
            assert_eq!(body, identity, "{encoding}");
        }
    }

    // A short body (the id route) goes out as it is, whatever the client takes.
    let response = stack
        .http
        .get(stack.proxy(PATH_ID))
        .query(&[("character_name", "gzipshort")])
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-encoding"), "");
    let body: serde_json::Value = response.json().await.expect("plain JSON");
    assert_eq!(body["ocid"], characters::ocid_for("gzipshort").as_str());
    stack.stop().await;
}

/// The proxy's equipment answer for `ocid`: (x-cache, content-encoding, body).
async fn proxied_equipment(stack: &Stack, ocid: &str, gzip: bool) -> (String, String, Vec<u8>) {
    let mut request = stack
        .http
        .get(stack.proxy(PATH_ITEM_EQUIPMENT))
        .query(&[("ocid", ocid)]);
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let response = request.send().await.expect("proxy answers");
    assert_eq!(response.status(), StatusCode::OK);
    let cache = header(&response, "x-cache");
    let coding = header(&response, "content-encoding");
    (
        cache,
        coding,
        response.bytes().await.expect("body").to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn nexon_is_asked_for_gzip_and_its_bytes_go_out_as_they_came() {
    let stack = Stack::start().await;
    let wire = |coding: &'static str| {
        let stack = &stack;
        async move {
            stack
                .proxy_metric(&format!(
                    "maple_proxy_upstream_body_bytes_total{{coding=\"{coding}\"}}"
                ))
                .await
        }
    };
    // The simulator compresses at level 6, our binaries at level 1: equal bytes mean Nexon's
    // gzip went out as it came, not inflated and compressed again.
    let ocid = characters::ocid_for("wiregzip").as_str().to_owned();
    let nexon_gzip = stack.nexon_equipment(&ocid, true).await;
    let nexon_json = stack.nexon_equipment(&ocid, false).await;
    assert_eq!(inflate(&nexon_gzip), nexon_json);
    assert_ne!(
        nexon_gzip,
        maple_common::encoding::gzip(&nexon_json),
        "the simulator's gzip is not ours"
    );
    let (cache, coding, body) = proxied_equipment(&stack, &ocid, true).await;
    assert_eq!((cache.as_str(), coding.as_str()), ("MISS", "gzip"));
    assert_eq!(body, nexon_gzip, "Nexon's gzip bytes, as they came");
    let (cache, coding, body) = proxied_equipment(&stack, &ocid, false).await;
    assert_eq!((cache.as_str(), coding.as_str()), ("HIT", ""));
    assert_eq!(body, nexon_json, "inflated once for identity clients");
    assert_eq!(wire("gzip").await, nexon_gzip.len() as f64);
    assert_eq!(wire("identity").await, 0.0);

    // An upstream that sends identity only: the proxy compresses (once) itself.
    stack.sim.set_gzip(false);
    let plain = characters::ocid_for("wireplain").as_str().to_owned();
    let nexon_json = stack.nexon_equipment(&plain, true).await;
    serde_json::from_slice::<serde_json::Value>(&nexon_json).expect("identity JSON");
    let (cache, coding, body) = proxied_equipment(&stack, &plain, true).await;
    assert_eq!((cache.as_str(), coding.as_str()), ("MISS", "gzip"));
    assert_eq!(inflate(&body), nexon_json);
    assert_eq!(wire("identity").await, nexon_json.len() as f64);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_that_does_not_inflate_is_a_broken_answer_and_is_not_cached() {
    let stack = Stack::start().await;
    stack
        .sim
        .faults()
        .set(FaultSpec::corrupt_gzip().on_path(PATH_ITEM_EQUIPMENT))
        .await
        .expect("valid fault");
    let ocid = characters::ocid_for("brokengzip").as_str().to_owned();
    for gzip in [true, false] {
        let mut request = stack
            .http
            .get(stack.proxy(PATH_ITEM_EQUIPMENT))
            .query(&[("ocid", ocid.as_str())]);
        if gzip {
            request = request.header("accept-encoding", "gzip");
        }
        let response = request.send().await.expect("proxy answers");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()["x-maple-proxy-error"],
            "upstream_protocol_error"
        );
        assert_eq!(error_code(response).await, "upstream_protocol_error");
    }
    assert_eq!(
        stack
            .proxy_metric(
                "maple_proxy_upstream_requests_total{outcome=\"protocol\",route=\"/maplestory/v1/character/item-equipment\"}"
            )
            .await,
        2.0,
        "each a broken answer, not retried"
    );
    stack.sim.faults().clear().await;
    let (cache, coding, body) = proxied_equipment(&stack, &ocid, true).await;
    assert_eq!((cache.as_str(), coding.as_str()), ("MISS", "gzip"));
    assert_eq!(body, stack.nexon_equipment(&ocid, true).await);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nexon_errors_pass_through_unchanged() {
    let stack = Stack::start().await;
    let response = stack
        .http
        .get(stack.proxy("/maplestory/v1/character/basic"))
        .query(&[("ocid", "0123456789abcdef0123456789abcdef")])
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("x-maple-proxy-error").is_none());
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["name"], "OPENAPI00003");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_nexon_reads_are_proxied() {
    let stack = Stack::start().await;
    let cases = [
        ("GET", "/admin", StatusCode::NOT_FOUND, "not_found"),
        (
            "GET",
            "/maplestory/v1//id",
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "POST",
            PATH_ID,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (method, path, status, code) in cases {
        let response = stack
            .http
            .request(method.parse().expect("method"), stack.proxy(path))
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(response.headers()["x-maple-proxy-error"], code);
        assert_eq!(error_code(response).await, code, "{method} {path}");
    }
    // Sent raw: an HTTP client library would normalise these paths before sending.
    for path in [
        "/maplestory/v1/../../-/stats",
        "/maplestory/v1/%2e%2e/%2e%2e/-/faults",
        "/maplestory/v1/%2E%2E%2F-%2Fstats",
        "/maplestory/v1/a\\..\\..\\-/stats",
        "/maplestory/v1/%252e%252e/%252e%252e/-/stats",
        "/maplestory/v1/..;/..;/-/stats",
        "/maplestory/v1/character/basic/.",
        "/maplestory/v1/id;x=1",
    ] {
        let (status, body) = raw_get(stack.proxy_addr, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("invalid_path"), "{path}: {body}");
    }
    assert_eq!(stack.sim.stats().total, 0, "nothing reached the upstream");
    stack.stop().await;
}

/// A path with an encoded letter is the same route: decoded once, routed, cached and sent
/// upstream as the plain path (one upstream call for both spellings).
#[tokio::test(flavor = "multi_thread")]
async fn an_encoded_letter_is_the_same_path() {
    let stack = Stack::start().await;
    let ocid = characters::ocid_for("spelled");
    let (status, body) = raw_get(
        stack.proxy_addr,
        "/maplestory/v1/%69d?character_name=spelled",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(ocid.as_str()), "{body}");
    let (status, body) =
        raw_get(stack.proxy_addr, "/maplestory/v1/id?character_name=spelled").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_ascii_lowercase().contains("x-cache: hit"), "{body}");
    assert_eq!(
        stack.sim.stats().total,
        1,
        "one upstream call for both spellings"
    );
    stack.stop().await;
}

/// One HTTP/1.1 GET written byte for byte; returns the status and the body text.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("answer within 10 s")
    .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}
