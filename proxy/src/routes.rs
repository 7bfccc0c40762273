//! Which Nexon route a request belongs to, what policy (cache TTL, deadline) applies to it, and
//! the cache key it is stored under.
//!
//! Rule: metric labels and policies use the route template, never the raw path; the cache key
//! is the path plus the query with its pairs decoded, sorted and re-encoded, so two spellings
//! of one request share an entry. The API key travels in a header and never enters the key.

use std::time::Duration;

use maple_common::nexon::{API_PREFIX, PATH_BASIC, PATH_ID, PATH_ITEM_EQUIPMENT};

/// The route template a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Id,
    Basic,
    ItemEquipment,
    OtherNexon,
    Rejected,
}

impl Route {
    /// The routes that reach Nexon (and so may retry or be served stale).
    pub const UPSTREAM: [Self; 4] = [Self::Id, Self::Basic, Self::ItemEquipment, Self::OtherNexon];

    pub fn of(path: &str) -> Self {
        match path {
            PATH_ID => Self::Id,
            PATH_BASIC => Self::Basic,
            PATH_ITEM_EQUIPMENT => Self::ItemEquipment,
            _ if path.starts_with(API_PREFIX) => Self::OtherNexon,
            _ => Self::Rejected,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Id => PATH_ID,
            Self::Basic => PATH_BASIC,
            Self::ItemEquipment => PATH_ITEM_EQUIPMENT,
            Self::OtherNexon => "/maplestory/v1/*",
            Self::Rejected => "rejected",
        }
    }
}

/// What applies to one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutePolicy {
    /// How long a 200 is served without asking upstream; zero disables caching.
    pub ttl: Duration,
    /// The whole request's budget: queueing, rate-limit waits, every attempt and backoff.
    pub deadline: Duration,
}

/// The policy of every route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTable {
    pub id: RoutePolicy,
    pub basic: RoutePolicy,
    pub item_equipment: RoutePolicy,
    pub other: RoutePolicy,
}

impl Default for RouteTable {
    /// The declared defaults (`config::vars`): an ocid changes only when a character is
    /// renamed or deleted, so it is cached for hours; character data is refreshed by Nexon
    /// through the day: minutes.
    fn default() -> Self {
        use crate::config::vars::*;
        use maple_common::setting::Setting;
        let policy = |ttl: &Setting<u64>, deadline: &Setting<u64>| RoutePolicy {
            ttl: Duration::from_secs(ttl.default_value()),
            deadline: Duration::from_millis(deadline.default_value()),
        };
        Self {
            id: policy(&ROUTE_ID_TTL_S, &ROUTE_ID_DEADLINE_MS),
            basic: policy(&ROUTE_BASIC_TTL_S, &ROUTE_BASIC_DEADLINE_MS),
            item_equipment: policy(
                &ROUTE_ITEM_EQUIPMENT_TTL_S,
                &ROUTE_ITEM_EQUIPMENT_DEADLINE_MS,
            ),
            other: policy(&ROUTE_OTHER_TTL_S, &ROUTE_OTHER_DEADLINE_MS),
        }
    }
}

impl RouteTable {
    pub fn policy(&self, route: Route) -> RoutePolicy {
        match route {
            Route::Id => self.id,
            Route::Basic => self.basic,
            Route::ItemEquipment => self.item_equipment,
            Route::OtherNexon | Route::Rejected => self.other,
        }
    }
}

/// The canonical form of a path and query: pairs decoded, sorted, re-encoded. Used both as
/// the cache key and as what is sent upstream, so the two cannot disagree.
pub fn canonical(path: &str, query: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return path.to_owned();
    }
    pairs.sort();
    let mut serializer = form_urlencoded::Serializer::new(String::with_capacity(64));
    for (k, v) in &pairs {
        serializer.append_pair(k, v);
    }
    format!("{path}?{}", serializer.finish())
}

/// Query parameters a request may carry at most, and the longest value.
const MAX_PARAMS: usize = 16;
const MAX_VALUE_BYTES: usize = 256;

/// The first day the Nexon Open API has data for (KMS).
const FIRST_DATE: (u32, u32, u32) = (2023, 12, 21);

/// Checks the parameters Nexon defines before anything goes upstream: `ocid` (32 hex digits),
/// `date` (a real calendar day, `YYYY-MM-DD`, not before the API's first), `character_name`
/// (1–64 bytes, no control characters); any value at most 256 bytes, at most 16 parameters.
/// Unknown parameters pass through.
///
/// # Errors
/// The offending parameter and why.
pub fn validate_query(query: Option<&str>) -> Result<(), (String, &'static str)> {
    let Some(query) = query else {
        return Ok(());
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.len() > MAX_PARAMS {
        return Err(("query".into(), "has more than 16 parameters"));
    }
    for (key, value) in &pairs {
        let field = || key.chars().take(32).collect::<String>();
        if value.len() > MAX_VALUE_BYTES || key.len() > 64 {
            return Err((field(), "is longer than 256 bytes"));
        }
        let problem = match key.as_str() {
            "ocid" if value.parse::<maple_common::nexon::Ocid>().is_err() => {
                Some("must be an ocid: 32 hexadecimal digits")
            }
            "date" if !valid_date(value) => {
                Some("must be a calendar date YYYY-MM-DD, not before 2023-12-21")
            }
            "character_name"
                if value.is_empty() || value.len() > 64 || value.chars().any(char::is_control) =>
            {
                Some("must be 1 to 64 bytes without control characters")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            return Err((field(), problem));
        }
    }
    Ok(())
}

fn valid_date(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d) && (y, m, d) >= FIRST_DATE && y <= 2100
}

/// The path a request is routed, cached and sent upstream under: `raw` percent-decoded once,
/// or `None` when it is refused. Checked after decoding, so no spelling reaches a server
/// behind us that could decode or strip it into something else: the decoded path must be
/// `/`-separated segments of ASCII letters, digits, `-`, `_`, `.` and `~` (so no `%` left by
/// double encoding, no `;` parameters, backslashes, control or non-ASCII bytes), none empty
/// and none made of dots only (`.`, `..`, `...`). Nexon's paths are all of that shape.
pub fn normalised_path(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    let decoded = if raw.contains('%') {
        std::borrow::Cow::Owned(percent_decoded(raw)?)
    } else {
        std::borrow::Cow::Borrowed(raw)
    };
    let rest = decoded.strip_prefix('/')?;
    let segment_ok = |segment: &str| {
        !segment.is_empty()
            && !segment.bytes().all(|b| b == b'.')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
    };
    rest.split('/').all(segment_ok).then_some(decoded)
}

/// `raw` with each `%XX` replaced by its byte; `None` for a `%` not followed by two hex
/// digits, an encoded `/` (it would change where the segments are), or a result that is not
/// UTF-8.
fn percent_decoded(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            let decoded = u8::from_str_radix(hex, 16).ok()?;
            if decoded == b'/' {
                return None;
            }
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nexon_parameters_are_checked_before_going_upstream() {
        let ok = |q: &str| validate_query(Some(q));
        assert!(ok("character_name=%EC%95%84%EB%8D%B8").is_ok());
        assert!(ok("ocid=0123456789abcdef0123456789abcdef&date=2024-02-29").is_ok());
        assert!(ok("world_name=x&page=2").is_ok(), "unknown parameters pass");
        assert!(validate_query(None).is_ok());
        for (query, field) in [
            ("ocid=../../admin", "ocid"),
            ("ocid=0123456789abcdef0123456789abcdeg", "ocid"),
            ("date=2023-02-29", "date"),
            ("date=2025-13-01", "date"),
            ("date=2024-1-01", "date"),
            ("date=2023-12-20", "date"),
            ("date=9999-01-01", "date"),
            ("character_name=", "character_name"),
            ("character_name=a%00b", "character_name"),
        ] {
            assert_eq!(
                ok(query).map_err(|(f, _)| f),
                Err(field.to_owned()),
                "{query}"
            );
        }
        let long = format!("x={}", "a".repeat(300));
        assert!(ok(&long).is_err());
        let many = (0..17)
            .map(|i| format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(ok(&many).map_err(|(f, _)| f), Err("query".to_owned()));
    }

    #[test]
    fn routes_are_templates() {
        assert_eq!(Route::of(PATH_ID), Route::Id);
        assert_eq!(
            Route::of("/maplestory/v1/character/stat"),
            Route::OtherNexon
        );
        assert_eq!(Route::of("/admin"), Route::Rejected);
    }

    #[test]
    fn spellings_of_one_request_share_a_key() {
        let a = canonical(PATH_ID, Some("character_name=%EC%95%84%EB%8D%B8&x=1"));
        let b = canonical(PATH_ID, Some("x=1&character_name=%ec%95%84%eb%8d%b8"));
        let c = canonical(PATH_ID, Some("x=1&character_name=아델"));
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(canonical(PATH_ID, None), PATH_ID);
        assert_eq!(canonical(PATH_ID, Some("")), PATH_ID);
        assert_ne!(a, canonical(PATH_ID, Some("character_name=%EC%95%84")));
    }

    #[test]
    fn traversal_attempts_are_suspicious() {
        for path in [
            "/maplestory/v1/../admin",
            "/maplestory/v1/%2e%2e/admin",
            "/maplestory/v1/%2E%2E/admin",
            "/maplestory/v1/a%2fb",
            "/maplestory/v1//id",
            "/maplestory/v1/a\\b",
            "/maplestory/v1/..",
        ] {
            assert_eq!(normalised_path(path), None, "{path}");
        }
        assert_eq!(
            normalised_path(PATH_ITEM_EQUIPMENT).as_deref(),
            Some(PATH_ITEM_EQUIPMENT)
        );
    }

    /// Spellings that a server behind us (or Nexon's) may decode or strip into a dot segment:
    /// double encoding, `;` parameters (Tomcat-style servers drop `;...` from a segment),
    /// a trailing `/.`, and their relatives.
    #[test]
    fn paths_are_checked_after_decoding() {
        for path in [
            "/maplestory/v1/%252e%252e/admin",
            "/maplestory/v1/%252E%252E/admin",
            "/maplestory/v1/%25252e%25252e/admin",
            "/maplestory/v1/a%252fb",
            "/maplestory/v1/a%255cb",
            "/maplestory/v1/..;/admin",
            "/maplestory/v1/..;x=1/admin",
            "/maplestory/v1/.;/id",
            "/maplestory/v1/id;x=1",
            "/maplestory/v1/id/.",
            "/maplestory/v1/id/..",
            "/maplestory/v1/id/",
            "/maplestory/v1/.%2e/admin",
            "/maplestory/v1/%2e./admin",
            "/maplestory/v1/id%00",
            "/maplestory/v1/id%0a",
            "/maplestory/v1/%c0%ae%c0%ae/admin",
            "/maplestory/v1/%ff",
            "/maplestory/v1/id%",
            "/maplestory/v1/id%zz",
            "/maplestory/v1/id%4",
            "maplestory/v1/id",
            "",
        ] {
            assert_eq!(normalised_path(path), None, "{path}");
        }
        for path in [
            PATH_ID,
            PATH_BASIC,
            PATH_ITEM_EQUIPMENT,
            "/maplestory/v1/character/stat",
        ] {
            assert!(
                matches!(normalised_path(path), Some(std::borrow::Cow::Borrowed(p)) if p == path),
                "{path} passes as it is"
            );
        }
        // An encoded unreserved character is the same path: routed and cached as such.
        assert_eq!(
            normalised_path("/maplestory/v1/%69d").as_deref(),
            Some(PATH_ID)
        );
        assert_eq!(
            Route::of(&normalised_path("/maplestory/v1/%69d").expect("a valid path")),
            Route::Id
        );
    }
}
