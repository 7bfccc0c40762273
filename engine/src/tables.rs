//! The per-line potential rate tables (`potential_rates.csv`), validated and indexed.
//!
//! Rule: a table that does not add up is refused at start-up, with the row or group named —
//! the engine never computes with numbers it has not checked.

use std::collections::HashMap;

use crate::model::{Category, Cube, Grade, ItemType};

/// Allowed distance of a group's sum from 100%.
const SUM_TOLERANCE: f64 = 0.01;

/// The repository's rate table (`data/potential_rates.csv`), built in as the default so a
/// binary copied alone to another machine still starts (`MAPLE_POTENTIAL_TABLES` overrides).
const BUILT_IN: &str = include_str!("../../data/potential_rates.csv");
/// The header the file must start with.
const HEADER: [&str; 7] = [
    "item_type",
    "cube",
    "grade",
    "line",
    "category",
    "value",
    "rate_pct",
];
/// More options than this on one line of one group means the file is not what we think.
pub const MAX_OPTIONS_PER_LINE: usize = 128;

/// One option of one line: its category, numeric value (0 for labels) and rate in percent.
#[derive(Debug, Clone, PartialEq)]
pub struct LineOption {
    pub category: Category,
    pub value: u32,
    pub rate_pct: f64,
}

/// Which table: item type, cube and grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub item_type: ItemType,
    pub cube: Cube,
    pub grade: Grade,
}

/// All tables, indexed by [`GroupKey`]; each holds the options of lines 1, 2 and 3.
#[derive(Debug, Clone, Default)]
pub struct RateTables {
    groups: HashMap<GroupKey, [Vec<LineOption>; 3]>,
}

/// Why the tables were refused.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read the rate table {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("rate table: the header must be {expected}")]
    Header { expected: String },
    #[error("rate table row {row}: {reason}")]
    Row { row: usize, reason: String },
    #[error("rate table group {group}: {reason}")]
    Group { group: String, reason: String },
}

impl RateTables {
    /// Reads and validates the CSV at `path`.
    ///
    /// # Errors
    /// [`TableError`] naming the file, row or group at fault.
    pub fn load(path: &std::path::Path) -> Result<Self, TableError> {
        let text = std::fs::read_to_string(path).map_err(|cause| TableError::Read {
            path: path.display().to_string(),
            cause,
        })?;
        Self::parse(&text)
    }

    /// The tables built into the binary: the repository's `data/potential_rates.csv`.
    ///
    /// # Errors
    /// [`TableError`] if the built-in file is malformed (a broken build; the tests load it).
    pub fn built_in() -> Result<Self, TableError> {
        Self::parse(BUILT_IN)
    }

    /// Parses and validates CSV text.
    ///
    /// # Errors
    /// [`TableError`] naming the row or group at fault.
    pub fn parse(text: &str) -> Result<Self, TableError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.as_bytes());
        let header = reader.headers().map_err(|e| TableError::Row {
            row: 1,
            reason: e.to_string(),
        })?;
        if header.iter().ne(HEADER) {
            return Err(TableError::Header {
                expected: HEADER.join(","),
            });
        }
        let mut groups: HashMap<GroupKey, [Vec<LineOption>; 3]> = HashMap::new();
        for (index, record) in reader.records().enumerate() {
            let row = index + 2;
            let bad = |reason: String| TableError::Row { row, reason };
            let record = record.map_err(|e| bad(e.to_string()))?;
            if record.len() != HEADER.len() {
                return Err(bad(format!("expected {} fields", HEADER.len())));
            }
            let field = |i: usize| record.get(i).unwrap_or("");
            let key = GroupKey {
                item_type: field(0).parse().map_err(|e| bad(format!("{e}")))?,
                cube: field(1).parse().map_err(|e| bad(format!("{e}")))?,
                grade: field(2).parse().map_err(|e| bad(format!("{e}")))?,
            };
            let line: usize = field(3)
                .parse()
                .ok()
                .filter(|l| (1..=3).contains(l))
                .ok_or_else(|| bad(format!("line {:?} is not 1, 2 or 3", field(3))))?;
            let category: Category = field(4).parse().map_err(|e| bad(format!("{e}")))?;
            let value = parse_value(category, field(5)).map_err(bad)?;
            let rate_pct: f64 = field(6)
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite() && *r > 0.0 && *r <= 100.0)
                .ok_or_else(|| bad(format!("rate {:?} is not within (0, 100]", field(6))))?;
            push_option(
                groups.entry(key).or_default(),
                line,
                LineOption {
                    category,
                    value,
                    rate_pct,
                },
            )
            .map_err(bad)?;
        }
        if groups.is_empty() {
            return Err(TableError::Group {
                group: "(all)".into(),
                reason: "the table is empty".into(),
            });
        }
        for (key, lines) in &groups {
            let group = format!("{}/{}/{}", key.item_type, key.cube, key.grade);
            check_sums(&group, lines)?;
        }
        Ok(Self { groups })
    }

    /// The three lines of a table, if the file has it.
    pub fn lines(&self, key: GroupKey) -> Option<&[Vec<LineOption>; 3]> {
        self.groups.get(&key)
    }

    /// Number of (item type, cube, grade) tables.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Numeric categories carry a whole number; special lines carry a label (kept as 0).
fn parse_value(category: Category, raw: &str) -> Result<u32, String> {
    let numeric = !matches!(
        category,
        Category::Junk
            | Category::DecentSkill
            | Category::IgnoreDamagePct
            | Category::IgnoreDamageFlat
            | Category::InvincibleChance
            | Category::InvincibilityTime
            | Category::AutoSteal
    );
    if !numeric {
        return Ok(0);
    }
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|v| *v <= 10_000)
        .ok_or_else(|| format!("value {raw:?} of {category} is not a whole number"))
}

/// Adds `option` to line `line` (1–3) of a group, refusing a line that grows past
/// [`MAX_OPTIONS_PER_LINE`]. Shared with the additional-potential tables.
pub(crate) fn push_option(
    lines: &mut [Vec<LineOption>; 3],
    line: usize,
    option: LineOption,
) -> Result<(), String> {
    let options = &mut lines[line - 1];
    if options.len() >= MAX_OPTIONS_PER_LINE {
        return Err(format!(
            "more than {MAX_OPTIONS_PER_LINE} options on one line"
        ));
    }
    options.push(option);
    Ok(())
}

/// Refuses a group whose lines do not each sum to 100% (± [`SUM_TOLERANCE`]).
pub(crate) fn check_sums(group: &str, lines: &[Vec<LineOption>; 3]) -> Result<(), TableError> {
    for (i, options) in lines.iter().enumerate() {
        let sum: f64 = options.iter().map(|o| o.rate_pct).sum();
        if (sum - 100.0).abs() > SUM_TOLERANCE {
            return Err(TableError::Group {
                group: format!("{group} line {}", i + 1),
                reason: format!("rates sum to {sum:.4}%, not 100% ± {SUM_TOLERANCE}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every item of both real responses in `data/` (equipped set and the three presets),
    /// with the file it came from.
    pub(crate) fn real_items() -> Vec<(&'static str, serde_json::Value)> {
        let mut items = Vec::new();
        for file in ["evan_equip.json", "mechanic_equip.json"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../data")
                .join(file);
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("JSON");
            for list in [
                "item_equipment",
                "item_equipment_preset_1",
                "item_equipment_preset_2",
                "item_equipment_preset_3",
            ] {
                for item in json[list].as_array().into_iter().flatten() {
                    items.push((file, item.clone()));
                }
            }
        }
        items
    }

    /// The built-in tables, parsed once per test binary.
    pub(crate) fn built_in() -> &'static RateTables {
        static TABLES: std::sync::OnceLock<RateTables> = std::sync::OnceLock::new();
        TABLES.get_or_init(|| RateTables::built_in().expect("the built-in tables are valid"))
    }

    #[test]
    fn the_built_in_tables_load() {
        let tables = built_in();
        assert_eq!(tables.len(), 140, "14 item types × 5 cubes × 2..4 grades");
        let hat = tables
            .lines(GroupKey {
                item_type: ItemType::Hat,
                cube: Cube::Red,
                grade: Grade::Legendary,
            })
            .expect("hat table");
        assert!(
            hat[0]
                .iter()
                .any(|o| o.category == Category::Cooldown && o.value == 2)
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_row_or_group() {
        let header = HEADER.join(",");
        let cases = [
            ("item_type,cube\n".to_owned(), "header"),
            (
                format!("{header}\nhelmet,red,rare,1,STR %,3,100\n"),
                "row 2",
            ),
            (format!("{header}\nhat,red,rare,4,STR %,3,100\n"), "row 2"),
            (
                format!("{header}\nhat,red,rare,1,STR %,three,100\n"),
                "row 2",
            ),
            (format!("{header}\nhat,red,rare,1,STR %,3,-1\n"), "row 2"),
            (format!("{header}\nhat,red,rare,1,Bogus,3,100\n"), "row 2"),
            (
                format!("{header}\nhat,red,rare,1,STR %,3,99\n"),
                "group hat/red/rare line 1",
            ),
            (format!("{header}\n"), "empty"),
        ];
        for (text, expected) in cases {
            let err = RateTables::parse(&text).expect_err(expected).to_string();
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
    }
}
