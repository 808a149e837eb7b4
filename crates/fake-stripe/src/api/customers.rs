//! Customers, and the credit balance that negative invoices (a downgrade invoiced at
//! once) leave on them. `POST /v1/customers/{id}` sets `invoice_settings
//! [default_payment_method]`, the saved card invoices are paid with when they name none
//! (docs.stripe.com/billing/subscriptions/payment-methods-setting#payment-method-priority).

use serde_json::{Value, json};

use super::{Answer, ApiError, Ctx, Params, State, diff, field_is, list, merge_metadata, new_id};

pub(super) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, ctx: &Ctx) -> Option<Answer> {
    Some(match (m, seg) {
        ("GET", ["v1", "customers"]) => list(&s.customers, p, "/v1/customers", |v| {
            field_is(v, "email", p.text("email"))
        }),
        ("POST", ["v1", "customers"]) => s.create_customer(p, ctx),
        ("GET", ["v1", "customers", id]) => s.retrieve_customer(id),
        ("POST", ["v1", "customers", id]) => s.update_customer(id, p, ctx),
        ("DELETE", ["v1", "customers", id]) => s.delete_customer(id, ctx),
        _ => return None,
    })
}

impl State {
    pub fn create_customer(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let id = new_id("cus");
        let mut customer = json!({
            "id": id,
            "object": "customer",
            "address": null,
            "balance": 0,
            "created": self.now(),
            "currency": null,
            "default_source": null,
            "delinquent": false,
            "description": p.text("description"),
            "discount": null,
            "email": p.text("email"),
            "invoice_prefix": super::random_tail(8).to_uppercase(),
            "invoice_settings": {
                "custom_fields": null,
                "default_payment_method": null,
                "footer": null,
                "rendering_options": null,
            },
            "livemode": self.livemode,
            "metadata": {},
            "name": p.text("name"),
            "next_invoice_sequence": 1,
            "phone": null,
            "preferred_locales": [],
            "shipping": null,
            "tax_exempt": "none",
            "test_clock": null,
        });
        merge_metadata(&mut customer, p);
        self.customers.insert(&id, customer.clone());
        self.emit("customer.created", &customer, None, ctx);
        Ok((200, customer))
    }

    /// `DELETE /v1/customers/{id}`: "Permanently deletes a customer. It cannot be
    /// undone. Also immediately cancels any active subscriptions on the customer."
    /// (docs.stripe.com/api/customers/delete). Emits `customer.subscription.deleted` for
    /// each, then `customer.deleted` with the customer as it was; answers the deleted
    /// stub. The customer is gone from then on: requests naming it get "No such customer",
    /// except `GET /v1/customers/{id}`, which answers the stub ([`State::retrieve_customer`]).
    pub fn delete_customer(&mut self, id: &str, ctx: &Ctx) -> Answer {
        let customer = self
            .customers
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("customer", id))?;
        let running: Vec<String> = self
            .subscriptions
            .values()
            .filter(|s| s["customer"] == json!(id) && s["status"] != json!("canceled"))
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect();
        for sub in running {
            self.cancel_subscription(&sub, false)?;
        }
        self.entitled.remove(id);
        self.customers.remove(id);
        self.deleted_customers.insert(id.to_owned());
        self.emit("customer.deleted", &customer, None, ctx);
        Ok((
            200,
            json!({"id": id, "object": "customer", "deleted": true}),
        ))
    }

    /// `POST /v1/customers/{id}`: `email`, `name`, `description` (empty: unset),
    /// `metadata`, `invoice_settings[default_payment_method]` (a card attached to this
    /// customer; empty: unset). Emits `customer.updated`.
    pub fn update_customer(&mut self, id: &str, p: &Value, ctx: &Ctx) -> Answer {
        let mut customer = self
            .customers
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("customer", id))?;
        let before = customer.clone();
        if let Some(pm) = p["invoice_settings"].text("default_payment_method") {
            if pm.is_empty() {
                customer["invoice_settings"]["default_payment_method"] = Value::Null;
            } else {
                let attached = self
                    .payment_methods
                    .get(&pm)
                    .is_some_and(|m| m["customer"] == json!(id));
                if !attached {
                    return Err(ApiError::invalid(
                        "invoice_settings[default_payment_method]",
                        format!(
                            "The customer does not have a payment method with the ID {pm}. The payment method must be attached to the customer."
                        ),
                    ));
                }
                customer["invoice_settings"]["default_payment_method"] = json!(pm);
            }
        }
        for key in ["email", "name", "description"] {
            if let Some(v) = p.text(key) {
                customer[key] = if v.is_empty() { Value::Null } else { json!(v) };
            }
        }
        merge_metadata(&mut customer, p);
        self.customers.insert(id, customer.clone());
        self.emit(
            "customer.updated",
            &customer,
            Some(diff(&before, &customer)),
            ctx,
        );
        Ok((200, customer))
    }

    /// `GET /v1/customers/{id}`. A deleted customer answers `200` with the deleted stub:
    /// "Returns the Customer object for a valid identifier. If it's for a deleted
    /// Customer, a subset of the customer's information is returned, including a
    /// `deleted` property that's set to true." (docs.stripe.com/api/customers/retrieve;
    /// stripe@18.0.0 types the answer `Stripe.Customer | Stripe.DeletedCustomer`, the
    /// latter `{id, object: 'customer', deleted: true}`). Every other request naming it
    /// (a subscription, a Checkout Session, an invoice, a portal session, its cards)
    /// still fails with Stripe's "No such customer: 'cus_…'".
    pub fn retrieve_customer(&self, id: &str) -> Answer {
        if let Some(c) = self.customers.get(id) {
            return Ok((200, c.clone()));
        }
        if self.deleted_customers.contains(id) {
            return Ok((
                200,
                json!({"id": id, "object": "customer", "deleted": true}),
            ));
        }
        Err(ApiError::missing("customer", id))
    }

    /// Adds `delta` to the customer's balance (negative = credit the customer can
    /// spend on later invoices), emitting `customer.updated`.
    pub(crate) fn adjust_balance(&mut self, customer: &str, delta: i64) {
        if delta == 0 {
            return;
        }
        let Some(c) = self.customers.get_mut(customer) else {
            return;
        };
        let before = c.clone();
        c["balance"] = json!(c["balance"].as_i64().unwrap_or(0) + delta);
        let after = c.clone();
        self.emit(
            "customer.updated",
            &after,
            Some(diff(&before, &after)),
            &Ctx::default(),
        );
    }

    /// The next invoice number for this customer (`PREFIX-0001`), advancing it.
    pub(crate) fn next_invoice_number(&mut self, customer: &str) -> Option<String> {
        let c = self.customers.get_mut(customer)?;
        let n = c["next_invoice_sequence"].as_i64().unwrap_or(1);
        c["next_invoice_sequence"] = json!(n + 1);
        Some(format!(
            "{}-{n:04}",
            c["invoice_prefix"].as_str().unwrap_or("INV")
        ))
    }
}
