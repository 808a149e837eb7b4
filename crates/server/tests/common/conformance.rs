//! Every `/api/v1` answer a test receives through the helpers is checked against the
//! OpenAPI document (`openapi/v1.json`, equal to what the service serves: `tests/openapi.rs`):
//! the status must be documented for the operation, the body must fit its schema, and an
//! error's `code` must be one the operation names. Objects are checked strictly (no
//! property the document does not list), so a field added to an answer without its
//! schema fails every test that sees it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Value, json};

/// The checked-in document.
pub static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/v1.json");
    let text = std::fs::read_to_string(path).expect("openapi/v1.json is readable");
    serde_json::from_str(&text).expect("openapi/v1.json is JSON")
});

/// The answers checked so far in this process: `METHOD template status`.
pub static SEEN: LazyLock<Mutex<BTreeSet<String>>> = LazyLock::new(Default::default);

type Validators = HashMap<String, Arc<jsonschema::Validator>>;
static VALIDATORS: LazyLock<Mutex<Validators>> = LazyLock::new(Default::default);

/// The document's path template that `path` is an instance of.
pub fn template(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    DOCUMENT["paths"]
        .as_object()?
        .keys()
        .find(|t| {
            let tp: Vec<&str> = t.split('/').collect();
            tp.len() == parts.len()
                && tp
                    .iter()
                    .zip(&parts)
                    .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
        })
        .cloned()
}

/// The component schemas with every object closed (`additionalProperties: false`) unless
/// it says otherwise (a free-form map such as `metadata`).
fn strict(mut v: Value) -> Value {
    fn close(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                    m.insert("additionalProperties".into(), Value::Bool(false));
                }
                m.values_mut().for_each(close);
            }
            Value::Array(a) => a.iter_mut().for_each(close),
            _ => {}
        }
    }
    close(&mut v);
    v
}

fn validator(key: &str, schema: &Value) -> Arc<jsonschema::Validator> {
    let mut cache = VALIDATORS.lock().unwrap();
    if let Some(v) = cache.get(key) {
        return v.clone();
    }
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [strict(schema.clone())],
        "components": strict(DOCUMENT["components"].clone()),
    });
    let v = Arc::new(
        jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("the schema of {key} does not compile: {e}")),
    );
    cache.insert(key.to_owned(), v.clone());
    v
}

/// Checks one answer; panics with what does not fit. Routes outside `/api/v1`, and
/// paths that match no route (a `404` of the fallback), are not the document's.
pub fn check(method: &str, url: &str, status: u16, body: &Value) {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    let path = path.split(['?', '#']).next().unwrap_or(path);
    if !path.starts_with("/api/v1/") {
        return;
    }
    let Some(template) = template(path) else {
        return;
    };
    let method = method.to_ascii_lowercase();
    let Some(op) = DOCUMENT["paths"][&template].get(&method) else {
        return;
    };
    let key = format!("{} {template} {status}", method.to_uppercase());
    let Some(response) = op["responses"].get(status.to_string()) else {
        panic!("{key}: status {status} is not documented (answer: {body})");
    };
    SEEN.lock().unwrap().insert(key.clone());
    let Some(schema) = response["content"]["application/json"].get("schema") else {
        return;
    };
    let validator = validator(&key, schema);
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{key}: the answer does not fit the document:\n  {}\nanswer: {body}",
        errors.join("\n  ")
    );
    if status >= 400
        && let Some(code) = body["error"]["code"].as_str()
    {
        let described = response["description"].as_str().unwrap_or("");
        assert!(
            described.contains(&format!("`{code}`")),
            "{key}: error code `{code}` is not among those documented ({described:?})"
        );
    }
}
