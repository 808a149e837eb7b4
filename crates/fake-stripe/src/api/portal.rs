//! Customer portal sessions (`POST /v1/billing_portal/sessions`), as at
//! 2025-03-31.basil (docs.stripe.com/api/customer_portal/sessions/create): a
//! short-lived `url` on `billing.stripe.com` for one existing customer, using the
//! account's default portal configuration unless `configuration` names another.
//! Stripe has no endpoint to retrieve or list sessions, so neither has the fake; tests
//! read [`State::portal_sessions`]. Each session sends `billing_portal.session.created`.
//!
//! The fake keeps no portal configurations: the default is
//! [`State::portal_configuration`], and any other `bpc_…` id is taken on trust.
//! `flow_data` and `on_behalf_of` are not modelled (`flow` and `on_behalf_of` are null).

use serde_json::{Value, json};

use super::{Answer, ApiError, Ctx, Params, State, new_id};

pub(super) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, ctx: &Ctx) -> Option<Answer> {
    Some(match (m, seg) {
        ("POST", ["v1", "billing_portal", "sessions"]) => s.create_portal_session(p, ctx),
        _ => return None,
    })
}

/// The portal's locales (`BillingPortal.Session.Locale` in stripe@18.0.0); `auto` picks
/// the customer's `preferred_locales` or the browser's.
const LOCALES: &[&str] = &[
    "auto", "bg", "cs", "da", "de", "el", "en", "en-AU", "en-CA", "en-GB", "en-IE", "en-IN",
    "en-NZ", "en-SG", "es", "es-419", "et", "fi", "fil", "fr", "fr-CA", "hr", "hu", "id", "it",
    "ja", "ko", "lt", "lv", "ms", "mt", "nb", "nl", "pl", "pt", "pt-BR", "ro", "ru", "sk", "sl",
    "sv", "th", "tr", "vi", "zh", "zh-HK", "zh-TW",
];

impl State {
    /// `POST /v1/billing_portal/sessions`: `customer` (required, must exist),
    /// `return_url`, `configuration`, `locale` (an empty value means none). Answers the
    /// `billing_portal.session` and records it in [`State::portal_sessions`].
    pub fn create_portal_session(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let customer = p
            .text("customer")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ApiError::required("customer"))?;
        if self.customers.get(&customer).is_none() {
            return Err(ApiError::no_such("customer", "customer", &customer));
        }
        let configuration = match p.text("configuration").filter(|c| !c.is_empty()) {
            None => self.portal_configuration.clone(),
            Some(c) if c.starts_with("bpc_") => c,
            Some(c) => return Err(ApiError::no_such("configuration", "configuration", &c)),
        };
        let locale = p.text("locale").filter(|l| !l.is_empty());
        if let Some(l) = &locale
            && !LOCALES.contains(&l.as_str())
        {
            return Err(ApiError::invalid(
                "locale",
                format!("Invalid locale: must be one of {}", LOCALES.join(", ")),
            ));
        }
        let return_url = p.text("return_url").filter(|u| !u.is_empty());
        if let Some(url) = &return_url
            && !is_web_url(url)
        {
            return Err(ApiError {
                status: 400,
                kind: "invalid_request_error",
                code: Some("url_invalid"),
                message: "Not a valid URL".into(),
                param: Some("return_url".into()),
                detail: None,
            });
        }
        let id = new_id("bps");
        let mode = if self.livemode { "live" } else { "test" };
        let session = json!({
            "id": id,
            "object": "billing_portal.session",
            "configuration": configuration,
            "created": self.now(),
            "customer": customer,
            "flow": null,
            "livemode": self.livemode,
            "locale": locale,
            "on_behalf_of": null,
            "return_url": return_url,
            "url": format!("https://billing.stripe.com/p/session/{mode}_{}", super::random_tail(32)),
        });
        self.portal_sessions.insert(&id, session.clone());
        self.emit("billing_portal.session.created", &session, None, ctx);
        Ok((200, session))
    }
}

/// An absolute `http(s)` URL with a host: what the fake accepts as a `return_url`.
fn is_web_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.and_then(|r| r.split(['/', '?', '#']).next())
        .is_some_and(|host| !host.is_empty() && !host.contains(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_urls_must_be_absolute_web_urls() {
        assert!(is_web_url("https://example.com/account"));
        assert!(is_web_url("http://localhost:3000"));
        assert!(!is_web_url("example.com"));
        assert!(!is_web_url("https:///nohost"));
        assert!(!is_web_url("ftp://example.com"));
    }
}
