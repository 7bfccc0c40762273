//! Which items are boss items for flames: the catalogue shipped in `data/flame_boss_items.csv`
//! (Nexon's response has no flag for it; see that file and `data/README.md` for the sources).

use std::sync::LazyLock;

/// Boss items by name: the catalogue shipped in `data/flame_boss_items.csv`.
static BOSS_CATALOGUE: LazyLock<Catalogue> =
    LazyLock::new(|| Catalogue::parse(include_str!("../../../data/flame_boss_items.csv")));

#[derive(Debug, Default)]
struct Catalogue {
    prefixes: Vec<String>,
    fragments: Vec<String>,
    names: Vec<String>,
    excluded: Vec<String>,
}

impl Catalogue {
    fn parse(text: &str) -> Self {
        let mut catalogue = Self::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with("match,") {
                continue;
            }
            let Some((kind, name)) = line.split_once(',') else {
                panic!("data/flame_boss_items.csv: a row is `match,name`: {line}");
            };
            let name = name.trim().to_owned();
            match kind {
                "prefix" => catalogue.prefixes.push(name),
                "contains" => catalogue.fragments.push(name),
                "name" => catalogue.names.push(name),
                "not" => catalogue.excluded.push(name),
                _ => panic!("data/flame_boss_items.csv: unknown match `{kind}`"),
            }
        }
        catalogue
    }
}

/// Whether the catalogue names `name` a boss item (`Some(false)` for the listed exceptions,
/// `None` when it does not know it).
pub fn catalogue_says_boss(name: &str) -> Option<bool> {
    let catalogue = &*BOSS_CATALOGUE;
    if catalogue.excluded.iter().any(|n| n == name) {
        return Some(false);
    }
    let known = catalogue.names.iter().any(|n| n == name)
        || catalogue
            .prefixes
            .iter()
            .any(|p| name.starts_with(p.as_str()))
        || catalogue
            .fragments
            .iter()
            .any(|f| name.contains(f.as_str()));
    known.then_some(true)
}
