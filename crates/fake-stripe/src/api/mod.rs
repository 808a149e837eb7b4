//! The stateful part of the fake: Stripe's objects, their JSON shapes, and the events
//! that changes to them produce. Handlers take decoded parameters (a JSON tree of
//! strings, see [`crate::form`]) and return `(status, body)`.
//!
//! One module per resource, each with its own routes:
//! - `catalog`: products and prices
//! - `customers`: customers (and their credit balance)
//! - `checkout`: Checkout Sessions and their line items
//! - `billing`: subscriptions, invoices, invoice items, invoice payments, prorations
//! - `invoicing`: one-off invoices (draft, invoice items, finalize, pay with a saved card
//!   on or off session, void)
//! - `payments`: charges, refunds, disputes
//! - `payment_methods`: saved cards (PaymentMethods) with test-card behaviour, and the
//!   PaymentIntents that charge them
//! - `entitlements`: features, product features, customers' active entitlements and the
//!   summary event when they change
//! - `credit_notes`: credit notes (money given back on an invoice)
//! - `schedules`: subscription schedules (a plan change at the period's end)
//! - `portal`: customer portal sessions
//! - `events`: the Events API
//!
//! Every JSON shape here is checked against Stripe's own TypeScript definitions for
//! API version 2025-03-31.basil (`stripe@18.0.0`) by `scripts/typecheck-fake`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::store::Collection;

mod billing;
mod catalog;
mod checkout;
mod credit_notes;
mod customers;
mod entitlements;
mod events;
mod invoicing;
mod payment_methods;
mod payments;
mod portal;
mod schedules;

/// A Stripe-shaped error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
    /// More fields of Stripe's error object, merged in as they are: a card error's
    /// `decline_code`, `charge`, `payment_intent`, `payment_method`, `doc_url`.
    pub detail: Option<Box<Value>>,
}

impl ApiError {
    pub fn missing(kind: &str, id: &str) -> Self {
        Self {
            status: 404,
            kind: "invalid_request_error",
            code: Some("resource_missing"),
            message: format!("No such {kind}: '{id}'"),
            param: Some("id".into()),
            detail: None,
        }
    }

    /// A parameter naming an object that does not exist: Stripe answers 400 (not 404,
    /// the request URL itself was fine) with `resource_missing` and the parameter.
    pub fn no_such(param: &str, kind: &str, id: &str) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            code: Some("resource_missing"),
            message: format!("No such {kind}: '{id}'"),
            param: Some(param.into()),
            detail: None,
        }
    }

    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            code: Some("parameter_invalid"),
            message: message.into(),
            param: Some(param.into()),
            detail: None,
        }
    }

    pub fn required(param: &str) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            code: Some("parameter_missing"),
            message: format!("Missing required param: {param}."),
            param: Some(param.into()),
            detail: None,
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
        if let Some(Value::Object(detail)) = self.detail.as_deref() {
            for (k, v) in detail {
                error[k.as_str()] = v.clone();
            }
        }
        json!({ "error": error })
    }
}

pub type Answer = Result<(u16, Value), ApiError>;

pub(crate) fn random_tail(n: usize) -> String {
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
pub(crate) fn merge_metadata(target: &mut Value, params: &Value) {
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

pub(crate) fn interval_seconds(interval: &str) -> i64 {
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
    /// Customers deleted with `DELETE /v1/customers/{id}`: gone from `customers` (every
    /// other request naming them fails with "No such customer"), but retrieving one
    /// answers the deleted stub (`customers` module).
    pub deleted_customers: std::collections::HashSet<String>,
    pub sessions: Collection,
    pub subscriptions: Collection,
    /// Subscription schedules (`sub_sched_…`).
    pub schedules: Collection,
    pub invoices: Collection,
    /// Invoice items: pending ones (`invoice: null`) wait for the customer's next
    /// subscription invoice, which takes them.
    pub invoice_items: Collection,
    /// `invoice_payment` objects (`inpay_…`), one or more per invoice.
    pub invoice_payment_objects: Collection,
    /// The `invoice_payment` ids of each invoice, oldest first: an index, so paying an
    /// invoice does not scan every payment (seeding 30,000 invoices took minutes).
    pub payments_of_invoice: std::collections::HashMap<String, Vec<String>>,
    pub charges: Collection,
    pub refunds: Collection,
    pub disputes: Collection,
    /// Credit notes (`cn_…`).
    pub credit_notes: Collection,
    /// Saved payment methods (`pm_…`, cards) attached to customers.
    pub payment_methods: Collection,
    /// How each saved card behaves when charged: `succeeds`, `declines` or
    /// `requires_authentication` (see [`State::attach_card`]).
    pub card_behavior: HashMap<String, String>,
    /// PaymentIntents (`pi_…`) the fake keeps as objects: those of payment-mode
    /// Checkout Sessions and of invoices paid with a saved card.
    pub payment_intents: Collection,
    /// A payment-mode session's `payment_intent_data` (kept off the session object, as
    /// Stripe does): `setup_future_usage` and `metadata`, for the PaymentIntent it creates.
    pub session_payment_intent_data: HashMap<String, Value>,
    /// Entitlement features (`feat_…`).
    pub features: Collection,
    /// Features attached to products (`prodft_…`), stored as `{id, product, feature}`.
    pub product_features: Collection,
    /// Active entitlements (`ent_…`) of every customer, as served.
    pub active_entitlements: Collection,
    /// The customer of each active entitlement.
    pub entitlement_customer: HashMap<String, String>,
    /// Each customer's active entitlements as last announced
    /// (`entitlements.active_entitlement_summary.updated`): `(feature, entitlement)`.
    pub entitled: HashMap<String, Vec<(String, String)>>,
    /// The features each subscription entitles to, taken from its items' products when
    /// it starts, changes items or enters a new period (see the `entitlements` module).
    pub subscription_features: HashMap<String, Vec<String>>,
    /// Customer portal sessions (`bps_…`), which Stripe's API cannot retrieve or list.
    pub portal_sessions: Collection,
    /// The account's default customer portal configuration (`bpc_…`), used by sessions
    /// that name none.
    pub portal_configuration: String,
    pub events: Collection,
    pub line_items: HashMap<String, Vec<Value>>,
    /// A subscription-mode session's `subscription_data` (Stripe keeps it off the session
    /// object): its trial, for the subscription the session starts.
    pub session_subscription_data: HashMap<String, Value>,
    /// Every line of every invoice; the invoice object embeds only the first
    /// [`INVOICE_LINES_EMBEDDED`] (`lines.has_more`), `GET /v1/invoices/{id}/lines` pages.
    pub invoice_lines: HashMap<String, Vec<Value>>,
    /// The default payment intent that paid each invoice (the first part when it was
    /// paid in parts). Kept for tests; the full picture is `invoice_payment_objects`.
    pub invoice_payments: HashMap<String, String>,
    /// Seconds added to the wall clock, so tests can make time pass (see
    /// [`State::advance_clock`]).
    pub clock_offset: i64,
    /// The API version stamped on events and echoed when a request names none.
    pub api_version: String,
    /// Whether changes produce events (seeding a big catalog can turn this off).
    pub emit_events: bool,
    /// Events created since the last drain, for webhook delivery.
    pub outbox: Vec<Value>,
    /// Stamped on every object and event the fake creates.
    pub livemode: bool,
    /// The status new refunds start in: `succeeded` (cards, the default), `pending`
    /// (settle with [`State::settle_refund`]) or `requires_action` (cancelable).
    pub refund_start_status: String,
}

/// How many lines an invoice embeds, as Stripe (the rest via the lines endpoint).
pub const INVOICE_LINES_EMBEDDED: usize = 10;

impl Default for State {
    fn default() -> Self {
        Self {
            products: Collection::default(),
            prices: Collection::default(),
            customers: Collection::default(),
            deleted_customers: Default::default(),
            sessions: Collection::default(),
            subscriptions: Collection::default(),
            schedules: Collection::default(),
            invoices: Collection::default(),
            invoice_items: Collection::default(),
            invoice_payment_objects: Collection::default(),
            payments_of_invoice: Default::default(),
            charges: Collection::default(),
            refunds: Collection::default(),
            disputes: Collection::default(),
            credit_notes: Collection::default(),
            payment_methods: Collection::default(),
            card_behavior: HashMap::new(),
            payment_intents: Collection::default(),
            session_payment_intent_data: HashMap::new(),
            features: Collection::default(),
            product_features: Collection::default(),
            active_entitlements: Collection::default(),
            entitlement_customer: HashMap::new(),
            entitled: HashMap::new(),
            subscription_features: HashMap::new(),
            portal_sessions: Collection::default(),
            portal_configuration: new_id("bpc"),
            events: Collection::default(),
            line_items: HashMap::new(),
            session_subscription_data: HashMap::new(),
            invoice_lines: HashMap::new(),
            invoice_payments: HashMap::new(),
            clock_offset: 0,
            api_version: "2025-03-31.basil".into(),
            emit_events: true,
            outbox: Vec::new(),
            livemode: false,
            refund_start_status: "succeeded".into(),
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

    /// Makes `seconds` pass for everything the fake stamps (`created`, periods,
    /// proration times, `paid_at`). Nothing renews by itself: call
    /// [`State::renew_subscription`] when a test wants the next period.
    pub fn advance_clock(&mut self, seconds: i64) {
        self.clock_offset += seconds;
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
        // Stripe sends `request: {id: null, idempotency_key: null}` for changes no API
        // request made (automatic renewals, a customer paying on the hosted page).
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

    /// A small, realistic catalog for trying the service out (what `fake-stripe` starts
    /// with when no `--seed-*` flag is given): two credit packs, two monthly plans and
    /// one product whose `credit_amount` is not a number, to show validation. Returns
    /// the product ids. No events: a first `stripe-manager sync` finds them.
    pub fn seed_demo(&mut self) -> Vec<String> {
        let emit = std::mem::replace(&mut self.emit_events, false);
        let ctx = Ctx::default();
        let demo = [
            ("Starter pack", "100 credits, once", "100", "1000", None),
            ("Power pack", "500 credits, once", "500", "4000", None),
            (
                "Pro plan",
                "1,000 credits a month",
                "1000",
                "2900",
                Some("month"),
            ),
            (
                "Team plan",
                "5,000 credits a month",
                "5000",
                "9900",
                Some("month"),
            ),
            (
                "Mystery pack",
                "credit_amount is not a number",
                "lots",
                "500",
                None,
            ),
        ];
        let ids = demo
            .iter()
            .enumerate()
            .map(|(i, (name, description, credits, cents, interval))| {
                let mut price = json!({"currency": "usd", "unit_amount": cents});
                if let Some(interval) = interval {
                    price["recurring"] = json!({"interval": interval});
                }
                let params = json!({
                    "name": name,
                    "description": description,
                    "metadata": {"credit_amount": credits, "display_order": (i + 1).to_string()},
                    "default_price_data": price,
                });
                let (_, p) = self
                    .create_product(&params, &ctx)
                    .expect("valid demo product");
                p["id"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        self.emit_events = emit;
        ids
    }

    /// Seeds a billing history without events, for benchmarks: `customers` customers
    /// (`metadata.account` = `acct_<n>`), a monthly plan, `subscriptions` subscriptions to
    /// it (one per customer, each with its first paid invoice), then renewals round-robin
    /// until there are `invoices` invoices.
    pub fn seed_billing(&mut self, customers: usize, subscriptions: usize, invoices: usize) {
        let emit = std::mem::replace(&mut self.emit_events, false);
        let ctx = Ctx::default();
        let (_, product) = self
            .create_product(
                &json!({"name": "Seeded plan", "metadata": {"credit_amount": "100"}}),
                &ctx,
            )
            .expect("valid seed product");
        let (_, price) = self
            .create_price(
                &json!({"product": product["id"], "currency": "usd", "unit_amount": "1000",
                        "recurring": {"interval": "month"}}),
                &ctx,
            )
            .expect("valid seed price");
        let mut subs = Vec::new();
        for i in 0..customers {
            let (_, c) = self
                .create_customer(&json!({"email": format!("seed{i}@example.com"), "metadata": {"account": format!("acct_{i}")}}), &ctx)
                .expect("valid seed customer");
            if i < subscriptions {
                let (_, s) = self
                    .create_subscription(
                        &json!({"customer": c["id"], "items": [{"price": price["id"]}]}),
                        &ctx,
                    )
                    .expect("valid seed subscription");
                subs.push(s["id"].as_str().unwrap_or_default().to_owned());
            }
        }
        let mut made = self.invoices.len();
        let mut next = 0;
        while made < invoices && !subs.is_empty() {
            if self.renew_subscription(&subs[next % subs.len()]).is_ok() {
                made = self.invoices.len();
            }
            next += 1;
            if next > invoices * 2 {
                break;
            }
        }
        self.emit_events = emit;
    }

    /// One object by kind (`subscription`, `invoice`, `charge`, `refund`, `dispute`,
    /// `event`, `invoiceitem`, `invoice_payment`, `payment_method`, `payment_intent`,
    /// anything else: `customer`).
    pub fn retrieve(&self, kind: &str, id: &str) -> Answer {
        let coll = match kind {
            "subscription" => &self.subscriptions,
            "invoice" => &self.invoices,
            "charge" => &self.charges,
            "refund" => &self.refunds,
            "dispute" => &self.disputes,
            "event" => &self.events,
            "invoiceitem" => &self.invoice_items,
            "invoice_payment" => &self.invoice_payment_objects,
            "payment_method" => &self.payment_methods,
            "payment_intent" => &self.payment_intents,
            _ => &self.customers,
        };
        coll.get(id)
            .cloned()
            .map(|v| (200, v))
            .ok_or_else(|| ApiError::missing(kind, id))
    }

    /// A product's name, for line descriptions.
    pub(crate) fn product_name(&self, product: &Value) -> String {
        product
            .as_str()
            .and_then(|id| self.products.get(id))
            .and_then(|p| p["name"].as_str())
            .unwrap_or("Product")
            .to_owned()
    }
}

/// Routes a Stripe API request to the resource that owns it.
pub(crate) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, ctx: &Ctx) -> Answer {
    let routers: [Router; 12] = [
        catalog::route,
        entitlements::route,
        customers::route,
        payment_methods::route,
        checkout::route,
        schedules::route,
        credit_notes::route,
        invoicing::route,
        billing::route,
        payments::route,
        portal::route,
        events::route,
    ];
    for router in routers {
        if let Some(answer) = router(s, m, seg, p, ctx) {
            return answer;
        }
    }
    Err(ApiError {
        status: 404,
        kind: "invalid_request_error",
        code: None,
        message: format!(
            "Unrecognized request URL ({m}: /{}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
            seg.join("/")
        ),
        param: None,
        detail: None,
    })
}

/// A resource's routes: `None` when the request is not one of them.
type Router = fn(&mut State, &str, &[&str], &Value, &Ctx) -> Option<Answer>;

/// One page of `coll`, newest first, as Stripe's list object.
pub(crate) fn list(
    coll: &Collection,
    q: &Value,
    url: &str,
    filter: impl Fn(&Value) -> bool,
) -> Answer {
    let limit = list_limit(q)?;
    let after = q.text("starting_after");
    let before = q.text("ending_before");
    let page = coll
        .list(filter, limit, after.as_deref(), before.as_deref())
        .map_err(|id| ApiError::missing("object", &id))?;
    Ok((
        200,
        json!({"object": "list", "data": page.data, "has_more": page.has_more, "url": url}),
    ))
}

/// `limit`: 1–100, 10 by default.
pub(crate) fn list_limit(q: &Value) -> Result<usize, ApiError> {
    let limit = q.int("limit")?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("Invalid limit: must be between 1 and 100, got {limit}"),
        ));
    }
    Ok(limit as usize)
}

/// Pages a list kept in order (oldest first, like invoice lines, which Stripe lists in
/// invoice order rather than newest first).
pub(crate) fn page_in_order(items: &[Value], q: &Value, url: &str) -> Answer {
    let limit = list_limit(q)?;
    let start = match q.text("starting_after") {
        Some(after) => {
            items
                .iter()
                .position(|v| v["id"] == json!(after))
                .ok_or_else(|| ApiError::missing("object", &after))?
                + 1
        }
        None => 0,
    };
    let data: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + data.len() < items.len();
    Ok((
        200,
        json!({"object": "list", "data": data, "has_more": has_more, "url": url}),
    ))
}

pub(crate) fn field_is(v: &Value, key: &str, want: Option<String>) -> bool {
    match want {
        None => true,
        Some(w) => match &v[key] {
            Value::String(s) => *s == w,
            Value::Bool(b) => b.to_string() == w,
            Value::Number(n) => n.to_string() == w,
            _ => false,
        },
    }
}

pub(crate) fn created_in_range(v: &Value, q: &Value) -> bool {
    let created = v["created"].as_i64().unwrap_or(0);
    let c = &q["created"];
    let bound = |k: &str| {
        c.get(k)
            .and_then(|x| x.as_str())
            .and_then(|s| s.parse::<i64>().ok())
    };
    if let Some(exact) = c.as_str().and_then(|s| s.parse::<i64>().ok()) {
        return created == exact;
    }
    bound("gte").is_none_or(|b| created >= b)
        && bound("gt").is_none_or(|b| created > b)
        && bound("lte").is_none_or(|b| created <= b)
        && bound("lt").is_none_or(|b| created < b)
}

/// The top-level fields of `before` that differ in `after`, as Stripe's
/// `previous_attributes`.
pub(crate) fn diff(before: &Value, after: &Value) -> Value {
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

/// `15 Jun 2025` for a Unix time (UTC), as in Stripe's proration descriptions.
pub(crate) fn short_date(unix: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!("{day:02} {} {year}", MONTHS[(month - 1) as usize])
}

/// `$50.00` (USD) or `50.00 EUR`: amounts in line descriptions.
pub(crate) fn money(amount: i64, currency: &str) -> String {
    let major = format!("{}.{:02}", amount / 100, (amount % 100).abs());
    if currency.eq_ignore_ascii_case("usd") {
        format!("${major}")
    } else {
        format!("{major} {}", currency.to_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_dates() {
        assert_eq!(short_date(0), "01 Jan 1970");
        assert_eq!(short_date(1_749_945_600), "15 Jun 2025");
        assert_eq!(short_date(951_782_400), "29 Feb 2000");
    }
}
