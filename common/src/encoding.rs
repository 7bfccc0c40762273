//! Content codings: whether a client's `Accept-Encoding` takes gzip (RFC 9110 12.5.3), and
//! the one gzip compression both binaries use for what they keep (bodies are kept
//! gzip-compressed beside, or instead of, the identity bytes and chosen per request).

use std::io::Write as _;

use http::{HeaderMap, header};

/// `body` gzip-compressed at the fast level (level 1: a tenth of an equipment body's bytes in
/// a few milliseconds for 350 KB; CPU work, call it off the async workers).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8 + 64),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// Whether `Accept-Encoding` allows gzip: an explicit `gzip` (or `x-gzip`) entry decides by
/// its q-value; otherwise `*` does; otherwise not.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for coding in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let q = parts
            .filter_map(|p| {
                let (key, value) = p.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().ok())?
            })
            .next()
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q > 0.0);
        } else if name == "*" {
            any = Some(q > 0.0);
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::ACCEPT_ENCODING,
                value.parse().expect("header value"),
            );
        }
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_taken_when_named_or_covered_by_a_star_and_refused_by_q_zero() {
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["br, GZIP;q=0.5"]));
        assert!(accepts(&["x-gzip"]));
        assert!(accepts(&["*"]));
        assert!(accepts(&["identity", "gzip"]), "over two header lines");
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(
            !accepts(&["gzip; q=0.000, *"]),
            "an explicit gzip entry beats the star"
        );
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["deflate, br"]));
    }
}
