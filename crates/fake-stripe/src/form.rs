//! Stripe's bracketed form bodies (`metadata[k]=v`, `line_items[0][price]=p`,
//! `expand[]=x`) decoded into a JSON tree of strings, so handlers can read
//! `params["line_items"][0]["price"]`.

use serde_json::{Map, Value};

/// Decodes `application/x-www-form-urlencoded` (or a query string) into nested JSON.
pub fn decode(raw: &[u8]) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, value) in form_urlencoded::parse(raw) {
        insert(&mut root, &key, value.into_owned());
    }
    normalize(root)
}

fn insert(root: &mut Value, key: &str, value: String) {
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    let mut path = vec![head.to_owned()];
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(end) = stripped.find(']') else { break };
        path.push(stripped[..end].to_owned());
        rest = &stripped[end + 1..];
    }
    let mut node = root;
    for (i, segment) in path.iter().enumerate() {
        let last = i == path.len() - 1;
        let map = match node {
            Value::Object(m) => m,
            other => {
                *other = Value::Object(Map::new());
                other.as_object_mut().expect("just made an object")
            }
        };
        // `[]` appends: give it the next free index.
        let segment = if segment.is_empty() {
            map.len().to_string()
        } else {
            segment.clone()
        };
        if last {
            map.insert(segment, Value::String(value));
            return;
        }
        node = map
            .entry(segment)
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Objects whose keys are all indices become arrays.
fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let indexed = !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok());
            if indexed {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(0), normalize(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, normalize(v))).collect())
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_indexed() {
        let v = decode(b"mode=payment&line_items[0][price]=p1&line_items[0][quantity]=2&line_items[1][price]=p2&metadata[a]=b&expand[]=x&expand[]=y");
        assert_eq!(
            v,
            json!({"mode":"payment","line_items":[{"price":"p1","quantity":"2"},{"price":"p2"}],
                   "metadata":{"a":"b"},"expand":["x","y"]})
        );
    }
}
