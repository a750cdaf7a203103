//! `openapi.json` describes every route, method, body and error the api has: checked against
//! the route table and against the api's own answers.

use openapiv3::{OpenAPI, Operation, ReferenceOr};
use serde_json::Value;

use crate::support::{json, spawn_app};

fn document() -> OpenAPI {
    serde_json::from_str(api::openapi::DOCUMENT)
        .expect("openapi.json is a valid OpenAPI 3.0 document")
}

fn operations(doc: &OpenAPI, template: &str) -> Vec<(&'static str, Operation)> {
    let Some(ReferenceOr::Item(path)) = doc.paths.paths.get(template) else {
        panic!("{template} missing from openapi.json")
    };
    path.iter()
        .map(|(method, op)| (method_name(method), op.clone()))
        .collect()
}

fn method_name(method: &str) -> &'static str {
    match method {
        "get" => "GET",
        "post" => "POST",
        "put" => "PUT",
        "delete" => "DELETE",
        other => panic!("unexpected method {other}"),
    }
}

fn statuses(op: &Operation) -> Vec<String> {
    op.responses
        .responses
        .keys()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn every_route_and_method_is_documented_and_nothing_else() {
    let doc = document();
    let documented: Vec<&String> = doc.paths.paths.keys().collect();
    let routes: Vec<&str> = api::routes::ROUTES.iter().map(|r| r.template).collect();
    assert_eq!(
        documented.len(),
        routes.len(),
        "{documented:?} vs {routes:?}"
    );
    for route in &api::routes::ROUTES {
        let methods: Vec<&str> = operations(&doc, route.template)
            .iter()
            .map(|(m, _)| *m)
            .collect();
        assert_eq!(methods.join(", "), route.allow, "{}", route.template);
    }
}

#[test]
fn bodies_and_errors_are_documented_per_operation() {
    let doc = document();
    for route in &api::routes::ROUTES {
        for (method, op) in operations(&doc, route.template) {
            let codes = statuses(&op);
            let has = |code: &str| codes.iter().any(|c| c == code);
            let is_item_route = route.template.starts_with("/items");
            let takes_body = matches!(method, "POST" | "PUT");
            assert_eq!(
                op.request_body.is_some(),
                takes_body,
                "{method} {}: request body",
                route.template
            );
            if takes_body {
                for code in ["400", "413", "422"] {
                    assert!(
                        has(code),
                        "{method} {} must document {code}: {codes:?}",
                        route.template
                    );
                }
            }
            if is_item_route {
                assert!(
                    has("500") && has("503"),
                    "{method} {}: {codes:?}",
                    route.template
                );
            }
            if route.template == "/items/{id}" {
                assert!(has("404"), "{method} {}: {codes:?}", route.template);
            }
            let success = codes.iter().filter(|c| c.starts_with('2')).count();
            assert_eq!(
                success, 1,
                "{method} {}: one success status: {codes:?}",
                route.template
            );
        }
    }
    let listing = operations(&doc, "/items")
        .into_iter()
        .find(|(m, _)| *m == "GET")
        .expect("GET /items")
        .1;
    let params: Vec<String> = listing
        .parameters
        .iter()
        .map(|p| match p {
            ReferenceOr::Item(p) => p.parameter_data_ref().name.clone(),
            ReferenceOr::Reference { reference } => reference.clone(),
        })
        .collect();
    assert_eq!(params, ["limit", "offset"]);
    assert!(statuses(&listing).contains(&"400".to_owned()));
}

#[test]
fn every_error_response_uses_the_error_schema() {
    let raw: Value = serde_json::from_str(api::openapi::DOCUMENT).expect("json");
    let responses = raw["components"]["responses"]
        .as_object()
        .expect("components.responses");
    for name in [
        "BadRequest",
        "NotFound",
        "PayloadTooLarge",
        "Unprocessable",
        "MethodNotAllowed",
        "Internal",
        "Unavailable",
    ] {
        let schema = &responses[name]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(schema, "#/components/schemas/Error", "{name}");
    }
    assert!(responses["MethodNotAllowed"]["headers"]["Allow"].is_object());
    assert!(responses["Unavailable"]["headers"]["Retry-After"].is_object());
    let error = &raw["components"]["schemas"]["Error"]["properties"];
    assert!(error["error"].is_object() && error["field"].is_object());
}

#[tokio::test]
async fn served_document_is_the_file_and_its_example_is_accepted() {
    let app = spawn_app().await;

    let served = app.get("/openapi.json").await;

    assert_eq!(served.text(), api::openapi::DOCUMENT);
    let example = json(&served)["components"]["schemas"]["NewItem"]["example"].to_string();
    let created = app.post("/items", &example).await;
    assert_eq!(created.status, 201, "{}", created.text());
}
