//! Nexon's Korean option text → (category, value).
//!
//! Rule: total — any string gives an answer; text we do not recognise is kept verbatim as
//! [`ParsedOption::Unknown`], never an error and never a panic.

use serde::Serialize;

use crate::model::Category;

/// One potential line as understood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ParsedOption {
    /// A line the tables know: its category and whole-number value (seconds for cooldown,
    /// 0 for special lines without a number in the tables).
    Known { category: Category, value: u32 },
    /// A line the tables have no category for (additional-potential lines, movement speed…).
    Other { text: String },
    /// Text we could not read at all.
    Unknown { text: String },
}

impl ParsedOption {
    pub fn category(&self) -> Option<Category> {
        match self {
            Self::Known { category, .. } => Some(*category),
            _ => None,
        }
    }

    pub fn value(&self) -> u32 {
        match self {
            Self::Known { value, .. } => *value,
            _ => 0,
        }
    }
}

/// Parses one option line.
pub fn parse(text: &str) -> ParsedOption {
    let trimmed = text.trim();
    parse_known(trimmed).unwrap_or_else(|| {
        if is_recognised_other(trimmed) {
            ParsedOption::Other {
                text: trimmed.to_owned(),
            }
        } else {
            ParsedOption::Unknown {
                text: trimmed.to_owned(),
            }
        }
    })
}

fn known(category: Category, value: u32) -> Option<ParsedOption> {
    Some(ParsedOption::Known { category, value })
}

/// `+12%` → (12, true); `+18` → (18, false); `-2초` is handled by the cooldown rule.
fn signed_amount(rest: &str) -> Option<(u32, bool)> {
    let rest = rest.trim().strip_prefix('+')?;
    let (digits, percent) = match rest.strip_suffix('%') {
        Some(d) => (d, true),
        None => (rest, false),
    };
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, percent))
}

fn parse_known(text: &str) -> Option<ParsedOption> {
    use Category as C;
    // Special lines first: they contain numbers that are not the line's value.
    if text.starts_with('<') && text.ends_with("스킬 사용 가능") && text.contains("쓸만한")
    {
        return known(C::DecentSkill, 0);
    }
    if let Some(rest) = text.strip_prefix("스킬 재사용 대기시간 -") {
        let seconds = rest.strip_suffix('초')?.trim();
        if seconds.len() <= 2 {
            return known(C::Cooldown, seconds.parse().ok()?);
        }
        return None;
    }
    if text.starts_with("피격 시 ") && text.contains("확률로 데미지의") && text.ends_with("% 무시")
    {
        return known(C::IgnoreDamagePct, 0);
    }
    if text.starts_with("피격 시 ") && text.contains("확률로 데미지") && text.ends_with(" 무시")
    {
        return known(C::IgnoreDamageFlat, 0);
    }
    if text.starts_with("피격 시 ") && text.contains("간 무적") {
        return known(C::InvincibleChance, 0);
    }
    if text.starts_with("피격 후 무적시간 +") {
        return known(C::InvincibilityTime, 0);
    }
    if text.starts_with("공격 시 ") && text.ends_with("오토스틸") {
        return known(C::AutoSteal, 0);
    }
    let (name, rest) = split_name(text)?;
    let (value, percent) = signed_amount(rest)?;
    let category = match (name, percent) {
        ("STR", true) => C::StrPct,
        ("DEX", true) => C::DexPct,
        ("INT", true) => C::IntPct,
        ("LUK", true) => C::LukPct,
        ("STR", false) => C::StrFlat,
        ("DEX", false) => C::DexFlat,
        ("INT", false) => C::IntFlat,
        ("LUK", false) => C::LukFlat,
        ("올스탯", true) => C::AllStatsPct,
        ("올스탯", false) => C::AllStatsFlat,
        ("공격력", true) => C::AttPct,
        ("공격력", false) => C::AttFlat,
        ("마력", true) => C::MattPct,
        ("마력", false) => C::MattFlat,
        ("최대 HP", true) => C::MaxHpPct,
        ("최대 HP", false) => C::MaxHpFlat,
        ("최대 MP", false) => C::MaxMpFlat,
        ("방어력", false) => C::DefenseFlat,
        ("보스 몬스터 데미지", true) => C::BossDamage,
        ("몬스터 방어율 무시", true) => C::IgnoreDefense,
        ("크리티컬 데미지", true) => C::CritDamage,
        ("크리티컬 확률", true) => C::CritChance,
        ("데미지", true) => C::DamagePct,
        ("아이템 드롭률", true) => C::ItemDrop,
        ("메소 획득량", true) => C::MesoAmount,
        _ => return None,
    };
    known(category, value)
}

/// `"보스 몬스터 데미지 +35%"` → (`"보스 몬스터 데미지"`, `"+35%"`).
fn split_name(text: &str) -> Option<(&str, &str)> {
    let at = text.rfind(" +")?;
    Some((&text[..at], &text[at + 1..]))
}

/// Lines that are real options but outside the tables' categories (junk for every target):
/// Max MP %, defense %, movement, jump, per-level stats, HP recovery and the like.
fn is_recognised_other(text: &str) -> bool {
    const PREFIXES: [&str; 9] = [
        "최대 MP +",
        "방어력 +",
        "이동속도 +",
        "점프력 +",
        "캐릭터 기준 ",
        "공격 시 ",
        "HP 회복",
        "모든 스킬",
        "몬스터 처치 시",
    ];
    PREFIXES.iter().any(|p| text.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(category: Category, value: u32) -> ParsedOption {
        ParsedOption::Known { category, value }
    }

    #[test]
    fn domain_examples() {
        use Category as C;
        for (text, expected) in [
            ("INT +12%", k(C::IntPct, 12)),
            ("올스탯 +9%", k(C::AllStatsPct, 9)),
            ("공격력 +12%", k(C::AttPct, 12)),
            ("마력 +12%", k(C::MattPct, 12)),
            ("보스 몬스터 데미지 +35%", k(C::BossDamage, 35)),
            ("몬스터 방어율 무시 +35%", k(C::IgnoreDefense, 35)),
            ("크리티컬 데미지 +8%", k(C::CritDamage, 8)),
            ("크리티컬 확률 +12%", k(C::CritChance, 12)),
            ("데미지 +12%", k(C::DamagePct, 12)),
            ("최대 HP +12%", k(C::MaxHpPct, 12)),
            ("스킬 재사용 대기시간 -2초", k(C::Cooldown, 2)),
            ("아이템 드롭률 +20%", k(C::ItemDrop, 20)),
            ("메소 획득량 +20%", k(C::MesoAmount, 20)),
            (
                "피격 시 5% 확률로 데미지의 40% 무시",
                k(C::IgnoreDamagePct, 0),
            ),
            ("<쓸만한 샤프 아이즈> 스킬 사용 가능", k(C::DecentSkill, 0)),
            ("INT +18", k(C::IntFlat, 18)),
            ("공격력 +14", k(C::AttFlat, 14)),
        ] {
            assert_eq!(parse(text), expected, "{text}");
        }
        assert!(matches!(
            parse("캐릭터 기준 9레벨 당 INT +2"),
            ParsedOption::Other { .. }
        ));
    }

    #[test]
    fn every_string_of_the_real_responses_is_understood() {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
        let mut seen = 0;
        for file in ["evan_equip.json", "mechanic_equip.json"] {
            let text = std::fs::read_to_string(data.join(file)).expect("fixture");
            let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            for list in [
                "item_equipment",
                "item_equipment_preset_1",
                "item_equipment_preset_2",
                "item_equipment_preset_3",
                "dragon_equipment",
                "mechanic_equipment",
            ] {
                for item in json[list].as_array().into_iter().flatten() {
                    for field in [
                        "potential_option_1",
                        "potential_option_2",
                        "potential_option_3",
                        "additional_potential_option_1",
                        "additional_potential_option_2",
                        "additional_potential_option_3",
                    ] {
                        if let Some(text) = item[field].as_str() {
                            seen += 1;
                            assert!(
                                !matches!(parse(text), ParsedOption::Unknown { .. }),
                                "{file} {field}: {text:?} not understood"
                            );
                        }
                    }
                }
            }
        }
        assert!(seen > 500, "the corpus was read ({seen} lines)");
    }

    #[test]
    fn hostile_text_is_kept_not_fatal() {
        for text in [
            "",
            "+",
            "STR +",
            "STR +99999999999999999999%",
            "스킬 재사용 대기시간 -999999초",
            "스킬 재사용 대기시간 -x초",
            "<쓸만한",
            "💥 +12%",
            "INT +12%%",
            "\u{0}\u{FFFF}",
            " +12% ",
        ] {
            let parsed = parse(text);
            assert!(
                !matches!(parsed, ParsedOption::Known { value, .. } if value > 1_000_000),
                "{text:?} → {parsed:?}"
            );
        }
    }

    /// A small deterministic fuzz: random strings built from option fragments never panic,
    /// and known results always carry a table category.
    #[test]
    fn random_fragments_never_panic() {
        const FRAGMENTS: [&str; 16] = [
            "INT",
            "올스탯",
            " +",
            "-",
            "%",
            "초",
            "12",
            "9999999",
            "피격 시 ",
            "확률로 데미지의",
            "<쓸만한 ",
            "> 스킬 사용 가능",
            "스킬 재사용 대기시간 -",
            "공격력",
            " ",
            "🍁",
        ];
        let mut state: u64 = 0x1234_5678;
        for _ in 0..20_000 {
            let mut text = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bits = state;
            for _ in 0..(bits % 6) {
                bits /= 7;
                text.push_str(FRAGMENTS[(bits % 16) as usize]);
            }
            let _ = parse(&text);
        }
    }
}
