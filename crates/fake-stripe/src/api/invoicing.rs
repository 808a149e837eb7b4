//! One-off invoices, as at 2025-03-31.basil: a draft made with `POST /v1/invoices`,
//! lines added with `POST /v1/invoiceitems`, finalized, then paid (on or off session,
//! with a saved card) or voided. This is how a customer is charged an amount outside a
//! subscription, such as a credit top-up. Built on the subscription invoices' code in
//! `billing` (the same draft object, lines, finalization and payment bookkeeping).
//!
//! - `POST /v1/invoices`: `customer`, `collection_method` (`charge_automatically`, the
//!   default, only), `auto_advance` ("`auto_advance` now also defaults to `false` for
//!   one-off invoices",
//!   docs.stripe.com/changelog/2018-11-08/one-off-invoices-no-longer-auto-collect-payment;
//!   when `true` "Stripe does everything to drive the invoice towards payment—including
//!   automatically finalizing draft invoices after one hour",
//!   docs.stripe.com/invoicing/integration/automatic-advancement-collection, shown in
//!   `automatically_finalizes_at`; the fake itself finalizes and pays nothing on a
//!   timer), `pending_invoice_items_behavior` (`exclude` | `include`: "Defaults to
//!   `exclude` if the parameter is omitted", stripe@18.0.0 `InvoiceCreateParams`),
//!   `currency` ("Defaults to that of `customer`"), `description`, `metadata`. The draft
//!   has no `parent` and `billing_reason: manual`.
//! - `POST /v1/invoiceitems`: `customer`, `invoice` (a draft of that customer),
//!   `pricing[price]` ("When creating or updating Invoice Items, use the `pricing`
//!   parameter instead of `price` (for example, set `pricing.price` instead of passing
//!   the `price` parameter)",
//!   docs.stripe.com/changelog/basil/2025-03-31/invoice-pricing-configurations; `price`
//!   itself is refused as an unknown parameter) or `amount` with `currency`, `quantity`,
//!   `description`, `metadata`, `period`. Without a `period` the item's period starts and
//!   ends when it is created, as in the object's example at
//!   docs.stripe.com/api/invoiceitems/object (`"period": {"end": 1680640231, "start":
//!   1680640231}`, its `date`). An item with no `invoice` waits for a one-off invoice
//!   made with `include` ("If no invoice is specified, the item will be on the next
//!   invoice created for the customer specified", docs.stripe.com/api/invoiceitems/create;
//!   the fake does not put it on subscription invoices).
//! - `POST /v1/invoices/{id}/finalize` (`auto_advance`): open, numbered, the customer's
//!   balance applied as for subscription invoices; a total of zero is paid at once.
//! - `POST /v1/invoices/{id}/pay`: `off_session` ("Defaults to `true` (off-session)",
//!   `InvoicePayParams`), `payment_method` ("must be the ID of a PaymentMethod belonging
//!   to the customer associated with the invoice being paid"), else the invoice's
//!   `default_payment_method`, the subscription's, then the customer's
//!   `invoice_settings.default_payment_method`
//!   (docs.stripe.com/billing/subscriptions/payment-methods-setting#payment-method-priority).
//!   The card is charged through the invoice's PaymentIntent ([`State::charge_card`]): paid
//!   (`invoice.paid`, `invoice.payment_succeeded`), or a `402` with the invoice left open:
//!   `invoice.payment_failed` ("Occurs whenever an invoice payment attempt fails, due to
//!   either a declined payment, including soft decline, or to the lack of a stored
//!   payment method", `EventTypes.d.ts`) for a decline and for an off-session payment
//!   that needs authentication, `invoice.payment_action_required` ("Occurs whenever an
//!   invoice payment attempt requires further user action to complete") on session.
//!   With no card at all, a one-off invoice fails with Stripe's "This customer has no
//!   attached payment source or default payment method" (`400`, nothing attempted); a
//!   subscription invoice is paid with the card the subscription was started with, which
//!   the fake does not keep as a PaymentMethod ([`State::pay_invoice`]).
//! - `POST /v1/invoices/{id}/void`: an open (or uncollectible) invoice becomes `void`
//!   (`invoice.voided`); its PaymentIntent is canceled (`void_invoice`).

use serde_json::{Value, json};

use super::billing::{already_paid, invoice_subscription};
use super::payment_methods::CardOutcome;
use super::{Answer, ApiError, Ctx, Params, State, merge_metadata, new_id};

pub(super) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, ctx: &Ctx) -> Option<Answer> {
    Some(match (m, seg) {
        ("POST", ["v1", "invoices"]) => s.create_invoice(p, ctx),
        ("POST", ["v1", "invoices", id, "finalize"]) => s.finalize_invoice(id, p, ctx),
        ("POST", ["v1", "invoices", id, "pay"]) => s.pay_invoice_with(id, p, ctx),
        ("POST", ["v1", "invoices", id, "void"]) => s.void_invoice(id, ctx),
        ("POST", ["v1", "invoiceitems"]) => s.create_invoice_item(p, ctx),
        _ => return None,
    })
}

/// Stripe's answer to a parameter the API version does not have.
fn unknown_parameter(param: &str) -> ApiError {
    ApiError {
        status: 400,
        kind: "invalid_request_error",
        code: Some("parameter_unknown"),
        message: format!("Received unknown parameter: {param}"),
        param: Some(param.into()),
        detail: None,
    }
}

impl State {
    /// `POST /v1/invoices`: a draft one-off invoice (`invoice.created`). See the module
    /// doc for the parameters.
    pub fn create_invoice(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let customer = p
            .text("customer")
            .ok_or_else(|| ApiError::required("customer"))?;
        let Some(c) = self.customers.get(&customer).cloned() else {
            return Err(ApiError::no_such("customer", "customer", &customer));
        };
        match p.text("collection_method").as_deref() {
            None | Some("charge_automatically") => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    "collection_method",
                    format!(
                        "The fake supports collection_method=charge_automatically only, not {other}."
                    ),
                ));
            }
        }
        let include = match p.text("pending_invoice_items_behavior").as_deref() {
            None | Some("exclude") => false,
            Some("include") => true,
            Some(other) => {
                return Err(ApiError::invalid(
                    "pending_invoice_items_behavior",
                    format!(
                        "Invalid pending_invoice_items_behavior: must be one of exclude or include; got {other}"
                    ),
                ));
            }
        };
        let auto_advance = p.flag("auto_advance")?.unwrap_or(false);
        let currency = p
            .text("currency")
            .or_else(|| c["currency"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "usd".into())
            .to_lowercase();
        let now = self.now();
        let mut invoice =
            self.invoice_skeleton(&customer, &currency, "manual", Value::Null, (now, now));
        invoice["auto_advance"] = json!(auto_advance);
        if auto_advance {
            invoice["automatically_finalizes_at"] = json!(now + 3600);
        }
        if let Some(d) = p.text("description") {
            invoice["description"] = json!(d);
        }
        merge_metadata(&mut invoice, p);
        let id = invoice["id"].as_str().unwrap_or_default().to_owned();
        self.invoices.insert(&id, invoice);
        // `include` takes the customer's pending items that are not waiting for a
        // subscription's invoice (the fake keeps prorations for their subscription).
        let lines: Vec<Value> = if include {
            let pending: Vec<Value> = self
                .invoice_items
                .values()
                .filter(|ii| {
                    ii["invoice"].is_null()
                        && ii["customer"] == json!(customer)
                        && ii["currency"] == json!(currency)
                        && ii["parent"].is_null()
                })
                .cloned()
                .collect();
            pending
                .iter()
                .map(|ii| self.item_line(ii, Value::Null))
                .collect()
        } else {
            Vec::new()
        };
        self.set_invoice_lines(&id, lines);
        let invoice = self.invoices.get(&id).cloned().unwrap_or_default();
        self.emit("invoice.created", &invoice, None, ctx);
        Ok((200, invoice))
    }

    /// `POST /v1/invoiceitems` (see the module doc): `invoiceitem.created`; on a draft
    /// `invoice` the item becomes a line of it at once.
    pub fn create_invoice_item(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        if p.get("price").is_some() {
            return Err(unknown_parameter("price"));
        }
        let customer = p
            .text("customer")
            .ok_or_else(|| ApiError::required("customer"))?;
        if self.customers.get(&customer).is_none() {
            return Err(ApiError::no_such("customer", "customer", &customer));
        }
        let invoice = match p.text("invoice") {
            None => None,
            Some(inv) => {
                let i = self
                    .invoices
                    .get(&inv)
                    .cloned()
                    .ok_or_else(|| ApiError::no_such("invoice", "invoice", &inv))?;
                if i["customer"] != json!(customer) {
                    return Err(ApiError::invalid(
                        "invoice",
                        format!("The invoice {inv} belongs to another customer."),
                    ));
                }
                if i["status"] != json!("draft") {
                    return Err(ApiError::invalid(
                        "invoice",
                        format!(
                            "Invoice items can only be added to draft invoices; {inv} is {}.",
                            i["status"].as_str().unwrap_or_default()
                        ),
                    ));
                }
                Some(i)
            }
        };
        let quantity = p.int("quantity")?.unwrap_or(1);
        if quantity < 1 {
            return Err(ApiError::invalid("quantity", "Quantity must be at least 1"));
        }
        let (amount, currency, pricing, default_description) = match (
            p["pricing"].text("price"),
            p.int("amount")?,
        ) {
            (Some(price_id), None) => {
                let price = self
                    .prices
                    .get(&price_id)
                    .cloned()
                    .ok_or_else(|| ApiError::no_such("pricing[price]", "price", &price_id))?;
                if price["active"] != json!(true) {
                    return Err(ApiError::invalid(
                        "pricing[price]",
                        format!("The price specified is inactive: '{price_id}'"),
                    ));
                }
                if !price["recurring"].is_null() {
                    return Err(ApiError::invalid(
                        "pricing[price]",
                        format!(
                            "The price specified is set to `type=recurring` but this field only accepts prices with `type=one_time`: '{price_id}'"
                        ),
                    ));
                }
                let unit = price["unit_amount"].as_i64().unwrap_or(0);
                let pricing = json!({
                    "price_details": {"price": price["id"], "product": price["product"]},
                    "type": "price_details",
                    "unit_amount_decimal": price["unit_amount_decimal"],
                });
                (
                    unit * quantity,
                    price["currency"].as_str().unwrap_or("usd").to_owned(),
                    pricing,
                    json!(self.product_name(&price["product"])),
                )
            }
            (None, Some(amount)) => {
                let currency = p
                    .text("currency")
                    .ok_or_else(|| ApiError::required("currency"))?
                    .to_lowercase();
                (amount, currency, Value::Null, Value::Null)
            }
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "amount",
                    "You may only specify one of these parameters: amount, pricing.",
                ));
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    "pricing",
                    "You must specify either `amount` or `pricing[price]`.",
                ));
            }
        };
        if let Some(i) = &invoice
            && i["currency"] != json!(currency)
        {
            return Err(ApiError::invalid(
                "invoice",
                format!(
                    "The invoice is in {} but the item is in {currency}.",
                    i["currency"].as_str().unwrap_or_default()
                ),
            ));
        }
        let now = self.now();
        let start = p["period"].int("start")?.unwrap_or(now);
        let end = p["period"].int("end")?.unwrap_or(now);
        if end < start {
            return Err(ApiError::invalid(
                "period[end]",
                "The end of the period must be greater than or equal to the start.",
            ));
        }
        let id = new_id("ii");
        let mut ii = json!({
            "id": id,
            "object": "invoiceitem",
            "amount": amount,
            "currency": currency,
            "customer": customer,
            "date": now,
            "description": p.text("description").map(Value::from).unwrap_or(default_description),
            "discountable": true,
            "discounts": [],
            "invoice": null,
            "livemode": self.livemode,
            "metadata": {},
            "parent": null,
            "period": {"end": end, "start": start},
            "pricing": pricing,
            "proration": false,
            "quantity": quantity,
            "tax_rates": [],
            "test_clock": null,
        });
        merge_metadata(&mut ii, p);
        if let Some(i) = &invoice {
            ii["invoice"] = i["id"].clone();
        }
        self.invoice_items.insert(&id, ii.clone());
        self.emit("invoiceitem.created", &ii, None, ctx);
        if let Some(inv) = invoice.as_ref().and_then(|i| i["id"].as_str()) {
            let line = self.item_line(&ii, Value::Null);
            self.set_invoice_lines(inv, vec![line]);
        }
        Ok((200, ii))
    }

    /// `POST /v1/invoices/{id}/finalize` (`auto_advance`): `invoice.finalized` (and
    /// `invoice.paid` when nothing is due). Only drafts can be finalized.
    pub fn finalize_invoice(&mut self, id: &str, p: &Value, ctx: &Ctx) -> Answer {
        let _ = ctx;
        let invoice = self
            .invoices
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("invoice", id))?;
        if invoice["status"] != json!("draft") {
            return Err(ApiError {
                status: 400,
                kind: "invalid_request_error",
                code: Some("invoice_not_editable"),
                message:
                    "This invoice is already finalized, you can't re-finalize a non-draft invoice."
                        .into(),
                param: None,
                detail: None,
            });
        }
        if let Some(inv) = self.invoices.get_mut(id) {
            if let Some(auto) = p.flag("auto_advance")? {
                inv["auto_advance"] = json!(auto);
            }
            inv["automatically_finalizes_at"] = Value::Null;
        }
        let invoice = self.open_invoice(id);
        if let (Some(pi), Some(customer)) = (
            self.payments_of(id)
                .iter()
                .find(|p| p["is_default"] == json!(true))
                .and_then(|p| p["payment"]["payment_intent"].as_str().map(str::to_owned)),
            invoice["customer"].as_str(),
        ) {
            let amount = invoice["amount_remaining"].as_i64().unwrap_or(0);
            let currency = invoice["currency"].as_str().unwrap_or("usd").to_owned();
            self.ensure_payment_intent(&pi, amount, &currency, Some(customer));
        }
        Ok((200, invoice))
    }

    /// The saved card an invoice is paid with when the request names none (module doc).
    fn invoice_payment_method(&self, invoice: &Value) -> Option<String> {
        if let Some(pm) = invoice["default_payment_method"].as_str() {
            return Some(pm.to_owned());
        }
        if let Some(pm) = invoice_subscription(invoice)
            .and_then(|s| self.subscriptions.get(&s))
            .and_then(|s| s["default_payment_method"].as_str())
        {
            return Some(pm.to_owned());
        }
        invoice["customer"]
            .as_str()
            .and_then(|c| self.customers.get(c))
            .and_then(|c| c["invoice_settings"]["default_payment_method"].as_str())
            .map(str::to_owned)
    }

    /// `POST /v1/invoices/{id}/pay` with `off_session` and `payment_method` (module doc).
    pub fn pay_invoice_with(&mut self, id: &str, p: &Value, ctx: &Ctx) -> Answer {
        let _ = ctx;
        let invoice = self
            .invoices
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("invoice", id))?;
        match invoice["status"].as_str() {
            Some("open") => {}
            Some("draft") => {
                return Err(ApiError::invalid(
                    "invoice",
                    format!("Invoice {id} is a draft: finalize it before paying it."),
                ));
            }
            _ => return Err(already_paid()),
        }
        let off_session = p.flag("off_session")?.unwrap_or(true);
        let customer = invoice["customer"].as_str().unwrap_or_default().to_owned();
        let pm = match p.text("payment_method") {
            Some(pm) => {
                let belongs = self
                    .payment_methods
                    .get(&pm)
                    .is_some_and(|m| m["customer"] == json!(customer));
                if !belongs {
                    return Err(ApiError::no_such("payment_method", "PaymentMethod", &pm));
                }
                Some(pm)
            }
            None => self.invoice_payment_method(&invoice),
        };
        let Some(pm) = pm else {
            if invoice_subscription(&invoice).is_some() {
                return self.pay_invoice(id);
            }
            return Err(ApiError {
                status: 400,
                kind: "invalid_request_error",
                code: Some("resource_missing"),
                message: "This customer has no attached payment source or default payment method. Please consider adding a default payment method. For more information, visit https://stripe.com/docs/billing/subscriptions/payment-methods-setting#payment-method-priority.".into(),
                param: Some("default_payment_method".into()),
                detail: None,
            });
        };
        let remaining = invoice["amount_remaining"].as_i64().unwrap_or(0);
        let currency = invoice["currency"].as_str().unwrap_or("usd").to_owned();
        let inpay = self.default_invoice_payment(id, remaining);
        let pi = self
            .invoice_payment_objects
            .get(&inpay)
            .and_then(|p| p["payment"]["payment_intent"].as_str())
            .unwrap_or_default()
            .to_owned();
        self.ensure_payment_intent(&pi, remaining, &currency, Some(&customer));
        self.count_attempt(id);
        if let Some(inv) = self.invoices.get_mut(id) {
            inv["attempted"] = json!(true);
        }
        let ctx = Ctx::default();
        match self.charge_card(&pi, &pm, off_session) {
            CardOutcome::Paid => {
                self.settle_invoice_payment(&inpay);
                self.mark_paid(id);
                self.retrieve("invoice", id)
            }
            CardOutcome::Failed(error) => {
                let now = self.now();
                let inv = self.invoices.get_mut(id).expect("the invoice exists");
                // Automatic collection retries (Smart Retries); without it the invoice
                // waits for the next explicit attempt.
                inv["next_payment_attempt"] = if inv["auto_advance"] == json!(true) {
                    json!(now + 3 * 86_400)
                } else {
                    Value::Null
                };
                let inv = inv.clone();
                self.emit("invoice.payment_failed", &inv, None, &ctx);
                Err(error)
            }
            CardOutcome::ActionRequired(error) => {
                let inv = self.invoices.get(id).cloned().unwrap_or_default();
                self.emit("invoice.payment_action_required", &inv, None, &ctx);
                Err(error)
            }
        }
    }

    /// `POST /v1/invoices/{id}/void`: `void` (`invoice.voided`), its default payment
    /// and PaymentIntent canceled.
    pub fn void_invoice(&mut self, id: &str, ctx: &Ctx) -> Answer {
        let invoice = self
            .invoices
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("invoice", id))?;
        if !matches!(invoice["status"].as_str(), Some("open" | "uncollectible")) {
            return Err(ApiError::invalid(
                "invoice",
                format!(
                    "You can only void an open or uncollectible invoice; {id} is {}.",
                    invoice["status"].as_str().unwrap_or_default()
                ),
            ));
        }
        let now = self.now();
        let payments = self.payments_of(id);
        for p in payments.iter().filter(|p| p["status"] == json!("open")) {
            if let Some(pi) = p["payment"]["payment_intent"]
                .as_str()
                .and_then(|pi| self.payment_intents.get_mut(pi))
            {
                pi["status"] = json!("canceled");
                pi["canceled_at"] = json!(now);
                pi["cancellation_reason"] = json!("void_invoice");
            }
            if let Some(pay) = p["id"]
                .as_str()
                .and_then(|i| self.invoice_payment_objects.get_mut(i))
            {
                pay["status"] = json!("canceled");
                pay["status_transitions"]["canceled_at"] = json!(now);
            }
        }
        let inv = self.invoices.get_mut(id).expect("the invoice exists");
        inv["status"] = json!("void");
        inv["status_transitions"]["voided_at"] = json!(now);
        inv["auto_advance"] = json!(false);
        inv["next_payment_attempt"] = Value::Null;
        let inv = inv.clone();
        self.emit("invoice.voided", &inv, None, ctx);
        Ok((200, inv))
    }
}
