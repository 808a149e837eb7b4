//! How the admin shows values — times, amounts, statuses as badges — and the keyset
//! pager every list shares. Pages turn stored values into these strings before
//! rendering, so no template ever prints a Unix timestamp or a JSON blob.

use crate::clock::unix_now;

/// Rows per page on every list.
pub const PAGE: usize = 50;

/// `2025-11-26 14:03 UTC · 3 min ago` from Unix seconds.
pub fn when(unix: i64) -> String {
    crate::clock::when(unix, unix_now())
}

/// [`when`] from Unix milliseconds (the webhook inbox's unit).
pub fn when_ms(ms: i64) -> String {
    when(ms.div_euclid(1000))
}

/// `10.00 USD`: minor units in the currency's own precision.
pub fn money(minor: i64, currency: &str) -> String {
    sm_domain::Money::new(minor, currency).to_string()
}

/// A status as a coloured word (the colour repeats what the word says, for those who
/// cannot see it).
#[derive(Debug, Clone)]
pub struct Badge {
    /// `good`, `bad`, `warn` or `muted` (CSS classes in base.html).
    pub tone: &'static str,
    pub label: String,
}

impl Badge {
    pub fn new(tone: &'static str, label: impl Into<String>) -> Self {
        Self {
            tone,
            label: label.into(),
        }
    }

    /// The tone a status word conventionally has across the admin.
    pub fn status(status: &str) -> Self {
        let tone = match status {
            "processed" | "succeeded" | "ok" | "active" | "valid" | "paid" | "trialing"
            | "live" => "good",
            "failed"
            | "error"
            | "invalid"
            | "locked"
            | "invalid_credentials"
            | "past_due"
            | "unpaid"
            | "deleted" => "bad",
            "pending" | "processing" | "running" | "incomplete" | "open" => "warn",
            _ => "muted",
        };
        Self::new(tone, status.replace('_', " "))
    }
}

/// A path segment percent-encoded (an id from a URL, put back in a redirect).
pub fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `path?k=v&…` with the non-empty parameters, encoded.
pub fn link(path: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(k, v);
        any = true;
    }
    if any {
        format!("{path}?{}", query.finish())
    } else {
        path.to_owned()
    }
}

/// Links to the next page and back to the first, filters kept in the URL.
#[derive(Debug, Default)]
pub struct Pager {
    pub next: Option<String>,
    pub first: Option<String>,
}

impl Pager {
    /// For rows fetched with a limit of `PAGE + 1`: drops the extra row, and when there
    /// was one links to the page after the last row shown (`cursor` of that row). `deep`
    /// says whether this page itself came from a cursor.
    pub fn cut<T>(
        rows: &mut Vec<T>,
        path: &str,
        filters: &[(&str, &str)],
        deep: bool,
        cursor: impl Fn(&T) -> String,
    ) -> Self {
        let more = rows.len() > PAGE;
        rows.truncate(PAGE);
        let next = match rows.last() {
            Some(last) if more => {
                let c = cursor(last);
                let mut params = filters.to_vec();
                params.push(("cursor", &c));
                Some(link(path, &params))
            }
            _ => None,
        };
        Self {
            next,
            first: deep.then(|| link(path, filters)),
        }
    }
}

/// The answer to a `cursor` this admin did not make (or whose row is gone): a 400 that
/// says so and links back to the first page.
pub fn bad_cursor(first_page: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = format!(
        "<!doctype html><html lang=\"en\"><title>Bad page link · stripe-manager</title><main><h1>Bad page link</h1>\
         <p>This page link is not one this admin made, or the row it continued from is gone. \
         <a href=\"{}\">Start from the first page</a>.</p></main></html>",
        first_page
            .replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
    );
    (
        axum::http::StatusCode::BAD_REQUEST,
        axum::response::Html(body),
    )
        .into_response()
}

/// A cursor's value: `None` for no cursor, `Some(Err(()))` for one that is not a number.
pub fn id_cursor(cursor: &str) -> Option<Result<i64, ()>> {
    (!cursor.is_empty()).then(|| cursor.parse().map_err(|_| ()))
}

/// A `<received>:<id>`-style cursor split at its first colon, the number parsed.
pub fn split_cursor(cursor: &str) -> Option<(i64, &str)> {
    let (n, rest) = cursor.split_once(':')?;
    Some((n.parse().ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pager_links_onwards_only_when_there_is_more() {
        let mut rows: Vec<i64> = (0..(PAGE as i64 + 1)).rev().collect();
        let p = Pager::cut(
            &mut rows,
            "/admin/audit",
            &[("action", "login"), ("x", "")],
            false,
            |r| r.to_string(),
        );
        assert_eq!(rows.len(), PAGE);
        assert_eq!(
            p.next.as_deref(),
            Some("/admin/audit?action=login&cursor=1")
        );
        assert_eq!(p.first, None);
        let mut rows = vec![3, 2];
        let p = Pager::cut(&mut rows, "/admin/audit", &[], true, |r: &i64| {
            r.to_string()
        });
        assert_eq!((p.next, p.first.as_deref()), (None, Some("/admin/audit")));
        assert_eq!(
            split_cursor("1700000000123:evt_1:x"),
            Some((1_700_000_000_123, "evt_1:x"))
        );
        assert_eq!(split_cursor("evt_1"), None);
    }

    #[test]
    fn statuses_read_as_words_with_a_tone() {
        let b = Badge::status("invalid_credentials");
        assert_eq!((b.tone, b.label.as_str()), ("bad", "invalid credentials"));
        assert_eq!(Badge::status("processed").tone, "good");
        assert_eq!(Badge::status("ignored").tone, "muted");
    }
}
