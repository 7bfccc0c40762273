//! What core and the proxy must agree on, written once: the header that names a proxy-made
//! error, how a bearer token is read, and how secrets are compared.
//!
//! Rule: both binaries use these and never a copy; a change here is a change of the contract
//! between them (and of the proxy's API for other services).

use subtle::ConstantTimeEq as _;

/// Set by the proxy on the errors it makes itself (breaker open, deadline, rate limit, …),
/// absent on errors relayed from Nexon; core reads it to tell the two apart.
pub const PROXY_ERROR_HEADER: &str = "x-maple-proxy-error";

/// The token of an `Authorization: Bearer <token>` value: the scheme case-insensitive
/// (RFC 9110 §11.1), surrounding whitespace ignored; `None` for another scheme or no token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only (not on where
/// they differ), through `subtle`.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_as_both_binaries_read_them() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token(" Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer   "), None);
        assert_eq!(bearer_token(""), None);
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdef0"));
        assert!(!constant_time_eq(b"abc", b""));
        assert!(constant_time_eq(b"", b""));
    }
}
