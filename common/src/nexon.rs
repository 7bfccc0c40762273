//! The Nexon Open API's vocabulary, shared by the proxy (which fronts it), core (which calls it
//! through the proxy) and the simulator (which imitates it).
//!
//! Rule: nothing here does I/O; these are names, shapes and classifications only.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Header that carries the API key on every Nexon call.
pub const API_KEY_HEADER: &str = "x-nxopen-api-key";
/// Every MapleStory endpoint lives under this prefix.
pub const API_PREFIX: &str = "/maplestory/v1/";
/// `GET ?character_name=` → `{"ocid":…}`.
pub const PATH_ID: &str = "/maplestory/v1/id";
/// `GET ?ocid=[&date=]` → basic character information.
pub const PATH_BASIC: &str = "/maplestory/v1/character/basic";
/// `GET ?ocid=[&date=]` → equipped items (~350 KB).
pub const PATH_ITEM_EQUIPMENT: &str = "/maplestory/v1/character/item-equipment";
/// The real upstream.
pub const NEXON_BASE_URL: &str = "https://open.api.nexon.com";

/// A character's opaque id. Nexon's are 32 lowercase hex characters in practice; we validate
/// that shape so a malformed value never reaches the upstream URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ocid(String);

// The API description: a string of 32 lowercase hex characters.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Ocid {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9a-f]{32}$"))
            .description(Some("Nexon's opaque character id."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Ocid {}

/// Returned when a string is not a well-formed ocid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ocid must be 32 lowercase hexadecimal characters")]
pub struct InvalidOcid;

impl Ocid {
    pub const LEN: usize = 32;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ocid whose hex spelling is these 16 bytes (always well formed).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        use std::fmt::Write as _;
        let mut hex = String::with_capacity(Self::LEN);
        for byte in bytes {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{byte:02x}");
        }
        Self(hex)
    }

    /// The 16 bytes this ocid spells in hex.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut out = [0_u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            // Validated at construction: every pair is two hex digits.
            *byte = u8::from_str_radix(&self.0[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        out
    }
}

impl FromStr for Ocid {
    type Err = InvalidOcid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let well_formed = s.len() == Self::LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if well_formed {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidOcid)
        }
    }
}

impl TryFrom<String> for Ocid {
    type Error = InvalidOcid;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Ocid> for String {
    fn from(value: Ocid) -> Self {
        value.0
    }
}

impl fmt::Display for Ocid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Body of `GET /maplestory/v1/id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OcidResponse {
    pub ocid: Ocid,
}

/// Nexon's error document: `{"error":{"name":"OPENAPI00004","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NexonErrorBody {
    pub error: NexonErrorDetail,
}

/// Inner object of [`NexonErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NexonErrorDetail {
    pub name: String,
    pub message: String,
}

/// The error codes Nexon documents, with the HTTP status each comes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NexonErrorCode {
    InternalServerError,
    Forbidden,
    InvalidIdentifier,
    InvalidParameter,
    InvalidApiKey,
    InvalidPath,
    RateLimitExceeded,
    DataPreparing,
    GameMaintenance,
    ApiMaintenance,
}

impl NexonErrorCode {
    pub const ALL: [Self; 10] = [
        Self::InternalServerError,
        Self::Forbidden,
        Self::InvalidIdentifier,
        Self::InvalidParameter,
        Self::InvalidApiKey,
        Self::InvalidPath,
        Self::RateLimitExceeded,
        Self::DataPreparing,
        Self::GameMaintenance,
        Self::ApiMaintenance,
    ];

    /// The `name` field Nexon sends, e.g. `OPENAPI00004`.
    pub fn name(self) -> &'static str {
        match self {
            Self::InternalServerError => "OPENAPI00001",
            Self::Forbidden => "OPENAPI00002",
            Self::InvalidIdentifier => "OPENAPI00003",
            Self::InvalidParameter => "OPENAPI00004",
            Self::InvalidApiKey => "OPENAPI00005",
            Self::InvalidPath => "OPENAPI00006",
            Self::RateLimitExceeded => "OPENAPI00007",
            Self::DataPreparing => "OPENAPI00009",
            Self::GameMaintenance => "OPENAPI00010",
            Self::ApiMaintenance => "OPENAPI00011",
        }
    }

    /// The HTTP status that accompanies the code.
    pub fn status(self) -> u16 {
        match self {
            Self::InternalServerError => 500,
            Self::Forbidden => 403,
            Self::RateLimitExceeded => 429,
            _ => 400,
        }
    }

    /// Nexon's usual message text for the code.
    pub fn message(self) -> &'static str {
        match self {
            Self::InternalServerError => "Internal server error",
            Self::Forbidden => "Forbidden",
            Self::InvalidIdentifier => "Please input valid id",
            Self::InvalidParameter => "Please input valid parameter",
            Self::InvalidApiKey => "Please input valid api key",
            Self::InvalidPath => "Please input valid game or api path",
            Self::RateLimitExceeded => "Too many requests",
            Self::DataPreparing => "Please wait until the data is ready",
            Self::GameMaintenance => "Please wait until the game maintenance is done",
            Self::ApiMaintenance => "Please wait until the API maintenance is done",
        }
    }

    /// Only a server error and a rate limit are worth retrying; the rest will fail again.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::InternalServerError | Self::RateLimitExceeded)
    }

    /// Parses a `name` field; unknown names give `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.name() == name)
    }

    /// The error document for this code with its usual message.
    pub fn body(self) -> NexonErrorBody {
        NexonErrorBody {
            error: NexonErrorDetail {
                name: self.name().to_owned(),
                message: self.message().to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocid_accepts_only_32_lowercase_hex() {
        assert!("0123456789abcdef0123456789abcdef".parse::<Ocid>().is_ok());
        for bad in [
            "",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "../../../../../etc/passwd/0000000",
            "0123456789abcdef0123456789abcdeg",
        ] {
            assert_eq!(bad.parse::<Ocid>(), Err(InvalidOcid), "{bad:?}");
        }
    }

    #[test]
    fn ocid_bytes_round_trip() {
        let ocid = Ocid::from_bytes([0xab; 16]);
        assert_eq!(ocid.as_str(), "ab".repeat(16));
        assert_eq!(ocid.to_bytes(), [0xab; 16]);
        assert_eq!(ocid.as_str().parse::<Ocid>(), Ok(ocid));
    }

    #[test]
    fn error_codes_round_trip_and_classify() {
        for code in NexonErrorCode::ALL {
            assert_eq!(NexonErrorCode::from_name(code.name()), Some(code));
        }
        assert_eq!(NexonErrorCode::RateLimitExceeded.status(), 429);
        assert_eq!(NexonErrorCode::InternalServerError.status(), 500);
        assert_eq!(NexonErrorCode::InvalidParameter.status(), 400);
        assert!(NexonErrorCode::RateLimitExceeded.is_retryable());
        assert!(!NexonErrorCode::InvalidApiKey.is_retryable());
        assert_eq!(NexonErrorCode::from_name("OPENAPI99999"), None);
    }
}
