//! The stateful part of the fake: Stripe's objects, their JSON shapes, and the events
//! that changes to them produce. Handlers take decoded parameters (a JSON tree of
//! strings, see [`crate::form`]) and return `(status, body)`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::store::Collection;

/// A Stripe-shaped error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    pub fn missing(kind: &str, id: &str) -> Self {
        Self {
            status: 404,
            kind: "invalid_request_error",
            code: Some("resource_missing"),
            message: format!("No such {kind}: '{id}'"),
            param: Some("id".into()),
        }
    }

    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            code: Some("parameter_invalid"),
            message: message.into(),
            param: Some(param.into()),
        }
    }

    pub fn required(param: &str) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            code: Some("parameter_missing"),
            message: format!("Missing required param: {param}."),
            param: Some(param.into()),
        }
    }

    pub fn body(&self) -> Value {
        let mut error = json!({"type": self.kind, "message": self.message});
        if let Some(code) = self.code {
            error["code"] = json!(code);
        }
        if let Some(param) = &self.param {
            error["param"] = json!(param);
        }
        json!({ "error": error })
    }
}

pub type Answer = Result<(u16, Value), ApiError>;

fn random_tail(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let bytes2 = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .chain(bytes2.iter())
        .take(n)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// A fresh id with Stripe's prefix (`prod_`, `price_`, …).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_tail(24))
}

/// Reading parameters that arrive as strings (from a form) or as JSON values (from
/// in-process seeding).
pub trait Params {
    fn text(&self, key: &str) -> Option<String>;
    fn int(&self, key: &str) -> Result<Option<i64>, ApiError>;
    fn flag(&self, key: &str) -> Result<Option<bool>, ApiError>;
    fn map(&self, key: &str) -> Option<&Map<String, Value>>;
}

impl Params for Value {
    fn text(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::invalid(key, format!("Invalid integer: {n}"))),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(key, format!("Invalid integer: {s}"))),
            Some(other) => Err(ApiError::invalid(key, format!("Invalid integer: {other}"))),
        }
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(other) => Err(ApiError::invalid(key, format!("Invalid boolean: {other}"))),
        }
    }

    fn map(&self, key: &str) -> Option<&Map<String, Value>> {
        self.get(key)?.as_object()
    }
}

/// Metadata updates: a key with an empty value is removed, as in Stripe.
fn merge_metadata(target: &mut Value, params: &Value) {
    if let Some(updates) = params.map("metadata") {
        let meta = target["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        for (k, v) in updates {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if v.is_empty() {
                meta.remove(k);
            } else {
                meta.insert(k.clone(), Value::String(v));
            }
        }
    }
}

fn interval_seconds(interval: &str) -> i64 {
    match interval {
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 30 * 86_400,
        _ => 365 * 86_400,
    }
}

/// Everything the fake knows.
#[derive(Debug)]
pub struct State {
    pub products: Collection,
    pub prices: Collection,
    pub customers: Collection,
    pub sessions: Collection,
    pub subscriptions: Collection,
    pub invoices: Collection,
    pub charges: Collection,
    pub refunds: Collection,
    pub events: Collection,
    pub line_items: HashMap<String, Vec<Value>>,
    /// The payment intent that paid each invoice, shown as `payments` when a retrieve
    /// asks for `expand[]=payments` (Stripe leaves it out of invoices otherwise).
    pub invoice_payments: HashMap<String, String>,
    /// Seconds added to the wall clock, so tests can make time pass for `created`.
    pub clock_offset: i64,
    /// The API version stamped on events and echoed when a request names none.
    pub api_version: String,
    /// Whether changes produce events (seeding a big catalog can turn this off).
    pub emit_events: bool,
    /// Events created since the last drain, for webhook delivery.
    pub outbox: Vec<Value>,
    pub livemode: bool,
}

impl Default for State {
    fn default() -> Self {
        Self {
            products: Collection::default(),
            prices: Collection::default(),
            customers: Collection::default(),
            sessions: Collection::default(),
            subscriptions: Collection::default(),
            invoices: Collection::default(),
            charges: Collection::default(),
            refunds: Collection::default(),
            events: Collection::default(),
            line_items: HashMap::new(),
            invoice_payments: HashMap::new(),
            clock_offset: 0,
            api_version: "2025-03-31.basil".into(),
            emit_events: true,
            outbox: Vec::new(),
            livemode: false,
        }
    }
}

/// Request context that ends up in an event's `request` field.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
}

impl State {
    pub fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
            + self.clock_offset
    }

    /// Records an event about `object` (and queues it for webhook delivery).
    pub fn emit(
        &mut self,
        kind: &str,
        object: &Value,
        previous: Option<Value>,
        ctx: &Ctx,
    ) -> Option<Value> {
        if !self.emit_events {
            return None;
        }
        let id = new_id("evt");
        let mut data = json!({ "object": object });
        if let Some(prev) = previous {
            data["previous_attributes"] = prev;
        }
        let event = json!({
            "id": id,
            "object": "event",
            "api_version": self.api_version,
            "created": self.now(),
            "data": data,
            "livemode": self.livemode,
            "pending_webhooks": 1,
            "request": { "id": ctx.request_id, "idempotency_key": ctx.idempotency_key },
            "type": kind,
        });
        self.events.insert(&id, event.clone());
        self.outbox.push(event.clone());
        Some(event)
    }

    /// Seeds `products` valid credit products (`credit_amount` 1–50) and `prices`
    /// one-time USD prices spread over them round-robin (each product's first price is
    /// its default), without events. Returns the product ids, oldest first.
    pub fn seed_catalog(&mut self, products: usize, prices: usize) -> Vec<String> {
        let emit = std::mem::replace(&mut self.emit_events, false);
        let ctx = Ctx::default();
        let ids: Vec<String> = (0..products)
            .map(|i| {
                let params = json!({"name": format!("Pack {i:05}"), "metadata": {"credit_amount": ((i % 50) + 1).to_string()}});
                let (_, p) = self.create_product(&params, &ctx).expect("valid seed product");
                p["id"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        if !ids.is_empty() {
            for j in 0..prices {
                let product = &ids[j % ids.len()];
                let params =
                    json!({"product": product, "currency": "usd", "unit_amount": 100 + j as i64});
                let (_, price) = self.create_price(&params, &ctx).expect("valid seed price");
                if j < ids.len() {
                    let update = json!({"default_price": price["id"]});
                    self.update_product(product, &update, &ctx)
                        .expect("seeded price exists");
                }
            }
        }
        self.emit_events = emit;
        ids
    }

    // ----- products -------------------------------------------------------------

    pub fn create_product(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let name = p.text("name").ok_or_else(|| ApiError::required("name"))?;
        let id = match p.text("id") {
            Some(id) if self.products.get(&id).is_some() => {
                return Err(ApiError {
                    status: 400,
                    kind: "invalid_request_error",
                    code: Some("resource_already_exists"),
                    message: format!("Product already exists: {id}"),
                    param: Some("id".into()),
                });
            }
            Some(id) => id,
            None => new_id("prod"),
        };
        let now = p.int("created")?.unwrap_or_else(|| self.now());
        let mut product = json!({
            "id": id,
            "object": "product",
            "active": p.flag("active")?.unwrap_or(true),
            "created": now,
            "default_price": null,
            "description": p.text("description"),
            "images": [],
            "livemode": self.livemode,
            "marketing_features": [],
            "metadata": {},
            "name": name,
            "package_dimensions": null,
            "shippable": null,
            "statement_descriptor": null,
            "tax_code": null,
            "type": "service",
            "unit_label": null,
            "updated": now,
            "url": null,
        });
        merge_metadata(&mut product, p);
        self.products.insert(&id, product.clone());
        self.emit("product.created", &product, None, ctx);
        if let Some(data) = p.get("default_price_data") {
            let mut price_params = data.clone();
            price_params["product"] = json!(id);
            let (_, price) = self.create_price(&price_params, ctx)?;
            let update = json!({ "default_price": price["id"] });
            return self.update_product(&id, &update, ctx);
        }
        Ok((200, product))
    }

    pub fn retrieve_product(&self, id: &str) -> Answer {
        self.products
            .get(id)
            .cloned()
            .map(|v| (200, v))
            .ok_or_else(|| ApiError::missing("product", id))
    }

    pub fn update_product(&mut self, id: &str, p: &Value, ctx: &Ctx) -> Answer {
        let now = self.now();
        if let Some(price) = p.text("default_price") {
            let ok = self
                .prices
                .get(&price)
                .is_some_and(|v| v["product"] == json!(id));
            if !ok {
                return Err(ApiError::invalid(
                    "default_price",
                    format!("No such price: '{price}'"),
                ));
            }
        }
        let product = self
            .products
            .get_mut(id)
            .ok_or_else(|| ApiError::missing("product", id))?;
        let before = product.clone();
        for key in ["name", "description", "default_price"] {
            if let Some(v) = p.text(key) {
                product[key] = if v.is_empty() && key != "name" {
                    Value::Null
                } else {
                    json!(v)
                };
            }
        }
        if let Some(active) = p.flag("active")? {
            product["active"] = json!(active);
        }
        merge_metadata(product, p);
        let updated = before["updated"].as_i64().unwrap_or(0).max(now);
        product["updated"] = json!(p.int("updated")?.unwrap_or(updated));
        let after = product.clone();
        let previous = diff(&before, &after);
        self.emit("product.updated", &after, Some(previous), ctx);
        Ok((200, after))
    }

    pub fn delete_product(&mut self, id: &str, ctx: &Ctx) -> Answer {
        let product = self
            .products
            .remove(id)
            .ok_or_else(|| ApiError::missing("product", id))?;
        self.emit("product.deleted", &product, None, ctx);
        Ok((200, json!({"id": id, "object": "product", "deleted": true})))
    }

    // ----- prices ---------------------------------------------------------------

    pub fn create_price(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let product = p
            .text("product")
            .ok_or_else(|| ApiError::required("product"))?;
        if self.products.get(&product).is_none() {
            return Err(ApiError::invalid(
                "product",
                format!("No such product: '{product}'"),
            ));
        }
        let currency = p
            .text("currency")
            .ok_or_else(|| ApiError::required("currency"))?
            .to_lowercase();
        let scheme = p
            .text("billing_scheme")
            .unwrap_or_else(|| "per_unit".into());
        let unit_amount = p.int("unit_amount")?;
        if scheme == "per_unit" && unit_amount.is_none() && p.get("custom_unit_amount").is_none() {
            return Err(ApiError::required("unit_amount"));
        }
        let recurring = match p.get("recurring") {
            Some(r) => {
                let interval = r
                    .text("interval")
                    .ok_or_else(|| ApiError::required("recurring[interval]"))?;
                if !matches!(interval.as_str(), "day" | "week" | "month" | "year") {
                    return Err(ApiError::invalid(
                        "recurring[interval]",
                        format!("Invalid interval: {interval}"),
                    ));
                }
                json!({
                    "aggregate_usage": null,
                    "interval": interval,
                    "interval_count": r.int("interval_count")?.unwrap_or(1),
                    "meter": null,
                    "trial_period_days": null,
                    "usage_type": "licensed",
                })
            }
            None => Value::Null,
        };
        let id = p.text("id").unwrap_or_else(|| new_id("price"));
        let kind = if recurring.is_null() {
            "one_time"
        } else {
            "recurring"
        };
        let mut price = json!({
            "id": id,
            "object": "price",
            "active": p.flag("active")?.unwrap_or(true),
            "billing_scheme": scheme,
            "created": p.int("created")?.unwrap_or_else(|| self.now()),
            "currency": currency,
            "custom_unit_amount": p.get("custom_unit_amount").cloned().unwrap_or(Value::Null),
            "livemode": self.livemode,
            "lookup_key": p.text("lookup_key"),
            "metadata": {},
            "nickname": p.text("nickname"),
            "product": product,
            "recurring": recurring,
            "tax_behavior": "unspecified",
            "tiers_mode": p.text("tiers_mode"),
            "transform_quantity": null,
            "type": kind,
            "unit_amount": unit_amount,
            "unit_amount_decimal": unit_amount.map(|a| a.to_string()),
        });
        merge_metadata(&mut price, p);
        self.prices.insert(&id, price.clone());
        self.emit("price.created", &price, None, ctx);
        Ok((200, price))
    }

    pub fn retrieve_price(&self, id: &str) -> Answer {
        self.prices
            .get(id)
            .cloned()
            .map(|v| (200, v))
            .ok_or_else(|| ApiError::missing("price", id))
    }

    pub fn update_price(&mut self, id: &str, p: &Value, ctx: &Ctx) -> Answer {
        let price = self
            .prices
            .get_mut(id)
            .ok_or_else(|| ApiError::missing("price", id))?;
        let before = price.clone();
        if let Some(active) = p.flag("active")? {
            price["active"] = json!(active);
        }
        for key in ["nickname", "lookup_key"] {
            if let Some(v) = p.text(key) {
                price[key] = if v.is_empty() { Value::Null } else { json!(v) };
            }
        }
        merge_metadata(price, p);
        let after = price.clone();
        self.emit("price.updated", &after, Some(diff(&before, &after)), ctx);
        Ok((200, after))
    }

    /// Stripe cannot delete prices through the API; the fake can, so tests can model
    /// a price that disappeared (it emits `price.deleted`).
    pub fn delete_price(&mut self, id: &str, ctx: &Ctx) -> Answer {
        let price = self
            .prices
            .remove(id)
            .ok_or_else(|| ApiError::missing("price", id))?;
        self.emit("price.deleted", &price, None, ctx);
        Ok((200, json!({"id": id, "object": "price", "deleted": true})))
    }

    // ----- customers ------------------------------------------------------------

    pub fn create_customer(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let id = new_id("cus");
        let mut customer = json!({
            "id": id,
            "object": "customer",
            "created": self.now(),
            "email": p.text("email"),
            "name": p.text("name"),
            "livemode": self.livemode,
            "metadata": {},
        });
        merge_metadata(&mut customer, p);
        self.customers.insert(&id, customer.clone());
        self.emit("customer.created", &customer, None, ctx);
        Ok((200, customer))
    }

    pub fn retrieve_customer(&self, id: &str) -> Answer {
        self.customers
            .get(id)
            .cloned()
            .map(|v| (200, v))
            .ok_or_else(|| ApiError::missing("customer", id))
    }

    // ----- checkout sessions ----------------------------------------------------

    pub fn create_checkout_session(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let mode = p.text("mode").ok_or_else(|| ApiError::required("mode"))?;
        if !matches!(mode.as_str(), "payment" | "subscription" | "setup") {
            return Err(ApiError::invalid("mode", format!("Invalid mode: {mode}")));
        }
        let items = p
            .get("line_items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if mode != "setup" && items.is_empty() {
            return Err(ApiError::required("line_items"));
        }
        if let Some(customer) = p.text("customer")
            && self.customers.get(&customer).is_none()
        {
            return Err(ApiError::invalid(
                "customer",
                format!("No such customer: '{customer}'"),
            ));
        }
        let id = format!("cs_test_{}", random_tail(40));
        let mut lines = Vec::new();
        let mut total = 0i64;
        let mut currency = None;
        for (i, item) in items.iter().enumerate() {
            let param = format!("line_items[{i}][price]");
            let price_id = item
                .text("price")
                .ok_or_else(|| ApiError::required(&param))?;
            let price =
                self.prices.get(&price_id).cloned().ok_or_else(|| {
                    ApiError::invalid(&param, format!("No such price: '{price_id}'"))
                })?;
            if price["active"] != json!(true) {
                return Err(ApiError::invalid(
                    &param,
                    format!("The price specified is inactive: '{price_id}'"),
                ));
            }
            let recurring = !price["recurring"].is_null();
            if (mode == "payment" && recurring) || (mode == "subscription" && !recurring) {
                return Err(ApiError::invalid(
                    &param,
                    format!(
                        "The price '{price_id}' is {} but mode is {mode}",
                        if recurring { "recurring" } else { "one_time" }
                    ),
                ));
            }
            let quantity = item.int("quantity")?.unwrap_or(1);
            if quantity < 1 {
                return Err(ApiError::invalid("quantity", "Quantity must be at least 1"));
            }
            let amount = price["unit_amount"].as_i64().unwrap_or(0) * quantity;
            total += amount;
            currency = price["currency"].as_str().map(str::to_owned);
            let description = self
                .products
                .get(price["product"].as_str().unwrap_or_default())
                .and_then(|prod| prod["name"].as_str().map(str::to_owned));
            lines.push(json!({
                "id": new_id("li"),
                "object": "item",
                "amount_discount": 0,
                "amount_subtotal": amount,
                "amount_tax": 0,
                "amount_total": amount,
                "currency": price["currency"],
                "description": description,
                "price": price,
                "quantity": quantity,
            }));
        }
        let mut session = json!({
            "id": id,
            "object": "checkout.session",
            "amount_subtotal": total,
            "amount_total": total,
            "cancel_url": p.text("cancel_url"),
            "client_reference_id": p.text("client_reference_id"),
            "created": self.now(),
            "currency": currency,
            "customer": p.text("customer"),
            "customer_email": p.text("customer_email"),
            "expires_at": self.now() + 86_400,
            "invoice": null,
            "livemode": self.livemode,
            "metadata": {},
            "mode": mode,
            "payment_intent": null,
            "payment_status": if total == 0 && mode != "subscription" { "no_payment_required" } else { "unpaid" },
            "status": "open",
            "subscription": null,
            "success_url": p.text("success_url"),
            "url": format!("https://checkout.stripe.com/c/pay/{id}"),
        });
        merge_metadata(&mut session, p);
        self.line_items.insert(id.clone(), lines);
        self.sessions.insert(&id, session.clone());
        let _ = ctx;
        Ok((200, session))
    }

    pub fn retrieve_session(&self, id: &str) -> Answer {
        self.sessions
            .get(id)
            .cloned()
            .map(|v| (200, v))
            .ok_or_else(|| ApiError::missing("checkout.session", id))
    }

    pub fn session_line_items(&self, id: &str) -> Answer {
        let items = self
            .line_items
            .get(id)
            .ok_or_else(|| ApiError::missing("checkout.session", id))?;
        Ok((
            200,
            json!({
                "object": "list",
                "data": items,
                "has_more": false,
                "url": format!("/v1/checkout/sessions/{id}/line_items"),
            }),
        ))
    }

    /// What a customer finishing the payment page does. `paid: false` models a delayed
    /// payment method (the session completes unpaid; settle it with
    /// [`State::settle_async_payment`]).
    pub fn complete_session(&mut self, id: &str, paid: bool) -> Answer {
        let ctx = Ctx::default();
        let session = self
            .sessions
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("checkout.session", id))?;
        if session["status"] != json!("open") {
            return Err(ApiError::invalid("id", format!("Session {id} is not open")));
        }
        let customer = match session["customer"].as_str() {
            Some(c) => c.to_owned(),
            None => {
                let (_, c) =
                    self.create_customer(&json!({"email": session["customer_email"]}), &ctx)?;
                c["id"].as_str().unwrap_or_default().to_owned()
            }
        };
        let lines = self.line_items.get(id).cloned().unwrap_or_default();
        let total = session["amount_total"].as_i64().unwrap_or(0);
        let currency = session["currency"].as_str().unwrap_or("usd").to_owned();
        let mut s = session.clone();
        s["customer"] = json!(customer);
        s["status"] = json!("complete");
        if s["payment_status"] != json!("no_payment_required") {
            s["payment_status"] = json!(if paid { "paid" } else { "unpaid" });
        }
        if s["mode"] == json!("subscription") {
            let sub = self.start_subscription(&customer, &lines, &s)?;
            s["subscription"] = sub["id"].clone();
            let invoice = self.bill_subscription(&sub, "subscription_create")?;
            s["invoice"] = invoice["id"].clone();
        } else if s["mode"] == json!("payment") && total > 0 {
            let pi = new_id("pi");
            s["payment_intent"] = json!(pi);
            if paid {
                self.create_charge(&customer, total, &currency, &pi);
            }
        }
        self.sessions.insert(id, s.clone());
        self.emit("checkout.session.completed", &s, None, &ctx);
        Ok((200, s))
    }

    /// Settles a session completed unpaid: `async_payment_succeeded` or `…_failed`.
    pub fn settle_async_payment(&mut self, id: &str, succeeded: bool) -> Answer {
        let mut s = self
            .sessions
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("checkout.session", id))?;
        if s["status"] != json!("complete") || s["payment_status"] != json!("unpaid") {
            return Err(ApiError::invalid(
                "id",
                format!("Session {id} has no pending payment"),
            ));
        }
        if succeeded {
            s["payment_status"] = json!("paid");
            let customer = s["customer"].as_str().unwrap_or_default().to_owned();
            let pi = s["payment_intent"].as_str().unwrap_or_default().to_owned();
            let total = s["amount_total"].as_i64().unwrap_or(0);
            let currency = s["currency"].as_str().unwrap_or("usd").to_owned();
            self.create_charge(&customer, total, &currency, &pi);
        }
        self.sessions.insert(id, s.clone());
        let kind = if succeeded {
            "checkout.session.async_payment_succeeded"
        } else {
            "checkout.session.async_payment_failed"
        };
        self.emit(kind, &s, None, &Ctx::default());
        Ok((200, s))
    }

    fn create_charge(
        &mut self,
        customer: &str,
        amount: i64,
        currency: &str,
        payment_intent: &str,
    ) -> Value {
        let id = new_id("ch");
        let charge = json!({
            "id": id,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": 0,
            "created": self.now(),
            "currency": currency,
            "customer": customer,
            "livemode": self.livemode,
            "paid": true,
            "payment_intent": payment_intent,
            "refunded": false,
            "refunds": {"object": "list", "data": [], "has_more": false},
            "status": "succeeded",
        });
        self.charges.insert(&id, charge.clone());
        self.emit("charge.succeeded", &charge, None, &Ctx::default());
        charge
    }

    // ----- subscriptions and invoices -------------------------------------------

    fn start_subscription(
        &mut self,
        customer: &str,
        lines: &[Value],
        session: &Value,
    ) -> Result<Value, ApiError> {
        let id = new_id("sub");
        let now = self.now();
        let mut items = Vec::new();
        for line in lines {
            let price = line["price"].clone();
            let interval = price["recurring"]["interval"].as_str().unwrap_or("month");
            let count = price["recurring"]["interval_count"].as_i64().unwrap_or(1);
            items.push(json!({
                "id": new_id("si"),
                "object": "subscription_item",
                "created": now,
                "current_period_start": now,
                "current_period_end": now + interval_seconds(interval) * count,
                "price": price,
                "quantity": line["quantity"],
                "subscription": id,
            }));
        }
        let sub = json!({
            "id": id,
            "object": "subscription",
            "cancel_at_period_end": false,
            "canceled_at": null,
            "created": now,
            "currency": session["currency"],
            "customer": customer,
            "items": {"object": "list", "data": items, "has_more": false},
            "latest_invoice": null,
            "livemode": self.livemode,
            "metadata": session["metadata"],
            "status": "active",
        });
        self.subscriptions.insert(&id, sub.clone());
        self.emit("customer.subscription.created", &sub, None, &Ctx::default());
        Ok(sub)
    }

    /// Issues and pays an invoice for the subscription's current period.
    fn bill_subscription(&mut self, sub: &Value, reason: &str) -> Result<Value, ApiError> {
        let id = new_id("in");
        let now = self.now();
        let customer = sub["customer"].as_str().unwrap_or_default().to_owned();
        let mut lines = Vec::new();
        let mut total = 0;
        let (mut start, mut end) = (now, now);
        for item in sub["items"]["data"].as_array().into_iter().flatten() {
            let qty = item["quantity"].as_i64().unwrap_or(1);
            let amount = item["price"]["unit_amount"].as_i64().unwrap_or(0) * qty;
            total += amount;
            start = item["current_period_start"].as_i64().unwrap_or(now);
            end = item["current_period_end"].as_i64().unwrap_or(now);
            lines.push(json!({
                "id": new_id("il"),
                "object": "line_item",
                "amount": amount,
                "currency": item["price"]["currency"],
                "period": {"start": start, "end": end},
                "pricing": {"type": "price_details", "price_details": {"price": item["price"]["id"], "product": item["price"]["product"]}},
                "quantity": qty,
            }));
        }
        let currency = sub["currency"].as_str().unwrap_or("usd").to_owned();
        let pi = new_id("pi");
        let invoice = json!({
            "id": id,
            "object": "invoice",
            "amount_due": total,
            "amount_paid": total,
            "billing_reason": reason,
            "created": now,
            "currency": currency,
            "customer": customer,
            "lines": {"object": "list", "data": lines, "has_more": false},
            "livemode": self.livemode,
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub["id"], "metadata": sub["metadata"]}},
            "period_start": start,
            "period_end": end,
            "status": "paid",
        });
        self.invoices.insert(&id, invoice.clone());
        if total > 0 {
            self.create_charge(&customer, total, &currency, &pi);
            self.invoice_payments.insert(id.clone(), pi.clone());
        }
        if let Some(s) = sub["id"]
            .as_str()
            .and_then(|sid| self.subscriptions.get_mut(sid))
        {
            s["latest_invoice"] = json!(id);
        }
        self.emit("invoice.paid", &invoice, None, &Ctx::default());
        Ok(invoice)
    }

    /// Moves the subscription into its next period and bills it (`invoice.paid`).
    pub fn renew_subscription(&mut self, id: &str) -> Answer {
        let mut sub = self
            .subscriptions
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("subscription", id))?;
        let before = sub.clone();
        for item in sub["items"]["data"].as_array_mut().into_iter().flatten() {
            let interval = item["price"]["recurring"]["interval"]
                .as_str()
                .unwrap_or("month")
                .to_owned();
            let count = item["price"]["recurring"]["interval_count"]
                .as_i64()
                .unwrap_or(1);
            let end = item["current_period_end"].as_i64().unwrap_or(0);
            item["current_period_start"] = json!(end);
            item["current_period_end"] = json!(end + interval_seconds(&interval) * count);
        }
        self.subscriptions.insert(id, sub.clone());
        self.emit(
            "customer.subscription.updated",
            &sub,
            Some(diff(&before, &sub)),
            &Ctx::default(),
        );
        let invoice = self.bill_subscription(&sub, "subscription_cycle")?;
        Ok((200, invoice))
    }

    /// Cancels now (`customer.subscription.deleted`) or at period end (`…updated`).
    pub fn cancel_subscription(&mut self, id: &str, at_period_end: bool) -> Answer {
        let mut sub = self
            .subscriptions
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("subscription", id))?;
        let before = sub.clone();
        if at_period_end {
            sub["cancel_at_period_end"] = json!(true);
        } else {
            sub["status"] = json!("canceled");
            sub["canceled_at"] = json!(self.now());
        }
        self.subscriptions.insert(id, sub.clone());
        let kind = if at_period_end {
            "customer.subscription.updated"
        } else {
            "customer.subscription.deleted"
        };
        self.emit(kind, &sub, Some(diff(&before, &sub)), &Ctx::default());
        Ok((200, sub))
    }

    /// An invoice; with `expand[]=payments`, its payments as Stripe lists them.
    pub fn retrieve_invoice(&self, id: &str, p: &Value) -> Answer {
        let (status, mut invoice) = self.retrieve("invoice", id)?;
        let expand = p["expand"].as_array().cloned().unwrap_or_default();
        if expand.iter().any(|e| e == "payments") {
            let data: Vec<Value> = self
                .invoice_payments
                .get(id)
                .map(|pi| {
                    json!({"object": "invoice_payment", "invoice": id, "status": "paid",
                           "payment": {"type": "payment_intent", "payment_intent": pi}})
                })
                .into_iter()
                .collect();
            invoice["payments"] = json!({"object": "list", "data": data, "has_more": false});
        }
        Ok((status, invoice))
    }

    pub fn retrieve(&self, kind: &str, id: &str) -> Answer {
        let coll = match kind {
            "subscription" => &self.subscriptions,
            "invoice" => &self.invoices,
            "charge" => &self.charges,
            "refund" => &self.refunds,
            "event" => &self.events,
            _ => &self.customers,
        };
        coll.get(id)
            .cloned()
            .map(|v| (200, v))
            .ok_or_else(|| ApiError::missing(kind, id))
    }

    // ----- refunds --------------------------------------------------------------

    pub fn create_refund(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let charge_id = match (p.text("charge"), p.text("payment_intent")) {
            (Some(c), _) => c,
            (None, Some(pi)) => self
                .charges
                .values()
                .find(|c| c["payment_intent"] == json!(pi))
                .and_then(|c| c["id"].as_str().map(str::to_owned))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "payment_intent",
                        format!("No charge for payment intent '{pi}'"),
                    )
                })?,
            (None, None) => return Err(ApiError::required("charge")),
        };
        let mut charge =
            self.charges.get(&charge_id).cloned().ok_or_else(|| {
                ApiError::invalid("charge", format!("No such charge: '{charge_id}'"))
            })?;
        let amount_total = charge["amount"].as_i64().unwrap_or(0);
        let refunded = charge["amount_refunded"].as_i64().unwrap_or(0);
        let amount = p.int("amount")?.unwrap_or(amount_total - refunded);
        if amount <= 0 || refunded + amount > amount_total {
            return Err(ApiError::invalid(
                "amount",
                format!(
                    "Refund amount ({amount}) is greater than unrefunded amount on charge ({})",
                    amount_total - refunded
                ),
            ));
        }
        let id = new_id("re");
        let refund = json!({
            "id": id,
            "object": "refund",
            "amount": amount,
            "charge": charge_id,
            "created": self.now(),
            "currency": charge["currency"],
            "payment_intent": charge["payment_intent"],
            "status": "succeeded",
        });
        self.refunds.insert(&id, refund.clone());
        let before = charge.clone();
        charge["amount_refunded"] = json!(refunded + amount);
        charge["refunded"] = json!(refunded + amount == amount_total);
        if let Some(list) = charge["refunds"]["data"].as_array_mut() {
            list.insert(0, refund.clone());
        }
        self.charges.insert(&charge_id, charge.clone());
        self.emit("refund.created", &refund, None, ctx);
        self.emit(
            "charge.refunded",
            &charge,
            Some(diff(&before, &charge)),
            ctx,
        );
        Ok((200, refund))
    }
}

/// The top-level fields of `before` that differ in `after`, as Stripe's
/// `previous_attributes`.
fn diff(before: &Value, after: &Value) -> Value {
    let mut out = Map::new();
    if let (Some(b), Some(a)) = (before.as_object(), after.as_object()) {
        for (k, v) in b {
            if a.get(k) != Some(v) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}
