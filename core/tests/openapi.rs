//! The API description is generated from the code (`maple_core::http::openapi`); this holds
//! it to the reviewed snapshot `core/openapi.snapshot.json`, so that a change to what the API
//! says it takes or answers shows up as a diff in review. After a deliberate change:
//! `MAPLE_BLESS=1 cargo test -p maple-core --test openapi`, then review and commit the
//! snapshot with the change.
#![allow(clippy::unwrap_used, reason = "test set-up")]

use std::path::PathBuf;

#[test]
fn the_description_matches_its_reviewed_snapshot() {
    let generated = maple_core::http::openapi::document()
        .to_pretty_json()
        .unwrap()
        + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.snapshot.json");
    if std::env::var_os("MAPLE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let snapshot = std::fs::read_to_string(&path).unwrap_or_default();
    if generated != snapshot {
        let line = generated
            .lines()
            .zip(snapshot.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| generated.lines().count().min(snapshot.lines().count()));
        panic!(
            "the API description changed (first difference at line {}: {:?}); review it and \
             run `MAPLE_BLESS=1 cargo test -p maple-core --test openapi` to update {}",
            line + 1,
            generated.lines().nth(line).unwrap_or("<end>"),
            path.display()
        );
    }
}

#[test]
fn every_schema_referred_to_is_in_the_document() {
    let document = serde_json::to_value(maple_core::http::openapi::document()).unwrap();
    let text = document.to_string();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let responses = document["components"]["responses"].as_object().unwrap();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().unwrap();
        if let Some(name) = target.strip_prefix("#/components/schemas/") {
            assert!(schemas.contains_key(name), "{target} is missing");
        } else if let Some(name) = target.strip_prefix("#/components/responses/") {
            assert!(responses.contains_key(name), "{target} is missing");
        } else {
            panic!("unexpected reference {target}");
        }
    }
}
