//! Content codings: whether a client's `Accept-Encoding` takes gzip (RFC 9110 12.5.3), what
//! coding a response's `Content-Encoding` names, the one gzip compression both binaries use for
//! what they keep (bodies are kept gzip-compressed beside, or instead of, the identity bytes
//! and chosen per request), and the bounded inflation of a gzip body someone else sent.

use std::io::{Read as _, Write as _};

use http::{HeaderMap, header};

/// `body` gzip-compressed at the fast level (level 1: a tenth of an equipment body's bytes in
/// a few milliseconds for 350 KB; CPU work, call it off the async workers).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    gzip_at(body, 1)
}

/// `body` gzip-compressed at zlib `level` (0–9; 6 is zlib's default, what web servers commonly
/// send). Our binaries keep [`gzip`]'s level 1; the simulator plays an upstream at level 6.
pub fn gzip_at(body: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8 + 64),
        flate2::Compression::new(level.min(9)),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// The content coding of a response body (`Content-Encoding`), among those we ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
}

/// A `Content-Encoding` we never asked for (or several stacked codings): the body cannot be
/// read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported content coding {0:?}")]
pub struct UnsupportedCoding(pub String);

/// The coding `Content-Encoding` names: none or `identity` is [`Coding::Identity`], `gzip` or
/// `x-gzip` is [`Coding::Gzip`].
///
/// # Errors
/// [`UnsupportedCoding`] for any other coding, or for more than one coding applied in turn.
pub fn content_coding(headers: &HeaderMap) -> Result<Coding, UnsupportedCoding> {
    let mut coding = Coding::Identity;
    let mut applied = 0;
    for name in headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        if name.eq_ignore_ascii_case("identity") {
            continue;
        }
        if !(name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip")) {
            return Err(UnsupportedCoding(name.to_owned()));
        }
        applied += 1;
        coding = Coding::Gzip;
    }
    if applied > 1 {
        return Err(UnsupportedCoding("gzip applied more than once".to_owned()));
    }
    Ok(coding)
}

/// Why a gzip body could not be inflated.
#[derive(Debug, thiserror::Error)]
pub enum InflateError {
    /// Not gzip, cut short, or failing its checksum.
    #[error("the gzip body is corrupt: {0}")]
    Corrupt(std::io::Error),
    /// It inflates to more than the bound (a gzip bomb, or simply too large).
    #[error("the gzip body inflates to more than {0} bytes")]
    TooLarge(usize),
}

/// `gzip` inflated, refusing to produce more than `limit` bytes however small the input (CPU
/// work: about a millisecond for an equipment body; call it off the async workers).
///
/// # Errors
/// [`InflateError::Corrupt`] for anything but whole, valid gzip members;
/// [`InflateError::TooLarge`] past `limit`.
pub fn gunzip(gzip: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    // A gzip member ends with the identity length modulo 2^32: a size hint, capped by the
    // bound and by what deflate can plausibly gain (the trailer is the sender's to set).
    let hint = gzip
        .len()
        .checked_sub(4)
        .and_then(|at| gzip.get(at..))
        .and_then(|tail| <[u8; 4]>::try_from(tail).ok())
        .map_or(0, |tail| u32::from_le_bytes(tail) as usize);
    let mut body = Vec::with_capacity(hint.min(limit).min(gzip.len().saturating_mul(64)));
    // Several members in a row are one body (RFC 1952 2.2); anything else after one is not.
    let read = flate2::bufread::MultiGzDecoder::new(gzip)
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
        .map_err(InflateError::Corrupt)?;
    if read > limit {
        return Err(InflateError::TooLarge(limit));
    }
    Ok(body)
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

    /// `values` as lines of the header `name`.
    fn headers(name: header::HeaderName, values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(&name, value.parse().expect("header value"));
        }
        headers
    }

    fn coding(values: &[&str]) -> Result<Coding, UnsupportedCoding> {
        content_coding(&headers(header::CONTENT_ENCODING, values))
    }

    #[test]
    fn content_encoding_names_gzip_or_identity_and_nothing_else_is_read() {
        assert_eq!(coding(&[]), Ok(Coding::Identity));
        assert_eq!(coding(&["identity"]), Ok(Coding::Identity));
        assert_eq!(coding(&["gzip"]), Ok(Coding::Gzip));
        assert_eq!(coding(&["X-Gzip"]), Ok(Coding::Gzip));
        assert_eq!(coding(&["identity, gzip"]), Ok(Coding::Gzip));
        assert!(coding(&["br"]).is_err());
        assert!(coding(&["gzip, br"]).is_err());
        assert!(coding(&["gzip", "gzip"]).is_err(), "gzip twice");
    }

    #[test]
    fn gunzip_gives_back_the_body_and_refuses_corrupt_or_oversized_input() {
        let body = "{\"item\": \"Eternal Hat\"}, ".repeat(500).into_bytes();
        let packed = gzip(&body);
        assert_eq!(gunzip(&packed, body.len()).expect("inflates"), body);
        assert!(matches!(
            gunzip(&packed, body.len() - 1),
            Err(InflateError::TooLarge(_))
        ));
        let cut = &packed[..packed.len() / 2];
        assert!(matches!(
            gunzip(cut, body.len()),
            Err(InflateError::Corrupt(_))
        ));
        let mut flipped = packed.clone();
        let last = flipped.len() - 5;
        flipped[last] ^= 0xff; // the CRC
        assert!(matches!(
            gunzip(&flipped, body.len()),
            Err(InflateError::Corrupt(_))
        ));
        let mut twice = packed.clone();
        twice.extend_from_slice(&packed);
        assert_eq!(
            gunzip(&twice, 2 * body.len()).expect("two members"),
            [body.as_slice(), body.as_slice()].concat()
        );
        let mut trailing = packed.clone();
        trailing.extend_from_slice(b"junk");
        assert!(matches!(
            gunzip(&trailing, body.len()),
            Err(InflateError::Corrupt(_))
        ));
        assert!(matches!(
            gunzip(&body, body.len()),
            Err(InflateError::Corrupt(_))
        ));
        // A bomb: 64 MiB of zeros in about 64 KB, stopped at the bound.
        let bomb = gzip(&vec![0_u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        assert!(matches!(
            gunzip(&bomb, 8 << 20),
            Err(InflateError::TooLarge(_))
        ));
    }

    fn accepts(values: &[&str]) -> bool {
        accepts_gzip(&headers(header::ACCEPT_ENCODING, values))
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
