//! The engine's vocabulary: item types, reset methods, grades, option categories, stats.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        // JSON uses the same spellings as the tables and the API documentation.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(|_| {
                    serde::de::Error::unknown_variant(&text, &[$($text),+])
                })
            }
        }

        // The API description: a string, one of the spellings.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownName { kind: stringify!($name), name: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A name that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

named_enum!(
    /// Item types of the rate tables.
    ItemType {
        Hat = "hat", Top = "top", Bottom = "bottom", Overall = "overall", Shoes = "shoes",
        Gloves = "gloves", Cape = "cape", Belt = "belt", Shoulder = "shoulder",
        Weapon = "weapon", Secondary = "secondary", Emblem = "emblem", Heart = "heart",
        Ring = "ring",
    }
);

named_enum!(
    /// Equipment parts of the additional-potential tables (Nexon's page has one table per
    /// part; the main tables lump face, eye, earrings, ring and pendant together).
    Part {
        Weapon = "weapon", Emblem = "emblem", Secondary = "secondary", Hat = "hat", Top = "top",
        Overall = "overall", Bottom = "bottom", Shoes = "shoes", Gloves = "gloves",
        Cape = "cape", Belt = "belt", Shoulder = "shoulder", Face = "face", Eye = "eye",
        Earrings = "earrings", Ring = "ring", Pendant = "pendant", Heart = "heart",
    }
);

named_enum!(
    /// The cubes the rate tables cover.
    Cube { Red = "red", Black = "black", Master = "master", Meister = "meister", Occult = "occult" }
);

named_enum!(
    /// Potential grades, low to high.
    Grade { Rare = "rare", Epic = "epic", Unique = "unique", Legendary = "legendary" }
);

impl Grade {
    /// Nexon's Korean grade name (`레전드리` …).
    pub fn from_korean(name: &str) -> Option<Self> {
        match name {
            "레어" => Some(Self::Rare),
            "에픽" => Some(Self::Epic),
            "유니크" => Some(Self::Unique),
            "레전드리" => Some(Self::Legendary),
            _ => None,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

named_enum!(
    /// How a potential is reset: a cube, or KMS's meso reset (which uses black-cube tables).
    Method {
        Red = "red", Black = "black", Master = "master", Meister = "meister",
        Occult = "occult", Meso = "meso",
    }
);

impl Method {
    /// The rate tables this method rolls on.
    pub fn tables(self) -> Cube {
        match self {
            Self::Red => Cube::Red,
            Self::Black | Self::Meso => Cube::Black,
            Self::Master => Cube::Master,
            Self::Meister => Cube::Meister,
            Self::Occult => Cube::Occult,
        }
    }
}

named_enum!(
    /// A class's main stat. `All` is Xenon (STR+DEX+LUK: only all-stat lines count for all
    /// three), `Hp` is Demon Avenger.
    MainStat { Str = "STR", Dex = "DEX", Int = "INT", Luk = "LUK", All = "ALL", Hp = "HP" }
);

named_enum!(
    /// Option categories, as the rate tables name them.
    Category {
        StrPct = "STR %", DexPct = "DEX %", IntPct = "INT %", LukPct = "LUK %",
        AllStatsPct = "All Stats %", AttPct = "ATT %", MattPct = "MATT %", MaxHpPct = "Max HP %",
        StrFlat = "STR Flat", DexFlat = "DEX Flat", IntFlat = "INT Flat", LukFlat = "LUK Flat",
        AllStatsFlat = "All Stats Flat", AttFlat = "ATT Flat", MattFlat = "MATT Flat",
        MaxHpFlat = "Max HP Flat", MaxMpFlat = "Max MP Flat", DefenseFlat = "Defense Flat",
        BossDamage = "Boss Damage", IgnoreDefense = "Ignore Enemy Defense %",
        CritDamage = "Critical Damage %", CritChance = "Critical Chance %", DamagePct = "Damage %",
        Cooldown = "Skill Cooldown Reduction", ItemDrop = "Item Drop Rate %",
        MesoAmount = "Meso Amount %", IgnoreDamagePct = "Chance to ignore % damage when hit",
        IgnoreDamageFlat = "Chance to ignore flat damage when hit",
        InvincibleChance = "Chance of being invincible for seconds when hit",
        InvincibilityTime = "Increase invincibility time after being hit",
        DecentSkill = "Decent Skill", AutoSteal = "Chance to auto steal %", Junk = "Junk",
    }
);

/// Categories limited per item, with their cap (DOMAIN.md §2). Order fixes their index.
pub const CAPPED: [(Category, u8); 7] = [
    (Category::DecentSkill, 1),
    (Category::InvincibilityTime, 1),
    (Category::IgnoreDamagePct, 2),
    (Category::InvincibleChance, 2),
    (Category::IgnoreDefense, 3),
    (Category::BossDamage, 3),
    (Category::ItemDrop, 3),
];

impl Category {
    /// Index into [`CAPPED`], for capped categories.
    pub fn cap_index(self) -> Option<usize> {
        CAPPED.iter().position(|(c, _)| *c == self)
    }

    /// Whether items of level 250 get +1 on this category's value ([`level_bump`]).
    ///
    /// [`level_bump`]: crate::potential::level_bump
    pub fn has_level_bump(self) -> bool {
        matches!(
            self,
            Self::StrPct
                | Self::DexPct
                | Self::IntPct
                | Self::LukPct
                | Self::AllStatsPct
                | Self::AttPct
                | Self::MattPct
                | Self::MaxHpPct
        )
    }

    /// The `%` category of a main stat (`None` for Xenon, who counts all-stat lines only).
    pub fn stat_pct(stat: MainStat) -> Option<Self> {
        match stat {
            MainStat::Str => Some(Self::StrPct),
            MainStat::Dex => Some(Self::DexPct),
            MainStat::Int => Some(Self::IntPct),
            MainStat::Luk => Some(Self::LukPct),
            MainStat::Hp => Some(Self::MaxHpPct),
            MainStat::All => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for category in Category::ALL {
            assert_eq!(category.as_str().parse::<Category>(), Ok(*category));
        }
        assert_eq!("hat".parse::<ItemType>(), Ok(ItemType::Hat));
        assert!("helmet".parse::<ItemType>().is_err());
        assert_eq!(Method::Meso.tables(), Cube::Black);
        assert_eq!(Grade::from_korean("레전드리"), Some(Grade::Legendary));
        assert!(Grade::Rare < Grade::Legendary);
    }
}
