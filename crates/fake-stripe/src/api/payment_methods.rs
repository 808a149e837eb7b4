//! Saved cards (PaymentMethods of type `card` attached to customers) and the
//! PaymentIntents that charge them, as at 2025-03-31.basil.
//!
//! A saved card behaves like one of Stripe's test cards (docs.stripe.com/testing):
//! - `succeeds`: 4242 4242 4242 4242, "No authentication (default U.S. card)";
//! - `declines`: 4000 0000 0000 0002, a generic decline (`card_declined`,
//!   `decline_code: generic_decline`);
//! - `requires_authentication`: 4000 0027 6000 3184, "Authentication required"
//!   (stripe.com/docs/payments/cards/testing): 3D Secure on every payment, so an
//!   off-session payment fails with `authentication_required`.
//!
//! [`State::charge_card`] is the one place a saved card is charged. Off session
//! (docs.stripe.com/payments/save-during-payment, charging the saved card later): a decline is a `402` `card_error` whose body carries the `payment_intent`
//! (and `payment_method`, `charge`), the PaymentIntent going back to
//! `requires_payment_method` with `last_payment_error`; a card needing authentication
//! fails the same way with `authentication_required`: "Off-session PaymentIntents that
//! fail confirmation due to Strong Customer Authentication (SCA) requirements have a
//! status of \"requires_payment_method\""
//! (support.stripe.com/questions/manual-confirmation-for-off-session-payments-requiring-strong-customer-authentication-sca).
//! On session the
//! same card leaves the PaymentIntent `requires_action` (3D Secure for the customer).
//! Message texts are Stripe's usual ones for these codes (docs.stripe.com/declines/codes:
//! `authentication_required`, "The card was declined because the transaction requires
//! authentication such as 3D Secure").
//!
//! Routes: `GET /v1/customers/{id}/payment_methods` (`type`), `GET /v1/payment_methods`
//! (`customer`, `type`), `GET /v1/payment_methods/{id}`, `GET /v1/payment_intents`
//! (`customer`), `GET /v1/payment_intents/{id}`. Attaching is in-process
//! ([`State::attach_card`]) or `POST /_fake/customers/{id}/payment_methods`; Checkout
//! saves one when asked (`checkout` module).

use serde_json::{Value, json};

use super::{Answer, ApiError, Ctx, Params, State, field_is, list, new_id, random_tail};

pub(super) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, _: &Ctx) -> Option<Answer> {
    Some(match (m, seg) {
        ("GET", ["v1", "customers", customer, "payment_methods"]) => {
            if s.customers.get(customer).is_none() {
                return Some(Err(ApiError::missing("customer", customer)));
            }
            let url = format!("/v1/customers/{customer}/payment_methods");
            list(&s.payment_methods, p, &url, |v| {
                v["customer"] == json!(customer) && field_is(v, "type", p.text("type"))
            })
        }
        ("GET", ["v1", "payment_methods"]) => {
            list(&s.payment_methods, p, "/v1/payment_methods", |v| {
                field_is(v, "customer", p.text("customer")) && field_is(v, "type", p.text("type"))
            })
        }
        ("GET", ["v1", "payment_methods", id]) => s.retrieve("payment_method", id),
        ("GET", ["v1", "payment_intents"]) => {
            list(&s.payment_intents, p, "/v1/payment_intents", |v| {
                field_is(v, "customer", p.text("customer"))
            })
        }
        ("GET", ["v1", "payment_intents", id]) => s.retrieve("payment_intent", id),
        _ => return None,
    })
}

/// A test card: what it does when charged, its last four digits and a fingerprint.
struct TestCard {
    last4: &'static str,
    fingerprint: &'static str,
}

fn test_card(behavior: &str) -> Option<TestCard> {
    Some(match behavior {
        "succeeds" => TestCard {
            last4: "4242",
            fingerprint: "Xt5EWLLDS7FJjR1c",
        },
        "declines" => TestCard {
            last4: "0002",
            fingerprint: "s3Gk2PpVXmC6dJ1e",
        },
        "requires_authentication" => TestCard {
            last4: "3184",
            fingerprint: "Qm9VnJb4aWLtZk2R",
        },
        _ => return None,
    })
}

/// `behavior` names a test card ([`State::attach_card`]).
pub(crate) fn check_behavior(behavior: &str) -> Result<(), ApiError> {
    match test_card(behavior) {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(
            "behavior",
            format!(
                "Unknown card behaviour {behavior:?}: use succeeds, declines or requires_authentication"
            ),
        )),
    }
}

/// What charging a saved card came to.
pub(crate) enum CardOutcome {
    /// Paid (`charge.succeeded` sent).
    Paid,
    /// Declined, or needing authentication off session: the `402` to answer.
    Failed(ApiError),
    /// Needs the customer to authenticate (on session): the `402` to answer.
    ActionRequired(ApiError),
}

impl State {
    /// Attaches a new card PaymentMethod to `customer` behaving as `behavior` says
    /// (`succeeds`, `declines`, `requires_authentication`; see the module doc) and sends
    /// `payment_method.attached`. Returns its id. It does not become the customer's
    /// default: set `invoice_settings[default_payment_method]` with
    /// `POST /v1/customers/{id}` ([`State::update_customer`]) for that.
    pub fn attach_card(&mut self, customer: &str, behavior: &str) -> Result<String, ApiError> {
        if self.customers.get(customer).is_none() {
            return Err(ApiError::no_such("customer", "customer", customer));
        }
        check_behavior(behavior)?;
        let card = test_card(behavior).expect("checked");
        let id = new_id("pm");
        let pm = json!({
            "id": id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": {
                "address": {"city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null},
                "email": null,
                "name": null,
                "phone": null,
            },
            "card": {
                "brand": "visa",
                "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
                "country": "US",
                "display_brand": "visa",
                "exp_month": 12,
                "exp_year": 2034,
                "fingerprint": card.fingerprint,
                "funding": "credit",
                "generated_from": null,
                "last4": card.last4,
                "networks": {"available": ["visa"], "preferred": null},
                "regulated_status": "unregulated",
                "three_d_secure_usage": {"supported": true},
                "wallet": null,
            },
            "created": self.now(),
            "customer": customer,
            "livemode": self.livemode,
            "metadata": {},
            "type": "card",
        });
        self.payment_methods.insert(&id, pm.clone());
        self.card_behavior.insert(id.clone(), behavior.to_owned());
        self.emit("payment_method.attached", &pm, None, &Ctx::default());
        Ok(id)
    }

    /// A new PaymentIntent object (not stored) for `amount` of `currency`, waiting for
    /// a payment method.
    pub(crate) fn payment_intent_json(
        &self,
        id: &str,
        amount: i64,
        currency: &str,
        customer: Option<&str>,
    ) -> Value {
        json!({
            "id": id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "application": null,
            "application_fee_amount": null,
            "automatic_payment_methods": null,
            "canceled_at": null,
            "cancellation_reason": null,
            "capture_method": "automatic",
            "client_secret": format!("{id}_secret_{}", random_tail(25)),
            "confirmation_method": "automatic",
            "created": self.now(),
            "currency": currency,
            "customer": customer,
            "description": null,
            "last_payment_error": null,
            "latest_charge": null,
            "livemode": self.livemode,
            "metadata": {},
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": null,
            "payment_method_configuration_details": null,
            "payment_method_options": {"card": {"installments": null, "mandate_options": null, "network": null, "request_three_d_secure": "automatic"}},
            "payment_method_types": ["card"],
            "processing": null,
            "receipt_email": null,
            "review": null,
            "setup_future_usage": null,
            "shipping": null,
            "source": null,
            "statement_descriptor": null,
            "statement_descriptor_suffix": null,
            "status": "requires_payment_method",
            "transfer_data": null,
            "transfer_group": null,
        })
    }

    /// Stores PaymentIntent `id` unless the fake already keeps it.
    pub(crate) fn ensure_payment_intent(
        &mut self,
        id: &str,
        amount: i64,
        currency: &str,
        customer: Option<&str>,
    ) {
        if let Some(pi) = self.payment_intents.get_mut(id) {
            pi["amount"] = json!(amount);
            return;
        }
        let pi = self.payment_intent_json(id, amount, currency, customer);
        self.payment_intents.insert(id, pi);
    }

    /// The kept PaymentIntent `id` succeeded with `charge` (`payment_intent.succeeded`
    /// when `announce`). Nothing when the fake keeps no such object.
    pub(crate) fn payment_intent_succeeded(&mut self, id: &str, charge: &Value, announce: bool) {
        let Some(pi) = self.payment_intents.get_mut(id) else {
            return;
        };
        pi["status"] = json!("succeeded");
        pi["amount_received"] = charge["amount"].clone();
        pi["latest_charge"] = charge["id"].clone();
        pi["payment_method"] = charge["payment_method"].clone();
        pi["last_payment_error"] = Value::Null;
        pi["next_action"] = Value::Null;
        let pi = pi.clone();
        if announce {
            self.emit("payment_intent.succeeded", &pi, None, &Ctx::default());
        }
    }

    /// Confirms the kept PaymentIntent `pi` with the saved card `pm` of its customer,
    /// `off_session` or not, as the card's test behaviour says (module doc). Sends
    /// `charge.succeeded` and `payment_intent.succeeded`; or `charge.failed` (a decline)
    /// and `payment_intent.payment_failed`; or, on session with a card that needs
    /// authentication, `payment_intent.requires_action`.
    pub(crate) fn charge_card(&mut self, pi: &str, pm: &str, off_session: bool) -> CardOutcome {
        let Some(intent) = self.payment_intents.get(pi).cloned() else {
            return CardOutcome::Failed(ApiError::missing("payment_intent", pi));
        };
        let Some(method) = self.payment_methods.get(pm).cloned() else {
            return CardOutcome::Failed(ApiError::no_such("payment_method", "PaymentMethod", pm));
        };
        let customer = intent["customer"].as_str().unwrap_or_default().to_owned();
        let amount = intent["amount"].as_i64().unwrap_or(0);
        let currency = intent["currency"].as_str().unwrap_or("usd").to_owned();
        let behavior = self
            .card_behavior
            .get(pm)
            .cloned()
            .unwrap_or_else(|| "succeeds".into());
        let ctx = Ctx::default();
        match behavior.as_str() {
            "declines" => {
                let charge = self.create_failed_charge(&customer, amount, &currency, pi, &method);
                let detail = json!({
                    "charge": charge["id"],
                    "decline_code": "generic_decline",
                    "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                });
                let error = json!({
                    "charge": charge["id"],
                    "code": "card_declined",
                    "decline_code": "generic_decline",
                    "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                    "message": "Your card was declined.",
                    "payment_method": method,
                    "type": "card_error",
                });
                let intent = self.payment_intent_failed(pi, error, &charge["id"]);
                self.emit("payment_intent.payment_failed", &intent, None, &ctx);
                CardOutcome::Failed(card_error(
                    "card_declined",
                    "Your card was declined.",
                    detail,
                    &intent,
                    &method,
                ))
            }
            "requires_authentication" if off_session => {
                let message = "Your card was declined. This transaction requires authentication.";
                let error = json!({
                    "code": "authentication_required",
                    "decline_code": "authentication_required",
                    "doc_url": "https://stripe.com/docs/error-codes/authentication-required",
                    "message": message,
                    "payment_method": method,
                    "type": "card_error",
                });
                let intent = self.payment_intent_failed(pi, error, &Value::Null);
                self.emit("payment_intent.payment_failed", &intent, None, &ctx);
                let detail = json!({
                    "decline_code": "authentication_required",
                    "doc_url": "https://stripe.com/docs/error-codes/authentication-required",
                });
                CardOutcome::Failed(card_error(
                    "authentication_required",
                    message,
                    detail,
                    &intent,
                    &method,
                ))
            }
            "requires_authentication" => {
                let Some(intent) = self.payment_intents.get_mut(pi) else {
                    return CardOutcome::Failed(ApiError::missing("payment_intent", pi));
                };
                intent["status"] = json!("requires_action");
                intent["payment_method"] = json!(pm);
                intent["next_action"] = json!({
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": format!("https://hooks.stripe.com/redirect/authenticate/src_{}", random_tail(24))},
                });
                let intent = intent.clone();
                self.emit("payment_intent.requires_action", &intent, None, &ctx);
                CardOutcome::ActionRequired(ApiError {
                    status: 402,
                    kind: "card_error",
                    code: Some("invoice_payment_intent_requires_action"),
                    message: "This payment requires additional user action before it can be completed successfully. Payment can be completed using the PaymentIntent associated with the invoice. For more details see: https://stripe.com/docs/billing/subscriptions/overview#requires-action".into(),
                    param: None,
                    detail: Some(Box::new(json!({"payment_intent": intent, "payment_method": method}))),
                })
            }
            _ => {
                let charge =
                    self.create_charge_with(&customer, amount, &currency, pi, Some(&method));
                self.payment_intent_succeeded(pi, &charge, true);
                CardOutcome::Paid
            }
        }
    }

    /// The kept PaymentIntent `pi` failed: back to `requires_payment_method` with
    /// `last_payment_error` (which names the card; `payment_method` is cleared).
    fn payment_intent_failed(&mut self, pi: &str, error: Value, charge: &Value) -> Value {
        let Some(intent) = self.payment_intents.get_mut(pi) else {
            return Value::Null;
        };
        intent["status"] = json!("requires_payment_method");
        intent["payment_method"] = Value::Null;
        intent["last_payment_error"] = error;
        if !charge.is_null() {
            intent["latest_charge"] = charge.clone();
        }
        intent["next_action"] = Value::Null;
        intent.clone()
    }
}

/// A `402` `card_error` with Stripe's extra fields: the PaymentIntent and the card.
fn card_error(
    code: &'static str,
    message: &str,
    mut detail: Value,
    intent: &Value,
    method: &Value,
) -> ApiError {
    detail["payment_intent"] = intent.clone();
    detail["payment_method"] = method.clone();
    ApiError {
        status: 402,
        kind: "card_error",
        code: Some(code),
        message: message.into(),
        param: None,
        detail: Some(Box::new(detail)),
    }
}
