//! The error body of every HTTP error we produce: `{"error":{"code":…,"message":…}}`.
//!
//! `code` is a stable snake_case identifier clients may branch on; `message` is for humans
//! and may change. Nexon's own error body has a different shape (see [`crate::nexon`]).

use serde::{Deserialize, Serialize};

/// The JSON document sent with every 4xx/5xx response of core and proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The inner object of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }

    /// The body serialised; serialising two strings cannot fail.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{\"error\":{}}".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_to_the_documented_shape() {
        let body = ErrorBody::new("invalid_character_name", "bad \"name\"");
        let value: serde_json::Value =
            serde_json::from_slice(&body.to_json_bytes()).expect("valid JSON");
        assert_eq!(value["error"]["code"], "invalid_character_name");
        assert_eq!(value["error"]["message"], "bad \"name\"");
    }
}
