//! Subscriptions, invoices, invoice items and invoice payments, as at 2025-03-31.basil:
//! billing periods live on subscription items; an invoice names its subscription under
//! `parent.subscription_details`; a line says where it came from under `parent`
//! (`subscription_item_details` for a period of a subscription item,
//! `invoice_item_details` for a pending invoice item such as a proration) and what it
//! costs under `pricing`; an invoice embeds at most ten lines (`lines.has_more`, the
//! rest at `GET /v1/invoices/{id}/lines`) and lists its payments as `invoice_payment`
//! objects (`GET /v1/invoice_payments?invoice=…`, or `expand[]=payments`).
//!
//! Plan changes (`POST /v1/subscriptions/{id}`) prorate to the second
//! (docs.stripe.com/billing/subscriptions/prorations): an "Unused time on …" credit for
//! the old price and a "Remaining time on …" charge for the new one, each
//! `unit_amount × quantity × (period end − proration time) / (period length)` rounded
//! to the nearest minor unit. `create_prorations` (the default) leaves them as pending
//! invoice items for the next invoice; `always_invoice` invoices them at once (a total
//! at or below zero is credited to the customer's balance); `none` makes none. A change
//! of billing interval, or from free to paid, resets the billing date instead: a credit
//! for the unused time (unless `none`) and the whole new period, invoiced and collected
//! at once. A `cancel_at` before the period's end credits the time after it.
//!
//! The customer's balance applies at finalization both ways (a credit lowers what is
//! due, a debit adds to it); an amount due below Stripe's minimum charge is left on the
//! balance and the invoice marked paid. Paused collection (`pause_collection`) keeps new
//! invoices as drafts, voids them without using the balance, or marks them
//! uncollectible ([`State::issue_invoice`]).
//!
//! Trials (docs.stripe.com/billing/subscriptions/trials): `trial_period_days` or
//! `trial_end` on create starts the subscription `trialing`, its period being the
//! trial, with an immediate $0 invoice ("Trial period for …" lines) that is paid at
//! once. When the trial ends ([`State::end_trial`]) a new billing cycle starts at
//! `trial_end` and its invoice is a `subscription_cycle` one, like any renewal.
//!
//! A subscription due to cancel (`cancel_at_period_end`, or a `cancel_at` no later than
//! the period end) ends at its period end instead of renewing: `canceled`, with
//! `ended_at` set and no invoice, sending `customer.subscription.deleted`.
//!
//! Entitlements: a subscription takes its products' features when it starts, when its
//! items change and when a period begins; every change of status ends with
//! [`State::sync_entitlements`] (module `entitlements`).
//!
//! Test hooks: [`State::advance_clock`] moves time; a subscription with many
//! `items[n][price]` makes an invoice with many lines (one per item).

use serde_json::{Value, json};

use super::{
    Answer, ApiError, Ctx, INVOICE_LINES_EMBEDDED, Params, State, diff, field_is, interval_seconds,
    list, merge_metadata, money, new_id, page_in_order, short_date,
};

pub(super) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, ctx: &Ctx) -> Option<Answer> {
    Some(match (m, seg) {
        // Stripe lists subscriptions that are not canceled unless `status` says otherwise;
        // `status=all` lists every one.
        ("GET", ["v1", "subscriptions"]) => list(&s.subscriptions, p, "/v1/subscriptions", |v| {
            field_is(v, "customer", p.text("customer"))
                && match p.text("status").as_deref() {
                    Some("all") => true,
                    Some(status) => v["status"] == json!(status),
                    None => v["status"] != json!("canceled"),
                }
        }),
        ("POST", ["v1", "subscriptions"]) => s.create_subscription(p, ctx),
        ("GET", ["v1", "subscriptions", id]) => s.retrieve("subscription", id),
        ("POST", ["v1", "subscriptions", id]) => s.update_subscription(id, p, ctx),
        ("DELETE", ["v1", "subscriptions", id]) => s.cancel_subscription(id, false),

        ("GET", ["v1", "invoices"]) => list(&s.invoices, p, "/v1/invoices", |v| {
            field_is(v, "customer", p.text("customer"))
                && field_is(v, "status", p.text("status"))
                && p.text("subscription").is_none_or(|sub| {
                    v["parent"]["subscription_details"]["subscription"] == json!(sub)
                })
        }),
        ("GET", ["v1", "invoices", id]) => s.retrieve_invoice(id, p),
        ("GET", ["v1", "invoices", id, "lines"]) => s.invoice_lines_page(id, p),

        ("GET", ["v1", "invoiceitems"]) => list(&s.invoice_items, p, "/v1/invoiceitems", |v| {
            field_is(v, "customer", p.text("customer"))
                && field_is(v, "invoice", p.text("invoice"))
                && p.text("pending")
                    .is_none_or(|want| (want == "true") == v["invoice"].is_null())
        }),
        ("GET", ["v1", "invoiceitems", id]) => s.retrieve("invoiceitem", id),

        ("GET", ["v1", "invoice_payments"]) => {
            let pi = p["payment"]["payment_intent"].as_str().map(str::to_owned);
            list(&s.invoice_payment_objects, p, "/v1/invoice_payments", |v| {
                field_is(v, "invoice", p.text("invoice"))
                    && field_is(v, "status", p.text("status"))
                    && pi
                        .as_ref()
                        .is_none_or(|pi| v["payment"]["payment_intent"] == json!(pi))
            })
        }
        ("GET", ["v1", "invoice_payments", id]) => s.retrieve("invoice_payment", id),
        _ => return None,
    })
}

/// `a × b / c` rounded half away from zero, without overflow for Stripe-sized amounts.
fn prorate(amount: i64, remaining: i64, period: i64) -> i64 {
    if period <= 0 {
        return 0;
    }
    let n = i128::from(amount) * i128::from(remaining);
    let d = i128::from(period);
    let q = (n.abs() * 2 + d) / (2 * d);
    (if n < 0 { -q } else { q }) as i64
}

/// What a price bills for `quantity` for one period.
fn billed(price: &Value, quantity: i64) -> i64 {
    price["unit_amount"].as_i64().unwrap_or(0) * quantity
}

/// A proration to become a pending invoice item (`proration: true`).
struct Proration {
    item: String,
    price: Value,
    quantity: i64,
    amount: i64,
    description: String,
    /// `proration_details.credited_items` of its line (a credit's).
    credited: Value,
    period: (i64, i64),
}

/// The per-unit amount of a prorated line, as Stripe's decimal string.
fn unit_decimal(amount: i64, quantity: i64) -> String {
    if quantity <= 1 || amount % quantity == 0 {
        return (amount / quantity.max(1)).to_string();
    }
    let s = format!("{:.12}", amount as f64 / quantity as f64);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The legacy `plan` view of a recurring price, still part of a subscription item.
pub(super) fn plan_of(price: &Value) -> Value {
    json!({
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": price["recurring"]["interval"],
        "interval_count": price["recurring"]["interval_count"],
        "livemode": price["livemode"],
        "metadata": price["metadata"],
        "meter": price["recurring"]["meter"],
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": price["tiers_mode"],
        "transform_usage": null,
        "trial_period_days": null,
        "usage_type": price["recurring"]["usage_type"],
    })
}

pub(super) fn period_of(price: &Value) -> i64 {
    let interval = price["recurring"]["interval"].as_str().unwrap_or("month");
    interval_seconds(interval) * price["recurring"]["interval_count"].as_i64().unwrap_or(1)
}

/// Stripe's smallest charge in `currency`, in minor units: 50 for USD ("$0.50 USD",
/// docs.stripe.com/currencies#minimum-and-maximum-charge-amounts). An invoice due less
/// than this is marked paid without a charge and what it owes moves to the customer's
/// balance ([`State::finalize_fields`]). Only USD is known to the fake; other currencies
/// have no minimum here.
pub(super) fn minimum_charge(currency: &str) -> i64 {
    if currency.eq_ignore_ascii_case("usd") {
        50
    } else {
        0
    }
}

/// Paying an invoice that is not open.
pub(super) fn already_paid() -> ApiError {
    ApiError {
        status: 400,
        kind: "invalid_request_error",
        code: Some("invoice_not_editable"),
        message: "Invoice is already paid".into(),
        param: None,
        detail: None,
    }
}

/// A subscription's id from an invoice (`parent.subscription_details.subscription`).
pub(super) fn invoice_subscription(invoice: &Value) -> Option<String> {
    invoice["parent"]["subscription_details"]["subscription"]
        .as_str()
        .map(str::to_owned)
}

impl State {
    fn subscription_item(&self, sub: &str, price: &Value, quantity: i64, start: i64) -> Value {
        json!({
            "id": new_id("si"),
            "object": "subscription_item",
            "created": self.now(),
            "current_period_end": start + period_of(price),
            "current_period_start": start,
            "discounts": [],
            "metadata": {},
            "plan": plan_of(price),
            "price": price,
            "quantity": quantity,
            "subscription": sub,
            "tax_rates": [],
        })
    }

    /// A line billing one subscription item for its current period (`proration: false`).
    fn period_line(&self, sub: &str, item: &Value) -> Value {
        let price = &item["price"];
        let qty = item["quantity"].as_i64().unwrap_or(1);
        let unit = price["unit_amount"].as_i64().unwrap_or(0);
        let currency = price["currency"].as_str().unwrap_or("usd");
        let interval = price["recurring"]["interval"].as_str().unwrap_or("month");
        json!({
            "id": new_id("il"),
            "object": "line_item",
            "amount": unit * qty,
            "currency": currency,
            "description": format!("{qty} × {} (at {} / {interval})", self.product_name(&price["product"]), money(unit, currency)),
            "discount_amounts": [],
            "discountable": true,
            "discounts": [],
            "invoice": null,
            "livemode": self.livemode,
            "metadata": {},
            "parent": {
                "invoice_item_details": null,
                "subscription_item_details": {
                    "invoice_item": null,
                    "proration": false,
                    "proration_details": {"credited_items": null},
                    "subscription": sub,
                    "subscription_item": item["id"],
                },
                "type": "subscription_item_details",
            },
            "period": {"end": item["current_period_end"], "start": item["current_period_start"]},
            "pretax_credit_amounts": [],
            "pricing": {
                "price_details": {"price": price["id"], "product": price["product"]},
                "type": "price_details",
                "unit_amount_decimal": price["unit_amount_decimal"],
            },
            "quantity": qty,
            "subscription": sub,
            "taxes": [],
        })
    }

    /// A period line turned into the $0 line Stripe puts on a trial's invoice.
    fn trial_line(&self, mut line: Value, price: &Value) -> Value {
        line["amount"] = json!(0);
        line["description"] = json!(format!(
            "Trial period for {}",
            self.product_name(&price["product"])
        ));
        line["pricing"]["unit_amount_decimal"] = json!("0");
        line
    }

    /// The line an invoice item becomes on the invoice that takes it.
    pub(super) fn item_line(&self, ii: &Value, credited: Value) -> Value {
        json!({
            "id": new_id("il"),
            "object": "line_item",
            "amount": ii["amount"],
            "currency": ii["currency"],
            "description": ii["description"],
            "discount_amounts": [],
            "discountable": ii["discountable"],
            "discounts": [],
            "invoice": null,
            "livemode": self.livemode,
            "metadata": {},
            "parent": {
                "invoice_item_details": {
                    "invoice_item": ii["id"],
                    "proration": ii["proration"],
                    "proration_details": {"credited_items": credited},
                    "subscription": ii["parent"]["subscription_details"]["subscription"],
                },
                "subscription_item_details": null,
                "type": "invoice_item_details",
            },
            "period": ii["period"],
            "pretax_credit_amounts": [],
            "pricing": ii["pricing"],
            "quantity": ii["quantity"],
            "subscription": ii["parent"]["subscription_details"]["subscription"],
            "taxes": [],
        })
    }

    /// Makes the invoice for `sub` with `lines` and, unless the subscription's payment
    /// collection is paused, finalizes it at once ([`State::finalize_fields`]: the
    /// customer's balance applies, it is numbered and opened with a default invoice
    /// payment for what is due, or marked paid when nothing is). Emits `invoice.created`
    /// and `invoice.finalized` (and `invoice.paid` when nothing is due). The caller
    /// collects it when it is left `open`.
    ///
    /// While `pause_collection` is set, "invoices continue to generate, but Stripe doesn't
    /// collect payment" (docs.stripe.com/billing/subscriptions/pause-payment), per
    /// `pause_collection[behavior]`:
    /// - `keep_as_draft`: "Invoices are created with a `draft` status with `auto_advance`
    ///   set to false" (same page): only `invoice.created`; no number, no finalization,
    ///   no payment, the balance untouched (it applies if the draft is finalized later).
    /// - `void`: voided at once, and "won't use the customer credit balance" (same page):
    ///   finalized without the balance, then `void` (`invoice.voided`), its default
    ///   payment canceled ([`State::void_invoice`]).
    /// - `mark_uncollectible`: finalized as usual, then `uncollectible`
    ///   (`invoice.marked_uncollectible`) when something is due.
    fn issue_invoice(
        &mut self,
        sub: &Value,
        lines: Vec<Value>,
        reason: &str,
        period: (i64, i64),
    ) -> Value {
        let customer = sub["customer"].as_str().unwrap_or_default().to_owned();
        let currency = sub["currency"].as_str().unwrap_or("usd").to_owned();
        let parent = json!({
            "quote_details": null,
            "subscription_details": {"metadata": sub["metadata"], "subscription": sub["id"]},
            "type": "subscription_details",
        });
        let invoice = self.invoice_skeleton(&customer, &currency, reason, parent, period);
        let id = invoice["id"].as_str().unwrap_or_default().to_owned();
        self.invoices.insert(&id, invoice);
        self.set_invoice_lines(&id, lines);
        if let Some(s) = sub["id"]
            .as_str()
            .and_then(|sid| self.subscriptions.get_mut(sid))
        {
            s["latest_invoice"] = json!(id);
        }
        let ctx = Ctx::default();
        let paused = sub["pause_collection"]["behavior"]
            .as_str()
            .map(str::to_owned);
        if paused.as_deref() == Some("keep_as_draft") {
            let invoice = self.invoices.get(&id).cloned().unwrap_or_default();
            self.emit("invoice.created", &invoice, None, &ctx);
            return invoice;
        }
        let voiding = paused.as_deref() == Some("void");
        let due = self.finalize_fields(&id, !voiding);
        if let Some(inv) = self.invoices.get_mut(&id) {
            inv["auto_advance"] = json!(due > 0 && paused.is_none());
        }
        let invoice = self.invoices.get(&id).cloned().unwrap_or_default();
        self.emit("invoice.created", &invoice, None, &ctx);
        self.emit("invoice.finalized", &invoice, None, &ctx);
        if voiding {
            return match self.void_invoice(&id, &ctx) {
                Ok((_, voided)) => voided,
                Err(_) => invoice,
            };
        }
        if due == 0 {
            self.mark_paid(&id);
        } else if paused.as_deref() == Some("mark_uncollectible") {
            let now = self.now();
            if let Some(inv) = self.invoices.get_mut(&id) {
                inv["status"] = json!("uncollectible");
                inv["status_transitions"]["marked_uncollectible_at"] = json!(now);
                inv["next_payment_attempt"] = Value::Null;
                let inv = inv.clone();
                self.emit("invoice.marked_uncollectible", &inv, None, &ctx);
            }
        }
        self.invoices.get(&id).cloned().unwrap_or(invoice)
    }

    /// A new draft invoice (`in_…`, not stored yet) for `customer`: no lines, nothing
    /// due, no number; what only finalization sets is null ("If the invoice has not been
    /// finalized yet, this will be null", docs.stripe.com/api/invoices/object for
    /// `hosted_invoice_url`, `invoice_pdf`, `ending_balance`). `parent` is null for a
    /// one-off invoice.
    pub(super) fn invoice_skeleton(
        &self,
        customer: &str,
        currency: &str,
        reason: &str,
        parent: Value,
        period: (i64, i64),
    ) -> Value {
        let id = new_id("in");
        let now = self.now();
        let (email, name) = self
            .customers
            .get(customer)
            .map(|c| (c["email"].clone(), c["name"].clone()))
            .unwrap_or((Value::Null, Value::Null));
        json!({
            "id": id,
            "object": "invoice",
            "account_country": "US",
            "account_name": "Fake Stripe",
            "account_tax_ids": null,
            "amount_due": 0,
            "amount_overpaid": 0,
            "amount_paid": 0,
            "amount_remaining": 0,
            "amount_shipping": 0,
            "application": null,
            "attempt_count": 0,
            "attempted": false,
            "auto_advance": false,
            "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null, "status": null},
            "automatically_finalizes_at": null,
            "billing_reason": reason,
            "collection_method": "charge_automatically",
            "created": now,
            "currency": currency,
            "custom_fields": null,
            "customer": customer,
            "customer_address": null,
            "customer_email": email,
            "customer_name": name,
            "customer_phone": null,
            "customer_shipping": null,
            "customer_tax_exempt": "none",
            "customer_tax_ids": [],
            "default_payment_method": null,
            "default_source": null,
            "default_tax_rates": [],
            "description": null,
            "discounts": [],
            "due_date": null,
            "effective_at": null,
            "ending_balance": null,
            "footer": null,
            "from_invoice": null,
            "hosted_invoice_url": null,
            "invoice_pdf": null,
            "issuer": {"type": "self"},
            "last_finalization_error": null,
            "latest_revision": null,
            "lines": {
                "object": "list",
                "data": [],
                "has_more": false,
                "url": format!("/v1/invoices/{id}/lines"),
            },
            "livemode": self.livemode,
            "metadata": {},
            "next_payment_attempt": null,
            "number": null,
            "on_behalf_of": null,
            "parent": parent,
            "payment_settings": {"default_mandate": null, "payment_method_options": null, "payment_method_types": null},
            "period_end": period.1,
            "period_start": period.0,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": null,
            "rendering": null,
            "shipping_cost": null,
            "shipping_details": null,
            "starting_balance": 0,
            "statement_descriptor": null,
            "status": "draft",
            "status_transitions": {"finalized_at": null, "marked_uncollectible_at": null, "paid_at": null, "voided_at": null},
            "subtotal": 0,
            "subtotal_excluding_tax": 0,
            "test_clock": null,
            "total": 0,
            "total_discount_amounts": [],
            "total_excluding_tax": 0,
            "total_pretax_credit_amounts": [],
            "total_taxes": [],
            "webhooks_delivered_at": null,
        })
    }

    /// Adds `lines` to the stored draft invoice `id`: each line names the invoice, the
    /// invoice items they came from now belong to it, the totals add up every line and
    /// the invoice embeds the first [`INVOICE_LINES_EMBEDDED`].
    pub(super) fn set_invoice_lines(&mut self, id: &str, mut lines: Vec<Value>) {
        for line in &mut lines {
            line["invoice"] = json!(id);
        }
        for line in &lines {
            if let Some(ii) = line["parent"]["invoice_item_details"]["invoice_item"].as_str()
                && let Some(item) = self.invoice_items.get_mut(ii)
            {
                item["invoice"] = json!(id);
            }
        }
        let all = self.invoice_lines.entry(id.to_owned()).or_default();
        all.extend(lines);
        let total: i64 = all.iter().map(|l| l["amount"].as_i64().unwrap_or(0)).sum();
        let embedded: Vec<Value> = all.iter().take(INVOICE_LINES_EMBEDDED).cloned().collect();
        let has_more = all.len() > INVOICE_LINES_EMBEDDED;
        if let Some(inv) = self.invoices.get_mut(id) {
            inv["lines"]["data"] = json!(embedded);
            inv["lines"]["has_more"] = json!(has_more);
            for key in [
                "subtotal",
                "subtotal_excluding_tax",
                "total",
                "total_excluding_tax",
            ] {
                inv[key] = json!(total);
            }
            inv["amount_due"] = json!(total.max(0));
            inv["amount_remaining"] = json!(total.max(0));
        }
    }

    /// Turns the stored draft `id` into an open invoice, without events: numbers it and
    /// adds a default invoice payment for what is due. Returns what is due.
    ///
    /// With `use_balance` (always, but for an invoice voided by paused collection) the
    /// customer's balance applies, both ways:
    /// - a credit (negative) pays first: "The invoice balance automatically applies
    ///   toward the next invoice finalized to a customer"; a negative total becomes a
    ///   credit: "Prorations from downgrading a subscription can indirectly create credits
    ///   to reduce the amount due on the next invoice" (docs.stripe.com/billing/customer/balance);
    /// - a debit (positive) is added to what is due: "If there is a positive
    ///   `starting_balance` for the invoice (the customer owes money), the `amount_due`
    ///   will also take that into account" (stripe@18.0.0 `Invoices.d.ts`, `amount_due`);
    ///   "credits reduce the amount due, while debits increase it"
    ///   (docs.stripe.com/billing/scripts/customer-balance);
    /// - so `due = max(0, total + starting)` and `ending = starting + total − due`
    ///   (`starting_balance`/`ending_balance` record it);
    /// - Stripe's minimum charge: "When the amount due on an invoice is less than the
    ///   minimum chargeable amount the invoice is marked as paid and the amount owed
    ///   moved to the invoice balance as a debit" (docs.stripe.com/billing/customer/balance;
    ///   "the `amount_due` may be 0", `Invoices.d.ts`): `due` 0 and all of it left on the
    ///   balance ([`minimum_charge`]).
    ///
    /// Without it, what is due is the total and the balance is left as it was
    /// (`starting_balance` = `ending_balance` = the customer's balance).
    fn finalize_fields(&mut self, id: &str, use_balance: bool) -> i64 {
        let Some(invoice) = self.invoices.get(id).cloned() else {
            return 0;
        };
        let now = self.now();
        let customer = invoice["customer"].as_str().unwrap_or_default().to_owned();
        let currency = invoice["currency"].as_str().unwrap_or("usd").to_owned();
        let total = invoice["total"].as_i64().unwrap_or(0);
        let starting = self
            .customers
            .get(&customer)
            .and_then(|c| c["balance"].as_i64())
            .unwrap_or(0);
        let (due, ending) = if use_balance {
            let owed = (total + starting).max(0);
            if owed > 0 && owed < minimum_charge(&currency) {
                (0, starting + total)
            } else {
                (owed, starting + total - owed)
            }
        } else {
            (total.max(0), starting)
        };
        self.adjust_balance(&customer, ending - starting);
        let number = self.next_invoice_number(&customer);
        let tail = super::random_tail(24);
        if let Some(inv) = self.invoices.get_mut(id) {
            inv["amount_due"] = json!(due);
            inv["amount_remaining"] = json!(due);
            inv["effective_at"] = json!(now);
            inv["ending_balance"] = json!(ending);
            inv["hosted_invoice_url"] = json!(format!(
                "https://invoice.stripe.com/i/acct_fake/test_{tail}"
            ));
            inv["invoice_pdf"] = json!(format!(
                "https://pay.stripe.com/invoice/acct_fake/test_{tail}/pdf"
            ));
            inv["next_payment_attempt"] = if due > 0 {
                json!(now + 3600)
            } else {
                Value::Null
            };
            inv["number"] = json!(number);
            inv["starting_balance"] = json!(starting);
            inv["status"] = json!("open");
            inv["status_transitions"]["finalized_at"] = json!(now);
            inv["webhooks_delivered_at"] = json!(now);
        }
        if due > 0 {
            let pi = new_id("pi");
            self.add_invoice_payment(id, &pi, due, &currency, true);
        }
        due
    }

    /// Finalizes the stored draft `id` ([`State::finalize_fields`]), sending
    /// `invoice.finalized`, then `invoice.paid` when nothing is due. Answers the invoice.
    pub(super) fn open_invoice(&mut self, id: &str) -> Value {
        let due = self.finalize_fields(id, true);
        let invoice = self.invoices.get(id).cloned().unwrap_or_default();
        self.emit("invoice.finalized", &invoice, None, &Ctx::default());
        if due == 0 {
            self.mark_paid(id);
        }
        self.invoices.get(id).cloned().unwrap_or(invoice)
    }

    /// An `invoice_payment` of `invoice`, open until paid.
    fn add_invoice_payment(
        &mut self,
        invoice: &str,
        payment_intent: &str,
        amount: i64,
        currency: &str,
        is_default: bool,
    ) -> String {
        let id = new_id("inpay");
        let payment = json!({
            "id": id,
            "object": "invoice_payment",
            "amount_paid": null,
            "amount_requested": amount,
            "created": self.now(),
            "currency": currency,
            "invoice": invoice,
            "is_default": is_default,
            "livemode": self.livemode,
            "payment": {"type": "payment_intent", "payment_intent": payment_intent},
            "status": "open",
            "status_transitions": {"canceled_at": null, "paid_at": null},
        });
        self.invoice_payment_objects.insert(&id, payment);
        self.payments_of_invoice
            .entry(invoice.to_owned())
            .or_default()
            .push(id.clone());
        id
    }

    /// The `invoice_payment` objects of `invoice`, oldest first.
    pub(super) fn payments_of(&self, invoice: &str) -> Vec<Value> {
        self.payments_of_invoice
            .get(invoice)
            .into_iter()
            .flatten()
            .filter_map(|p| self.invoice_payment_objects.get(p).cloned())
            .collect()
    }

    /// Charges `amount` through the invoice payment `inpay` (a new charge on its
    /// payment intent) and marks that payment paid.
    fn charge_invoice_payment(&mut self, inpay: &str, customer: &str) {
        let Some(p) = self.invoice_payment_objects.get(inpay).cloned() else {
            return;
        };
        let amount = p["amount_requested"].as_i64().unwrap_or(0);
        let currency = p["currency"].as_str().unwrap_or("usd").to_owned();
        let pi = p["payment"]["payment_intent"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let charge = self.create_charge(customer, amount, &currency, &pi);
        // A PaymentIntent the fake keeps as an object (one that a saved card failed to
        // pay) now succeeded too, without an event of its own here.
        self.payment_intent_succeeded(&pi, &charge, false);
        self.settle_invoice_payment(inpay);
    }

    /// Marks the invoice payment `inpay` paid (its charge was made).
    pub(super) fn settle_invoice_payment(&mut self, inpay: &str) {
        let now = self.now();
        let Some(p) = self.invoice_payment_objects.get_mut(inpay) else {
            return;
        };
        p["amount_paid"] = p["amount_requested"].clone();
        p["status"] = json!("paid");
        p["status_transitions"]["paid_at"] = json!(now);
        let p = p.clone();
        if let (Some(invoice), Some(pi)) = (
            p["invoice"].as_str(),
            p["payment"]["payment_intent"].as_str(),
        ) {
            self.invoice_payments
                .entry(invoice.to_owned())
                .or_insert_with(|| pi.to_owned());
        }
    }

    /// The default invoice payment of the open invoice `id`, asking for `remaining`
    /// (made when the invoice has none).
    pub(super) fn default_invoice_payment(&mut self, id: &str, remaining: i64) -> String {
        let default = self
            .payments_of(id)
            .iter()
            .find(|p| p["is_default"] == json!(true))
            .and_then(|p| p["id"].as_str().map(str::to_owned));
        match default {
            Some(d) => {
                if let Some(p) = self.invoice_payment_objects.get_mut(&d) {
                    p["amount_requested"] = json!(remaining);
                }
                d
            }
            None => {
                let currency = self
                    .invoices
                    .get(id)
                    .and_then(|i| i["currency"].as_str())
                    .unwrap_or("usd")
                    .to_owned();
                self.add_invoice_payment(id, &new_id("pi"), remaining, &currency, true)
            }
        }
    }

    /// The invoice is settled: `paid` (`status_transitions.paid_at` = now), a
    /// still-open default payment is canceled, `invoice.paid` and
    /// `invoice.payment_succeeded` are sent, and a subscription waiting on this invoice
    /// (`incomplete`, `past_due`) becomes `active` (`customer.subscription.updated`).
    pub(super) fn mark_paid(&mut self, id: &str) {
        let now = self.now();
        let Some(invoice) = self.invoices.get_mut(id) else {
            return;
        };
        let due = invoice["amount_due"].as_i64().unwrap_or(0);
        invoice["amount_paid"] = json!(due);
        invoice["amount_remaining"] = json!(0);
        invoice["status"] = json!("paid");
        invoice["status_transitions"]["paid_at"] = json!(now);
        invoice["next_payment_attempt"] = Value::Null;
        invoice["auto_advance"] = json!(false);
        if due > 0 {
            invoice["attempted"] = json!(true);
        }
        let invoice = invoice.clone();
        let open_defaults: Vec<String> = self
            .payments_of(id)
            .iter()
            .filter(|p| p["status"] == json!("open"))
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect();
        for p in open_defaults {
            if let Some(p) = self.invoice_payment_objects.get_mut(&p) {
                p["status"] = json!("canceled");
                p["status_transitions"]["canceled_at"] = json!(now);
            }
        }
        let ctx = Ctx::default();
        self.emit("invoice.paid", &invoice, None, &ctx);
        self.emit("invoice.payment_succeeded", &invoice, None, &ctx);
        if let Some(sub_id) = invoice_subscription(&invoice)
            && let Some(sub) = self.subscriptions.get(&sub_id).cloned()
            && sub["latest_invoice"] == json!(id)
            && matches!(
                sub["status"].as_str(),
                Some("incomplete" | "past_due" | "unpaid")
            )
        {
            self.set_subscription_status(&sub_id, "active");
        }
    }

    pub(super) fn set_subscription_status(&mut self, id: &str, status: &str) {
        let Some(sub) = self.subscriptions.get_mut(id) else {
            return;
        };
        let before = sub.clone();
        sub["status"] = json!(status);
        let after = sub.clone();
        self.emit(
            "customer.subscription.updated",
            &after,
            Some(diff(&before, &after)),
            &Ctx::default(),
        );
        self.sync_entitlements(after["customer"].as_str().unwrap_or_default());
    }

    /// Pays what is left of an open invoice with its default payment (a charge on its
    /// payment intent).
    fn collect(&mut self, id: &str) -> Answer {
        let invoice = self
            .invoices
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("invoice", id))?;
        if invoice["status"] != json!("open") {
            return Err(already_paid());
        }
        let customer = invoice["customer"].as_str().unwrap_or_default().to_owned();
        let remaining = invoice["amount_remaining"].as_i64().unwrap_or(0);
        if remaining > 0 {
            let inpay = self.default_invoice_payment(id, remaining);
            self.charge_invoice_payment(&inpay, &customer);
        }
        self.count_attempt(id);
        self.mark_paid(id);
        self.retrieve("invoice", id)
    }

    /// One more payment attempt on invoice `id` (`attempt_count`).
    pub(super) fn count_attempt(&mut self, id: &str) {
        if let Some(inv) = self.invoices.get_mut(id) {
            inv["attempt_count"] = json!(inv["attempt_count"].as_i64().unwrap_or(0) + 1);
        }
    }

    /// Pays an open invoice now (`POST /v1/invoices/{id}/pay`): `invoice.paid` with
    /// `status_transitions.paid_at` = now, however long after its period (as Smart
    /// Retries do); its subscription, `past_due` or `incomplete`, becomes `active`.
    pub fn pay_invoice(&mut self, id: &str) -> Answer {
        self.collect(id)
    }

    /// Pays an open invoice with several payment intents, one charge each (in `parts`
    /// order), as partial payments do: each part is a non-default `invoice_payment`.
    /// When the parts cover what is due, the invoice is paid (the unused default
    /// payment is canceled); otherwise it stays open with `amount_remaining` lowered.
    pub fn pay_invoice_in_parts(&mut self, id: &str, parts: &[i64]) -> Answer {
        let invoice = self
            .invoices
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("invoice", id))?;
        let remaining = invoice["amount_remaining"].as_i64().unwrap_or(0);
        if invoice["status"] != json!("open") {
            return Err(ApiError::invalid("invoice", "Invoice is already paid"));
        }
        if parts.iter().any(|p| *p <= 0) || parts.iter().sum::<i64>() > remaining {
            return Err(ApiError::invalid(
                "amount",
                format!("The parts must be positive and add up to at most {remaining}"),
            ));
        }
        let customer = invoice["customer"].as_str().unwrap_or_default().to_owned();
        let currency = invoice["currency"].as_str().unwrap_or("usd").to_owned();
        let before = invoice.clone();
        let mut left = remaining;
        for part in parts {
            let inpay = self.add_invoice_payment(id, &new_id("pi"), *part, &currency, false);
            self.charge_invoice_payment(&inpay, &customer);
            left -= part;
        }
        if left == 0 {
            if let Some(inv) = self.invoices.get_mut(id) {
                inv["attempt_count"] = json!(inv["attempt_count"].as_i64().unwrap_or(0) + 1);
            }
            self.mark_paid(id);
        } else if let Some(inv) = self.invoices.get_mut(id) {
            let due = inv["amount_due"].as_i64().unwrap_or(0);
            inv["amount_paid"] = json!(due - left);
            inv["amount_remaining"] = json!(left);
            let after = inv.clone();
            self.emit(
                "invoice.updated",
                &after,
                Some(diff(&before, &after)),
                &Ctx::default(),
            );
        }
        self.retrieve("invoice", id)
    }

    /// An invoice; with `expand[]=payments`, its payments as Stripe lists them.
    pub fn retrieve_invoice(&self, id: &str, p: &Value) -> Answer {
        let (status, mut invoice) = self.retrieve("invoice", id)?;
        let expand = p["expand"].as_array().cloned().unwrap_or_default();
        if expand.iter().any(|e| e == "payments") {
            let mut data: Vec<Value> = self.payments_of(id);
            data.reverse();
            invoice["payments"] = json!({"object": "list", "data": data, "has_more": false,
                "url": format!("/v1/invoices/{id}/payments")});
        }
        Ok((status, invoice))
    }

    /// `GET /v1/invoices/{id}/lines`: every line, in invoice order, paged.
    pub fn invoice_lines_page(&self, id: &str, q: &Value) -> Answer {
        let lines = self
            .invoice_lines
            .get(id)
            .ok_or_else(|| ApiError::missing("invoice", id))?;
        page_in_order(lines, q, &format!("/v1/invoices/{id}/lines"))
    }

    // ----- subscriptions --------------------------------------------------------

    /// Starts a subscription for `customer` and bills its first invoice.
    /// `payment`: `checkout` (created `incomplete`, activated when the first invoice is
    /// paid at once, as Checkout does), `default_incomplete` (stays `incomplete` until
    /// [`State::pay_invoice`]), `allow_incomplete` (the default of the API: paid at once,
    /// created `active`). A subscription with nothing to pay starts `active`.
    ///
    /// With `trial_end` (a time after now) it starts `trialing` whatever `payment`
    /// says: every item's period is the trial, the billing cycle is anchored at the
    /// trial's end, and the first invoice bills each item $0 for the trial (paid at
    /// once, as Stripe's trial invoice needs no payment method).
    pub(crate) fn start_subscription(
        &mut self,
        customer: &str,
        items: &[(Value, i64)],
        metadata: &Value,
        payment: &str,
        trial_end: Option<i64>,
        ctx: &Ctx,
    ) -> Result<(Value, Value), ApiError> {
        let id = new_id("sub");
        let now = self.now();
        let data: Vec<Value> = items
            .iter()
            .map(|(price, qty)| {
                let mut item = self.subscription_item(&id, price, *qty, now);
                if let Some(end) = trial_end {
                    item["current_period_end"] = json!(end);
                }
                item
            })
            .collect();
        let total: i64 = items
            .iter()
            .map(|(p, q)| p["unit_amount"].as_i64().unwrap_or(0) * q)
            .sum();
        let incomplete = trial_end.is_none() && total > 0 && payment != "allow_incomplete";
        let status = match (trial_end, incomplete) {
            (Some(_), _) => "trialing",
            (None, true) => "incomplete",
            (None, false) => "active",
        };
        let currency = items
            .first()
            .map(|(p, _)| p["currency"].clone())
            .unwrap_or(json!("usd"));
        let sub = json!({
            "id": id,
            "object": "subscription",
            "application": null,
            "application_fee_percent": null,
            "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null},
            "billing_cycle_anchor": trial_end.unwrap_or(now),
            "billing_cycle_anchor_config": null,
            "cancel_at": null,
            "cancel_at_period_end": false,
            "canceled_at": null,
            "cancellation_details": {"comment": null, "feedback": null, "reason": null},
            "collection_method": "charge_automatically",
            "created": now,
            "currency": currency,
            "customer": customer,
            "days_until_due": null,
            "default_payment_method": null,
            "default_source": null,
            "default_tax_rates": [],
            "description": null,
            "discounts": [],
            "ended_at": null,
            "invoice_settings": {"account_tax_ids": null, "issuer": {"type": "self"}},
            "items": {"object": "list", "data": data, "has_more": false,
                      "url": format!("/v1/subscription_items?subscription={id}")},
            "latest_invoice": null,
            "livemode": self.livemode,
            "metadata": if metadata.is_object() { metadata.clone() } else { json!({}) },
            "next_pending_invoice_item_invoice": null,
            "on_behalf_of": null,
            "pause_collection": null,
            "payment_settings": {"payment_method_options": null, "payment_method_types": null,
                                 "save_default_payment_method": "off"},
            "pending_invoice_item_interval": null,
            "pending_setup_intent": null,
            "pending_update": null,
            "schedule": null,
            "start_date": now,
            "status": status,
            "test_clock": null,
            "transfer_data": null,
            "trial_end": trial_end,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": trial_end.map(|_| now),
        });
        self.subscriptions.insert(&id, sub.clone());
        self.snapshot_features(&id);
        self.emit("customer.subscription.created", &sub, None, ctx);
        let lines: Vec<Value> = data
            .iter()
            .map(|item| {
                let line = self.period_line(&id, item);
                if trial_end.is_some() {
                    self.trial_line(line, &item["price"])
                } else {
                    line
                }
            })
            .collect();
        let invoice = self.issue_invoice(&sub, lines, "subscription_create", (now, now));
        let invoice = if invoice["status"] == json!("open") && payment != "default_incomplete" {
            let invoice_id = invoice["id"].as_str().unwrap_or_default().to_owned();
            self.collect(&invoice_id)?.1
        } else {
            invoice
        };
        self.sync_entitlements(customer);
        let sub = self.subscriptions.get(&id).cloned().unwrap_or(sub);
        Ok((sub, invoice))
    }

    /// `POST /v1/subscriptions`: `customer`, `items[n][price]`, `items[n][quantity]`,
    /// `payment_behavior` (`allow_incomplete` by default, or `default_incomplete`),
    /// `trial_period_days` or `trial_end` (a Unix time, or `now` for no trial),
    /// `metadata`. Answers the subscription (its `latest_invoice` is the first invoice).
    pub fn create_subscription(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let customer = p
            .text("customer")
            .ok_or_else(|| ApiError::required("customer"))?;
        // A customer that never existed or was deleted: Stripe's `resource_missing`
        // (400, the parameter named), as for every request naming a deleted customer.
        if self.customers.get(&customer).is_none() {
            return Err(ApiError::no_such("customer", "customer", &customer));
        }
        let items = p
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if items.is_empty() {
            return Err(ApiError::required("items"));
        }
        let mut resolved = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let price = self.recurring_price(item, &format!("items[{i}][price]"))?;
            let qty = item.int("quantity")?.unwrap_or(1);
            if qty < 1 {
                return Err(ApiError::invalid(
                    &format!("items[{i}][quantity]"),
                    "Quantity must be at least 1",
                ));
            }
            resolved.push((price, qty));
        }
        let currencies: std::collections::HashSet<_> = resolved
            .iter()
            .map(|(p, _)| p["currency"].clone())
            .collect();
        if currencies.len() > 1 {
            return Err(ApiError::invalid(
                "items",
                "All prices on a subscription must have the same `currency`.",
            ));
        }
        let behavior = p
            .text("payment_behavior")
            .unwrap_or_else(|| "allow_incomplete".into());
        if !matches!(
            behavior.as_str(),
            "allow_incomplete"
                | "default_incomplete"
                | "error_if_incomplete"
                | "pending_if_incomplete"
        ) {
            return Err(ApiError::invalid(
                "payment_behavior",
                format!("Invalid payment_behavior: {behavior}"),
            ));
        }
        let behavior = if behavior == "default_incomplete" {
            "default_incomplete"
        } else {
            "allow_incomplete"
        };
        let trial_end = self.trial_end_param(p)?;
        let metadata = p.get("metadata").cloned().unwrap_or(json!({}));
        let (sub, _) =
            self.start_subscription(&customer, &resolved, &metadata, behavior, trial_end, ctx)?;
        Ok((200, sub))
    }

    /// When a new subscription's trial ends, from `trial_period_days` (days from now;
    /// 0 is no trial) or `trial_end` (a future Unix time; `now` is no trial), never both.
    /// Stripe allows trials of at most 730 days (two years).
    fn trial_end_param(&self, p: &Value) -> Result<Option<i64>, ApiError> {
        const MAX_DAYS: i64 = 730;
        let now = self.now();
        let days = p.int("trial_period_days")?;
        let end = match p.text("trial_end").filter(|t| !t.is_empty()) {
            None => None,
            Some(t) if t == "now" => Some(None),
            Some(_) => Some(p.int("trial_end")?),
        };
        match (days, end) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "trial_end",
                "You may only specify one of these parameters: trial_end, trial_period_days.",
            )),
            (Some(d), None) if !(0..=MAX_DAYS).contains(&d) => Err(ApiError::invalid(
                "trial_period_days",
                format!("trial_period_days must be between 0 and {MAX_DAYS}; got {d}"),
            )),
            (Some(0), None) | (None, None) | (None, Some(None)) => Ok(None),
            (Some(d), None) => Ok(Some(now + d * 86_400)),
            (None, Some(Some(t))) if t <= now => Err(ApiError::invalid(
                "trial_end",
                "Invalid timestamp: must be an integer Unix timestamp in the future.",
            )),
            (None, Some(Some(t))) if t > now + MAX_DAYS * 86_400 => Err(ApiError::invalid(
                "trial_end",
                "Invalid timestamp: can be no more than two years in the future.",
            )),
            (None, Some(t)) => Ok(t),
        }
    }

    pub(super) fn recurring_price(&self, item: &Value, param: &str) -> Result<Value, ApiError> {
        let price_id = item
            .text("price")
            .ok_or_else(|| ApiError::required(param))?;
        let price = self
            .prices
            .get(&price_id)
            .cloned()
            .ok_or_else(|| ApiError::invalid(param, format!("No such price: '{price_id}'")))?;
        if price["active"] != json!(true) {
            return Err(ApiError::invalid(
                param,
                format!("The price specified is inactive: '{price_id}'"),
            ));
        }
        if price["recurring"].is_null() {
            return Err(ApiError::invalid(
                param,
                format!(
                    "The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`: '{price_id}'"
                ),
            ));
        }
        Ok(price)
    }

    /// A pending invoice item for a proration (`proration: true`, `invoiceitem.created`).
    #[allow(clippy::too_many_arguments)]
    fn proration_item(
        &mut self,
        sub: &Value,
        item: &str,
        price: &Value,
        qty: i64,
        amount: i64,
        description: String,
        period: (i64, i64),
    ) -> Value {
        let id = new_id("ii");
        let ii = json!({
            "id": id,
            "object": "invoiceitem",
            "amount": amount,
            "currency": price["currency"],
            "customer": sub["customer"],
            "date": self.now(),
            "description": description,
            "discountable": false,
            "discounts": [],
            "invoice": null,
            "livemode": self.livemode,
            "metadata": {},
            "parent": {
                "subscription_details": {"subscription": sub["id"], "subscription_item": item},
                "type": "subscription_details",
            },
            "period": {"end": period.1, "start": period.0},
            "pricing": {
                "price_details": {"price": price["id"], "product": price["product"]},
                "type": "price_details",
                "unit_amount_decimal": unit_decimal(amount, qty),
            },
            "proration": true,
            "quantity": qty,
            "tax_rates": [],
            "test_clock": null,
        });
        self.invoice_items.insert(&id, ii.clone());
        self.emit("invoiceitem.created", &ii, None, &Ctx::default());
        ii
    }

    /// The line of the latest paid invoice of `sub` that billed `item`, for a credit
    /// proration's `credited_items`.
    fn credited_line(&self, sub: &Value, item: &str) -> Value {
        let Some(invoice) = sub["latest_invoice"].as_str() else {
            return Value::Null;
        };
        let lines = self.invoice_lines.get(invoice).into_iter().flatten();
        let ids: Vec<Value> = lines
            .filter(|l| {
                l["parent"]["subscription_item_details"]["subscription_item"] == json!(item)
            })
            .map(|l| l["id"].clone())
            .collect();
        if ids.is_empty() {
            Value::Null
        } else {
            json!({"invoice": invoice, "invoice_line_items": ids})
        }
    }

    /// `POST /v1/subscriptions/{id}` with the same parameters as JSON: `items[n][id]`
    /// with a new `price` and/or `quantity` (or without `id`: a new item; with
    /// `deleted=true`: removed), `proration_behavior` (`create_prorations` by default,
    /// `always_invoice`, `none`), `proration_date` (within the current period),
    /// `cancel_at_period_end` (`canceled_at` is the request; `false` takes the
    /// cancellation back), `cancel_at` (empty: unset; before the period's end, a credit
    /// proration), `pause_collection` (empty: resume), `metadata`. A new billing interval,
    /// or free to paid, resets the billing date and bills at once. Emits
    /// `customer.subscription.updated`.
    pub fn update_subscription(&mut self, id: &str, p: &Value, ctx: &Ctx) -> Answer {
        let mut sub = self
            .subscriptions
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("subscription", id))?;
        if sub["status"] == json!("canceled") {
            return Err(ApiError::invalid(
                "subscription",
                "A canceled subscription can only update its cancellation_details and metadata.",
            ));
        }
        let behavior = p
            .text("proration_behavior")
            .unwrap_or_else(|| "create_prorations".into());
        if !matches!(
            behavior.as_str(),
            "create_prorations" | "always_invoice" | "none"
        ) {
            return Err(ApiError::invalid(
                "proration_behavior",
                format!(
                    "Invalid proration_behavior: must be one of create_prorations, none, or always_invoice; got {behavior}"
                ),
            ));
        }
        let now = self.now();
        let at = p.int("proration_date")?.unwrap_or(now);
        // Validate every item change before changing anything.
        struct Change {
            index: Option<usize>,
            old: Option<(Value, i64)>,
            new: Option<(Value, i64)>,
        }
        let mut changes = Vec::new();
        let existing = sub["items"]["data"].as_array().cloned().unwrap_or_default();
        for (i, item) in p
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let param = format!("items[{i}]");
            let index = match item.text("id") {
                Some(si) => Some(
                    existing
                        .iter()
                        .position(|e| e["id"] == json!(si))
                        .ok_or_else(|| {
                            ApiError::invalid(
                                &format!("{param}[id]"),
                                format!("No such subscription item: '{si}'"),
                            )
                        })?,
                ),
                None => None,
            };
            let old = index.map(|ix| {
                (
                    existing[ix]["price"].clone(),
                    existing[ix]["quantity"].as_i64().unwrap_or(1),
                )
            });
            if item.flag("deleted")?.unwrap_or(false) {
                if index.is_none() {
                    return Err(ApiError::required(&format!("{param}[id]")));
                }
                changes.push(Change {
                    index,
                    old,
                    new: None,
                });
                continue;
            }
            let price = match (item.text("price"), &old) {
                (Some(_), _) => self.recurring_price(item, &format!("{param}[price]"))?,
                (None, Some((price, _))) => price.clone(),
                (None, None) => return Err(ApiError::required(&format!("{param}[price]"))),
            };
            if price["currency"] != sub["currency"] {
                return Err(ApiError::invalid(
                    &format!("{param}[price]"),
                    "All prices on a subscription must have the same `currency`.",
                ));
            }
            // "When changing a subscription item's price, `quantity` is set to 1 unless a
            // `quantity` parameter is provided." (docs.stripe.com/api/subscriptions/update,
            // `items.price`; the same words in stripe@18.0.0's SubscriptionUpdateParams).
            let price_changed = old
                .as_ref()
                .is_some_and(|(old_price, _)| old_price["id"] != price["id"]);
            let qty = match item.int("quantity")? {
                Some(q) if q < 1 => {
                    return Err(ApiError::invalid(
                        &format!("{param}[quantity]"),
                        "Quantity must be at least 1",
                    ));
                }
                Some(q) => q,
                None if price_changed => 1,
                None => old.as_ref().map_or(1, |(_, q)| *q),
            };
            changes.push(Change {
                index,
                old,
                new: Some((price, qty)),
            });
        }
        let period = existing
            .first()
            .map(|e| {
                (
                    e["current_period_start"].as_i64().unwrap_or(now),
                    e["current_period_end"].as_i64().unwrap_or(now),
                )
            })
            .unwrap_or((now, now));
        if !changes.is_empty() && (at < period.0 || at > period.1) {
            return Err(ApiError::invalid(
                "proration_date",
                "proration_date must be within the subscription's current billing period",
            ));
        }
        let cancel_at_period_end = p.flag("cancel_at_period_end")?;
        // `cancel_at` and `pause_collection` are `Emptyable` (stripe@18.0.0's
        // SubscriptionUpdateParams): an empty value unsets them.
        let cancel_at = match p.get("cancel_at") {
            None => None,
            Some(Value::String(t)) if t.is_empty() => Some(Value::Null),
            Some(_) => Some(json!(p.int("cancel_at")?)),
        };
        let pause_collection = match p.get("pause_collection") {
            None => None,
            Some(Value::String(t)) if t.is_empty() => Some(Value::Null),
            Some(v) => {
                let behavior = v.text("behavior").unwrap_or_default();
                if !matches!(
                    behavior.as_str(),
                    "keep_as_draft" | "mark_uncollectible" | "void"
                ) {
                    return Err(ApiError::invalid(
                        "pause_collection[behavior]",
                        format!("Invalid pause_collection[behavior]: {behavior}"),
                    ));
                }
                Some(json!({"behavior": behavior, "resumes_at": v.int("resumes_at")?}))
            }
        };

        // Apply.
        let before = sub.clone();
        let mut items = existing.clone();
        let mut prorations: Vec<Proration> = Vec::new();
        let date = short_date(at);
        let remaining = period.1 - at;
        let length = period.1 - period.0;

        // "Switching prices does not normally change the billing date or generate an
        // immediate charge unless: The billing interval is changed (for example, from
        // monthly to yearly). The subscription moves from free to paid. [...] In these
        // cases, we apply a credit for the unused time on the previous price, immediately
        // charge the customer using the new price, and reset the billing date."; with
        // `none` "we don't generate any credits for the old subscription's unused time.
        // We still reset the billing date and bill immediately for the new subscription."
        // (stripe@18.0.0 SubscriptionsResource.d.ts, `update`; the same words at
        // docs.stripe.com/api/subscriptions/update and
        // docs.stripe.com/billing/subscriptions/billing-cycle). A trial's own rules apply
        // to a trialing subscription.
        let cycle = |price: &Value| {
            (
                price["recurring"]["interval"].clone(),
                price["recurring"]["interval_count"].as_i64().unwrap_or(1),
            )
        };
        let mut after: Vec<Option<(Value, i64)>> = existing
            .iter()
            .map(|e| Some((e["price"].clone(), e["quantity"].as_i64().unwrap_or(1))))
            .collect();
        let mut interval_changed = false;
        for change in &changes {
            match (change.index, &change.new) {
                (Some(ix), new) => after[ix] = new.clone(),
                (None, Some(new)) => after.push(Some(new.clone())),
                (None, None) => {}
            }
            if let Some((price, _)) = &change.new {
                let was = change
                    .old
                    .as_ref()
                    .map(|(p, _)| p)
                    .or_else(|| existing.first().map(|e| &e["price"]));
                interval_changed |= was.is_some_and(|w| cycle(w) != cycle(price));
            }
        }
        let total_before: i64 = existing
            .iter()
            .map(|e| billed(&e["price"], e["quantity"].as_i64().unwrap_or(1)))
            .sum();
        let total_after: i64 = after.iter().flatten().map(|(p, q)| billed(p, *q)).sum();
        let reset = sub["status"] != json!("trialing")
            && (interval_changed || (total_before == 0 && total_after > 0));

        let mut removed = Vec::new();
        for change in &changes {
            let unchanged = match (&change.old, &change.new) {
                (Some((op, oq)), Some((np, nq))) => op["id"] == np["id"] && oq == nq,
                _ => false,
            };
            if unchanged {
                continue;
            }
            let item_id = match change.index {
                Some(ix) => items[ix]["id"].as_str().unwrap_or_default().to_owned(),
                None => String::new(),
            };
            let mut new_item_id = item_id.clone();
            match (change.index, &change.new) {
                (Some(ix), Some((price, qty))) => {
                    items[ix]["price"] = price.clone();
                    items[ix]["plan"] = plan_of(price);
                    items[ix]["quantity"] = json!(qty);
                }
                (Some(ix), None) => removed.push(ix),
                (None, Some((price, qty))) => {
                    let mut item = self.subscription_item(id, price, *qty, period.0);
                    item["current_period_end"] = json!(period.1);
                    new_item_id = item["id"].as_str().unwrap_or_default().to_owned();
                    items.push(item);
                }
                (None, None) => {}
            }
            // A reset credits every item below and bills whole new periods.
            if behavior == "none" || reset {
                continue;
            }
            if let Some((price, qty)) = &change.old {
                prorations.push(Proration {
                    item: item_id.clone(),
                    price: price.clone(),
                    quantity: *qty,
                    amount: -prorate(billed(price, *qty), remaining, length),
                    description: format!(
                        "Unused time on {} after {date}",
                        self.item_label(price, *qty)
                    ),
                    credited: self.credited_line(&sub, &item_id),
                    period: (at, period.1),
                });
            }
            if let Some((price, qty)) = &change.new {
                prorations.push(Proration {
                    item: new_item_id,
                    price: price.clone(),
                    quantity: *qty,
                    amount: prorate(billed(price, *qty), remaining, length),
                    description: format!(
                        "Remaining time on {} after {date}",
                        self.item_label(price, *qty)
                    ),
                    credited: Value::Null,
                    period: (at, period.1),
                });
            }
        }
        removed.sort_unstable();
        for ix in removed.into_iter().rev() {
            items.remove(ix);
        }
        if reset {
            if behavior != "none" {
                for e in &existing {
                    let price = &e["price"];
                    let qty = e["quantity"].as_i64().unwrap_or(1);
                    let amount = -prorate(billed(price, qty), remaining, length);
                    if amount == 0 {
                        // Nothing unused on a free price.
                        continue;
                    }
                    let item_id = e["id"].as_str().unwrap_or_default().to_owned();
                    prorations.push(Proration {
                        credited: self.credited_line(&sub, &item_id),
                        item: item_id,
                        price: price.clone(),
                        quantity: qty,
                        amount,
                        description: format!(
                            "Unused time on {} after {date}",
                            self.item_label(price, qty)
                        ),
                        period: (at, period.1),
                    });
                }
            }
            for item in &mut items {
                item["current_period_start"] = json!(now);
                item["current_period_end"] = json!(now + period_of(&item["price"]));
            }
            sub["billing_cycle_anchor"] = json!(now);
        }
        sub["items"]["data"] = json!(items);
        if let Some(flag) = cancel_at_period_end {
            sub["cancel_at_period_end"] = json!(flag);
            if flag {
                sub["cancel_at"] = json!(period.1);
                // "If the subscription was canceled with `cancel_at_period_end`,
                // `canceled_at` will reflect the time of the most recent update request,
                // not the end of the subscription period" (stripe@18.0.0
                // Subscriptions.d.ts, `canceled_at`).
                sub["canceled_at"] = json!(now);
            } else if sub["cancel_at"] == json!(period.1) {
                // Only the cancellation it made: a `cancel_at` of its own (set in the
                // Dashboard, or by `cancel_at`) stays until it is unset.
                sub["cancel_at"] = Value::Null;
            }
        }
        if let Some(at) = &cancel_at {
            sub["cancel_at"] = at.clone();
        }
        // A cancellation taken back leaves nothing canceled: `canceled_at` is "If the
        // subscription has been canceled, the date of that cancellation"
        // (Subscriptions.d.ts), and "To clear the cancellation status, specify
        // cancel_at_period_end=false" (docs.stripe.com/changelog/2018-02-28/
        // updating-canceled-subscription-no-longer-resets-status).
        if (cancel_at_period_end == Some(false) || cancel_at == Some(Value::Null))
            && sub["cancel_at_period_end"] != json!(true)
            && sub["cancel_at"].is_null()
        {
            sub["canceled_at"] = Value::Null;
        }
        // `cancel_at` "If set to a date before the current period ends, this will cause a
        // proration if prorations have been enabled using `proration_behavior`"
        // (SubscriptionsResource.d.ts, `cancel_at`): a credit for each item's time from
        // then to the period's end, pending (`create_prorations`) or invoiced now
        // (`always_invoice`).
        if let Some(cancel) = cancel_at.as_ref().and_then(Value::as_i64)
            && before["cancel_at"] != json!(cancel)
            && (period.0..period.1).contains(&cancel)
            && behavior != "none"
            && !reset
        {
            let unused = period.1 - cancel;
            let when = short_date(cancel);
            for item in &items {
                let price = &item["price"];
                let qty = item["quantity"].as_i64().unwrap_or(1);
                let amount = -prorate(billed(price, qty), unused, length);
                if amount == 0 {
                    continue;
                }
                let item_id = item["id"].as_str().unwrap_or_default().to_owned();
                prorations.push(Proration {
                    credited: self.credited_line(&sub, &item_id),
                    item: item_id,
                    price: price.clone(),
                    quantity: qty,
                    amount,
                    description: format!(
                        "Unused time on {} after {when}",
                        self.item_label(price, qty)
                    ),
                    period: (cancel, period.1),
                });
            }
        }
        if let Some(pause) = pause_collection {
            // "When you pause payment collection, the subscription remains `active` and
            // invoices continue to generate, but Stripe doesn't collect payment."
            // (docs.stripe.com/billing/subscriptions/pause-payment)
            sub["pause_collection"] = pause;
        }
        merge_metadata(&mut sub, p);
        self.subscriptions.insert(id, sub.clone());
        if !changes.is_empty() {
            self.snapshot_features(id);
        }
        self.emit(
            "customer.subscription.updated",
            &sub,
            Some(diff(&before, &sub)),
            ctx,
        );

        let mut lines = Vec::new();
        for pr in prorations {
            let ii = self.proration_item(
                &sub,
                &pr.item,
                &pr.price,
                pr.quantity,
                pr.amount,
                pr.description,
                pr.period,
            );
            lines.push(self.item_line(&ii, pr.credited));
        }
        let invoice = if reset {
            // The new period billed in full now, with the credits and whatever else is
            // pending for the subscription, as a renewal would take it.
            let mut lines: Vec<Value> = sub["items"]["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|item| self.period_line(id, item))
                .collect();
            lines.extend(self.pending_lines(id, &before));
            Some(self.issue_invoice(&sub, lines, "subscription_update", (now, now)))
        } else if behavior == "always_invoice" && !lines.is_empty() {
            Some(self.issue_invoice(&sub, lines, "subscription_update", (at, at)))
        } else {
            None
        };
        if let Some(invoice) = invoice
            && invoice["status"] == json!("open")
        {
            let invoice_id = invoice["id"].as_str().unwrap_or_default().to_owned();
            self.collect(&invoice_id)?;
        }
        self.sync_entitlements(sub["customer"].as_str().unwrap_or_default());
        self.retrieve("subscription", id)
    }

    /// `quantity × product name` (the name alone for one), as proration lines say it.
    fn item_label(&self, price: &Value, quantity: i64) -> String {
        let name = self.product_name(&price["product"]);
        if quantity > 1 {
            format!("{quantity} × {name}")
        } else {
            name
        }
    }

    /// The lines the subscription's pending invoice items (prorations) become on its next
    /// invoice; a credit names the line of `before`'s latest invoice it credits.
    fn pending_lines(&self, id: &str, before: &Value) -> Vec<Value> {
        let pending: Vec<Value> = self
            .invoice_items
            .values()
            .filter(|ii| {
                ii["invoice"].is_null()
                    && ii["parent"]["subscription_details"]["subscription"] == json!(id)
            })
            .cloned()
            .collect();
        pending
            .iter()
            .map(|ii| {
                let credited = if ii["amount"].as_i64().unwrap_or(0) < 0 {
                    self.credited_line(
                        before,
                        ii["parent"]["subscription_details"]["subscription_item"]
                            .as_str()
                            .unwrap_or_default(),
                    )
                } else {
                    Value::Null
                };
                self.item_line(ii, credited)
            })
            .collect()
    }

    /// Moves every item into its next period (`customer.subscription.updated`) and
    /// issues the period's invoice: one line per item plus the subscription's pending
    /// invoice items (prorations), with `period_start`/`period_end` looking back one
    /// period as Stripe's do.
    fn next_period_invoice(&mut self, id: &str) -> Result<Value, ApiError> {
        let mut sub = self
            .subscriptions
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("subscription", id))?;
        if sub["status"] == json!("canceled") {
            return Err(ApiError::invalid(
                "subscription",
                "The subscription is canceled",
            ));
        }
        let before = sub.clone();
        // The end of a trial starts the first paid cycle.
        if sub["status"] == json!("trialing") {
            sub["status"] = json!("active");
        }
        // A schedule's next phase starts with the new period (its prices and quantities).
        if let Some(end) = sub["items"]["data"][0]["current_period_end"].as_i64() {
            self.apply_schedule(&mut sub, end);
        }
        let mut previous = (self.now(), self.now());
        for item in sub["items"]["data"].as_array_mut().into_iter().flatten() {
            let start = item["current_period_start"].as_i64().unwrap_or(0);
            let end = item["current_period_end"].as_i64().unwrap_or(0);
            previous = (start, end);
            item["current_period_start"] = json!(end);
            item["current_period_end"] = json!(end + period_of(&item["price"]));
        }
        self.subscriptions.insert(id, sub.clone());
        // A new period takes the features its products have now.
        self.snapshot_features(id);
        self.emit(
            "customer.subscription.updated",
            &sub,
            Some(diff(&before, &sub)),
            &Ctx::default(),
        );
        self.sync_entitlements(sub["customer"].as_str().unwrap_or_default());
        let mut lines: Vec<Value> = sub["items"]["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| self.period_line(id, item))
            .collect();
        lines.extend(self.pending_lines(id, &before));
        Ok(self.issue_invoice(&sub, lines, "subscription_cycle", previous))
    }

    /// Moves the subscription into its next period and bills it, paid at once
    /// (`invoice.paid`) unless its collection is paused. The invoice carries pending
    /// prorations with the period's lines.
    /// A trialing subscription becomes `active`. A subscription due to cancel ends
    /// instead (`canceled`, no invoice, `customer.subscription.deleted`) and the answer
    /// is the subscription.
    pub fn renew_subscription(&mut self, id: &str) -> Answer {
        if let Some(ended) = self.end_at_period_end(id) {
            return Ok((200, ended));
        }
        // Paused collection leaves the invoice a draft, void or uncollectible
        // ([`State::issue_invoice`]): only an `open` one is collected.
        let invoice = self.next_period_invoice(id)?;
        if invoice["status"] == json!("open") {
            let invoice_id = invoice["id"].as_str().unwrap_or_default().to_owned();
            return self.collect(&invoice_id);
        }
        Ok((200, invoice))
    }

    /// A renewal whose payment fails: the invoice stays `open` (`invoice.payment_failed`,
    /// a retry scheduled in `next_payment_attempt`) and the subscription goes `past_due`.
    /// Pay it later with [`State::pay_invoice`]. A subscription due to cancel ends
    /// instead, as in [`State::renew_subscription`].
    pub fn renew_subscription_unpaid(&mut self, id: &str) -> Answer {
        if let Some(ended) = self.end_at_period_end(id) {
            return Ok((200, ended));
        }
        let invoice = self.next_period_invoice(id)?;
        if invoice["status"] != json!("open") {
            return Ok((200, invoice));
        }
        let invoice_id = invoice["id"].as_str().unwrap_or_default().to_owned();
        let now = self.now();
        let inv = self
            .invoices
            .get_mut(&invoice_id)
            .expect("the invoice was just issued");
        inv["attempt_count"] = json!(1);
        inv["attempted"] = json!(true);
        inv["next_payment_attempt"] = json!(now + 3 * 86_400);
        let inv = inv.clone();
        self.emit("invoice.payment_failed", &inv, None, &Ctx::default());
        self.set_subscription_status(id, "past_due");
        Ok((200, inv))
    }

    /// Ends a subscription that is due to cancel by the end of its current period
    /// (`cancel_at_period_end`, or a `cancel_at` no later than the period end), as
    /// Stripe does when that moment comes instead of renewing: `canceled`, `ended_at`
    /// the moment it ended, `canceled_at` kept when the cancellation request set it
    /// (Stripe keeps the request's time there), no invoice, and
    /// `customer.subscription.deleted` with no request. The clock is moved to that
    /// moment when it is still ahead. `None` (nothing changed) when it is not due to
    /// cancel, is already canceled, or does not exist.
    fn end_at_period_end(&mut self, id: &str) -> Option<Value> {
        let mut sub = self.subscriptions.get(id).cloned()?;
        if sub["status"] == json!("canceled") {
            return None;
        }
        let period_end = sub["items"]["data"][0]["current_period_end"].as_i64()?;
        let cancel_at = sub["cancel_at"].as_i64().filter(|at| *at <= period_end);
        if sub["cancel_at_period_end"] != json!(true) && cancel_at.is_none() {
            return None;
        }
        let end = cancel_at.unwrap_or(period_end);
        let now = self.now();
        if end > now {
            self.advance_clock(end - now);
        }
        let before = sub.clone();
        sub["status"] = json!("canceled");
        sub["ended_at"] = json!(end);
        if sub["canceled_at"].is_null() {
            sub["canceled_at"] = json!(end);
        }
        if sub["cancellation_details"]["reason"].is_null() {
            sub["cancellation_details"]["reason"] = json!("cancellation_requested");
        }
        self.subscriptions.insert(id, sub.clone());
        self.emit(
            "customer.subscription.deleted",
            &sub,
            Some(diff(&before, &sub)),
            &Ctx::default(),
        );
        // A schedule with `end_behavior: cancel` set this end: it is complete.
        if let Some(schedule) = sub["schedule"].as_str() {
            let schedule = schedule.to_owned();
            self.complete_schedule(&schedule, end);
        }
        self.sync_entitlements(sub["customer"].as_str().unwrap_or_default());
        Some(sub)
    }

    /// The trial of a `trialing` subscription ends: the clock moves to `trial_end` when
    /// that is still ahead, then it renews ([`State::renew_subscription`]): `active`
    /// (`customer.subscription.updated`), a new period from `trial_end`, and its first
    /// real invoice (`subscription_cycle`) paid at once. Answers that invoice, or the
    /// subscription when it was due to cancel and ended instead.
    pub fn end_trial(&mut self, id: &str) -> Answer {
        let sub = self
            .subscriptions
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("subscription", id))?;
        if sub["status"] != json!("trialing") {
            return Err(ApiError::invalid(
                "subscription",
                format!(
                    "Subscription {id} is not trialing (status {})",
                    sub["status"].as_str().unwrap_or_default()
                ),
            ));
        }
        let now = self.now();
        if let Some(end) = sub["trial_end"].as_i64()
            && end > now
        {
            self.advance_clock(end - now);
        }
        self.renew_subscription(id)
    }

    /// Cancels now (`customer.subscription.deleted`) or at period end (`…updated`).
    pub fn cancel_subscription(&mut self, id: &str, at_period_end: bool) -> Answer {
        let mut sub = self
            .subscriptions
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("subscription", id))?;
        let before = sub.clone();
        let now = self.now();
        sub["cancellation_details"]["reason"] = json!("cancellation_requested");
        if at_period_end {
            sub["cancel_at_period_end"] = json!(true);
            sub["cancel_at"] = sub["items"]["data"][0]["current_period_end"].clone();
            sub["canceled_at"] = json!(now);
        } else {
            sub["status"] = json!("canceled");
            sub["canceled_at"] = json!(now);
            sub["ended_at"] = json!(now);
        }
        self.subscriptions.insert(id, sub.clone());
        let kind = if at_period_end {
            "customer.subscription.updated"
        } else {
            "customer.subscription.deleted"
        };
        self.emit(kind, &sub, Some(diff(&before, &sub)), &Ctx::default());
        self.sync_entitlements(sub["customer"].as_str().unwrap_or_default());
        Ok((200, sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prorations_round_half_away_from_zero() {
        assert_eq!(prorate(1000, 1, 2), 500);
        assert_eq!(prorate(1001, 1, 2), 501);
        assert_eq!(prorate(-1001, 1, 2), -501);
        assert_eq!(prorate(5000, 15 * 86_400, 30 * 86_400), 2500);
        assert_eq!(unit_decimal(2501, 2), "1250.5");
        assert_eq!(unit_decimal(-2500, 1), "-2500");
    }
}
