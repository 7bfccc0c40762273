//! Names change hands: a stored name → ocid is asked of Nexon again once older than
//! `MAPLE_CORE_NAME_RECHECK_S` (here 1 s), while the copy keeps answering. The simulator renames
//! characters and gives freed names to others (`Simulator::set_owner`).

use std::time::Duration;

use maple_common::nexon::PATH_ID;
use maple_sim::faults::FaultSpec;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Db, Options, Stack, UNCACHED, fresh_name, metric_value};

/// Stored mappings are due for a re-check after a second; names Nexon does not know are
/// remembered a second. The proxy caches nothing, so each re-check reaches the simulator.
fn options(db: Db) -> Options {
    Options {
        db,
        core_env: vec![
            ("MAPLE_CORE_NAME_RECHECK_S", "1".to_owned()),
            ("MAPLE_CORE_NOT_FOUND_TTL_S", "1".to_owned()),
        ],
        ..Options::proxy(&UNCACHED)
    }
}

/// `GET /v1/characters/{name}`: the status and, when 200, the ocid it names.
async fn ocid_of(stack: &Stack, name: &str) -> (StatusCode, Option<String>) {
    let response = stack.get(&format!("/v1/characters/{name}")).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["ocid"].as_str().map(str::to_owned))
}

/// Polls `name` until its answer is `want` (each poll may start the background re-check, the
/// next one sees its result); panics with the last answer after 15 s.
async fn settles_to(stack: &Stack, name: &str, want: (StatusCode, Option<String>)) {
    let mut last = None;
    for _ in 0..150 {
        let answer = ocid_of(stack, name).await;
        if answer == want {
            return;
        }
        last = Some(answer);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} answered {last:?}, never {want:?}");
}

async fn rechecks(stack: &Stack, outcome: &str) -> f64 {
    metric_value(
        &stack.core_metrics().await,
        &format!("maple_core_name_rechecks_total{{outcome=\"{outcome}\"}}"),
    )
}

async fn likes_of(stack: &Stack, name: &str) -> i64 {
    let response = stack.get(&format!("/v1/characters/{name}/likes")).await;
    assert_eq!(response.status(), StatusCode::OK, "likes of {name}");
    let body: Value = response.json().await.expect("json");
    body["likes"].as_i64().expect("likes")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_character_keeps_its_likes_under_its_new_name_and_the_old_name_goes() {
    let stack = Stack::start_with(options(Db::MySql)).await;
    let (old, new) = (fresh_name("was"), fresh_name("now"));
    let (status, ocid) = ocid_of(&stack, &old).await;
    assert_eq!(status, StatusCode::OK);
    let like = stack
        .http
        .post(stack.core(&format!("/v1/characters/{old}/likes")))
        .send()
        .await
        .expect("like answered");
    assert_eq!(like.status(), StatusCode::ACCEPTED);

    stack.sim.set_owner(&new, Some(&old));
    stack.sim.set_owner(&old, None);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Due for its re-check: the copy still answers while Nexon is asked.
    assert_eq!(ocid_of(&stack, &old).await, (StatusCode::OK, ocid.clone()));
    settles_to(&stack, &old, (StatusCode::NOT_FOUND, None)).await;
    assert!(rechecks(&stack, "gone").await >= 1.0);
    let store = stack.store().await;
    let forgotten = maple_core::character::CharacterName::parse(&old).expect("name");
    assert_eq!(store.find_ocid(&forgotten).await.expect("database"), None);

    // The new name finds the same character, and its like came along.
    assert_eq!(ocid_of(&stack, &new).await, (StatusCode::OK, ocid));
    assert_eq!(likes_of(&stack, &new).await, 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_taken_by_another_character_shows_it_and_a_failed_recheck_keeps_the_copy() {
    let stack = Stack::start_with(options(Db::Sqlite)).await;
    let (name, other) = (fresh_name("freed"), fresh_name("taker"));
    let (status, first) = ocid_of(&stack, &name).await;
    assert_eq!(status, StatusCode::OK);

    // Nexon fails the lookups: the copy is kept and keeps answering.
    let failing = FaultSpec {
        path_prefix: Some(PATH_ID.to_owned()),
        ..FaultSpec::status(500)
    };
    stack.sim.faults().set(failing).await.expect("fault");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..100 {
        assert_eq!(
            ocid_of(&stack, &name).await,
            (StatusCode::OK, first.clone())
        );
        if rechecks(&stack, "failed").await >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rechecks(&stack, "failed").await >= 1.0);
    assert_eq!(
        ocid_of(&stack, &name).await,
        (StatusCode::OK, first.clone())
    );
    stack.sim.faults().clear().await;

    // The name now belongs to another character: its ocid replaces the copy.
    stack.sim.set_owner(&name, Some(&other));
    let taker = maple_sim::characters::ocid_for(&other).as_str().to_owned();
    assert_ne!(first.as_deref(), Some(taker.as_str()));
    settles_to(&stack, &name, (StatusCode::OK, Some(taker.clone()))).await;
    assert!(rechecks(&stack, "changed").await >= 1.0);
    let store = stack.store().await;
    let stored = store
        .find_ocid(&maple_core::character::CharacterName::parse(&name).expect("name"))
        .await
        .expect("database")
        .expect("mapping kept");
    assert_eq!(stored.as_str(), taker);
    stack.stop().await;
}
