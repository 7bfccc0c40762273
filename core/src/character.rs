//! Character names: what a valid MapleStory name is, checked before anything leaves core.
//!
//! Rule: input is NFC-normalised first (a name typed as decomposed jamo is the same name),
//! then allowed only Hangul syllables and ASCII letters and digits, with Nexon's weighted
//! length: a Hangul syllable counts 2, any other character 1, total 2..=12 (so 1–6 Hangul
//! or 2–12 Latin characters).

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// Longest weighted length Nexon allows.
pub const MAX_WEIGHT: usize = 12;
/// Shortest weighted length we accept.
pub const MIN_WEIGHT: usize = 2;

/// A validated, normalised character name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CharacterName(String);

/// Why a name was refused; the message is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("name is empty")]
    Empty,
    #[error("name may contain only Hangul syllables, ASCII letters and digits (found {0:?})")]
    Character(char),
    #[error(
        "name length {weight} is outside {MIN_WEIGHT}..={MAX_WEIGHT} (a Hangul syllable counts 2)"
    )]
    Length { weight: usize },
}

fn is_hangul_syllable(c: char) -> bool {
    ('\u{AC00}'..='\u{D7A3}').contains(&c)
}

impl CharacterName {
    /// # Errors
    /// [`InvalidName`] saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, InvalidName> {
        if raw.is_empty() {
            return Err(InvalidName::Empty);
        }
        // Bound the work before normalising: no valid name is longer than 12 chars.
        if raw.chars().count() > 4 * MAX_WEIGHT {
            return Err(InvalidName::Length {
                weight: raw.chars().count(),
            });
        }
        let name: String = raw.nfc().collect();
        let mut weight = 0;
        for c in name.chars() {
            weight += if is_hangul_syllable(c) {
                2
            } else if c.is_ascii_alphanumeric() {
                1
            } else {
                return Err(InvalidName::Character(c));
            };
        }
        if !(MIN_WEIGHT..=MAX_WEIGHT).contains(&weight) {
            return Err(InvalidName::Length { weight });
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The API description: the rule above as patterns, one per count of Hangul syllables (each
/// counts 2, so `h` of them leave `MAX_WEIGHT - 2h` for the other characters).
impl utoipa::PartialSchema for CharacterName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, SchemaType, Type};
        let mut counts = AnyOfBuilder::new().item(
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .pattern(Some(format!("^[A-Za-z0-9]{{{MIN_WEIGHT},{MAX_WEIGHT}}}$"))),
        );
        let most_hangul = MAX_WEIGHT / 2;
        for hangul in 1..=most_hangul {
            let other = MAX_WEIGHT - 2 * hangul;
            let pattern = if other == 0 {
                format!("^[가-힣]{{{hangul}}}$")
            } else {
                format!("^[A-Za-z0-9]{{0,{other}}}(?:[가-힣][A-Za-z0-9]{{0,{other}}}){{{hangul}}}$")
            };
            counts = counts.item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .pattern(Some(pattern))
                    .max_length(Some(hangul + other)),
            );
        }
        counts
            .schema_type(Type::String)
            .description(Some(
                "A MapleStory character name: Hangul syllables (U+AC00–U+D7A3) and ASCII \
                 letters and digits, weighted length 2..=12 where a Hangul syllable counts 2 \
                 (so 1–6 Hangul or 2–12 Latin characters). Each `anyOf` branch is one count of \
                 Hangul syllables with its length bound. The server NFC-normalises the input \
                 first (a name typed as conjoining jamo is the same name).",
            ))
            .into()
    }
}

impl utoipa::ToSchema for CharacterName {}

impl fmt::Display for CharacterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_names() {
        for name in [
            "아델",
            "강해지고싶다",
            "Maple123",
            "ab",
            "메이플Story",
            "a1b2c3d4e5f6",
        ] {
            assert_eq!(CharacterName::parse(name).expect(name).as_str(), name);
        }
    }

    #[test]
    fn normalises_decomposed_hangul() {
        // "아델" typed as conjoining jamo.
        let decomposed = "\u{110B}\u{1161}\u{1103}\u{1166}\u{11AF}";
        assert_eq!(
            CharacterName::parse(decomposed).expect("valid").as_str(),
            "아델"
        );
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(CharacterName::parse(""), Err(InvalidName::Empty));
        assert_eq!(
            CharacterName::parse("a"),
            Err(InvalidName::Length { weight: 1 })
        );
        assert_eq!(
            CharacterName::parse("일곱글자이름임"),
            Err(InvalidName::Length { weight: 14 })
        );
        assert_eq!(
            CharacterName::parse("abcdefghijklm"),
            Err(InvalidName::Length { weight: 13 })
        );
        for (name, bad) in [
            ("bad name", ' '),
            ("../etc", '.'),
            ("a/b", '/'),
            ("이름?", '?'),
            ("ａｂｃ", 'ａ'),
            ("x\u{0}y", '\u{0}'),
            ("ㄱㄴㄷ", 'ㄱ'),
        ] {
            assert_eq!(
                CharacterName::parse(name),
                Err(InvalidName::Character(bad)),
                "{name}"
            );
        }
        assert!(matches!(
            CharacterName::parse(&"가".repeat(10_000)),
            Err(InvalidName::Length { .. })
        ));
    }
}
