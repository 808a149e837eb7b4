//! The Events API: every event the fake emitted, newest first, filterable by `type`,
//! `types[]` and `created`.

use serde_json::{Value, json};

use super::{Answer, Ctx, Params, State, created_in_range, field_is, list};

pub(super) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, _: &Ctx) -> Option<Answer> {
    Some(match (m, seg) {
        ("GET", ["v1", "events"]) => {
            let types: Option<Vec<String>> = p["types"].as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            });
            list(&s.events, p, "/v1/events", |v| {
                field_is(v, "type", p.text("type"))
                    && types
                        .as_ref()
                        .is_none_or(|t| t.iter().any(|t| v["type"] == json!(t)))
                    && created_in_range(v, p)
            })
        }
        ("GET", ["v1", "events", id]) => s.retrieve("event", id),
        _ => return None,
    })
}
