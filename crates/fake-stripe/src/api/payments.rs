//! Charges, refunds and disputes.
//!
//! Since 2022-11-15 a Charge no longer embeds its refunds: they are listed with
//! `GET /v1/refunds?charge=…`. Refund events (`refund.created`, `refund.updated`,
//! `refund.failed`) are sent for charge-backed refunds from 2024-10-28.acacia on,
//! alongside the older `charge.refunded` / `charge.refund.updated`. A refund can fail
//! after it succeeded ([`State::fail_refund`]); only `requires_action` refunds can be
//! canceled. A dispute creates no Refund object: it withdraws the funds
//! (`charge.dispute.funds_withdrawn`) and, when won, reinstates them.

use serde_json::{Value, json};

use super::{Answer, ApiError, Ctx, Params, State, created_in_range, diff, field_is, list, new_id};

pub(super) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, ctx: &Ctx) -> Option<Answer> {
    Some(match (m, seg) {
        ("GET", ["v1", "charges"]) => list(&s.charges, p, "/v1/charges", |v| {
            field_is(v, "customer", p.text("customer"))
                && field_is(v, "payment_intent", p.text("payment_intent"))
                && created_in_range(v, p)
        }),
        ("GET", ["v1", "charges", id]) => s.retrieve("charge", id),

        ("GET", ["v1", "refunds"]) => list(&s.refunds, p, "/v1/refunds", |v| {
            field_is(v, "charge", p.text("charge"))
                && field_is(v, "payment_intent", p.text("payment_intent"))
                && created_in_range(v, p)
        }),
        ("POST", ["v1", "refunds"]) => s.create_refund(p, ctx),
        ("GET", ["v1", "refunds", id]) => s.retrieve("refund", id),
        ("POST", ["v1", "refunds", id, "cancel"]) => s.cancel_refund(id),

        ("GET", ["v1", "disputes"]) => list(&s.disputes, p, "/v1/disputes", |v| {
            field_is(v, "charge", p.text("charge"))
                && field_is(v, "payment_intent", p.text("payment_intent"))
                && created_in_range(v, p)
        }),
        ("GET", ["v1", "disputes", id]) => s.retrieve("dispute", id),
        // Closing a dispute through the API accepts it: the merchant loses.
        ("POST", ["v1", "disputes", id, "close"]) => s.close_dispute(id, false),
        _ => return None,
    })
}

/// A card payment's details, as Stripe reports a successful Visa test card.
fn card_details() -> Value {
    json!({
        "card": {
            "amount_authorized": null,
            "authorization_code": null,
            "brand": "visa",
            "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
            "country": "US",
            "exp_month": 12,
            "exp_year": 2034,
            "extended_authorization": {"status": "disabled"},
            "fingerprint": "Xt5EWLLDS7FJjR1c",
            "funding": "credit",
            "incremental_authorization": {"status": "unavailable"},
            "installments": null,
            "last4": "4242",
            "mandate": null,
            "multicapture": {"status": "unavailable"},
            "network": "visa",
            "network_token": {"used": false},
            "network_transaction_id": "104557651805572",
            "overcapture": {"maximum_amount_capturable": 0, "status": "unavailable"},
            "regulated_status": "unregulated",
            "three_d_secure": null,
            "wallet": null,
        },
        "type": "card",
    })
}

impl State {
    /// A successful card charge for `payment_intent` (`charge.succeeded`).
    pub(crate) fn create_charge(
        &mut self,
        customer: &str,
        amount: i64,
        currency: &str,
        payment_intent: &str,
    ) -> Value {
        self.create_charge_with(customer, amount, currency, payment_intent, None)
    }

    /// A card charge that the issuer declined (`charge.failed`): "Your card was
    /// declined." (`card_declined`, `generic_decline`), nothing captured.
    pub(crate) fn create_failed_charge(
        &mut self,
        customer: &str,
        amount: i64,
        currency: &str,
        payment_intent: &str,
        card: &Value,
    ) -> Value {
        let mut charge = self.charge_json(customer, amount, currency, payment_intent, Some(card));
        let id = charge["id"].as_str().unwrap_or_default().to_owned();
        charge["amount_captured"] = json!(0);
        charge["balance_transaction"] = Value::Null;
        charge["captured"] = json!(false);
        charge["failure_code"] = json!("card_declined");
        charge["failure_message"] = json!("Your card was declined.");
        charge["outcome"] = json!({
            "advice_code": null,
            "network_advice_code": null,
            "network_decline_code": null,
            "network_status": "declined_by_network",
            "reason": "generic_decline",
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        });
        charge["paid"] = json!(false);
        charge["status"] = json!("failed");
        self.charges.insert(&id, charge.clone());
        self.emit("charge.failed", &charge, None, &Ctx::default());
        charge
    }

    /// A successful card charge for `payment_intent` (`charge.succeeded`), with the
    /// saved `card` (a PaymentMethod) when one paid, else an unsaved Visa 4242.
    pub(crate) fn create_charge_with(
        &mut self,
        customer: &str,
        amount: i64,
        currency: &str,
        payment_intent: &str,
        card: Option<&Value>,
    ) -> Value {
        let charge = self.charge_json(customer, amount, currency, payment_intent, card);
        let id = charge["id"].as_str().unwrap_or_default().to_owned();
        self.charges.insert(&id, charge.clone());
        self.emit("charge.succeeded", &charge, None, &Ctx::default());
        charge
    }

    /// A successful charge object (not stored).
    fn charge_json(
        &self,
        customer: &str,
        amount: i64,
        currency: &str,
        payment_intent: &str,
        card: Option<&Value>,
    ) -> Value {
        let mut details = card_details();
        let payment_method = match card {
            Some(pm) => {
                for key in ["last4", "fingerprint", "country", "brand", "funding"] {
                    details["card"][key] = pm["card"][key].clone();
                }
                pm["id"].clone()
            }
            None => json!(new_id("pm")),
        };
        let id = new_id("ch");
        json!({
            "id": id,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": 0,
            "application": null,
            "application_fee": null,
            "application_fee_amount": null,
            "balance_transaction": new_id("txn"),
            "billing_details": {
                "address": {"city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null},
                "email": null,
                "name": null,
                "phone": null,
            },
            "calculated_statement_descriptor": "FAKE STRIPE",
            "captured": true,
            "created": self.now(),
            "currency": currency,
            "customer": customer,
            "description": null,
            "disputed": false,
            "failure_balance_transaction": null,
            "failure_code": null,
            "failure_message": null,
            "fraud_details": {},
            "livemode": self.livemode,
            "metadata": {},
            "on_behalf_of": null,
            "outcome": {
                "advice_code": null,
                "network_advice_code": null,
                "network_decline_code": null,
                "network_status": "approved_by_network",
                "reason": null,
                "risk_level": "normal",
                "risk_score": 32,
                "seller_message": "Payment complete.",
                "type": "authorized",
            },
            "paid": true,
            "payment_intent": payment_intent,
            "payment_method": payment_method,
            "payment_method_details": details,
            "radar_options": {},
            "receipt_email": null,
            "receipt_number": null,
            "receipt_url": format!("https://pay.stripe.com/receipts/payment/{}", super::random_tail(40)),
            "refunded": false,
            "review": null,
            "shipping": null,
            "source": null,
            "source_transfer": null,
            "statement_descriptor": null,
            "statement_descriptor_suffix": null,
            "status": "succeeded",
            "transfer_data": null,
            "transfer_group": null,
        })
    }

    /// Moves a charge's `amount_refunded` by `delta`, keeping `refunded` true only when
    /// everything is refunded. Returns the charge before and after.
    fn adjust_refunded(&mut self, charge_id: &str, delta: i64) -> Option<(Value, Value)> {
        let charge = self.charges.get_mut(charge_id)?;
        let before = charge.clone();
        let refunded = charge["amount_refunded"].as_i64().unwrap_or(0) + delta;
        charge["amount_refunded"] = json!(refunded);
        charge["refunded"] = json!(refunded == charge["amount"].as_i64().unwrap_or(0));
        Some((before, charge.clone()))
    }

    // ----- refunds --------------------------------------------------------------

    /// `POST /v1/refunds` (`charge` or `payment_intent`, optional `amount`, `reason`,
    /// `metadata`). Starts in [`State::refund_start_status`]; emits `refund.created`
    /// then `charge.refunded`.
    pub fn create_refund(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let charge_id = match (p.text("charge"), p.text("payment_intent")) {
            (Some(c), _) => c,
            (None, Some(pi)) => self
                .charges
                .values()
                .find(|c| c["payment_intent"] == json!(pi))
                .and_then(|c| c["id"].as_str().map(str::to_owned))
                .ok_or_else(|| {
                    ApiError::invalid("payment_intent", format!("No such payment_intent: '{pi}'"))
                })?,
            (None, None) => {
                return Err(ApiError::invalid(
                    "charge",
                    "One of the following params should be provided for this request: payment_intent or charge.",
                ));
            }
        };
        let charge =
            self.charges.get(&charge_id).cloned().ok_or_else(|| {
                ApiError::invalid("charge", format!("No such charge: '{charge_id}'"))
            })?;
        let amount_total = charge["amount"].as_i64().unwrap_or(0);
        let refunded = charge["amount_refunded"].as_i64().unwrap_or(0);
        let amount = p.int("amount")?.unwrap_or(amount_total - refunded);
        if refunded >= amount_total {
            return Err(ApiError {
                status: 400,
                kind: "invalid_request_error",
                code: Some("charge_already_refunded"),
                message: format!("Charge {charge_id} has already been refunded."),
                param: None,
                detail: None,
            });
        }
        if amount <= 0 || refunded + amount > amount_total {
            return Err(ApiError::invalid(
                "amount",
                format!(
                    "Refund amount ({}) is greater than unrefunded amount on charge ({})",
                    super::money(amount, charge["currency"].as_str().unwrap_or("usd")),
                    super::money(
                        amount_total - refunded,
                        charge["currency"].as_str().unwrap_or("usd")
                    )
                ),
            ));
        }
        let status = self.refund_start_status.clone();
        let id = new_id("re");
        let mut refund = json!({
            "id": id,
            "object": "refund",
            "amount": amount,
            "balance_transaction": if status == "succeeded" { json!(new_id("txn")) } else { Value::Null },
            "charge": charge_id,
            "created": self.now(),
            "currency": charge["currency"],
            "destination_details": {
                "card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"},
                "type": "card",
            },
            "metadata": {},
            "payment_intent": charge["payment_intent"],
            "reason": p.text("reason"),
            "receipt_number": null,
            "source_transfer_reversal": null,
            "status": status,
            "transfer_reversal": null,
        });
        super::merge_metadata(&mut refund, p);
        if status == "requires_action" {
            refund["next_action"] = json!({"display_details": {
                "email_sent": {"email_sent_at": self.now(), "email_sent_to": "jenny@example.com"},
                "expires_at": self.now() + 30 * 86_400}, "type": "display_details"});
        }
        self.refunds.insert(&id, refund.clone());
        let (before, after) = self
            .adjust_refunded(&charge_id, amount)
            .expect("the charge exists");
        self.emit("refund.created", &refund, None, ctx);
        self.emit("charge.refunded", &after, Some(diff(&before, &after)), ctx);
        Ok((200, refund))
    }

    /// Changes a refund's status and emits what Stripe sends for a charge-backed refund:
    /// `refund.updated` and `charge.refund.updated`, then `refund.failed` when it failed.
    fn move_refund(&mut self, id: &str, status: &str, failure: Option<&str>) -> Answer {
        let mut refund = self
            .refunds
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("refund", id))?;
        let before = refund.clone();
        let was = refund["status"].as_str().unwrap_or_default().to_owned();
        refund["status"] = json!(status);
        if let Some(reason) = failure {
            refund["failure_reason"] = json!(reason);
            refund["failure_balance_transaction"] = json!(new_id("txn"));
            refund.as_object_mut().map(|o| o.remove("next_action"));
        }
        if status == "succeeded" && refund["balance_transaction"].is_null() {
            refund["balance_transaction"] = json!(new_id("txn"));
        }
        self.refunds.insert(id, refund.clone());
        // Money the refund no longer returns is counted as unrefunded again.
        if failure.is_some() && was != "failed" && was != "canceled" {
            let amount = refund["amount"].as_i64().unwrap_or(0);
            if let Some(charge) = refund["charge"].as_str() {
                self.adjust_refunded(charge, -amount);
            }
        }
        let ctx = Ctx::default();
        let previous = diff(&before, &refund);
        self.emit("refund.updated", &refund, Some(previous.clone()), &ctx);
        self.emit("charge.refund.updated", &refund, Some(previous), &ctx);
        if status == "failed" {
            self.emit("refund.failed", &refund, None, &ctx);
        }
        Ok((200, refund))
    }

    /// A refund that succeeded (or was pending) fails later, e.g. the card was closed:
    /// `failed` with a `failure_reason`, the charge's `amount_refunded` goes back down.
    pub fn fail_refund(&mut self, id: &str) -> Answer {
        let status = self.retrieve("refund", id)?.1["status"].clone();
        if status != json!("succeeded") && status != json!("pending") {
            return Err(ApiError::invalid(
                "refund",
                format!(
                    "Refund {id} has status {status}; only succeeded or pending refunds can fail"
                ),
            ));
        }
        self.move_refund(id, "failed", Some("expired_or_canceled_card"))
    }

    /// Ends a `pending` (or `requires_action`) refund: `succeeded`, or `failed`.
    pub fn settle_refund(&mut self, id: &str, succeeded: bool) -> Answer {
        let status = self.retrieve("refund", id)?.1["status"].clone();
        if status != json!("pending") && status != json!("requires_action") {
            return Err(ApiError::invalid(
                "refund",
                format!("Refund {id} has status {status}; only pending refunds settle"),
            ));
        }
        if succeeded {
            self.move_refund(id, "succeeded", None)
        } else {
            self.move_refund(id, "failed", Some("declined"))
        }
    }

    /// `POST /v1/refunds/{id}/cancel`: only a `requires_action` refund can be canceled
    /// (docs.stripe.com/api/refunds/cancel); it becomes `canceled`.
    pub fn cancel_refund(&mut self, id: &str) -> Answer {
        let status = self.retrieve("refund", id)?.1["status"].clone();
        if status != json!("requires_action") {
            return Err(ApiError::invalid(
                "refund",
                format!(
                    "You can only cancel refunds with a status of `requires_action`; this refund's status is `{}`.",
                    status.as_str().unwrap_or_default()
                ),
            ));
        }
        self.move_refund(id, "canceled", Some("merchant_request"))
    }

    // ----- disputes -------------------------------------------------------------

    fn dispute_transaction(
        &self,
        dispute: &str,
        amount: i64,
        currency: &Value,
        won: bool,
    ) -> Value {
        let fee = if won { 0 } else { 1500 };
        json!({
            "id": new_id("txn"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": self.now() + 2 * 86_400,
            "created": self.now(),
            "currency": currency,
            "description": if won { "Chargeback reversal" } else { "Chargeback withdrawal" },
            "exchange_rate": null,
            "fee": fee,
            "fee_details": if won { json!([]) } else {
                json!([{"amount": fee, "application": null, "currency": currency, "description": "Dispute fee", "type": "stripe_fee"}])
            },
            "net": amount - fee,
            "reporting_category": if won { "dispute_reversal" } else { "dispute" },
            "source": dispute,
            "status": "pending",
            "type": "adjustment",
        })
    }

    /// The cardholder disputes `charge` (all of it unless `amount`). A chargeback is
    /// `needs_response` and withdraws the funds (`charge.dispute.created`, then
    /// `charge.dispute.funds_withdrawn`); an inquiry (`warning_needs_response`) moves no
    /// money. The charge becomes `disputed: true`; no Refund object is created.
    pub fn create_dispute(&mut self, charge: &str, amount: Option<i64>, inquiry: bool) -> Answer {
        let ch = self
            .charges
            .get(charge)
            .cloned()
            .ok_or_else(|| ApiError::missing("charge", charge))?;
        let amount = amount.unwrap_or_else(|| ch["amount"].as_i64().unwrap_or(0));
        let id = new_id("du");
        let now = self.now();
        let mut dispute = json!({
            "id": id,
            "object": "dispute",
            "amount": amount,
            "balance_transactions": [],
            "charge": charge,
            "created": now,
            "currency": ch["currency"],
            "enhanced_eligibility_types": [],
            "evidence": {
                "access_activity_log": null, "billing_address": null, "cancellation_policy": null,
                "cancellation_policy_disclosure": null, "cancellation_rebuttal": null,
                "customer_communication": null, "customer_email_address": null, "customer_name": null,
                "customer_purchase_ip": null, "customer_signature": null, "duplicate_charge_documentation": null,
                "duplicate_charge_explanation": null, "duplicate_charge_id": null,
                "enhanced_evidence": {}, "product_description": null, "receipt": null,
                "refund_policy": null, "refund_policy_disclosure": null, "refund_refusal_explanation": null,
                "service_date": null, "service_documentation": null, "shipping_address": null,
                "shipping_carrier": null, "shipping_date": null, "shipping_documentation": null,
                "shipping_tracking_number": null, "uncategorized_file": null, "uncategorized_text": null,
            },
            "evidence_details": {
                "due_by": now + 7 * 86_400,
                "enhanced_eligibility": {},
                "has_evidence": false,
                "past_due": false,
                "submission_count": 0,
            },
            "is_charge_refundable": inquiry,
            "livemode": self.livemode,
            "metadata": {},
            "network_reason_code": "10.4",
            "payment_intent": ch["payment_intent"],
            "payment_method_details": {
                "card": {"brand": "visa", "case_type": if inquiry { "inquiry" } else { "chargeback" }, "network_reason_code": "10.4"},
                "type": "card",
            },
            "reason": "fraudulent",
            "status": if inquiry { "warning_needs_response" } else { "needs_response" },
        });
        if !inquiry {
            dispute["balance_transactions"] =
                json!([self.dispute_transaction(&id, -amount, &ch["currency"], false)]);
        }
        self.disputes.insert(&id, dispute.clone());
        if let Some(c) = self.charges.get_mut(charge) {
            c["disputed"] = json!(true);
        }
        let ctx = Ctx::default();
        self.emit("charge.dispute.created", &dispute, None, &ctx);
        if !inquiry {
            self.emit("charge.dispute.funds_withdrawn", &dispute, None, &ctx);
        }
        Ok((200, dispute))
    }

    /// The dispute ends: `won` (the funds come back: `charge.dispute.funds_reinstated`)
    /// or `lost`; an inquiry simply closes (`warning_closed`). Emits
    /// `charge.dispute.closed`.
    pub fn close_dispute(&mut self, id: &str, won: bool) -> Answer {
        let mut dispute = self
            .disputes
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("dispute", id))?;
        let before = dispute.clone();
        let status = dispute["status"].as_str().unwrap_or_default().to_owned();
        let inquiry = status.starts_with("warning_");
        if matches!(status.as_str(), "won" | "lost" | "warning_closed") {
            return Err(ApiError::invalid(
                "dispute",
                format!("This dispute is already closed ({status})."),
            ));
        }
        let reinstated = won && !inquiry;
        dispute["status"] = json!(match (inquiry, won) {
            (true, _) => "warning_closed",
            (false, true) => "won",
            (false, false) => "lost",
        });
        dispute["is_charge_refundable"] = json!(false);
        if reinstated {
            let amount = dispute["amount"].as_i64().unwrap_or(0);
            let txn = self.dispute_transaction(id, amount, &dispute["currency"], true);
            if let Some(list) = dispute["balance_transactions"].as_array_mut() {
                list.push(txn);
            }
        }
        self.disputes.insert(id, dispute.clone());
        let ctx = Ctx::default();
        self.emit(
            "charge.dispute.closed",
            &dispute,
            Some(diff(&before, &dispute)),
            &ctx,
        );
        if reinstated {
            self.emit("charge.dispute.funds_reinstated", &dispute, None, &ctx);
        }
        Ok((200, dispute))
    }
}
