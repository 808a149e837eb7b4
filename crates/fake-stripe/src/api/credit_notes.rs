//! Credit notes, as at 2025-03-31.basil (docs.stripe.com/api/credit_notes):
//!
//! - `POST /v1/credit_notes` with `invoice`, `amount` (or just the parts), and how it is
//!   given back: `refund_amount` ("If set, a refund will be created for the charge
//!   associated with the invoice"), `credit_amount` (to the customer's balance) and
//!   `out_of_band_amount`; `reason`, `memo`, `metadata`.
//!   "For a status=open invoice, a credit note reduces its amount_due. For a status=paid
//!   invoice, a credit note does not affect its amount_due."
//!   (docs.stripe.com/api/credit_notes/create). The first is a `pre_payment` note, the
//!   second a `post_payment` one (stripe@18.0.0 `CreditNote.type`).
//! - A refund part is a real Refund on the invoice's payment, with its own events
//!   (`refund.created`, `charge.refunded`); basil lists it in `refunds`
//!   (`[{amount_refunded, refund}]`, which replaced `refund` in stripe@18.0.0).
//! - `POST /v1/credit_notes/{id}/void` marks it `void` (`voided_at`) and takes back the
//!   balance it credited (docs.stripe.com/api/credit_notes/void). A note that refunded
//!   money is refused here: the money has left, and voiding cannot bring it back.
//!
//! Events: `credit_note.created`, `credit_note.voided` (stripe@18.0.0 `EventTypes.d.ts`).

use serde_json::{Value, json};

use super::{Answer, ApiError, Ctx, Params, State, diff, field_is, list, new_id};

pub(super) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, ctx: &Ctx) -> Option<Answer> {
    Some(match (m, seg) {
        ("GET", ["v1", "credit_notes"]) => list(&s.credit_notes, p, "/v1/credit_notes", |v| {
            field_is(v, "invoice", p.text("invoice")) && field_is(v, "customer", p.text("customer"))
        }),
        ("POST", ["v1", "credit_notes"]) => s.create_credit_note(p, ctx),
        ("GET", ["v1", "credit_notes", id]) => s
            .credit_notes
            .get(id)
            .cloned()
            .map(|v| (200, v))
            .ok_or_else(|| ApiError::missing("credit_note", id)),
        ("POST", ["v1", "credit_notes", id, "void"]) => s.void_credit_note(id, ctx),
        _ => return None,
    })
}

impl State {
    /// `POST /v1/credit_notes`.
    pub fn create_credit_note(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let invoice_id = p
            .text("invoice")
            .ok_or_else(|| ApiError::required("invoice"))?;
        let invoice = self
            .invoices
            .get(&invoice_id)
            .cloned()
            .ok_or_else(|| ApiError::no_such("invoice", "invoice", &invoice_id))?;
        let refund = p.int("refund_amount")?.unwrap_or(0);
        let credit = p.int("credit_amount")?.unwrap_or(0);
        let out_of_band = p.int("out_of_band_amount")?.unwrap_or(0);
        if [refund, credit, out_of_band].iter().any(|n| *n < 0) {
            return Err(ApiError::invalid("amount", "Amounts must be positive."));
        }
        let parts = refund + credit + out_of_band;
        let paid = invoice["status"] == json!("paid");
        let amount = match p.int("amount")? {
            Some(a) if paid && a != parts => {
                return Err(ApiError::invalid(
                    "amount",
                    format!(
                        "The sum of refund_amount, credit_amount and out_of_band_amount ({parts}) must equal amount ({a})."
                    ),
                ));
            }
            Some(a) => a,
            None => parts,
        };
        if amount <= 0 {
            return Err(ApiError::invalid(
                "amount",
                "The credit note must be for a positive amount.",
            ));
        }
        let note_type = match invoice["status"].as_str() {
            Some("paid") => "post_payment",
            Some("open") => "pre_payment",
            other => {
                return Err(ApiError::invalid(
                    "invoice",
                    format!(
                        "You cannot create a credit note for an invoice that is {}.",
                        other.unwrap_or("draft")
                    ),
                ));
            }
        };
        let customer = invoice["customer"].as_str().unwrap_or_default().to_owned();
        let currency = invoice["currency"].clone();
        let (limit, what) = if paid {
            // Up to the invoice's total, what the customer's balance paid included.
            (
                invoice["total"].as_i64().unwrap_or(0)
                    - invoice["post_payment_credit_notes_amount"]
                        .as_i64()
                        .unwrap_or(0),
                "left of the invoice's total",
            )
        } else {
            (
                invoice["amount_remaining"].as_i64().unwrap_or(0),
                "remaining",
            )
        };
        if amount > limit {
            return Err(ApiError::invalid(
                "amount",
                format!(
                    "The credit note amount ({amount}) is greater than what is {what} on the invoice ({limit})."
                ),
            ));
        }
        if !paid && parts > 0 {
            return Err(ApiError::invalid(
                "refund_amount",
                "A credit note for an open invoice reduces what is due; it cannot refund or credit the balance.",
            ));
        }
        let id = new_id("cn");
        let mut refunds = Vec::new();
        if refund > 0 {
            let pi = self
                .invoice_payments
                .get(&invoice_id)
                .cloned()
                .ok_or_else(|| {
                    ApiError::invalid("refund_amount", "The invoice has no payment to refund.")
                })?;
            let (_, r) = self.create_refund(
                &json!({"payment_intent": pi, "amount": refund, "metadata": {"credit_note": id}}),
                ctx,
            )?;
            refunds.push(json!({"amount_refunded": refund, "refund": r["id"]}));
        }
        let balance_txn = if credit > 0 {
            self.adjust_balance(&customer, -credit);
            Some(new_id("cbtxn"))
        } else {
            None
        };
        let now = self.now();
        let line = json!({
            "id": new_id("cnli"),
            "object": "credit_note_line_item",
            "amount": amount,
            "description": p.text("memo").unwrap_or_else(|| "Credit".into()),
            "discount_amount": 0,
            "discount_amounts": [],
            "livemode": self.livemode,
            "pretax_credit_amounts": [],
            "quantity": 1,
            "tax_rates": [],
            "taxes": [],
            "type": "custom_line_item",
            "unit_amount": amount,
            "unit_amount_decimal": amount.to_string(),
        });
        let count = self
            .credit_notes
            .values()
            .filter(|c| c["invoice"] == json!(invoice_id))
            .count();
        let note = json!({
            "id": id,
            "object": "credit_note",
            "amount": amount,
            "amount_shipping": 0,
            "created": now,
            "currency": currency,
            "customer": customer,
            "customer_balance_transaction": balance_txn,
            "discount_amount": 0,
            "discount_amounts": [],
            "effective_at": now,
            "invoice": invoice_id,
            "lines": {"object": "list", "data": [line], "has_more": false,
                      "url": format!("/v1/credit_notes/{id}/lines")},
            "livemode": self.livemode,
            "memo": p.text("memo"),
            "metadata": p.get("metadata").cloned().filter(Value::is_object).unwrap_or(json!({})),
            "number": format!("{}-CN-{:02}", invoice["number"].as_str().unwrap_or("FAKE"), count + 1),
            "out_of_band_amount": if out_of_band > 0 { json!(out_of_band) } else { Value::Null },
            "pdf": format!("https://pay.stripe.com/credit_notes/acct_fake/test_{id}/pdf"),
            "pretax_credit_amounts": [],
            "reason": p.text("reason"),
            "refunds": refunds,
            "shipping_cost": null,
            "status": "issued",
            "subtotal": amount,
            "subtotal_excluding_tax": amount,
            "total": amount,
            "total_excluding_tax": amount,
            "total_taxes": [],
            "type": note_type,
            "voided_at": null,
        });
        self.credit_notes.insert(&id, note.clone());
        if let Some(inv) = self.invoices.get_mut(&invoice_id) {
            let before = inv.clone();
            if paid {
                inv["post_payment_credit_notes_amount"] = json!(
                    inv["post_payment_credit_notes_amount"]
                        .as_i64()
                        .unwrap_or(0)
                        + amount
                );
            } else {
                inv["pre_payment_credit_notes_amount"] =
                    json!(inv["pre_payment_credit_notes_amount"].as_i64().unwrap_or(0) + amount);
                inv["amount_due"] = json!(inv["amount_due"].as_i64().unwrap_or(0) - amount);
                inv["amount_remaining"] =
                    json!(inv["amount_remaining"].as_i64().unwrap_or(0) - amount);
            }
            let after = inv.clone();
            self.emit("invoice.updated", &after, Some(diff(&before, &after)), ctx);
        }
        self.emit("credit_note.created", &note, None, ctx);
        Ok((200, note))
    }

    /// `POST /v1/credit_notes/{id}/void`.
    pub fn void_credit_note(&mut self, id: &str, ctx: &Ctx) -> Answer {
        let mut note = self
            .credit_notes
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("credit_note", id))?;
        if note["status"] != json!("issued") {
            return Err(ApiError::invalid(
                "credit_note",
                "The credit note is already void.",
            ));
        }
        if note["refunds"].as_array().is_some_and(|r| !r.is_empty()) {
            return Err(ApiError::invalid(
                "credit_note",
                "A credit note that refunded money cannot be voided.",
            ));
        }
        let before = note.clone();
        let customer = note["customer"].as_str().unwrap_or_default().to_owned();
        if note["customer_balance_transaction"].is_string() {
            // What it credited to the balance: its amount less what was given out of band.
            let credited = note["amount"].as_i64().unwrap_or(0)
                - note["out_of_band_amount"].as_i64().unwrap_or(0);
            self.adjust_balance(&customer, credited);
        }
        let invoice_id = note["invoice"].as_str().unwrap_or_default().to_owned();
        let amount = note["amount"].as_i64().unwrap_or(0);
        if let Some(inv) = self.invoices.get_mut(&invoice_id) {
            let key = if note["type"] == json!("post_payment") {
                "post_payment_credit_notes_amount"
            } else {
                "pre_payment_credit_notes_amount"
            };
            inv[key] = json!(inv[key].as_i64().unwrap_or(0) - amount);
        }
        note["status"] = json!("void");
        note["voided_at"] = json!(self.now());
        self.credit_notes.insert(id, note.clone());
        self.emit("credit_note.voided", &note, Some(diff(&before, &note)), ctx);
        Ok((200, note))
    }
}
