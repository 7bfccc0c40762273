//! Both databases behind the same code path: snapshots stored and character rows race-free.

use futures::future::join_all;
use maple_core::character::CharacterName;
use maple_sim::characters;
use reqwest::StatusCode;

use crate::harness::{Db, Options, Stack};

async fn concurrent_first_requests_create_one_row(db: Db) {
    let stack = Stack::start_with(Options {
        db,
        ..Options::default()
    })
    .await;
    let requests = (0..40).map(|_| stack.get("/v1/characters/RaceCar"));
    for response in join_all(requests).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    let name = CharacterName::parse("RaceCar").expect("valid");
    let store = stack.store().await;
    assert_eq!(store.count_characters(&name).await.expect("count"), 1);
    assert_eq!(
        store.find_ocid(&name).await.expect("query"),
        Some(characters::ocid_for("RaceCar"))
    );
    store.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_character_rows_are_race_free() {
    concurrent_first_requests_create_one_row(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_character_rows_are_race_free() {
    concurrent_first_requests_create_one_row(Db::MySql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_stores_the_equipment_snapshot_compressed() {
    let stack = Stack::start_with(Options {
        db: Db::MySql,
        ..Options::default()
    })
    .await;
    let response = stack.get("/v1/characters/MariaFan/equipment").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.expect("body");
    let store = stack.store().await;
    assert_eq!(store.dialect(), "mysql");
    let snapshot = store
        .load_equipment(&characters::ocid_for("MariaFan"))
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(snapshot.decompress().expect("intact"), body.to_vec());
    assert_eq!(snapshot.body_bytes as usize, body.len());
    store.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_snapshot_never_replaces_a_newer_one() {
    for db in [Db::Sqlite, Db::MySql] {
        let stack = Stack::start_with(Options {
            db,
            ..Options::default()
        })
        .await;
        let store = stack.store().await;
        let ocid = characters::ocid_for("timetravel");
        let newer =
            maple_core::store::EquipmentSnapshot::compress(ocid.clone(), b"{\"v\":2}", 2_000);
        let older =
            maple_core::store::EquipmentSnapshot::compress(ocid.clone(), b"{\"v\":1}", 1_000);
        store.save_equipment(&newer).await.expect("save newer");
        store.save_equipment(&older).await.expect("save older");
        let kept = store
            .load_equipment(&ocid)
            .await
            .expect("query")
            .expect("row");
        assert_eq!(kept, newer, "{db:?}");
        store.close().await;
        stack.stop().await;
    }
}
