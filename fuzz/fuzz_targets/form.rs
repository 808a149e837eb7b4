//! The form encoder: Stripe's bracketed form bodies built with `sm_stripe::Form`
//! (`push`, `push_opt`, `push_map`) and encoded as the client sends them (reqwest's
//! `.form(pairs)`, which is `serde_urlencoded`).
//!
//! Input: records separated by 0x1E, fields by 0x1F (so keys and values may hold any
//! other character, newlines and `&=[]%+` included). One field: `push_opt(key, None)`;
//! two: `push(key, value)`; three or more: `push_map(parent, [(k, v), …])`.
//! Properties: building and encoding never panic; the pairs are exactly those pushed,
//! in order; decoding the body with `form_urlencoded` gives the same pairs back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sm_stripe::Form;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut form = Form::new();
    let mut expected: Vec<(String, String)> = Vec::new();
    for record in text.split('\u{1e}') {
        let fields: Vec<&str> = record.split('\u{1f}').collect();
        match fields.as_slice() {
            [key] => form = form.push_opt(*key, None::<String>),
            [key, value] => {
                // push_opt with a value is push.
                form = if key.len() % 2 == 0 {
                    form.push(*key, *value)
                } else {
                    form.push_opt(*key, Some(*value))
                };
                expected.push((key.to_string(), value.to_string()));
            }
            [parent, rest @ ..] => {
                let entries: Vec<(&str, &str)> = rest
                    .chunks(2)
                    .map(|c| (c[0], c.get(1).copied().unwrap_or("")))
                    .collect();
                form = form.push_map(parent, entries.iter().copied());
                for (k, v) in entries {
                    expected.push((format!("{parent}[{k}]"), v.to_owned()));
                }
            }
            [] => unreachable!("split yields at least one field"),
        }
    }
    assert_eq!(form.pairs(), expected.as_slice());
    assert_eq!(form.is_empty(), expected.is_empty());

    let body = serde_urlencoded::to_string(form.pairs()).expect("pairs of strings encode");
    assert!(
        body.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"%&=+*-._".contains(&b)),
        "unescaped byte in {body:?}"
    );
    let decoded: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(decoded, expected, "body {body:?}");
});
