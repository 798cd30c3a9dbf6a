//! The OpenAPI document tells the truth: every documented operation, called against the real
//! daemon, answers with a documented status and content type, and the daemon serves the
//! document itself.

use fieldcast_test_support as support;

use serde_json::Value;
use support::{base_url, start_daemon};

/// Follows a local `$ref` such as `#/components/responses/Problem`.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .trim_start_matches("#/")
            .split('/')
            .fold(document, |node, key| &node[key]),
        None => value,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_answers_as_documented() {
    let daemon = start_daemon().await;
    let base = base_url(&daemon);
    let served: Value = reqwest::get(format!("{base}/api/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let document: Value = serde_json::from_str(fieldcast::http::openapi::DOCUMENT).unwrap();
    assert_eq!(
        served, document,
        "the daemon serves the checked-in document"
    );

    let client = reqwest::Client::new();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let url = format!("{base}{}", path.replace("{id}", "no-such-session"));
            let mut request = client.request(method.to_uppercase().parse().unwrap(), url);
            let body_type = operation["requestBody"]["content"]
                .as_object()
                .and_then(|c| c.keys().next().cloned());
            if let Some(content_type) = body_type {
                request = request.header("content-type", content_type).body("v=0\r\n");
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] == "query" && parameter["required"] == true {
                    let name = parameter["name"].as_str().unwrap();
                    request = request.query(&[(name, "http://pi.local:8080/")]);
                }
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16().to_string();
            let what = format!("{} {path} answered {status}", method.to_uppercase());
            let documented = operation["responses"]
                .get(&status)
                .unwrap_or_else(|| panic!("{what}, which is not documented"));
            let documented = resolve(&document, documented);
            if let Some(content) = documented["content"].as_object() {
                let got = response.headers()["content-type"].to_str().unwrap();
                let essence = got.split(';').next().unwrap().trim();
                assert!(
                    content.contains_key(essence),
                    "{what} as {got}, documented {content:?}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} operations checked");
    let unknown = client
        .get(format!("{base}/api/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    daemon.shutdown().await;
}
