//! Checkout Sessions: created open, completed by a (simulated) customer, expired.
//! A session whose total is 0 completes with `payment_status: no_payment_required`
//! and no payment intent (docs.stripe.com/payments/checkout/no-cost-orders); a
//! subscription session starts its subscription `incomplete` and activates it when the
//! first invoice is paid, as Stripe does.
//!
//! A payment-mode session can save the card for later:
//! `payment_intent_data[setup_future_usage]` (`on_session` | `off_session`): "If a Customer
//! has been provided or Checkout creates a new Customer, Checkout will attach the payment
//! method to the Customer." (docs.stripe.com/api/checkout/sessions/create, and
//! docs.stripe.com/payments/save-during-payment). Stripe keeps it off the session object;
//! the session's PaymentIntent records it (`setup_future_usage`, and the
//! `payment_intent_data[metadata]`) and names the saved card (`payment_method`), and
//! `payment_method.attached` is sent. With
//! `saved_payment_method_options[payment_method_save]=enabled` ("Enable customers to
//! choose if they wish to save their payment method for future use") the fake's
//! customer chooses to save it. Payment-mode sessions keep their PaymentIntent as an
//! object (`GET /v1/payment_intents/{id}`) but send no `payment_intent.*` events (the
//! fake never did, and services listen to the session's events).

use serde_json::{Value, json};

use super::{
    Answer, ApiError, Ctx, Params, State, field_is, list, merge_metadata, new_id, random_tail,
};

pub(super) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, ctx: &Ctx) -> Option<Answer> {
    Some(match (m, seg) {
        ("GET", ["v1", "checkout", "sessions"]) => {
            list(&s.sessions, p, "/v1/checkout/sessions", |v| {
                field_is(v, "customer", p.text("customer"))
                    && field_is(v, "payment_intent", p.text("payment_intent"))
                    && field_is(v, "subscription", p.text("subscription"))
                    && field_is(v, "status", p.text("status"))
            })
        }
        ("POST", ["v1", "checkout", "sessions"]) => s.create_checkout_session(p, ctx),
        ("GET", ["v1", "checkout", "sessions", id]) => s.retrieve_session(id),
        ("GET", ["v1", "checkout", "sessions", id, "line_items"]) => {
            s.session_line_items_page(id, p)
        }
        ("POST", ["v1", "checkout", "sessions", id, "expire"]) => s.expire_session(id, ctx),
        _ => return None,
    })
}

impl State {
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
        let trial_days = match p["subscription_data"]["trial_period_days"].as_str() {
            None => None,
            Some(_) if mode != "subscription" => {
                return Err(ApiError::invalid(
                    "subscription_data",
                    "You can only pass `subscription_data` in `subscription` mode.",
                ));
            }
            // Stripe: a trial of at least 1 and at most 730 days.
            Some(d) => match d.parse::<i64>() {
                Ok(n) if (1..=730).contains(&n) => Some(n),
                _ => {
                    return Err(ApiError::invalid(
                        "subscription_data[trial_period_days]",
                        format!("Invalid trial_period_days: {d} (1 to 730)"),
                    ));
                }
            },
        };
        let setup_future_usage = match p["payment_intent_data"].text("setup_future_usage") {
            None => None,
            Some(_) if mode != "payment" => {
                return Err(ApiError::invalid(
                    "payment_intent_data",
                    "You can only pass `payment_intent_data` in `payment` mode.",
                ));
            }
            Some(u) if matches!(u.as_str(), "on_session" | "off_session") => Some(u),
            Some(u) => {
                return Err(ApiError::invalid(
                    "payment_intent_data[setup_future_usage]",
                    format!(
                        "Invalid payment_intent_data[setup_future_usage]: must be one of on_session or off_session; got {u}"
                    ),
                ));
            }
        };
        let payment_method_save = match p["saved_payment_method_options"]
            .text("payment_method_save")
        {
            None => None,
            Some(v) if matches!(v.as_str(), "enabled" | "disabled") => Some(v),
            Some(v) => {
                return Err(ApiError::invalid(
                    "saved_payment_method_options[payment_method_save]",
                    format!(
                        "Invalid saved_payment_method_options[payment_method_save]: must be one of enabled or disabled; got {v}"
                    ),
                ));
            }
        };
        if let Some(customer) = p.text("customer")
            && self.customers.get(&customer).is_none()
        {
            // Never existed, or deleted: Stripe's `resource_missing` naming `customer`.
            return Err(ApiError::no_such("customer", "customer", &customer));
        }
        let id = format!(
            "cs_{}_{}",
            if self.livemode { "live" } else { "test" },
            random_tail(40)
        );
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
            let description = self.product_name(&price["product"]);
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
        let now = self.now();
        let free = total == 0 && mode != "setup";
        let mut session = json!({
            "id": id,
            "object": "checkout.session",
            "adaptive_pricing": null,
            "after_expiration": null,
            "allow_promotion_codes": p.flag("allow_promotion_codes")?,
            "amount_subtotal": total,
            "amount_total": total,
            "automatic_tax": {"enabled": false, "liability": null, "status": null},
            "billing_address_collection": null,
            "cancel_url": p.text("cancel_url"),
            "client_reference_id": p.text("client_reference_id"),
            "client_secret": null,
            "collected_information": null,
            "consent": null,
            "consent_collection": null,
            "created": now,
            "currency": currency,
            "currency_conversion": null,
            "custom_fields": [],
            "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
            "customer": p.text("customer"),
            "customer_creation": if p.text("customer").is_some() { Value::Null } else { json!("if_required") },
            "customer_details": null,
            "customer_email": p.text("customer_email"),
            "discounts": [],
            "expires_at": now + 86_400,
            "invoice": null,
            "invoice_creation": if mode == "payment" {
                json!({"enabled": false, "invoice_data": {"account_tax_ids": null, "custom_fields": null, "description": null, "footer": null, "issuer": null, "metadata": {}, "rendering_options": null}})
            } else { Value::Null },
            "livemode": self.livemode,
            "locale": null,
            "metadata": {},
            "mode": mode,
            "payment_intent": null,
            "payment_link": null,
            "payment_method_collection": if mode == "setup" { Value::Null } else { json!("if_required") },
            "payment_method_configuration_details": null,
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "payment_status": if free { "no_payment_required" } else { "unpaid" },
            "permissions": null,
            "phone_number_collection": {"enabled": false},
            "recovered_from": null,
            // By default "only saved payment methods with 'allow_redisplay: ‘always' are
            // shown in Checkout" (SavedPaymentMethodOptions, stripe@18.0.0).
            "saved_payment_method_options": payment_method_save.as_ref().map(|save| json!({
                "allow_redisplay_filters": ["always"],
                "payment_method_remove": null,
                "payment_method_save": save,
            })),
            "setup_intent": null,
            "shipping_address_collection": null,
            "shipping_cost": null,
            "shipping_options": [],
            "status": "open",
            "submit_type": null,
            "subscription": null,
            "success_url": p.text("success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": format!("https://checkout.stripe.com/c/pay/{id}"),
        });
        merge_metadata(&mut session, p);
        if let Some(days) = trial_days {
            self.session_subscription_data
                .insert(id.clone(), json!({"trial_period_days": days}));
        }
        if mode == "payment" {
            // `payment_intent_data[metadata]`: "Set of key-value pairs that you can attach
            // to an object" (the PaymentIntent; SessionCreateParams.PaymentIntentData).
            let mut data = json!({"setup_future_usage": setup_future_usage, "metadata": {}});
            merge_metadata(&mut data, &p["payment_intent_data"]);
            self.session_payment_intent_data.insert(id.clone(), data);
        }
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

    /// The session's line items (the first page of ten, as a list object).
    pub fn session_line_items(&self, id: &str) -> Answer {
        self.session_line_items_page(id, &json!({}))
    }

    /// `GET /v1/checkout/sessions/{id}/line_items`, paged in order.
    pub fn session_line_items_page(&self, id: &str, q: &Value) -> Answer {
        let items = self
            .line_items
            .get(id)
            .ok_or_else(|| ApiError::missing("checkout.session", id))?;
        super::page_in_order(items, q, &format!("/v1/checkout/sessions/{id}/line_items"))
    }

    /// `POST /v1/checkout/sessions/{id}/expire`: an open session becomes `expired`
    /// (`checkout.session.expired`); any other status is refused.
    pub fn expire_session(&mut self, id: &str, ctx: &Ctx) -> Answer {
        let mut s = self
            .sessions
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("checkout.session", id))?;
        if s["status"] != json!("open") {
            return Err(ApiError::invalid(
                "session",
                format!(
                    "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \"{}\".",
                    s["status"].as_str().unwrap_or_default()
                ),
            ));
        }
        s["status"] = json!("expired");
        s["url"] = Value::Null;
        self.sessions.insert(id, s.clone());
        self.emit("checkout.session.expired", &s, None, ctx);
        Ok((200, s))
    }

    /// What a customer finishing the payment page does. `paid: false` models a delayed
    /// payment method (the session completes unpaid; settle it with
    /// [`State::settle_async_payment`]). Subscription sessions start the subscription
    /// `incomplete` and bill its first invoice, which activates it when paid. A
    /// payment-mode session asked to save the card (module doc) attaches a `succeeds`
    /// card to the customer.
    pub fn complete_session(&mut self, id: &str, paid: bool) -> Answer {
        self.finish_session(id, paid, None)
    }

    /// [`State::complete_session`] (paid) of a payment-mode session, the customer paying
    /// with a card that is saved to them whatever the session asked, and that behaves
    /// as `behavior` says when charged later (`succeeds`, `declines`,
    /// `requires_authentication`, see [`State::attach_card`]). The checkout payment
    /// itself succeeds (a card that needs authentication was authenticated by the
    /// customer on the page; a `declines` card stands for one that stops working later).
    pub fn complete_session_with_card(&mut self, id: &str, behavior: &str) -> Answer {
        let mode = self
            .sessions
            .get(id)
            .map(|s| s["mode"].clone())
            .ok_or_else(|| ApiError::missing("checkout.session", id))?;
        if mode != json!("payment") {
            return Err(ApiError::invalid(
                "id",
                format!("Session {id} is not a payment-mode session; only those save a card here"),
            ));
        }
        super::payment_methods::check_behavior(behavior)?;
        self.finish_session(id, true, Some(behavior))
    }

    fn finish_session(&mut self, id: &str, paid: bool, card: Option<&str>) -> Answer {
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
        let email = self
            .customers
            .get(&customer)
            .map(|c| c["email"].clone())
            .unwrap_or(Value::Null);
        let lines = self.line_items.get(id).cloned().unwrap_or_default();
        let total = session["amount_total"].as_i64().unwrap_or(0);
        let currency = session["currency"].as_str().unwrap_or("usd").to_owned();
        let mut s = session.clone();
        s["customer"] = json!(customer);
        s["customer_details"] = json!({"address": null, "email": email, "name": null,
            "phone": null, "tax_exempt": "none", "tax_ids": []});
        s["status"] = json!("complete");
        s["url"] = Value::Null;
        s["payment_status"] = json!(match (total, paid) {
            (0, _) => "no_payment_required",
            (_, true) => "paid",
            (_, false) => "unpaid",
        });
        if s["mode"] == json!("subscription") {
            let items: Vec<(Value, i64)> = lines
                .iter()
                .map(|l| (l["price"].clone(), l["quantity"].as_i64().unwrap_or(1)))
                .collect();
            let trial_end = self
                .session_subscription_data
                .get(id)
                .and_then(|d| d["trial_period_days"].as_i64())
                .map(|days| self.now() + days * 86_400);
            let (sub, invoice) = self.start_subscription(
                &customer,
                &items,
                &s["metadata"],
                if paid {
                    "checkout"
                } else {
                    "default_incomplete"
                },
                trial_end,
                &ctx,
            )?;
            s["subscription"] = sub["id"].clone();
            s["invoice"] = invoice["id"].clone();
        } else if s["mode"] == json!("payment") && total > 0 {
            let pi = new_id("pi");
            s["payment_intent"] = json!(pi);
            let usage = self
                .session_payment_intent_data
                .get(id)
                .and_then(|d| d["setup_future_usage"].as_str())
                .map(str::to_owned);
            let save = usage.is_some()
                || card.is_some()
                || s["saved_payment_method_options"]["payment_method_save"] == json!("enabled");
            let pm = if save {
                Some(self.attach_card(&customer, card.unwrap_or("succeeds"))?)
            } else {
                None
            };
            let mut intent = self.payment_intent_json(&pi, total, &currency, Some(&customer));
            intent["setup_future_usage"] = json!(usage);
            if let Some(meta) = self
                .session_payment_intent_data
                .get(id)
                .map(|d| d["metadata"].clone())
            {
                intent["metadata"] = meta;
            }
            intent["payment_method"] = json!(pm);
            intent["status"] = json!(if paid { "succeeded" } else { "processing" });
            self.payment_intents.insert(&pi, intent);
            if paid {
                let method = pm
                    .as_ref()
                    .and_then(|m| self.payment_methods.get(m).cloned());
                let charge =
                    self.create_charge_with(&customer, total, &currency, &pi, method.as_ref());
                self.payment_intent_succeeded(&pi, &charge, false);
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
            if let Some(invoice) = s["invoice"].as_str().map(str::to_owned) {
                self.pay_invoice(&invoice)?;
            } else {
                let customer = s["customer"].as_str().unwrap_or_default().to_owned();
                let pi = s["payment_intent"].as_str().unwrap_or_default().to_owned();
                let total = s["amount_total"].as_i64().unwrap_or(0);
                let currency = s["currency"].as_str().unwrap_or("usd").to_owned();
                let method = self
                    .payment_intents
                    .get(&pi)
                    .and_then(|i| i["payment_method"].as_str())
                    .and_then(|m| self.payment_methods.get(m).cloned());
                let charge =
                    self.create_charge_with(&customer, total, &currency, &pi, method.as_ref());
                self.payment_intent_succeeded(&pi, &charge, false);
            }
        } else if let Some(pi) = s["payment_intent"]
            .as_str()
            .and_then(|pi| self.payment_intents.get_mut(pi))
        {
            pi["status"] = json!("requires_payment_method");
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
}
