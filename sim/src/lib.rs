//! The Nexon Open API simulator: the real API's paths, key header, JSON shapes and error bodies,
//! with deterministic characters, call counters and fault injection.
//!
//! It is the upstream of every local run, test and benchmark (nothing here reaches Nexon).
//! Control API on the same port: `POST /-/faults`, `DELETE /-/faults`, `GET /-/faults`,
//! `GET /-/stats`, `DELETE /-/stats`, and `POST /-/names` (`{"name": "B", "character": "A"}`:
//! the name B now belongs to the character first generated for A, as after a rename; `null`:
//! no character has the name) with `DELETE /-/names` to undo every such change.
//!
//! Like a web server with compression on, it answers gzip (`Content-Encoding: gzip`, `Vary:
//! Accept-Encoding`) to a request whose `Accept-Encoding` takes it, for bodies of
//! [`GZIP_MIN_BYTES`] or more; [`SimConfig::gzip`] (`MAPLE_SIM_GZIP`) or
//! [`Simulator::set_gzip`] turns that off, to play an upstream that only sends identity.

pub mod characters;
pub mod faults;
pub mod flames;
pub mod lines;
pub mod settings;
pub mod stats;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use maple_common::error::ErrorBody;
use maple_common::nexon::{
    API_KEY_HEADER, NexonErrorCode, Ocid, PATH_BASIC, PATH_ID, PATH_ITEM_EQUIPMENT,
};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use self::characters::{TemplateError, Templates};
use self::faults::{Action, FaultSpec, Faults};
use self::stats::{Stats, StatsSnapshot};

/// Where the simulator listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8090";
/// The key the simulator accepts unless told otherwise (it is not a secret: it opens nothing).
pub const DEFAULT_API_KEY: &str = "maple-sim-dev-key";
/// Nexon keeps daily snapshots from this date on; earlier dates are a bad parameter.
const FIRST_SNAPSHOT_DATE: &str = "2023-12-21";
/// Generated bodies kept for reuse, in bytes.
const BODY_CACHE_BYTES: u64 = 128 * 1024 * 1024;
/// Remembered name of each ocid looked up, for `character/basic`'s `character_name`.
const MAX_REMEMBERED_NAMES: usize = 100_000;
/// Bodies shorter than this are sent as they are even to a client that takes gzip (as web
/// servers' `gzip_min_length` does).
pub const GZIP_MIN_BYTES: usize = 1024;
/// How long open connections get to finish when the simulator stops.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// What the simulator needs to start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub api_key: String,
    /// A folder with other templates (`MAPLE_DATA_DIR`); `None`: the copies built into the
    /// binary from the repository's `data/`.
    pub data_dir: Option<PathBuf>,
    /// Whether a client that takes gzip gets it (bodies of [`GZIP_MIN_BYTES`] or more).
    pub gzip: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            api_key: DEFAULT_API_KEY.to_owned(),
            data_dir: None,
            gzip: true,
        }
    }
}

/// A simulator: cheap to clone, all clones share state.
#[derive(Debug, Clone)]
pub struct Simulator {
    state: Arc<SimState>,
}

#[derive(Debug)]
struct SimState {
    api_key: String,
    templates: Templates,
    faults: Faults,
    stats: Stats,
    /// Whether gzip is offered (see the module's doc).
    gzip: AtomicBool,
    bodies: moka::sync::Cache<(Endpoint, Ocid, Option<String>), Body>,
    names: Mutex<HashMap<Ocid, String>>,
    /// Names whose owner changed (lower case → the new owner's ocid, or nobody): renames,
    /// freed names, names taken by another character.
    owners: Mutex<HashMap<String, Option<Ocid>>>,
}

/// A generated body, kept with its gzip form (made once, when long enough to gain) at zlib's
/// default level 6, as web servers commonly compress: not the level our binaries use, so a test
/// can tell Nexon's gzip bytes, passed on as they are, from a compression of our own.
#[derive(Debug, Clone)]
struct Body {
    identity: Bytes,
    gzip: Option<Bytes>,
}

impl Body {
    fn new(identity: Vec<u8>) -> Self {
        let gzip = (identity.len() >= GZIP_MIN_BYTES)
            .then(|| Bytes::from(maple_common::encoding::gzip_at(&identity, 6)));
        Self {
            identity: identity.into(),
            gzip,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Endpoint {
    Basic,
    Equipment,
}

impl Simulator {
    /// Loads the templates (from `config.data_dir`, else the built-in ones).
    ///
    /// # Errors
    /// [`TemplateError`] when the data folder lacks a template or holds malformed JSON.
    pub fn new(config: SimConfig) -> Result<Self, TemplateError> {
        let templates = match &config.data_dir {
            Some(dir) => Templates::load(dir)?,
            None => Templates::embedded()?,
        };
        let bodies = moka::sync::Cache::builder()
            .max_capacity(BODY_CACHE_BYTES)
            .weigher(|_, body: &Body| {
                let gzip = body.gzip.as_ref().map_or(0, Bytes::len);
                u32::try_from(body.identity.len() + gzip).unwrap_or(u32::MAX)
            })
            .build();
        Ok(Self {
            state: Arc::new(SimState {
                api_key: config.api_key,
                templates,
                faults: Faults::default(),
                stats: Stats::default(),
                gzip: AtomicBool::new(config.gzip),
                bodies,
                names: Mutex::new(HashMap::new()),
                owners: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Calls seen so far, per path.
    pub fn stats(&self) -> StatsSnapshot {
        self.state.stats.snapshot()
    }

    /// Zeroes the call counters.
    pub fn reset_stats(&self) {
        self.state.stats.reset();
    }

    /// Offers gzip to the clients that take it (`true`), or answers identity to everyone.
    pub fn set_gzip(&self, offered: bool) {
        self.state.gzip.store(offered, Ordering::Relaxed);
    }

    /// Gives `name` to the character first generated for `character` (a rename: the new name
    /// to the old name's character, then the old name to nobody), or to nobody (`None`).
    pub fn set_owner(&self, name: &str, character: Option<&str>) {
        let owner = character.map(characters::ocid_for);
        self.owners().insert(name.to_lowercase(), owner);
    }

    /// Undoes every [`Self::set_owner`].
    pub fn reset_owners(&self) {
        self.owners().clear();
    }

    /// Who owns `name` now: a changed owner, else the generated world's answer.
    fn owner(&self, name: &str) -> Option<Ocid> {
        match self.owners().get(&name.to_lowercase()) {
            Some(owner) => owner.clone(),
            None => characters::exists(name).then(|| characters::ocid_for(name)),
        }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Ocid>>> {
        self.state.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fault switchboard, for tests that hold the simulator.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// The HTTP routes: the Nexon API and the control API.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route(PATH_ID, get(ocid_lookup))
            .route(PATH_BASIC, get(basic))
            .route(PATH_ITEM_EQUIPMENT, get(item_equipment))
            .fallback(unknown_api_path)
            // Order (outermost first): count the call, apply faults, then check the key.
            .layer(middleware::from_fn_with_state(self.clone(), require_key))
            .layer(middleware::from_fn_with_state(self.clone(), inject_faults))
            .layer(middleware::from_fn_with_state(self.clone(), count_call))
            .with_state(self.clone());
        Router::new()
            .route(
                "/-/faults",
                get(current_fault).post(set_fault).delete(clear_fault),
            )
            .route("/-/stats", get(read_stats).delete(reset_stats))
            .route("/-/stats/equipment", get(read_equipment_calls))
            .route("/-/names", post(set_owner).delete(reset_owners))
            .fallback_service(api)
            .with_state(self.clone())
    }

    /// Serves until `shutdown` resolves, then gives open connections [`DRAIN_DEADLINE`].
    ///
    /// Connections are served by hand (not `axum::serve`) so a `reset` fault can abort the
    /// TCP connection with an RST, as a crashed upstream would.
    ///
    /// # Errors
    /// Only if the listener itself fails irrecoverably.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let router = self.router();
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            tracker.spawn(serve_connection(stream, peer, router.clone(), stop.clone()));
        }
        stop.cancel();
        tracker.close();
        if tokio::time::timeout(DRAIN_DEADLINE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = tracker.len(),
                "simulator abandoned connections at shutdown"
            );
        }
        Ok(())
    }
}

/// Set on each request so a handler can ask for its connection to be reset.
#[derive(Debug, Clone)]
struct ConnectionReset(Arc<Notify>);

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    stop: CancellationToken,
) {
    // A second handle on the socket lets us set SO_LINGER=0 and close it: the kernel then
    // sends RST instead of FIN.
    let (stream, killer) = match split_for_reset(stream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, %peer, "simulator could not prepare a connection");
            return;
        }
    };
    let reset = Arc::new(Notify::new());
    let marker = ConnectionReset(Arc::clone(&reset));
    let service = router.map_request(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(marker.clone());
        request
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "simulator connection ended with an error");
            }
        }
        () = reset.notified() => {
            let _ = socket2::SockRef::from(&killer).set_linger(Some(Duration::ZERO));
            // Dropping both handles closes the socket; with linger 0 that is an RST.
        }
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_DEADLINE, connection).await;
        }
    }
}

fn split_for_reset(stream: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std_stream = stream.into_std()?;
    let killer = std_stream.try_clone()?;
    Ok((TcpStream::from_std(std_stream)?, killer))
}

// ---- middleware -------------------------------------------------------------------------

async fn count_call(State(sim): State<Simulator>, request: Request, next: Next) -> Response {
    sim.state.stats.record(request.uri().path());
    if request.uri().path() == PATH_ITEM_EQUIPMENT
        && let Some(ocid) = request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("ocid=")))
    {
        sim.state.stats.record_equipment(ocid, unix_ms());
    }
    if let Some(traceparent) = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        sim.state.stats.record_traceparent(traceparent);
    }
    next.run(request).await
}

async fn inject_faults(State(sim): State<Simulator>, request: Request, next: Next) -> Response {
    let decision = sim.state.faults.decide(request.uri().path()).await;
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    match decision.action {
        None => next.run(request).await,
        Some(Action::Error(status)) => nexon_error_with_status(status),
        Some(Action::RateLimit { retry_after_s }) => {
            let mut response = nexon_error(NexonErrorCode::RateLimitExceeded);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            response
        }
        Some(Action::Hang(hang)) => {
            sim.state.faults.hang(hang).await;
            nexon_error_with_status(503)
        }
        Some(Action::CorruptGzip) => corrupt_gzip(next.run(request).await).await,
        Some(Action::Reset) => {
            if let Some(reset) = request.extensions().get::<ConnectionReset>() {
                reset.0.notify_one();
            }
            // The connection is being torn down; this answer is never sent.
            std::future::pending::<Response>().await
        }
    }
}

/// `response` with its body gzip-compressed (if it was not) and cut in half, still labelled
/// gzip: what a client must refuse to read.
async fn corrupt_gzip(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return nexon_error(NexonErrorCode::InternalServerError);
    };
    let gzip = if parts.headers.contains_key(header::CONTENT_ENCODING) {
        body.to_vec()
    } else {
        maple_common::encoding::gzip(&body)
    };
    let cut = Bytes::copy_from_slice(&gzip[..gzip.len() / 2]);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    Response::from_parts(parts, axum::body::Body::from(cut))
}

async fn require_key(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let key = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
    if key != Some(sim.state.api_key.as_str()) {
        return nexon_error(NexonErrorCode::InvalidApiKey);
    }
    next.run(request).await
}

// ---- Nexon API ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct NameQuery {
    character_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OcidQuery {
    ocid: Option<String>,
    date: Option<String>,
}

async fn ocid_lookup(
    State(sim): State<Simulator>,
    query: Result<Query<NameQuery>, QueryRejection>,
) -> Response {
    let Some(name) = query.ok().and_then(|Query(q)| q.character_name) else {
        return nexon_error(NexonErrorCode::InvalidParameter);
    };
    let owner = (!name.is_empty() && name.chars().count() <= 12)
        .then(|| sim.owner(&name))
        .flatten();
    let Some(ocid) = owner else {
        // What Nexon answers for a name no character has.
        return nexon_error(NexonErrorCode::InvalidParameter);
    };
    remember_name(&sim, &ocid, &name);
    Json(serde_json::json!({ "ocid": ocid })).into_response()
}

async fn basic(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    query: Result<Query<OcidQuery>, QueryRejection>,
) -> Response {
    serve_character(&sim, Endpoint::Basic, &headers, query).await
}

async fn item_equipment(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    query: Result<Query<OcidQuery>, QueryRejection>,
) -> Response {
    serve_character(&sim, Endpoint::Equipment, &headers, query).await
}

async fn serve_character(
    sim: &Simulator,
    endpoint: Endpoint,
    headers: &HeaderMap,
    query: Result<Query<OcidQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return nexon_error(NexonErrorCode::InvalidParameter);
    };
    let Some(raw_ocid) = query.ocid else {
        return nexon_error(NexonErrorCode::InvalidParameter);
    };
    let Some(ocid) = raw_ocid.parse::<Ocid>().ok().filter(characters::is_known) else {
        return nexon_error(NexonErrorCode::InvalidIdentifier);
    };
    if let Some(date) = &query.date
        && !valid_date(date)
    {
        return nexon_error(NexonErrorCode::InvalidParameter);
    }
    let key = (endpoint, ocid, query.date);
    let body = match sim.state.bodies.get(&key) {
        Some(body) => body,
        None => {
            let state = Arc::clone(&sim.state);
            let (endpoint, ocid, date) = key.clone();
            // ~350 KB of JSON to build: keep it off the async workers.
            let built = tokio::task::spawn_blocking(move || {
                let value = match endpoint {
                    Endpoint::Basic => {
                        let name = state
                            .names
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&ocid)
                            .cloned();
                        characters::basic(&state.templates, &ocid, name.as_deref(), date.as_deref())
                    }
                    Endpoint::Equipment => {
                        characters::equipment(&state.templates, &ocid, date.as_deref())
                    }
                };
                // Pretty-printed like the published responses (~350 KB for equipment).
                serde_json::to_vec_pretty(&value).map(Body::new)
            })
            .await;
            match built {
                Ok(Ok(body)) => {
                    sim.state.bodies.insert(key, body.clone());
                    body
                }
                _ => return nexon_error(NexonErrorCode::InternalServerError),
            }
        }
    };
    let content_type = (header::CONTENT_TYPE, "application/json; charset=utf-8");
    match body.gzip {
        Some(gzip)
            if sim.state.gzip.load(Ordering::Relaxed)
                && maple_common::encoding::accepts_gzip(headers) =>
        {
            let gzip_headers = [
                content_type,
                (header::CONTENT_ENCODING, "gzip"),
                (header::VARY, "accept-encoding"),
            ];
            (gzip_headers, gzip).into_response()
        }
        // A body that has a gzip form varies by Accept-Encoding even when sent identity (a
        // shared cache must not hand the identity bytes to a gzip client, or the reverse).
        Some(_) => (
            [content_type, (header::VARY, "accept-encoding")],
            body.identity,
        )
            .into_response(),
        None => ([content_type], body.identity).into_response(),
    }
}

async fn unknown_api_path() -> Response {
    nexon_error(NexonErrorCode::InvalidPath)
}

fn remember_name(sim: &Simulator, ocid: &Ocid, name: &str) {
    let mut names = sim.state.names.lock().unwrap_or_else(|e| e.into_inner());
    if names.len() >= MAX_REMEMBERED_NAMES {
        names.clear();
    }
    names.insert(ocid.clone(), name.to_owned());
}

/// `YYYY-MM-DD`, a plausible calendar date, not before Nexon's first snapshot.
fn valid_date(date: &str) -> bool {
    let bytes = date.as_bytes();
    let shape = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape {
        return false;
    }
    let month: u32 = date[5..7].parse().unwrap_or(0);
    let day: u32 = date[8..10].parse().unwrap_or(0);
    (1..=12).contains(&month) && (1..=31).contains(&day) && date >= FIRST_SNAPSHOT_DATE
}

fn nexon_error(code: NexonErrorCode) -> Response {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(code.body())).into_response()
}

/// A Nexon error body for an arbitrary injected status.
fn nexon_error_with_status(status: u16) -> Response {
    let code = match status {
        403 => NexonErrorCode::Forbidden,
        429 => NexonErrorCode::RateLimitExceeded,
        400 => NexonErrorCode::ApiMaintenance,
        500..=599 => NexonErrorCode::InternalServerError,
        _ => NexonErrorCode::InvalidParameter,
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(code.body())).into_response()
}

// ---- control API --------------------------------------------------------------------------

async fn current_fault(State(sim): State<Simulator>) -> Json<Option<FaultSpec>> {
    Json(sim.state.faults.current().await)
}

async fn set_fault(State(sim): State<Simulator>, body: Bytes) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(e) => return control_error("invalid_fault", &e.to_string()),
    };
    match sim.state.faults.set(spec.clone()).await {
        Ok(()) => (StatusCode::CREATED, Json(spec)).into_response(),
        Err(e) => control_error("invalid_fault", &e.to_string()),
    }
}

async fn clear_fault(State(sim): State<Simulator>) -> StatusCode {
    sim.state.faults.clear().await;
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
struct NameOwner {
    name: String,
    character: Option<String>,
}

async fn set_owner(State(sim): State<Simulator>, body: Bytes) -> Response {
    match serde_json::from_slice::<NameOwner>(&body) {
        Ok(NameOwner { name, character }) if !name.is_empty() => {
            sim.set_owner(&name, character.as_deref());
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(_) => control_error("invalid_name", "name must not be empty"),
        Err(e) => control_error("invalid_name", &e.to_string()),
    }
}

async fn reset_owners(State(sim): State<Simulator>) -> StatusCode {
    sim.reset_owners();
    StatusCode::NO_CONTENT
}

/// `GET /-/stats/equipment`: each character's equipment call times (Unix ms, oldest first).
async fn read_equipment_calls(
    State(sim): State<Simulator>,
) -> Json<std::collections::BTreeMap<String, Vec<u64>>> {
    Json(sim.state.stats.equipment_calls())
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn read_stats(State(sim): State<Simulator>) -> Json<StatsSnapshot> {
    Json(sim.stats())
}

async fn reset_stats(State(sim): State<Simulator>) -> StatusCode {
    sim.reset_stats();
    StatusCode::NO_CONTENT
}

fn control_error(code: &str, message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(ErrorBody::new(code, message))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked() {
        assert!(valid_date("2024-01-31"));
        for bad in [
            "2023-12-20",
            "2024-13-01",
            "2024-1-01",
            "20240101",
            "2024-01-3x",
            "",
        ] {
            assert!(!valid_date(bad), "{bad:?}");
        }
    }
}
