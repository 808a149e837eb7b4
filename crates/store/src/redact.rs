//! Redaction of personal data in stored Stripe JSON (see the `privacy` module): by key, at
//! any depth. The personal fields Stripe puts on customers, invoices, charges, payment
//! intents, checkout sessions and subscriptions ([`PERSONAL_KEYS`]) become `null`;
//! `metadata` keeps only the keys this service reads ([`kept_metadata`]) — the rest is the
//! application's, and may name the person. Catalog objects nested in a payload (a
//! product, a price) are not personal and stay whole, so a redacted payload still parses
//! as the typed object it was (`metadata` stays a map of strings, never `null`).

use serde_json::Value;

/// Keys whose values are personal data (or links that show it: receipts, hosted
/// invoices and their PDFs carry the name, e-mail and address). Also a dispute's
/// evidence fields (`customer_email_address`, `customer_purchase_ip`, `billing_address`,
/// `shipping_address`), a legacy card source's `address_*` and the `card` of a payment
/// method (last four digits, expiry, fingerprint), and collected names.
pub const PERSONAL_KEYS: &[&str] = &[
    "address",
    "address_city",
    "address_country",
    "address_line1",
    "address_line2",
    "address_state",
    "address_zip",
    "billing_address",
    "billing_details",
    "business_name",
    "card",
    "custom_fields",
    "customer_address",
    "customer_details",
    "customer_email",
    "customer_email_address",
    "customer_name",
    "customer_phone",
    "customer_purchase_ip",
    "customer_shipping",
    "customer_tax_ids",
    "description",
    "email",
    "hosted_invoice_url",
    "individual_name",
    "invoice_pdf",
    "ip_address",
    "name",
    "payment_method_details",
    "phone",
    "receipt_email",
    "receipt_url",
    "shipping",
    "shipping_address",
    "shipping_details",
    "tax_ids",
];

/// Objects that are never personal: left whole wherever they are nested.
const CATALOG_OBJECTS: &[&str] = &["product", "price", "plan", "entitlements.feature"];

/// Whether a metadata key is one this service reads (kept by redaction).
pub fn kept_metadata(key: &str) -> bool {
    matches!(key, "account" | "product" | "price" | "quantity") || key.starts_with("stripe_manager")
}

/// `raw` (a JSON document) with its personal data redacted; text that is not JSON is
/// replaced by `{}` (it cannot be known to hold none).
pub fn redact_json(raw: &str) -> String {
    match serde_json::from_str::<Value>(raw) {
        Ok(mut v) => {
            redact_value(&mut v);
            v.to_string()
        }
        Err(_) => "{}".to_owned(),
    }
}

/// [`redact_json`] on a parsed value.
pub fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map
                .get("object")
                .and_then(Value::as_str)
                .is_some_and(|o| CATALOG_OBJECTS.contains(&o))
            {
                return;
            }
            for (key, value) in map.iter_mut() {
                if PERSONAL_KEYS.contains(&key.as_str()) {
                    *value = Value::Null;
                } else if key == "metadata" {
                    if let Value::Object(m) = value {
                        m.retain(|k, _| kept_metadata(k));
                    }
                } else {
                    redact_value(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_clears_personal_fields_and_keeps_ids_amounts_and_catalog_objects() {
        let raw = r#"{"id":"in_1","object":"invoice","customer":"cus_1","customer_email":"a@b.c",
            "customer_name":"Ann","total":500,"status":"paid","hosted_invoice_url":"https://x",
            "metadata":{"account":"acct_1","nickname":"Annie"},
            "lines":{"data":[{"description":"Ann's plan","price":{"object":"price","id":"price_1","nickname":"Pro"},
            "amount":500}]},"charge":{"id":"ch_1","billing_details":{"email":"a@b.c"},"receipt_email":"a@b.c"}}"#;
        let v: Value = serde_json::from_str(&redact_json(raw)).unwrap();
        assert_eq!(v["id"], "in_1");
        assert_eq!(v["customer"], "cus_1");
        assert_eq!(v["total"], 500);
        assert_eq!(v["status"], "paid");
        assert!(v["customer_email"].is_null() && v["customer_name"].is_null());
        assert!(v["hosted_invoice_url"].is_null());
        assert_eq!(v["metadata"], serde_json::json!({"account": "acct_1"}));
        assert!(v["lines"]["data"][0]["description"].is_null());
        assert_eq!(v["lines"]["data"][0]["price"]["nickname"], "Pro");
        assert_eq!(v["lines"]["data"][0]["amount"], 500);
        assert!(v["charge"]["billing_details"].is_null());
        assert!(!redact_json(raw).contains("a@b.c"));
        assert_eq!(redact_json("not json"), "{}");
    }
}
