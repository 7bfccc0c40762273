//! The equipment as the valuation reads it. [`Equipment`] decodes the fields of Nexon's
//! item-equipment response that pricing uses; [`Gear`] is its compact parsed form, made once
//! per body: each distinct item's facts with its option lines already parsed, the presets
//! sharing the items they have in common with the equipped set. A valuation of a new option
//! set for a body seen before starts from its `Gear` and costs the pricing only, never the
//! inflating and decoding of the 350 KB response again.
//!
//! Rule: any other shape of the response is ignored; a missing field makes that item
//! unpriced, never the decoding fail.

use std::sync::Arc;

use serde::Deserialize;

use crate::model::Grade;
use crate::option::{self, ParsedOption};

/// The bytes an `Arc` allocation holds besides its value: the strong and the weak count. Every
/// cache weight of a value kept in an `Arc` adds them (`core/tests/footprint.rs` checks the
/// weights against what the allocator saw).
pub const ARC_COUNTS_BYTES: usize = 2 * std::mem::size_of::<usize>();

/// The fields of Nexon's item-equipment response the valuation reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Equipment {
    #[serde(default)]
    pub character_class: Option<String>,
    #[serde(default)]
    pub item_equipment: Vec<Item>,
    /// The preset in use (1–3).
    #[serde(default)]
    pub preset_no: Option<u32>,
    #[serde(default)]
    pub item_equipment_preset_1: Option<Vec<Item>>,
    #[serde(default)]
    pub item_equipment_preset_2: Option<Vec<Item>>,
    #[serde(default)]
    pub item_equipment_preset_3: Option<Vec<Item>>,
}

/// One equipped item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Item {
    #[serde(default)]
    pub item_equipment_slot: Option<String>,
    #[serde(default)]
    pub item_name: Option<String>,
    #[serde(default)]
    pub item_base_option: Option<BaseOption>,
    #[serde(default)]
    pub potential_option_grade: Option<String>,
    #[serde(default)]
    pub potential_option_1: Option<String>,
    #[serde(default)]
    pub potential_option_2: Option<String>,
    #[serde(default)]
    pub potential_option_3: Option<String>,
    #[serde(default)]
    pub additional_potential_option_grade: Option<String>,
    #[serde(default)]
    pub additional_potential_option_1: Option<String>,
    #[serde(default)]
    pub additional_potential_option_2: Option<String>,
    #[serde(default)]
    pub additional_potential_option_3: Option<String>,
    #[serde(default)]
    pub starforce: Option<String>,
    /// `사용` when the stars came from a star-force scroll, not from enhancing with mesos.
    #[serde(default)]
    pub starforce_scroll_flag: Option<String>,
    /// The flames' totals per stat.
    #[serde(default)]
    pub item_add_option: Option<AddOption>,
}

impl Item {
    /// The item's level (`item_base_option.base_equipment_level`).
    pub fn level(&self) -> Option<u32> {
        self.item_base_option
            .as_ref()
            .and_then(|b| b.base_equipment_level)
    }

    /// The potential grade, from Nexon's Korean name.
    pub fn grade(&self) -> Option<Grade> {
        self.potential_option_grade
            .as_deref()
            .and_then(Grade::from_korean)
    }

    /// The additional potential's grade.
    pub fn additional_grade(&self) -> Option<Grade> {
        self.additional_potential_option_grade
            .as_deref()
            .and_then(Grade::from_korean)
    }

    /// The potential's lines, parsed.
    pub fn lines(&self) -> Vec<ParsedOption> {
        parse_lines([
            &self.potential_option_1,
            &self.potential_option_2,
            &self.potential_option_3,
        ])
    }

    /// The additional potential's lines, parsed.
    pub fn additional_lines(&self) -> Vec<ParsedOption> {
        parse_lines([
            &self.additional_potential_option_1,
            &self.additional_potential_option_2,
            &self.additional_potential_option_3,
        ])
    }
}

fn parse_lines(texts: [&Option<String>; 3]) -> Vec<ParsedOption> {
    texts
        .into_iter()
        .flatten()
        .map(|text| option::parse(text))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BaseOption {
    #[serde(default)]
    pub base_equipment_level: Option<u32>,
    /// The item's own ATT and MATT (a weapon's flame line is a share of them).
    #[serde(default, deserialize_with = "lenient")]
    pub attack_power: u32,
    #[serde(default, deserialize_with = "lenient")]
    pub magic_power: u32,
}

/// `item_add_option`, an item's flame totals per stat (not its lines): Nexon sends every
/// figure as a string but `equipment_level_decrease`, a number; either is read, anything else
/// counts as 0. The flames are priced from it as it is (`flame`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(default)]
pub struct AddOption {
    #[serde(deserialize_with = "lenient")]
    pub str: u32,
    #[serde(deserialize_with = "lenient")]
    pub dex: u32,
    #[serde(deserialize_with = "lenient")]
    pub int: u32,
    #[serde(deserialize_with = "lenient")]
    pub luk: u32,
    #[serde(deserialize_with = "lenient")]
    pub max_hp: u32,
    #[serde(deserialize_with = "lenient")]
    pub max_mp: u32,
    #[serde(deserialize_with = "lenient")]
    pub attack_power: u32,
    #[serde(deserialize_with = "lenient")]
    pub magic_power: u32,
    #[serde(deserialize_with = "lenient")]
    pub armor: u32,
    #[serde(deserialize_with = "lenient")]
    pub speed: u32,
    #[serde(deserialize_with = "lenient")]
    pub jump: u32,
    #[serde(deserialize_with = "lenient")]
    pub boss_damage: u32,
    #[serde(deserialize_with = "lenient")]
    pub damage: u32,
    #[serde(deserialize_with = "lenient")]
    pub all_stat: u32,
    #[serde(deserialize_with = "lenient")]
    pub equipment_level_decrease: u32,
}

impl AddOption {
    /// No flame at all (rings, shoulders, … and unflamed items).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A non-negative figure sent as a string or a number; anything else (null, a negative or
/// unreadable figure) is 0, never a failed decode.
fn lenient<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::String(text) => text.trim().parse().unwrap_or(0),
        serde_json::Value::Number(number) => number
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        _ => 0,
    })
}

/// What the valuation reads of one item, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GearItem {
    pub slot: String,
    pub name: String,
    pub level: Option<u32>,
    pub grade: Option<Grade>,
    pub lines: Vec<ParsedOption>,
    pub additional_grade: Option<Grade>,
    pub additional_lines: Vec<ParsedOption>,
    /// The stars shown (0 when absent or unreadable).
    pub stars: u32,
    /// The stars came from a star-force scroll, not from enhancing with mesos.
    pub from_scroll: bool,
    /// The flames' totals (`None` when the item has none).
    pub flames: Option<AddOption>,
    /// The item's own ATT and MATT.
    pub base_attack: u32,
    pub base_magic: u32,
}

impl From<&Item> for GearItem {
    fn from(item: &Item) -> Self {
        Self {
            slot: item.item_equipment_slot.clone().unwrap_or_default(),
            name: item.item_name.clone().unwrap_or_default(),
            level: item.level(),
            grade: item.grade(),
            lines: item.lines(),
            additional_grade: item.additional_grade(),
            additional_lines: item.additional_lines(),
            stars: item
                .starforce
                .as_deref()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .unwrap_or(0),
            from_scroll: item.starforce_scroll_flag.as_deref() == Some("사용"),
            flames: item.item_add_option.filter(|totals| !totals.is_empty()),
            base_attack: item.item_base_option.as_ref().map_or(0, |b| b.attack_power),
            base_magic: item.item_base_option.as_ref().map_or(0, |b| b.magic_power),
        }
    }
}

impl GearItem {
    /// Heap bytes an `Arc<GearItem>` holds (for bounding a cache): the item with its `Arc`
    /// counters, its strings and its lines' vectors by capacity (checked against the real
    /// footprint by `core/tests/footprint.rs`).
    fn weight(&self) -> usize {
        let text = |lines: &[ParsedOption]| -> usize {
            lines
                .iter()
                .map(|line| match line {
                    ParsedOption::Known { .. } => 0,
                    ParsedOption::Other { text } | ParsedOption::Unknown { text } => {
                        text.capacity()
                    }
                })
                .sum()
        };
        std::mem::size_of::<Self>()
            + ARC_COUNTS_BYTES
            + self.slot.capacity()
            + self.name.capacity()
            + (self.lines.capacity() + self.additional_lines.capacity())
                * std::mem::size_of::<ParsedOption>()
            + text(&self.lines)
            + text(&self.additional_lines)
    }
}

/// The compact parsed form of one equipment body: what [`value_character`] prices.
///
/// [`value_character`]: crate::valuation::value_character
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gear {
    pub character_class: Option<String>,
    /// The preset in use (1–3).
    pub preset_no: Option<u32>,
    /// The equipped items.
    pub items: Vec<Arc<GearItem>>,
    /// Presets 1–3 (absent when the response has none); an item equal to an equipped one (or
    /// to one of an earlier preset) is the same `Arc`.
    pub presets: [Option<Vec<Arc<GearItem>>>; 3],
    /// Heap bytes an `Arc<Gear>` holds (for bounding a cache; see [`GearItem::weight`]).
    weight: usize,
}

impl Gear {
    /// Decodes an item-equipment response and parses it (CPU work: about half a millisecond
    /// for a real 350 KB body; call it off the async workers).
    ///
    /// # Errors
    /// When the body is not JSON of the response's shape.
    pub fn parse(body: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice::<Equipment>(body).map(|equipment| Self::from(&equipment))
    }

    /// Bytes this form holds, roughly.
    pub fn weight(&self) -> usize {
        self.weight
    }
}

impl From<&Equipment> for Gear {
    fn from(equipment: &Equipment) -> Self {
        // Presets mostly repeat the equipped items: each distinct item is parsed once.
        let mut seen = Vec::new();
        // The form in its `Arc` (two counters), then what it points to.
        let mut weight = std::mem::size_of::<Self>()
            + ARC_COUNTS_BYTES
            + equipment.character_class.as_ref().map_or(0, String::len);
        let items = shared(&equipment.item_equipment, &mut seen, &mut weight);
        let presets = [
            &equipment.item_equipment_preset_1,
            &equipment.item_equipment_preset_2,
            &equipment.item_equipment_preset_3,
        ]
        .map(|preset| {
            preset
                .as_deref()
                .map(|list| shared(list, &mut seen, &mut weight))
        });
        Self {
            character_class: equipment.character_class.clone(),
            preset_no: equipment.preset_no,
            items,
            presets,
            weight,
        }
    }
}

/// `items` parsed, each one equal to an item in `seen` taken from there (and each new one
/// added to it); `weight` grows by what is new.
fn shared<'a>(
    items: &'a [Item],
    seen: &mut Vec<(&'a Item, Arc<GearItem>)>,
    weight: &mut usize,
) -> Vec<Arc<GearItem>> {
    items
        .iter()
        .map(|item| {
            *weight += std::mem::size_of::<Arc<GearItem>>();
            if let Some((_, known)) = seen.iter().find(|(other, _)| *other == item) {
                return Arc::clone(known);
            }
            let parsed = Arc::new(GearItem::from(item));
            *weight += parsed.weight();
            seen.push((item, Arc::clone(&parsed)));
            parsed
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evan() -> Equipment {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/evan_equip.json");
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("equipment JSON")
    }

    #[test]
    fn every_item_is_parsed_as_the_response_has_it_and_presets_share_equal_items() {
        let equipment = evan();
        let gear = Gear::from(&equipment);
        let lists = [
            (&gear.items, Some(&equipment.item_equipment)),
            (
                gear.presets[0].as_ref().expect("preset 1"),
                equipment.item_equipment_preset_1.as_ref(),
            ),
            (
                gear.presets[1].as_ref().expect("preset 2"),
                equipment.item_equipment_preset_2.as_ref(),
            ),
            (
                gear.presets[2].as_ref().expect("preset 3"),
                equipment.item_equipment_preset_3.as_ref(),
            ),
        ];
        let mut all: Vec<&Arc<GearItem>> = Vec::new();
        for (parsed, source) in lists {
            let source = source.expect("the response has the list");
            assert_eq!(parsed.len(), source.len());
            for (item, original) in parsed.iter().zip(source) {
                assert_eq!(**item, GearItem::from(original));
            }
            all.extend(parsed.iter());
        }
        // Equal items are one allocation; different ones are not.
        let distinct = all
            .iter()
            .enumerate()
            .filter(|(i, item)| !all[..*i].iter().any(|other| Arc::ptr_eq(other, item)))
            .count();
        let equal_distinct = all
            .iter()
            .enumerate()
            .filter(|(i, item)| !all[..*i].iter().any(|other| GearItem::eq(other, item)))
            .count();
        assert_eq!(distinct, equal_distinct);
        assert!(distinct < all.len(), "{distinct} distinct of {}", all.len());
        assert_eq!(gear.character_class, equipment.character_class);
        assert_eq!(gear.preset_no, equipment.preset_no);
        // The parsed form is a small fraction of the 357 KB body.
        assert!(gear.weight() < 100_000, "{}", gear.weight());
        assert!(gear.weight() > 5_000, "{}", gear.weight());
    }

    #[test]
    fn parse_refuses_what_is_not_the_response_and_takes_a_bare_object() {
        assert!(Gear::parse(b"[1, 2]").is_err());
        assert!(Gear::parse(b"{\"item_equipment\": 5}").is_err());
        let empty = Gear::parse(b"{}").expect("every field is optional");
        assert!(empty.items.is_empty());
        assert_eq!(empty.presets, [None, None, None]);
    }
}
