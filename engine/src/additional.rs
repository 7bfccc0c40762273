//! The additional potential (에디셔널 잠재능력): its own per-line tables, prices and tier-up.
//!
//! Tables: `data/additional_rates.csv`, Nexon's published per-line rates for the additional
//! potential (maplestory.nexon.com, 확률형 아이템 → 에디셔널 잠재능력 재설정), legendary grade, per
//! part and level band (80 for the heart alone, 100–119, 120–249, 250+; the page's tables are
//! identical from 120 to 200), legendary from Nexon's page as one calculator scraped it, epic and unique (120–249 and
//! 250+, 16 and 12 parts) as another copied it (`data/README.md` names both). Options are kept
//! in Nexon's own text and read with the same parser as the items' lines, so the tables and
//! the responses cannot disagree on a spelling; lines the targets never count (per-level
//! stats, HP recovery, …) are `Junk`. Rare tables are not shipped: such an item says so
//! instead of a figure.
//!
//! Prices and tier-up: the KMS meso reset of the additional potential (DOMAIN.md §6b, Nexon
//! update notes 737 and 746): mesos per reset by level band and grade, tier-up 2.381% (pity
//! 62), 0.9804% (152), 0.7% (214).

use std::collections::HashMap;

use crate::model::{Category, Grade, Part};
use crate::option::{self, ParsedOption};
use crate::tables::{LineOption, TableError, check_sums, push_option};

/// The repository's additional-potential table, built in.
const BUILT_IN: &str = include_str!("../../data/additional_rates.csv");
const HEADER: [&str; 6] = ["part", "min_level", "grade", "line", "option", "rate_pct"];
/// The level bands (lowest, highest level), low to high. Nexon's page has a table per band of
/// levels; level 80 is a band of its own (the superior hearts' level), and 81–99 are not
/// shipped.
pub const BANDS: [(u32, u32); 4] = [(80, 80), (100, 119), (120, 249), (250, u32::MAX)];

/// Meso reset of the additional potential: (lowest level of the band, price per grade
/// rare..legendary). KMS, DOMAIN.md §6b.
pub const RESET_PRICES: [(u32, [u64; 4]); 4] = [
    (0, [9_750_000, 27_300_000, 66_300_000, 78_000_000]),
    (160, [10_375_000, 29_050_000, 70_550_000, 83_000_000]),
    (200, [11_000_000, 30_800_000, 74_800_000, 88_000_000]),
    (250, [12_250_000, 34_300_000, 83_300_000, 98_000_000]),
];

/// Tier-up per additional meso reset: (rate %, pity) for rare→epic, epic→unique,
/// unique→legendary.
pub const TIER_UP: [(f64, u32); 3] = [(2.381, 62), (0.9804, 152), (0.7, 214)];

/// Mesos of one additional meso reset of an item of `level` at `grade`.
pub fn reset_price(level: u32, grade: Grade) -> u64 {
    RESET_PRICES
        .iter()
        .rev()
        .find(|(from, _)| level >= *from)
        .map_or(RESET_PRICES[0].1, |(_, prices)| *prices)[grade.index()]
}

/// The additional-potential part of a Nexon equipment slot.
pub fn part_of_slot(slot: &str) -> Option<Part> {
    Some(match slot {
        "무기" => Part::Weapon,
        "엠블렘" => Part::Emblem,
        "보조무기" => Part::Secondary,
        "모자" => Part::Hat,
        "상의" => Part::Top,
        "한벌옷" => Part::Overall,
        "하의" => Part::Bottom,
        "신발" => Part::Shoes,
        "장갑" => Part::Gloves,
        "망토" => Part::Cape,
        "벨트" => Part::Belt,
        "어깨장식" => Part::Shoulder,
        "얼굴장식" => Part::Face,
        "눈장식" => Part::Eye,
        "귀고리" => Part::Earrings,
        "반지1" | "반지2" | "반지3" | "반지4" => Part::Ring,
        "펜던트" | "펜던트2" => Part::Pendant,
        "기계 심장" => Part::Heart,
        _ => return None,
    })
}

/// The band an item level falls in (its lowest level), if any table covers it.
pub fn band_of(level: u32) -> Option<u32> {
    BANDS
        .iter()
        .find(|(low, high)| (*low..=*high).contains(&level))
        .map(|(low, _)| *low)
}

/// All additional-potential tables: (part, band, grade) → lines 1, 2 and 3.
#[derive(Debug, Clone, Default)]
pub struct AdditionalTables {
    groups: HashMap<(Part, u32, Grade), [Vec<LineOption>; 3]>,
}

impl AdditionalTables {
    /// The table built into the binary.
    ///
    /// # Errors
    /// [`TableError`] if the built-in table were invalid (a test guards it).
    pub fn built_in() -> Result<Self, TableError> {
        Self::parse(BUILT_IN)
    }

    /// Parses and validates CSV text: known parts, bands and grades, lines 1–3, rates in
    /// (0, 100], each line summing to 100%.
    ///
    /// # Errors
    /// [`TableError`] naming the row or group at fault.
    pub fn parse(text: &str) -> Result<Self, TableError> {
        let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let header = reader.headers().map_err(|e| TableError::Row {
            row: 1,
            reason: e.to_string(),
        })?;
        if header.iter().ne(HEADER) {
            return Err(TableError::Header {
                expected: HEADER.join(","),
            });
        }
        let mut groups: HashMap<(Part, u32, Grade), [Vec<LineOption>; 3]> = HashMap::new();
        for (index, record) in reader.records().enumerate() {
            let row = index + 2;
            let bad = |reason: String| TableError::Row { row, reason };
            let record = record.map_err(|e| bad(e.to_string()))?;
            let field = |i: usize| record.get(i).unwrap_or_default();
            let part: Part = field(0).parse().map_err(|e| bad(format!("{e}")))?;
            let band: u32 = field(1)
                .parse()
                .ok()
                .filter(|b| BANDS.iter().any(|(low, _)| low == b))
                .ok_or_else(|| bad("min_level must be 80, 100, 120 or 250".to_owned()))?;
            let grade: Grade = field(2).parse().map_err(|e| bad(format!("{e}")))?;
            let line: usize = field(3)
                .parse()
                .ok()
                .filter(|l| (1..=3).contains(l))
                .ok_or_else(|| bad("line must be 1, 2 or 3".to_owned()))?;
            let rate_pct: f64 = field(5)
                .parse()
                .ok()
                .filter(|r: &f64| *r > 0.0 && *r <= 100.0)
                .ok_or_else(|| bad("rate_pct must be within (0, 100]".to_owned()))?;
            let (category, value) = match option::parse(field(4)) {
                ParsedOption::Known { category, value } => (category, value),
                _ => (Category::Junk, 0),
            };
            push_option(
                groups.entry((part, band, grade)).or_default(),
                line,
                LineOption {
                    category,
                    value,
                    rate_pct,
                },
            )
            .map_err(bad)?;
        }
        for ((part, band, grade), lines) in &groups {
            check_sums(&format!("additional {part}/{band}/{grade}"), lines)?;
        }
        Ok(Self { groups })
    }

    /// The three lines of an item of `part`, `level` and `grade`, or why there are none.
    ///
    /// # Errors
    /// A sentence for the user: below the lowest band, or no table for that part, band
    /// and grade.
    pub fn lines(
        &self,
        part: Part,
        level: u32,
        grade: Grade,
    ) -> Result<&[Vec<LineOption>; 3], String> {
        let band = band_of(level).ok_or_else(|| {
            format!(
                "additional-potential tables cover item levels 80, 100–119, 120–249 and 250+ (got {level})"
            )
        })?;
        self.groups.get(&(part, band, grade)).ok_or_else(|| {
            if grade == Grade::Rare {
                "rare additional-potential tables are not shipped".to_owned()
            } else {
                format!("no {grade} additional-potential table is shipped for {part} items of level {band}+")
            }
        })
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::potential::{Target, Term, probability_over};

    fn built_in() -> &'static AdditionalTables {
        static TABLES: std::sync::OnceLock<AdditionalTables> = std::sync::OnceLock::new();
        TABLES.get_or_init(|| AdditionalTables::built_in().expect("valid"))
    }

    #[test]
    fn the_built_in_table_loads_with_every_part_it_should() {
        let tables = built_in();
        // Legendary: the heart at 80, 18 parts at 100 and 120; at 250 Nexon lists 11 of them (no 250 emblem,
        // secondary, overall, belt, eye, earrings, heart). Epic and unique: 16 parts at 120
        // (no overall, no heart) and 12 at 250.
        assert_eq!(
            tables.len(),
            1 + 18 + 18 + 11 + 2 * (16 + 12),
            "{}",
            tables.len()
        );
        assert!(tables.lines(Part::Face, 160, Grade::Unique).is_ok());
        assert!(tables.lines(Part::Shoes, 200, Grade::Epic).is_ok());
        assert!(tables.lines(Part::Weapon, 200, Grade::Legendary).is_ok());
        assert!(tables.lines(Part::Weapon, 250, Grade::Legendary).is_ok());
        let secondary = tables
            .lines(Part::Secondary, 250, Grade::Legendary)
            .expect_err("no 250 table");
        assert!(
            secondary.contains("no legendary additional-potential table"),
            "{secondary}"
        );
        let rare = tables
            .lines(Part::Hat, 200, Grade::Rare)
            .expect_err("no rare tables");
        assert!(rare.contains("rare"), "{rare}");
        let heart = tables
            .lines(Part::Heart, 200, Grade::Unique)
            .expect_err("no unique heart table");
        assert!(heart.contains("no unique"), "{heart}");
        assert!(tables.lines(Part::Hat, 99, Grade::Legendary).is_err());
        // Level 80 is the heart's own band (Nexon's level-80 table); 81–99 are not shipped.
        assert!(tables.lines(Part::Heart, 80, Grade::Legendary).is_ok());
        assert!(tables.lines(Part::Heart, 85, Grade::Legendary).is_err());
        assert!(tables.lines(Part::Hat, 80, Grade::Legendary).is_err());
    }

    /// Every additional-potential line of both real responses (equipped and presets) whose
    /// part, band and grade have a shipped table is an option Nexon's table lists for that
    /// part, band, grade and line — text for text — but for one legacy option: defense %
    /// (`방어력 +7%` on a level-140 earring), which today's tables no longer list (an item
    /// keeps a line it rolled before a table changed; no target counts it).
    #[test]
    fn every_additional_line_of_the_real_responses_is_in_the_table() {
        use std::collections::HashSet;
        let mut listed: HashSet<(String, String, String, String, String)> = HashSet::new();
        let mut reader = csv::Reader::from_reader(BUILT_IN.as_bytes());
        for record in reader.records() {
            let r = record.expect("a row");
            listed.insert((
                r[0].into(),
                r[1].into(),
                r[2].into(),
                r[3].into(),
                r[4].into(),
            ));
        }
        let (mut checked, mut legacy, mut wrong) = (0, 0, Vec::new());
        let mut below_legendary = 0;
        for (file, item) in crate::tables::tests::real_items() {
            let slot = item["item_equipment_slot"].as_str().unwrap_or_default();
            let level = item["item_base_option"]["base_equipment_level"]
                .as_u64()
                .and_then(|l| u32::try_from(l).ok())
                .unwrap_or(0);
            let (Some(part), Some(band)) = (part_of_slot(slot), band_of(level)) else {
                continue;
            };
            let Some(grade) = item["additional_potential_option_grade"]
                .as_str()
                .and_then(Grade::from_korean)
            else {
                continue;
            };
            if built_in().lines(part, level, grade).is_err() {
                continue;
            }
            below_legendary += usize::from(grade != Grade::Legendary);
            for line in 1..=3 {
                let Some(text) = item[format!("additional_potential_option_{line}")].as_str()
                else {
                    continue;
                };
                checked += 1;
                let key = (
                    part.to_string(),
                    band.to_string(),
                    grade.to_string(),
                    line.to_string(),
                    text.to_owned(),
                );
                if text.starts_with("방어력 +") && text.ends_with('%') {
                    legacy += 1;
                } else if !listed.contains(&key) {
                    wrong.push(format!(
                        "{file} {slot} (level {level}) line {line}: {text:?}"
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "not in the table:\n{}", wrong.join("\n"));
        assert!(checked > 100, "checked {checked}");
        // The unique face, eye and shoes of the Evan response (equipped and presets).
        assert!(below_legendary >= 3, "{below_legendary}");
        assert_eq!(
            legacy, 2,
            "the earring of the equipped set and of one preset"
        );
    }

    #[test]
    fn a_bad_table_is_refused_with_the_row() {
        let header = HEADER.join(",");
        let bad_part = format!("{header}\nhelmet,120,legendary,1,STR +12%,100\n");
        assert!(matches!(
            AdditionalTables::parse(&bad_part),
            Err(TableError::Row { row: 2, .. })
        ));
        let bad_band = format!("{header}\nhat,130,legendary,1,STR +12%,100\n");
        assert!(AdditionalTables::parse(&bad_band).is_err());
        let short = format!("{header}\nhat,120,legendary,1,STR +12%,60\n");
        assert!(matches!(
            AdditionalTables::parse(&short),
            Err(TableError::Group { .. })
        ));
        assert!(matches!(
            AdditionalTables::parse("a,b\n"),
            Err(TableError::Header { .. })
        ));
    }

    /// Hand check on Nexon's weapon table (level 120–249, legendary): line 1 has ATT +12% at
    /// 5.1282%; lines 2 and 3 carry the legendary options at 0.4975% of their weight
    /// (ATT +12% at 0.0255%) and the unique-grade ones (ATT +9% at 4.628%). ATT % ≥ 12 over
    /// the three lines is then dominated by a first-line 12, or 9 + a later line.
    #[test]
    fn weapon_attack_odds_follow_the_published_rates() {
        let lines = built_in()
            .lines(Part::Weapon, 200, Grade::Legendary)
            .expect("table");
        let att = |min| Target::new(vec![Term::AttPct { min }]).expect("valid");
        let p12 = probability_over(lines, 0, &att(12));
        let first_line_12 = 0.051_282;
        assert!(p12 > first_line_12 && p12 < 0.08, "{p12}");
        let p21 = probability_over(lines, 0, &att(21));
        assert!(p21 > 0.0 && p21 < p12 / 5.0, "{p21}");
        assert_eq!(reset_price(200, Grade::Legendary), 88_000_000);
        assert_eq!(reset_price(159, Grade::Rare), 9_750_000);
        assert_eq!(reset_price(250, Grade::Unique), 83_300_000);
    }
}
