//! Subscription schedules, as at 2025-03-31.basil (docs.stripe.com/api/subscription_schedules):
//! what stripe-manager uses to leave a downgrade for the end of the period.
//!
//! - `POST /v1/subscription_schedules` with `from_subscription`: the schedule takes the
//!   subscription's current period as its one phase (`end_behavior: release`), and the
//!   subscription names it (`schedule`). "When using this parameter, other parameters
//!   (such as phase values) cannot be set. To create a subscription schedule with other
//!   modifications, we recommend making two separate API calls."
//!   (docs.stripe.com/api/subscription_schedules/create).
//! - `POST /v1/subscription_schedules/{id}`: `phases[n][items][m][price|quantity]`,
//!   `phases[n][start_date]` ("Must be set on the first phase"), `phases[n][end_date]`
//!   or `phases[n][iterations]`, `end_behavior`, `proration_behavior`.
//! - `POST /v1/subscription_schedules/{id}/release`: "will remove its `subscription`
//!   property and set the subscription's ID to the `released_subscription` property"
//!   (docs.stripe.com/api/subscription_schedules/release); the subscription carries on.
//! - When a subscription renews ([`State::apply_schedule`]), the phase that starts then
//!   gives its items their price and quantity; when the last phase ends, a schedule with
//!   `end_behavior: release` is released. With `end_behavior: cancel` ("`cancel` will end
//!   the subscription schedule and cancel the underlying subscription",
//!   stripe@18.0.0 SubscriptionSchedules.d.ts) the schedule sets the subscription's
//!   `cancel_at` (and `canceled_at`) to the last phase's end, which release takes back
//!   unless `preserve_cancel_date` ("Keep any cancellation on the subscription that the
//!   schedule has set", SubscriptionSchedulesResource.d.ts); the subscription then ends
//!   there instead of renewing and the schedule is `completed` ("A subscription schedule
//!   is completed after the last phase is finished",
//!   stripe.com/docs/billing/subscriptions/subscription-schedules).
//!
//! Events: `subscription_schedule.created`, `.updated`, `.released`, `.completed`
//! (stripe@18.0.0 `EventTypes.d.ts`).

use serde_json::{Value, json};

use super::billing::{period_of, plan_of};
use super::{Answer, ApiError, Ctx, Params, State, diff, field_is, list, new_id};

pub(super) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, ctx: &Ctx) -> Option<Answer> {
    Some(match (m, seg) {
        ("GET", ["v1", "subscription_schedules"]) => {
            list(&s.schedules, p, "/v1/subscription_schedules", |v| {
                field_is(v, "customer", p.text("customer"))
            })
        }
        ("POST", ["v1", "subscription_schedules"]) => s.create_schedule(p, ctx),
        ("GET", ["v1", "subscription_schedules", id]) => s
            .schedules
            .get(id)
            .map(|v| (200, v.clone()))
            .ok_or_else(|| ApiError::missing("subscription_schedule", id)),
        ("POST", ["v1", "subscription_schedules", id]) => s.update_schedule(id, p, ctx),
        ("POST", ["v1", "subscription_schedules", id, "release"]) => s.release_schedule(id, p, ctx),
        _ => return None,
    })
}

/// A phase's item in Stripe's shape.
fn phase_item(price: &Value, quantity: i64) -> Value {
    json!({
        "discounts": [],
        "metadata": {},
        "plan": price["id"],
        "price": price["id"],
        "quantity": quantity,
        "tax_rates": [],
    })
}

/// A `proration_behavior` of a schedule's request or phase (`create_prorations` when
/// absent): `always_invoice`, `create_prorations` or `none` (stripe@18.0.0
/// `Phase.ProrationBehavior`).
fn proration_param(value: Option<String>, param: &str) -> Result<&'static str, ApiError> {
    match value.as_deref() {
        None | Some("create_prorations") => Ok("create_prorations"),
        Some("always_invoice") => Ok("always_invoice"),
        Some("none") => Ok("none"),
        Some(other) => Err(ApiError::invalid(
            param,
            format!(
                "Invalid {param}: must be one of always_invoice, create_prorations, or none; got {other}"
            ),
        )),
    }
}

/// When a schedule's last phase ends.
fn last_end(schedule: &Value) -> Option<i64> {
    schedule["phases"].as_array()?.last()?["end_date"].as_i64()
}

/// A subscription no longer due to cancel.
fn unset_cancellation(sub: &mut Value) {
    sub["cancel_at"] = Value::Null;
    if sub["cancel_at_period_end"] != json!(true) {
        sub["canceled_at"] = Value::Null;
    }
}

fn phase(items: Vec<Value>, start: i64, end: i64, currency: &Value, proration: &str) -> Value {
    json!({
        "add_invoice_items": [],
        "application_fee_percent": null,
        "billing_cycle_anchor": null,
        "collection_method": null,
        "currency": currency,
        "default_payment_method": null,
        "default_tax_rates": [],
        "description": null,
        "discounts": [],
        "end_date": end,
        "invoice_settings": null,
        "items": items,
        "metadata": {},
        "on_behalf_of": null,
        "proration_behavior": proration,
        "start_date": start,
        "transfer_data": null,
        "trial_end": null,
    })
}

impl State {
    /// `POST /v1/subscription_schedules` (`from_subscription` only).
    pub fn create_schedule(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let sub_id = p
            .text("from_subscription")
            .ok_or_else(|| ApiError::required("from_subscription"))?;
        if let Some(other) = ["phases", "end_behavior", "start_date", "customer"]
            .iter()
            .find(|k| p.get(**k).is_some())
        {
            return Err(ApiError::invalid(
                other,
                "You cannot set other parameters when using `from_subscription`.",
            ));
        }
        let mut sub = self
            .subscriptions
            .get(&sub_id)
            .cloned()
            .ok_or_else(|| ApiError::no_such("from_subscription", "subscription", &sub_id))?;
        if sub["status"] == json!("canceled") {
            return Err(ApiError::invalid(
                "from_subscription",
                "You cannot migrate a canceled subscription to a subscription schedule.",
            ));
        }
        if sub["schedule"].is_string() {
            return Err(ApiError::invalid(
                "from_subscription",
                format!(
                    "The subscription {sub_id} is already attached to a schedule ({}).",
                    sub["schedule"].as_str().unwrap_or_default()
                ),
            ));
        }
        let data = sub["items"]["data"].as_array().cloned().unwrap_or_default();
        let start = data[0]["current_period_start"].as_i64().unwrap_or(0);
        let end = data[0]["current_period_end"].as_i64().unwrap_or(0);
        let items: Vec<Value> = data
            .iter()
            .map(|i| phase_item(&i["price"], i["quantity"].as_i64().unwrap_or(1)))
            .collect();
        let id = new_id("sub_sched");
        let now = self.now();
        let schedule = json!({
            "id": id,
            "object": "subscription_schedule",
            "application": null,
            "canceled_at": null,
            "completed_at": null,
            "created": now,
            "current_phase": {"end_date": end, "start_date": start},
            "customer": sub["customer"],
            "default_settings": {
                "application_fee_percent": null,
                "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null},
                "billing_cycle_anchor": "automatic",
                "collection_method": "charge_automatically",
                "default_payment_method": null,
                "description": null,
                "invoice_settings": {"account_tax_ids": null, "days_until_due": null, "issuer": {"type": "self"}},
                "on_behalf_of": null,
                "transfer_data": null,
            },
            "end_behavior": "release",
            "livemode": self.livemode,
            "metadata": {},
            "phases": [phase(items, start, end, &sub["currency"], "create_prorations")],
            "released_at": null,
            "released_subscription": null,
            "status": "active",
            "subscription": sub_id,
            "test_clock": null,
        });
        self.schedules.insert(&id, schedule.clone());
        self.emit("subscription_schedule.created", &schedule, None, ctx);
        let before = sub.clone();
        sub["schedule"] = json!(id);
        self.subscriptions.insert(&sub_id, sub.clone());
        self.emit(
            "customer.subscription.updated",
            &sub,
            Some(diff(&before, &sub)),
            ctx,
        );
        Ok((200, schedule))
    }

    /// `POST /v1/subscription_schedules/{id}`: new phases (each ends at its `end_date`,
    /// or after `iterations` periods of its first price; the next starts where it ends;
    /// its own `proration_behavior`), `end_behavior`, `proration_behavior`.
    ///
    /// Each phase keeps `phases[n][proration_behavior]`, "The default value is
    /// `create_prorations`. This setting controls prorations when a phase is started
    /// asynchronously and it is persisted as a field on the phase. It's different from
    /// the request-level proration_behavior parameter which controls what happens if the
    /// update request affects the billing configuration of the current phase."
    /// (stripe@18.0.0 SubscriptionSchedulesResource.d.ts, `phases[].proration_behavior`).
    /// The request-level one is checked only: the fake makes no prorations for a change
    /// to the current phase.
    pub fn update_schedule(&mut self, id: &str, p: &Value, ctx: &Ctx) -> Answer {
        let mut schedule = self.running_schedule(id, "update")?;
        let before = schedule.clone();
        if let Some(behavior) = p.text("end_behavior") {
            if !matches!(behavior.as_str(), "release" | "cancel") {
                return Err(ApiError::invalid(
                    "end_behavior",
                    format!("Invalid end_behavior: {behavior}"),
                ));
            }
            schedule["end_behavior"] = json!(behavior);
        }
        super::merge_metadata(&mut schedule, p);
        proration_param(p.text("proration_behavior"), "proration_behavior")?;
        if let Some(phases) = p.get("phases").and_then(Value::as_array) {
            let mut out = Vec::new();
            let mut next_start: Option<i64> = None;
            for (n, ph) in phases.iter().enumerate() {
                let start = match (ph.int("start_date")?, next_start) {
                    (Some(s), _) => s,
                    (None, Some(s)) => s,
                    (None, None) => {
                        return Err(ApiError::required(&format!("phases[{n}][start_date]")));
                    }
                };
                let mut items = Vec::new();
                let mut first_price = None;
                for (m, item) in ph
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    let param = format!("phases[{n}][items][{m}][price]");
                    let price = self.recurring_price(item, &param)?;
                    let quantity = item.int("quantity")?.unwrap_or(1);
                    if quantity < 1 {
                        return Err(ApiError::invalid(
                            &format!("phases[{n}][items][{m}][quantity]"),
                            "Quantity must be at least 1",
                        ));
                    }
                    first_price.get_or_insert(price.clone());
                    items.push(phase_item(&price, quantity));
                }
                let Some(first_price) = first_price else {
                    return Err(ApiError::required(&format!("phases[{n}][items]")));
                };
                let end = match (ph.int("end_date")?, ph.int("iterations")?) {
                    (Some(_), Some(_)) => {
                        return Err(ApiError::invalid(
                            &format!("phases[{n}][iterations]"),
                            "You may only specify one of these parameters: end_date, iterations.",
                        ));
                    }
                    (Some(e), None) => e,
                    (None, i) => start + i.unwrap_or(1).max(1) * period_of(&first_price),
                };
                if end <= start {
                    return Err(ApiError::invalid(
                        &format!("phases[{n}][end_date]"),
                        "The phase must end after it starts.",
                    ));
                }
                let proration = proration_param(
                    ph.text("proration_behavior"),
                    &format!("phases[{n}][proration_behavior]"),
                )?;
                out.push(phase(
                    items,
                    start,
                    end,
                    &first_price["currency"],
                    proration,
                ));
                next_start = Some(end);
            }
            schedule["phases"] = json!(out);
        }
        self.schedules.insert(id, schedule.clone());
        self.emit(
            "subscription_schedule.updated",
            &schedule,
            Some(diff(&before, &schedule)),
            ctx,
        );
        self.set_schedule_cancellation(&before, &schedule, ctx);
        Ok((200, schedule))
    }

    /// The cancellation a schedule sets on its subscription: with `end_behavior: cancel`,
    /// `cancel_at` at its last phase's end (`canceled_at` the request), so the
    /// subscription ends there instead of renewing ([`State::renew_subscription`]); taken
    /// back when the schedule no longer cancels (only a `cancel_at` the schedule set).
    fn set_schedule_cancellation(&mut self, before: &Value, schedule: &Value, ctx: &Ctx) {
        let Some(sub_id) = schedule["subscription"].as_str().map(str::to_owned) else {
            return;
        };
        let Some(mut sub) = self.subscriptions.get(&sub_id).cloned() else {
            return;
        };
        let previous = sub.clone();
        let set_before = (before["end_behavior"] == json!("cancel"))
            .then(|| last_end(before))
            .flatten();
        if schedule["end_behavior"] == json!("cancel") {
            let Some(end) = last_end(schedule) else {
                return;
            };
            if sub["cancel_at"] == json!(end) {
                return;
            }
            sub["cancel_at"] = json!(end);
            sub["canceled_at"] = json!(self.now());
        } else if set_before.is_some_and(|end| sub["cancel_at"] == json!(end)) {
            unset_cancellation(&mut sub);
        } else {
            return;
        }
        self.subscriptions.insert(&sub_id, sub.clone());
        self.emit(
            "customer.subscription.updated",
            &sub,
            Some(diff(&previous, &sub)),
            ctx,
        );
    }

    /// `POST /v1/subscription_schedules/{id}/release` (`preserve_cancel_date`).
    pub fn release_schedule(&mut self, id: &str, p: &Value, ctx: &Ctx) -> Answer {
        let schedule = self.running_schedule(id, "release")?;
        let preserve = p.flag("preserve_cancel_date")?.unwrap_or(false);
        if !preserve {
            // The cancellation the schedule set goes with it: "Keep any cancellation on
            // the subscription that the schedule has set" is what `preserve_cancel_date`
            // asks (SubscriptionSchedulesResource.d.ts).
            let mut keeping = schedule.clone();
            keeping["end_behavior"] = json!("release");
            self.set_schedule_cancellation(&schedule, &keeping, ctx);
        }
        Ok((200, self.release(id, ctx)))
    }

    /// A schedule whose subscription just ended at `end` (the cancellation it set, see
    /// [`State::set_schedule_cancellation`]) is `completed` there
    /// (`subscription_schedule.completed`).
    pub(super) fn complete_schedule(&mut self, id: &str, end: i64) {
        let Some(mut schedule) = self.schedules.get(id).cloned() else {
            return;
        };
        if !matches!(schedule["status"].as_str(), Some("active" | "not_started"))
            || schedule["end_behavior"] != json!("cancel")
        {
            return;
        }
        let before = schedule.clone();
        schedule["status"] = json!("completed");
        schedule["completed_at"] = json!(end);
        schedule["current_phase"] = Value::Null;
        self.schedules.insert(id, schedule.clone());
        self.emit(
            "subscription_schedule.completed",
            &schedule,
            Some(diff(&before, &schedule)),
            &Ctx::default(),
        );
    }

    /// A schedule that has not finished, for `action` (`update`, `release`).
    fn running_schedule(&self, id: &str, action: &str) -> Result<Value, ApiError> {
        let schedule = self
            .schedules
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("subscription_schedule", id))?;
        if !matches!(schedule["status"].as_str(), Some("active" | "not_started")) {
            return Err(ApiError::invalid(
                "subscription_schedule",
                format!(
                    "You cannot {action} a subscription schedule that is {}.",
                    schedule["status"].as_str().unwrap_or_default()
                ),
            ));
        }
        Ok(schedule)
    }

    fn release(&mut self, id: &str, ctx: &Ctx) -> Value {
        let Some(mut schedule) = self.schedules.get(id).cloned() else {
            return Value::Null;
        };
        let before = schedule.clone();
        let sub_id = schedule["subscription"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        schedule["status"] = json!("released");
        schedule["released_at"] = json!(self.now());
        schedule["released_subscription"] = json!(sub_id);
        schedule["subscription"] = Value::Null;
        schedule["current_phase"] = Value::Null;
        self.schedules.insert(id, schedule.clone());
        self.emit(
            "subscription_schedule.released",
            &schedule,
            Some(diff(&before, &schedule)),
            ctx,
        );
        if let Some(mut sub) = self.subscriptions.get(&sub_id).cloned() {
            let before = sub.clone();
            sub["schedule"] = Value::Null;
            self.subscriptions.insert(&sub_id, sub.clone());
            self.emit(
                "customer.subscription.updated",
                &sub,
                Some(diff(&before, &sub)),
                ctx,
            );
        }
        schedule
    }

    /// At a renewal of `sub` whose new period starts at `start`: a schedule whose last
    /// phase ended by then is released (`end_behavior: release`); a phase starting then
    /// gives the items its prices and quantities.
    pub(super) fn apply_schedule(&mut self, sub: &mut Value, start: i64) {
        let Some(id) = sub["schedule"].as_str().map(str::to_owned) else {
            return;
        };
        let Some(mut schedule) = self.schedules.get(&id).cloned() else {
            return;
        };
        let phases = schedule["phases"].as_array().cloned().unwrap_or_default();
        let last_end = phases
            .last()
            .and_then(|p| p["end_date"].as_i64())
            .unwrap_or(i64::MAX);
        if last_end <= start {
            self.release(&id, &Ctx::default());
            sub["schedule"] = Value::Null;
            return;
        }
        let Some(phase) = phases
            .iter()
            .find(|p| p["start_date"].as_i64() == Some(start))
        else {
            return;
        };
        let items = sub["items"]["data"].as_array_mut();
        for (item, next) in items.into_iter().flatten().zip(
            phase["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter(),
        ) {
            if let Some(price) = next["price"]
                .as_str()
                .and_then(|p| self.prices.get(p).cloned())
            {
                item["plan"] = plan_of(&price);
                item["price"] = price;
            }
            item["quantity"] = next["quantity"].clone();
        }
        schedule["current_phase"] =
            json!({"start_date": phase["start_date"], "end_date": phase["end_date"]});
        self.schedules.insert(&id, schedule);
    }
}
