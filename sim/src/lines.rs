//! Potential lines as the game rolls them: drawn from the rate tables in the repository's
//! `data/` (the main potential's `potential_rates.csv`, the additional potential's
//! `additional_rates.csv`), so grades' lines appear as often as they do for players.
//!
//! Rule: the tables decide what a line is and how often; the simulator only renders a
//! (category, value) in Nexon's Korean text and stands in for a player's choice — an item
//! keeps the best of a few resets for its class, as players keep the rolls they like.
//! The simulator reads the tables itself rather than through the engine: it stands in for
//! Nexon, and its draws must not move when the engine's reading of the tables does.

use std::collections::HashMap;
use std::sync::LazyLock;

/// One option of one line: what it is and its weight (percent).
#[derive(Debug, Clone)]
struct Weighted<T> {
    option: T,
    rate_pct: f64,
}

/// A main-potential option: the table's category and value (before the level-250 bump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainOption {
    pub category: String,
    pub value: u32,
}

/// Both tables, indexed.
#[derive(Debug, Default)]
struct Tables {
    /// (item type, grade 0..=3, line 0..=2) → options.
    main: HashMap<(String, usize, usize), Vec<Weighted<MainOption>>>,
    /// (part, band, line 0..=2) → Nexon's text (legendary only: the simulator keeps only those rows).
    additional: HashMap<(String, u32, usize), Vec<Weighted<String>>>,
}

const GRADE_NAMES: [&str; 4] = ["rare", "epic", "unique", "legendary"];
/// The table a grade's lines are drawn from: KMS players reset with mesos (the black cube's
/// tables) from unique up; the shipped tables have rare and epic under occult and master.
const CUBE_FOR_GRADE: [&str; 4] = ["occult", "master", "black", "black"];
/// The additional table's bands (lowest and highest level of each), as the engine reads them.
const ADDITIONAL_BANDS: [(u64, u64); 4] = [(80, 80), (100, 119), (120, 249), (250, u64::MAX)];

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    parse(
        include_str!("../../data/potential_rates.csv"),
        include_str!("../../data/additional_rates.csv"),
    )
});

/// Reads both CSVs. The files are the repository's own and checked by core at start-up and
/// by the tests; a row that does not read is skipped here, never a panic in a server.
fn parse(main: &str, additional: &str) -> Tables {
    let mut tables = Tables::default();
    for row in csv::Reader::from_reader(main.as_bytes())
        .records()
        .flatten()
    {
        let (Some(grade), Ok(line), Ok(rate_pct)) = (
            GRADE_NAMES.iter().position(|g| *g == &row[2]),
            row[3].parse::<usize>(),
            row[6].parse::<f64>(),
        ) else {
            continue;
        };
        // Junk rows list several texts instead of a number.
        let value = row[5].parse::<u32>().unwrap_or(0);
        if &row[1] != CUBE_FOR_GRADE[grade] || !(1..=3).contains(&line) {
            continue;
        }
        tables
            .main
            .entry((row[0].to_owned(), grade, line - 1))
            .or_default()
            .push(Weighted {
                option: MainOption {
                    category: row[4].to_owned(),
                    value,
                },
                rate_pct,
            });
    }
    for row in csv::Reader::from_reader(additional.as_bytes())
        .records()
        .flatten()
    {
        let (Ok(band), Ok(line), Ok(rate_pct)) = (
            row[1].parse::<u32>(),
            row[3].parse::<usize>(),
            row[5].parse::<f64>(),
        ) else {
            continue;
        };
        if &row[2] != "legendary" || !(1..=3).contains(&line) {
            continue;
        }
        tables
            .additional
            .entry((row[0].to_owned(), band, line - 1))
            .or_default()
            .push(Weighted {
                option: row[4].to_owned(),
                rate_pct,
            });
    }
    tables
}

/// Categories a potential may hold only so many of (DOMAIN.md §2), as the tables name them.
const CAPS: [(&str, usize); 4] = [
    ("Decent Skill", 1),
    ("Increase invincibility time after being hit", 1),
    ("Chance to ignore % damage when hit", 2),
    ("Chance of being invincible for seconds when hit", 2),
];

/// Categories that get +1 on items of level 250 (KMS; not from 160).
const BUMPED: [&str; 8] = [
    "STR %",
    "DEX %",
    "INT %",
    "LUK %",
    "All Stats %",
    "ATT %",
    "MATT %",
    "Max HP %",
];

/// A source of uniform numbers in [0, 1).
pub trait Uniform {
    fn uniform(&mut self) -> f64;
}

fn pick<'a, T, R: Uniform>(
    options: &'a [Weighted<T>],
    allowed: impl Fn(&T) -> bool,
    rng: &mut R,
) -> Option<&'a T> {
    let total: f64 = options
        .iter()
        .filter(|o| allowed(&o.option))
        .map(|o| o.rate_pct)
        .sum();
    let mut left = rng.uniform() * total;
    let mut last = None;
    for o in options.iter().filter(|o| allowed(&o.option)) {
        last = Some(&o.option);
        left -= o.rate_pct;
        if left < 0.0 {
            return last;
        }
    }
    last
}

/// Three main-potential lines for an item type, grade (0 rare … 3 legendary) and level,
/// drawn line by line with the cap-and-renormalise rule; `None` without a table (levels
/// below 120, item types the tables lack).
pub fn draw_main<R: Uniform>(
    item_type: &str,
    grade: usize,
    level: u64,
    rng: &mut R,
) -> Option<[MainOption; 3]> {
    if level < 120 {
        return None;
    }
    let bump = u32::from(level >= 250);
    let mut drawn: Vec<MainOption> = Vec::with_capacity(3);
    for line in 0..3 {
        let options = TABLES.main.get(&(item_type.to_owned(), grade, line))?;
        let allowed = |o: &MainOption| {
            CAPS.iter().all(|(category, cap)| {
                o.category != *category
                    || drawn.iter().filter(|d| d.category == *category).count() < *cap
            })
        };
        let mut option = pick(options, allowed, rng)?.clone();
        if BUMPED.contains(&option.category.as_str()) {
            option.value += bump;
        }
        drawn.push(option);
    }
    drawn.try_into().ok()
}

/// Three legendary additional-potential lines in Nexon's text for a part and level; `None`
/// where no table is shipped.
pub fn draw_additional<R: Uniform>(part: &str, level: u64, rng: &mut R) -> Option<[String; 3]> {
    let band = ADDITIONAL_BANDS
        .iter()
        .find(|(low, high)| (*low..=*high).contains(&level))
        .and_then(|(low, _)| u32::try_from(*low).ok())?;
    let mut drawn = Vec::with_capacity(3);
    for line in 0..3 {
        let options = TABLES.additional.get(&(part.to_owned(), band, line))?;
        drawn.push(pick(options, |_| true, rng)?.clone());
    }
    drawn.try_into().ok()
}

/// Nexon's Korean text for a main-potential option; `junk` picks the text of a line the
/// tables lump as `Junk`.
pub fn render(option: &MainOption, junk: usize) -> String {
    let v = option.value;
    match option.category.as_str() {
        "STR %" => format!("STR +{v}%"),
        "DEX %" => format!("DEX +{v}%"),
        "INT %" => format!("INT +{v}%"),
        "LUK %" => format!("LUK +{v}%"),
        "All Stats %" => format!("올스탯 +{v}%"),
        "ATT %" => format!("공격력 +{v}%"),
        "MATT %" => format!("마력 +{v}%"),
        "Max HP %" => format!("최대 HP +{v}%"),
        "STR Flat" => format!("STR +{v}"),
        "DEX Flat" => format!("DEX +{v}"),
        "INT Flat" => format!("INT +{v}"),
        "LUK Flat" => format!("LUK +{v}"),
        "All Stats Flat" => format!("올스탯 +{v}"),
        "ATT Flat" => format!("공격력 +{v}"),
        "MATT Flat" => format!("마력 +{v}"),
        "Max HP Flat" => format!("최대 HP +{v}"),
        "Max MP Flat" => format!("최대 MP +{v}"),
        "Defense Flat" => format!("방어력 +{v}"),
        "Boss Damage" => format!("보스 몬스터 데미지 +{v}%"),
        "Ignore Enemy Defense %" => format!("몬스터 방어율 무시 +{v}%"),
        "Critical Damage %" => format!("크리티컬 데미지 +{v}%"),
        "Critical Chance %" => format!("크리티컬 확률 +{v}%"),
        "Damage %" => format!("데미지 +{v}%"),
        "Skill Cooldown Reduction" => format!("스킬 재사용 대기시간 -{v}초"),
        "Item Drop Rate %" => format!("아이템 드롭률 +{v}%"),
        "Meso Amount %" => format!("메소 획득량 +{v}%"),
        "Chance to ignore % damage when hit" => "피격 시 5% 확률로 데미지의 40% 무시".to_owned(),
        "Chance to ignore flat damage when hit" => "피격 시 20% 확률로 데미지 40 무시".to_owned(),
        "Chance of being invincible for seconds when hit" => {
            "피격 시 2% 확률로 7초간 무적".to_owned()
        }
        "Increase invincibility time after being hit" => "피격 후 무적시간 +1초".to_owned(),
        "Decent Skill" => "<쓸만한 헤이스트> 스킬 사용 가능".to_owned(),
        "Chance to auto steal %" => "공격 시 7% 확률로 오토스틸".to_owned(),
        _ => [
            "최대 MP +9%",
            "HP 회복 아이템 및 회복 스킬 효율 +30%",
            "공격 시 20% 확률로 240의 HP 회복",
        ][junk % 3]
            .to_owned(),
    }
}

/// What a player of this class values in a line (Nexon's text): main stat % and all-stat %
/// (Xenon: all-stat whole, STR/DEX/LUK a third), attack % on weapons, boss and ignore
/// defense a little, cooldown on hats, critical damage on gloves, drop and meso on
/// accessories.
pub fn worth(text: &str, stat: &str, xenon: bool, attack: &str, weapon: bool) -> f64 {
    let amount = |prefix: &str| -> Option<f64> {
        let rest = text.strip_prefix(prefix)?.strip_prefix(" +")?;
        rest.trim_end_matches('%').parse().ok()
    };
    let percent = text.ends_with('%');
    if let Some(seconds) = text
        .strip_prefix("스킬 재사용 대기시간 -")
        .and_then(|s| s.strip_suffix('초'))
        .and_then(|s| s.parse::<f64>().ok())
    {
        return 6.0 * seconds;
    }
    if !percent {
        return 0.0;
    }
    if let Some(v) = amount("올스탯") {
        return v;
    }
    for single in ["STR", "DEX", "INT", "LUK"] {
        if let Some(v) = amount(single) {
            return if xenon && single != "INT" {
                v / 3.0
            } else if single == stat {
                v
            } else {
                0.0
            };
        }
    }
    if weapon {
        if let Some(v) = amount(attack) {
            return 1.5 * v;
        }
        if let Some(v) = amount("보스 몬스터 데미지").or_else(|| amount("몬스터 방어율 무시"))
        {
            return v / 4.0;
        }
    }
    if amount("크리티컬 데미지").is_some() {
        return 8.0;
    }
    if amount("아이템 드롭률")
        .or_else(|| amount("메소 획득량"))
        .is_some()
    {
        return 7.0;
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Seq(u64);

    impl Uniform for Seq {
        fn uniform(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1_u64 << 53) as f64
        }
    }

    #[test]
    fn the_tables_load_every_group_the_simulator_draws_from() {
        for item_type in [
            "hat",
            "top",
            "weapon",
            "ring",
            "heart",
            "emblem",
            "secondary",
        ] {
            for grade in 0..4 {
                for line in 0..3 {
                    assert!(
                        TABLES
                            .main
                            .contains_key(&(item_type.to_owned(), grade, line)),
                        "{item_type} {grade} {line}"
                    );
                }
            }
        }
        assert!(
            TABLES
                .additional
                .contains_key(&("weapon".to_owned(), 120, 0))
        );
    }

    /// Lines appear as often as the tables say: over 20,000 draws the share of each category
    /// on the first line is its rate, within 1.5 points.
    #[test]
    fn first_lines_follow_the_published_rates() {
        let mut rng = Seq(7);
        let draws = 20_000;
        let mut seen: HashMap<String, usize> = HashMap::new();
        for _ in 0..draws {
            let lines = draw_main("hat", 3, 200, &mut rng).expect("a table");
            *seen.entry(lines[0].category.clone()).or_default() += 1;
        }
        let mut expected: HashMap<String, f64> = HashMap::new();
        for o in &TABLES.main[&("hat".to_owned(), 3, 0)] {
            *expected.entry(o.option.category.clone()).or_default() += o.rate_pct;
        }
        for (category, rate) in expected {
            let share = *seen.get(&category).unwrap_or(&0) as f64 / draws as f64 * 100.0;
            assert!(
                (share - rate).abs() < 1.5,
                "{category}: {share:.2}% vs {rate:.2}%"
            );
        }
    }

    #[test]
    fn caps_hold_and_levels_follow_the_kms_rule() {
        let mut rng = Seq(11);
        for _ in 0..5_000 {
            let lines = draw_main("hat", 3, 200, &mut rng).expect("a table");
            let decent = lines
                .iter()
                .filter(|l| l.category == "Decent Skill")
                .count();
            assert!(decent <= 1);
            for line in &lines {
                if line.category == "STR %" {
                    assert!([9, 12].contains(&line.value), "{line:?} at 200");
                }
            }
            let high = draw_main("top", 3, 250, &mut rng).expect("a table");
            for line in &high {
                if line.category == "DEX %" {
                    assert!([10, 13].contains(&line.value), "{line:?} at 250");
                }
            }
        }
        assert!(draw_main("hat", 3, 110, &mut rng).is_none());
        assert!(draw_additional("weapon", 200, &mut rng).is_some());
        assert!(draw_additional("secondary", 250, &mut rng).is_none());
        assert!(draw_additional("hat", 90, &mut rng).is_none());
    }

    #[test]
    fn worth_reads_what_a_class_values() {
        assert_eq!(worth("INT +12%", "INT", false, "마력", false), 12.0);
        assert_eq!(worth("STR +12%", "INT", false, "마력", false), 0.0);
        assert_eq!(worth("LUK +12%", "LUK", true, "공격력", false), 4.0);
        assert_eq!(worth("올스탯 +9%", "DEX", false, "공격력", false), 9.0);
        assert_eq!(worth("마력 +12%", "INT", false, "마력", true), 18.0);
        assert_eq!(
            worth("스킬 재사용 대기시간 -2초", "STR", false, "공격력", false),
            12.0
        );
        assert_eq!(worth("INT +12", "INT", false, "마력", false), 0.0);
    }
}
