use std::collections::BTreeSet;

use serde_json::Value;

use super::json;
use crate::http::api::SERVED;

fn doc() -> Value {
    serde_json::from_str(json()).expect("the document is JSON")
}

#[test]
fn every_served_route_is_described_and_nothing_else() {
    let doc = doc();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let mut described = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            described.insert((method.clone(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = SERVED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(served, described);
}

#[test]
fn every_reference_resolves_and_every_route_needs_the_bearer() {
    let doc = doc();
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let text = json();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(
            schemas.contains_key(name),
            "{name} is referenced, not defined"
        );
    }
    for name in [
        "RunInfo",
        "ShardInfo",
        "PipelineInfo",
        "WorkerInfo",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            assert_eq!(
                op["security"][0]["bearer"],
                serde_json::json!([]),
                "{method} {path}"
            );
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path} documents 401"
            );
        }
    }
}

#[test]
fn every_action_on_a_run_documents_its_answers_and_their_bodies() {
    let doc = doc();
    for path in ["/api/runs/{id}/cancel", "/api/runs/{id}/retry"] {
        let responses = &doc["paths"][path]["post"]["responses"];
        let statuses: Vec<&str> = responses
            .as_object()
            .unwrap_or_else(|| panic!("{path}: no responses"))
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            statuses,
            ["200", "401", "403", "404", "409", "421"],
            "{path}"
        );
        let body = |status: &str| {
            responses[status]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(body("200"), "#/components/schemas/ActionReply", "{path}");
        assert_eq!(body("409"), "#/components/schemas/ErrorBody", "{path}");
        assert_eq!(responses["421"]["description"], "not the leader", "{path}");
    }
}
