//! The engine over HTTP: probability, star force, flames and a whole character's valuation.

use maple_common::config::Env;
use maple_core::{App, CoreConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Stack, error_code};

async fn post(stack: &Stack, path: &str, body: Value) -> reqwest::Response {
    stack
        .http
        .post(stack.core(path))
        .json(&body)
        .send()
        .await
        .expect("core answers")
}

#[tokio::test(flavor = "multi_thread")]
async fn probability_matches_the_worked_check() {
    let stack = Stack::start().await;
    let response = post(
        &stack,
        "/v1/potential/probability",
        json!({"item_type":"hat","level":150,"grade":"legendary","cube":"red",
               "target":{"stat_pct":{"stat":"STR","min":21}}}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    let p = body["probability"].as_f64().expect("number");
    assert!((p - 0.022_868_727).abs() < 1e-9, "{p}");
    let resets = body["expected_resets"].as_f64().expect("number");
    assert!((resets - 43.73).abs() < 0.01);
    assert_eq!(body["quantiles"]["p50"], 30);
    // Red cube 12,000,000 + reveal 20·150² = 12,450,000 per reset.
    assert_eq!(body["cost_per_reset"], 12_450_000);
    let cost = body["expected_cost"].as_f64().expect("number");
    assert!((cost - resets * 12_450_000.0).abs() < 1.0);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn probability_takes_from_grade_and_value_targets() {
    let stack = Stack::start().await;
    let ask = |patch: Value| {
        let mut body = json!({"item_type":"weapon","level":200,"grade":"legendary","cube":"red",
                              "target":{"boss_pct":{"min":70}}});
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        let stack = &stack;
        async move {
            let response = post(stack, "/v1/potential/probability", body).await;
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    // Tier-up from unique: red unique → legendary, 0.3% with pity 500: ≈ 259.1 resets, each
    // at the red cube's price (12,000,000 + reveal 20·200²).
    let (status, unique) = ask(json!({"from_grade":"unique"})).await;
    assert_eq!(status, StatusCode::OK, "{unique}");
    assert_eq!(unique["from_grade"], "unique");
    let resets = unique["tier_up_resets"].as_f64().expect("number");
    assert!((resets - 259.1).abs() < 0.1, "{resets}");
    let cost = unique["tier_up_cost"].as_f64().expect("number");
    assert!((cost - resets * 12_800_000.0).abs() < 1.0, "{cost}");
    let (_, rare) = ask(json!({})).await;
    assert_eq!(rare["from_grade"], "rare");
    assert_eq!(rare["tier_up_resets"], rare["tier_up_resets_from_rare"]);
    assert!(rare["tier_up_resets"].as_f64() > unique["tier_up_resets"].as_f64());
    let (_, legendary) = ask(json!({"from_grade":"legendary"})).await;
    assert_eq!(legendary["tier_up_resets"], 0.0);
    let (status, above) = ask(json!({"grade":"unique","from_grade":"legendary"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        above["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("from_grade")),
        "{above}"
    );
    // By value: 70% boss is rarer than two boss lines of any value; IED by value works.
    let boss_70 = unique["probability"].as_f64().expect("number");
    let (_, two_lines) = ask(json!({"target":{"boss_lines":{"min":2}}})).await;
    assert!(boss_70 > 0.0 && boss_70 < two_lines["probability"].as_f64().expect("number"));
    let (status, ied) = ask(json!({"target":{"ied_pct":{"min":70},"att_pct":{"min":9}}})).await;
    assert_eq!(status, StatusCode::OK, "{ied}");
    assert!(ied["probability"].as_f64() > Some(0.0));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn starforce_matches_the_published_destroy_count() {
    let stack = Stack::start().await;
    let response = post(
        &stack,
        "/v1/starforce/expectation",
        json!({"level":200,"from":15,"to":22,"rules":"kms-2025","star_catch":false,
               "safeguard":false,"discount_30":false,"destroy_reduction":false}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    let destroys = body["expected_destroys"].as_f64().expect("number");
    assert!((destroys - 8.46).abs() < 0.005, "{destroys}");
    let mean = body["expected_mesos"].as_f64().expect("number");
    assert!(mean > 1e10);
    // The spread: ordered quantiles around the mean, exact destructions, the table used.
    assert_eq!(body["cost_table"], "kms");
    let spread = &body["quantiles"];
    assert_eq!(spread["trials"], 10_000);
    let levels = ["p50", "p75", "p90", "p95", "p99"];
    let mesos: Vec<f64> = levels
        .iter()
        .map(|q| spread["mesos"][q].as_f64().expect("number"))
        .collect();
    assert!(mesos.windows(2).all(|w| w[0] <= w[1]), "{mesos:?}");
    assert!(
        mesos[0] < mean && mean < mesos[4],
        "{mesos:?} around {mean}"
    );
    let destroyed: Vec<u64> = levels
        .iter()
        .map(|q| spread["destroys"][q].as_u64().expect("a count"))
        .collect();
    assert!(destroyed.windows(2).all(|w| w[0] <= w[1]), "{destroyed:?}");
    assert!(destroyed[4] > 20, "{destroyed:?}: the tail is long");
    // Deterministic: the same request, the same figures.
    let again: Value = post(
        &stack,
        "/v1/starforce/expectation",
        json!({"level":200,"from":15,"to":22,"rules":"kms-2025"}),
    )
    .await
    .json()
    .await
    .expect("JSON");
    assert_eq!(again["quantiles"], body["quantiles"]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_engine_requests_name_the_field() {
    let stack = Stack::start().await;
    let hat = |patch: Value| {
        let mut base = json!({"item_type":"hat","level":150,"grade":"legendary","cube":"red",
                              "target":{"stat_pct":{"stat":"STR","min":21}}});
        for (k, v) in patch.as_object().expect("object") {
            base[k] = v.clone();
        }
        base
    };
    let cases = [
        (
            "/v1/potential/probability",
            hat(json!({"item_type":"helmet"})),
            "item_type",
        ),
        (
            "/v1/potential/probability",
            hat(json!({"level":301})),
            "level",
        ),
        (
            "/v1/potential/probability",
            hat(json!({"level":100})),
            "level",
        ),
        (
            "/v1/potential/probability",
            hat(json!({"target":{}})),
            "target",
        ),
        (
            "/v1/potential/probability",
            hat(json!({"target":{"luck":{"min":1}}})),
            "luck",
        ),
        (
            "/v1/potential/probability",
            hat(json!({"cube":"gold"})),
            "cube",
        ),
        (
            "/v1/starforce/expectation",
            json!({"level":200,"from":10,"to":5}),
            "from",
        ),
        (
            "/v1/starforce/expectation",
            json!({"level":100,"from":0,"to":12}),
            "to",
        ),
        (
            "/v1/starforce/expectation",
            json!({"level":400,"from":0,"to":1}),
            "level",
        ),
        (
            "/v1/starforce/expectation",
            json!({"level":200,"from":0}),
            "to",
        ),
    ];
    for (path, body, field) in cases {
        let response = post(&stack, path, body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.expect("JSON");
        assert_eq!(error["error"]["code"], "invalid_request", "{body}");
        let message = error["error"]["message"].as_str().expect("message");
        assert!(
            message.contains(field),
            "{body}: {message:?} should name {field}"
        );
    }
    let malformed = stack
        .http
        .post(stack.core("/v1/starforce/expectation"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answers");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(malformed).await, "invalid_request");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_character_is_valued_item_by_item() {
    let stack = Stack::start().await;
    let response = stack.get("/v1/characters/ValueMe/expectation").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-maple-valuation"], "computed");
    let body: Value = response.json().await.expect("JSON");
    let valuation = &body["valuation"];
    let items = valuation["items"].as_array().expect("items");
    assert_eq!(items.len(), 24);
    assert!(valuation["total_mesos"].as_f64().expect("total") > 0.0);
    assert_eq!(valuation["options"]["method"], "meso");
    for item in items {
        let priced = item["potential"]["expected_mesos"].is_number();
        let explained = item["potential_unpriced"].is_string()
            || item["potential"]["unpriced_reason"].is_string();
        assert!(priced || explained, "{item}");
    }

    // Same equipment content, same options: the valuation is reused, identical.
    let again = stack.get("/v1/characters/ValueMe/expectation").await;
    assert_eq!(again.headers()["x-maple-valuation"], "cached");
    let again: Value = again.json().await.expect("JSON");
    assert_eq!(again["valuation"], *valuation);

    let red = stack
        .get("/v1/characters/ValueMe/expectation?method=red&star_catch=true")
        .await;
    assert_eq!(
        red.headers()["x-maple-valuation"],
        "computed",
        "other options"
    );
    assert_eq!(red.status(), StatusCode::OK);
    let red: Value = red.json().await.expect("JSON");
    assert_eq!(red["valuation"]["options"]["method"], "red");

    let bad = stack
        .get("/v1/characters/ValueMe/expectation?method=gold")
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(bad).await, "invalid_query");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_rate_tables_stop_start_up_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("maple-bad-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let csv = dir.join("rates.csv");
    std::fs::write(
        &csv,
        "item_type,cube,grade,line,category,value,rate_pct\nhat,red,rare,1,STR %,3,90\n",
    )
    .expect("write");
    for (path, expected) in [
        (csv.display().to_string(), "sum to 90"),
        (dir.join("missing.csv").display().to_string(), "cannot read"),
    ] {
        let config = CoreConfig::from_env(&Env::from_pairs([
            ("MAPLE_POTENTIAL_TABLES", path),
            ("DATABASE_URL", format!("sqlite://{}/x.db", dir.display())),
        ]))
        .expect("config");
        let error = App::build(config).await.expect_err("refused").to_string();
        assert!(error.contains(expected), "{error}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fixed_characters_are_priced_from_the_real_responses_with_presets() {
    let stack = Stack::start().await;
    for (name, class, weapon) in [
        ("에반샘플", "에반", "제네시스 스태프"),
        ("메카닉샘플", "메카닉", "제네시스 피스톨"),
    ] {
        let response = stack.get(&format!("/v1/characters/{name}/equipment")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let served: Value = response.json().await.expect("JSON");
        assert_eq!(served["character_class"], class, "the real response");

        let response = stack
            .get(&format!("/v1/characters/{name}/expectation"))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("JSON");
        let valuation = &body["valuation"];
        let items = valuation["items"].as_array().expect("items");
        assert_eq!(items.len(), 24, "{name}");
        // Every item has its figures or says why not.
        for item in items {
            assert!(
                item["potential"].is_object() || item["potential_unpriced"].is_string(),
                "{item}"
            );
            assert!(
                item["starforce_mesos"].is_number() || item["starforce_unpriced"].is_string(),
                "{item}"
            );
            // Priced stars come with their spread: p99 at or above p50, in mesos and in
            // destructions.
            if item["starforce_mesos"].is_number() {
                let spread = &item["starforce_quantiles"];
                let mesos = &spread["mesos"];
                assert!(mesos["p99"].as_f64() >= mesos["p50"].as_f64(), "{item}");
                let destroys = &spread["destroys"];
                assert!(
                    destroys["p99"].as_u64() >= destroys["p50"].as_u64(),
                    "{item}"
                );
            } else {
                assert!(item["starforce_quantiles"].is_null(), "{item}");
            }
            // The additional potential: shown, and priced or explained.
            if !item["additional_grade"].is_null() {
                assert!(
                    !item["additional_lines"]
                        .as_array()
                        .expect("lines")
                        .is_empty()
                );
                let priced = item["additional_potential"]["expected_mesos"].is_number();
                assert!(priced || item["additional_unpriced"].is_string(), "{item}");
            }
        }
        let additional = valuation["total_additional_mesos"]
            .as_f64()
            .expect("number");
        assert!(additional > 0.0, "{name}");
        let genesis = items
            .iter()
            .find(|i| i["name"] == weapon)
            .expect("the Genesis weapon");
        assert_eq!(genesis["stars"], 22);
        assert_eq!(genesis["starforce_mesos"], 0.0);
        assert!(genesis["starforce_note"].is_string(), "{genesis}");
        let presets = valuation["presets"].as_array().expect("presets");
        assert_eq!(presets.len(), 3, "{name}");
        let in_use: Vec<&Value> = presets.iter().filter(|p| p["in_use"] == true).collect();
        assert_eq!(in_use.len(), 1);
        assert_eq!(in_use[0]["preset_no"], served["preset_no"]);
        assert!(
            presets
                .iter()
                .all(|p| p["total_mesos"].as_f64() > Some(0.0))
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn star_force_events_discounts_and_replacements_over_http() {
    let stack = Stack::start().await;
    let plain = json!({"level":200,"from":15,"to":22});
    let with = json!({"level":200,"from":15,"to":22,"event_5_10_15":true,"mvp":"diamond",
                      "pc_room":true,"replacement_mesos":1_000_000_000_u64});
    let base: Value = post(&stack, "/v1/starforce/expectation", plain)
        .await
        .json()
        .await
        .expect("JSON");
    let response = post(&stack, "/v1/starforce/expectation", with).await;
    assert_eq!(response.status(), StatusCode::OK);
    let options: Value = response.json().await.expect("JSON");
    let replacement = options["expected_replacement_mesos"]
        .as_f64()
        .expect("number");
    let spares = options["expected_spares"].as_f64().expect("number");
    let destroys = options["expected_destroys"].as_f64().expect("number");
    assert!((replacement - spares * 1e9).abs() < 1.0, "{options}");
    assert_eq!(
        options["expected_spare_mesos"],
        options["expected_replacement_mesos"]
    );
    assert!(destroys < base["expected_destroys"].as_f64().expect("number"));
    let bad = post(
        &stack,
        "/v1/starforce/expectation",
        json!({"level":200,"from":15,"to":22,"mvp":"platinum"}),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let total = |query: &'static str| {
        let stack = &stack;
        async move {
            let response = stack
                .get(&format!("/v1/characters/에반샘플/expectation{query}"))
                .await;
            assert_eq!(response.status(), StatusCode::OK, "{query}");
            let body: Value = response.json().await.expect("JSON");
            body["valuation"]["total_starforce_mesos"]
                .as_f64()
                .expect("number")
        }
    };
    let default = total("").await;
    let discounted = total("?mvp=gold&pc_room=true&event_5_10_15=true").await;
    assert!(discounted < default, "{discounted} vs {default}");
    let replaced = total("?replacement_mesos=1000000000").await;
    assert!(replaced > default);
    let response = stack
        .get("/v1/characters/에반샘플/expectation?mvp=platinum")
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "invalid_query");
    stack.stop().await;
}

/// The simulator draws its lines from the repository's tables and the engine reads them back:
/// every main-potential line of 30 simulated characters (equipped set, items from level 120)
/// parses to an option the engine's table lists for that item type, grade and line — or to a
/// line the tables lump as junk — and every item is priced or says why.
#[test]
fn simulated_lines_are_lines_the_engine_admits() {
    use maple_engine::Engine;
    use maple_engine::model::{Category, Cube, Grade};
    use maple_engine::option::ParsedOption;
    use maple_engine::tables::GroupKey;
    use maple_engine::valuation::{self, Equipment, Options};
    use maple_sim::characters::{Templates, equipment, ocid_for};

    let engine = Engine::built_in().expect("built-in tables");
    let templates = Templates::embedded().expect("templates");
    let (mut checked, mut junk, mut flamed) = (0, 0, 0);
    for n in 0..30 {
        let body = equipment(&templates, &ocid_for(&format!("admit{n}")), None);
        let parsed: Equipment = serde_json::from_value(body.clone()).expect("equipment");
        for item in &parsed.item_equipment {
            let slot = item.item_equipment_slot.as_deref().unwrap_or_default();
            let (Some(item_type), Some(level), Some(grade)) = (
                valuation::item_type_of_slot(slot),
                item.level(),
                item.grade(),
            ) else {
                continue;
            };
            if level < 120 {
                continue;
            }
            let cube = match grade {
                Grade::Rare => Cube::Occult,
                Grade::Epic => Cube::Master,
                _ => Cube::Black,
            };
            let lines = engine
                .tables
                .lines(GroupKey {
                    item_type,
                    cube,
                    grade,
                })
                .expect("the table the simulator drew from");
            for (i, line) in item.lines().into_iter().enumerate() {
                match line {
                    ParsedOption::Known { category, value } => {
                        checked += 1;
                        let bump = u32::from(level >= 250 && category.has_level_bump());
                        assert!(
                            lines[i]
                                .iter()
                                .any(|o| o.category == category && o.value + bump == value),
                            "{slot} level {level} {grade} line {}: {category} {value}",
                            i + 1
                        );
                    }
                    other => {
                        junk += 1;
                        assert!(
                            lines[i].iter().any(|o| o.category == Category::Junk),
                            "{slot} line {}: {other:?} where the table has no junk",
                            i + 1
                        );
                    }
                }
            }
        }
        let valued = valuation::value_character(
            &engine,
            &valuation::Gear::from(&parsed),
            Options::default(),
        );
        // Preset items are priced like the equipped ones: their flames too.
        for preset in [
            &parsed.item_equipment_preset_1,
            &parsed.item_equipment_preset_2,
            &parsed.item_equipment_preset_3,
        ] {
            let as_equipped = Equipment {
                item_equipment: preset.clone().unwrap_or_default(),
                ..parsed.clone()
            };
            let priced = valuation::value_character(
                &engine,
                &valuation::Gear::from(&as_equipped),
                Options::default(),
            );
            for item in &priced.items {
                assert!(
                    item.flame_unpriced.is_none(),
                    "preset {}: {:?}",
                    item.name,
                    item.flame_unpriced
                );
            }
        }
        for item in &valued.items {
            let potential = item
                .potential
                .as_ref()
                .is_some_and(|p| p.expected_mesos.is_some())
                || item.potential_unpriced.is_some()
                || item
                    .potential
                    .as_ref()
                    .is_some_and(|p| p.unpriced_reason.is_some());
            assert!(potential, "{}: priced or explained", item.slot);
            // The simulator's flames are drawn by the rules the engine prices with: each
            // splits into valid lines and is priced.
            assert!(
                item.flame_unpriced.is_none(),
                "{}: {:?}",
                item.name,
                item.flame_unpriced
            );
            flamed += usize::from(item.flame.is_some());
        }
        assert!(valued.total_mesos > 0.0);
        assert_eq!(valued.presets.len(), 3);
    }
    assert!(checked > 1000 && junk > 0, "checked {checked}, junk {junk}");
    assert!(flamed >= 30 * 14, "{flamed} flamed items");
}

/// DOMAIN.md §6's check over HTTP: level 200, 17★→22★, kms-2026, repaired to 12★ with free
/// items: 31,084,601,521 mesos and 7.3541 destructions; the repair choice and its refusals.
#[tokio::test(flavor = "multi_thread")]
async fn star_force_by_the_2026_rules_over_http() {
    let stack = Stack::start().await;
    let answer = |body: Value| {
        let stack = &stack;
        async move {
            let response = post(stack, "/v1/starforce/expectation", body).await;
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.expect("JSON")
        }
    };
    let twelve = answer(json!({"level":200,"from":17,"to":22,"repair":"twelve"})).await;
    let mesos = twelve["expected_mesos"].as_f64().expect("number");
    assert!((mesos / 31_084_601_521.0 - 1.0).abs() < 1e-6, "{twelve}");
    let destroys = twelve["expected_destroys"].as_f64().expect("number");
    assert!((destroys - 7.3541).abs() < 5e-5, "{destroys}");
    assert_eq!(twelve["rules"], "kms-2026");
    assert_eq!(twelve["repair_policy"]["21"], "twelve");
    assert_eq!(twelve["recovery_extrapolated"], false);
    let keep = answer(json!({"level":200,"from":17,"to":22,"repair":"keep"})).await;
    assert!((keep["expected_spares"].as_f64().expect("number") - 4.9852).abs() < 5e-5);
    assert!(keep["expected_recovery_mesos"].as_f64() > Some(0.0));
    // A level without a published recovery row says its figures are extrapolated.
    let other = answer(json!({"level":210,"from":17,"to":22,"spare_mesos":1})).await;
    assert_eq!(other["recovery_extrapolated"], true);
    // The older name of the spare's price still works; both at once is a 400.
    let old = answer(json!({"level":200,"from":17,"to":22,"replacement_mesos":5})).await;
    let new = answer(json!({"level":200,"from":17,"to":22,"spare_mesos":5})).await;
    assert_eq!(old["expected_mesos"], new["expected_mesos"]);
    for bad in [
        json!({"level":200,"from":17,"to":22,"spare_mesos":5,"replacement_mesos":5}),
        json!({"level":200,"from":17,"to":22,"rules":"kms-2025","repair":"keep"}),
        json!({"level":200,"from":17,"to":22,"rules":"kms-2024"}),
        json!({"level":200,"from":17,"to":22,"repair":"sometimes"}),
    ] {
        let response = post(&stack, "/v1/starforce/expectation", bad.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_code(response).await, "invalid_request");
    }
    let response = stack
        .get("/v1/characters/에반샘플/expectation?rules=kms-2025&repair=keep")
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "invalid_query");
    stack.stop().await;
}

/// Flames over HTTP: DOMAIN.md §6d's worked checks, the other flames' odds, the refusals,
/// and a character's valuation counting its flames in every total.
#[tokio::test(flavor = "multi_thread")]
async fn flames_over_http() {
    let stack = Stack::start().await;
    let answer = |body: Value| {
        let stack = &stack;
        async move {
            let response = post(stack, "/v1/flames/probability", body.clone()).await;
            assert_eq!(response.status(), StatusCode::OK, "{body}");
            response.json::<Value>().await.expect("JSON")
        }
    };
    let armour = answer(
        json!({"level":250,"boss":true,"main_stat":"INT","magician":true,
                               "min_score":180}),
    )
    .await;
    let p = armour["probability"].as_f64().expect("number");
    assert!((p - 0.000558).abs() < 5e-7, "{armour}");
    assert_eq!(
        armour["expected_resets"].as_f64().map(f64::round),
        Some(1791.0)
    );
    assert_eq!(armour["price_per_flame"], 3_000_000);
    let weapon = answer(
        json!({"level":200,"weapon":true,"boss":true,"main_stat":"DEX",
                               "min_tier":7}),
    )
    .await;
    let p = weapon["probability"].as_f64().expect("number");
    assert!((p - 4.0 / 19.0 * 0.01).abs() < 1e-12, "{weapon}");
    // 강력한 cannot reach tier 7 on a boss weapon; its price is the user's.
    let powerful = answer(
        json!({"level":200,"weapon":true,"boss":true,"main_stat":"DEX",
                                 "min_tier":7,"flame":"powerful","flame_price":9_000_000}),
    )
    .await;
    assert_eq!(powerful["probability"], 0.0);
    assert!(powerful["expected_resets"].is_null() && powerful["expected_mesos"].is_null());
    let abyss = answer(
        json!({"level":200,"boss":true,"main_stat":"INT","magician":true,
                              "min_score":140,"flame":"abyss"}),
    )
    .await;
    assert!(
        abyss["expected_mesos"].is_null(),
        "no price given for 심연: {abyss}"
    );
    for bad in [
        json!({"level":200,"main_stat":"INT"}),
        json!({"level":200,"main_stat":"INT","min_score":100,"min_tier":5}),
        json!({"level":200,"weapon":true,"main_stat":"INT","min_score":100}),
        json!({"level":200,"weapon":true,"main_stat":"INT","min_tier":9}),
        json!({"level":301,"main_stat":"INT","min_score":1}),
        json!({"level":200,"main_stat":"HP","min_score":1}),
        json!({"level":200,"main_stat":"INT","min_score":1,"secondary_weight":2}),
        json!({"level":200,"main_stat":"INT","min_score":-1}),
        json!({"level":200,"main_stat":"INT","min_score":1,"flame":"golden"}),
    ] {
        let response = post(&stack, "/v1/flames/probability", bad.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_code(response).await, "invalid_request");
    }

    let response = stack.get("/v1/characters/에반샘플/expectation").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    let valuation = &body["valuation"];
    let flames = valuation["total_flame_mesos"].as_f64().expect("number");
    assert!(flames > 0.0, "{flames}");
    let parts: f64 = [
        "total_potential_mesos",
        "total_additional_mesos",
        "total_starforce_mesos",
        "total_flame_mesos",
    ]
    .iter()
    .map(|k| valuation[k].as_f64().expect("number"))
    .sum();
    let total = valuation["total_mesos"].as_f64().expect("number");
    assert!((total - parts).abs() < 1e-3 * total, "{total} vs {parts}");
    let flamed: Vec<&Value> = valuation["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|item| !item["flame"].is_null())
        .collect();
    assert!(!flamed.is_empty());
    for item in flamed {
        let flame = &item["flame"];
        assert!(
            flame["score"].is_number() || flame["tier"].is_number(),
            "{item}"
        );
        assert!(flame["expected_mesos"].as_f64() >= Some(0.0));
    }
    for preset in valuation["presets"].as_array().expect("presets") {
        assert!(preset["total_flame_mesos"].as_f64() >= Some(0.0));
    }
    // A secondary stat's weight can only raise an item's score (and so its resets);
    // outside 0..=1 it is refused.
    let weighted = stack
        .get("/v1/characters/에반샘플/expectation?flame_secondary_weight=0.1")
        .await;
    assert_eq!(weighted.status(), StatusCode::OK);
    let weighted: Value = weighted.json().await.expect("JSON");
    let scores = |valuation: &Value| -> Vec<f64> {
        valuation["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|item| item["flame"]["score"].as_f64())
            .collect()
    };
    let (plain, heavier) = (scores(valuation), scores(&weighted["valuation"]));
    assert_eq!(plain.len(), heavier.len());
    assert!(
        plain.iter().zip(&heavier).all(|(a, b)| b >= a),
        "{plain:?} {heavier:?}"
    );
    assert!(
        plain.iter().zip(&heavier).any(|(a, b)| b > a),
        "Evan's DEX/LUK lines count"
    );
    let bad = stack
        .get("/v1/characters/에반샘플/expectation?flame_secondary_weight=1.5")
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(bad).await, "invalid_query");
    stack.stop().await;
}
