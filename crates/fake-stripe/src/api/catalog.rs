//! Products and prices. `GET /v1/prices` lists active prices unless asked otherwise;
//! prices cannot be deleted through Stripe's API (see [`State::delete_price`]).

use serde_json::{Value, json};

use super::{
    Answer, ApiError, Ctx, Params, State, created_in_range, diff, field_is, list, merge_metadata,
    new_id,
};

pub(super) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, ctx: &Ctx) -> Option<Answer> {
    Some(match (m, seg) {
        ("GET", ["v1", "products"]) => {
            let ids: Option<Vec<String>> = p["ids"].as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            });
            list(&s.products, p, "/v1/products", |v| {
                field_is(v, "active", p.text("active"))
                    && ids
                        .as_ref()
                        .is_none_or(|ids| ids.iter().any(|i| v["id"] == json!(i)))
                    && created_in_range(v, p)
            })
        }
        ("POST", ["v1", "products"]) => s.create_product(p, ctx),
        ("GET", ["v1", "products", id]) => s.retrieve_product(id),
        ("POST", ["v1", "products", id]) => s.update_product(id, p, ctx),
        ("DELETE", ["v1", "products", id]) => s.delete_product(id, ctx),

        // "Returns a list of your active prices": inactive ones only with active=false.
        ("GET", ["v1", "prices"]) => {
            let active = p.text("active").unwrap_or_else(|| "true".into());
            list(&s.prices, p, "/v1/prices", |v| {
                field_is(v, "active", Some(active.clone()))
                    && field_is(v, "product", p.text("product"))
                    && field_is(v, "type", p.text("type"))
                    && field_is(v, "currency", p.text("currency"))
                    && created_in_range(v, p)
            })
        }
        ("POST", ["v1", "prices"]) => s.create_price(p, ctx),
        ("GET", ["v1", "prices", id]) => s.retrieve_price(id),
        ("POST", ["v1", "prices", id]) => s.update_price(id, p, ctx),
        _ => return None,
    })
}

impl State {
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
                    detail: None,
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

    /// Stripe refuses to delete a product that has prices (archive it instead); a
    /// product whose prices went through the fake-only [`State::delete_price`] can go.
    pub fn delete_product(&mut self, id: &str, ctx: &Ctx) -> Answer {
        if self.products.get(id).is_none() {
            return Err(ApiError::missing("product", id));
        }
        if self.prices.values().any(|v| v["product"] == json!(id)) {
            return Err(ApiError {
                status: 400,
                kind: "invalid_request_error",
                code: None,
                message:
                    "This product cannot be deleted because it has one or more user-created prices."
                        .into(),
                param: None,
                detail: None,
            });
        }
        let product = self
            .products
            .remove(id)
            .ok_or_else(|| ApiError::missing("product", id))?;
        self.emit("product.deleted", &product, None, ctx);
        Ok((200, json!({"id": id, "object": "product", "deleted": true})))
    }

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
                                        "interval": interval,
                    "interval_count": r.int("interval_count")?.unwrap_or(1),
                    "meter": r.text("meter"),
                    "trial_period_days": null,
                    "usage_type": r.text("usage_type").unwrap_or_else(|| "licensed".into()),
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

    /// A fake-only hook: Stripe has no `DELETE /v1/prices/{id}` (prices are archived
    /// with `active=false`), but a price can still vanish (a deleted legacy plan) and
    /// `price.deleted` exists, so sync tests model it with this (and
    /// `DELETE /_fake/prices/{id}`). Not reachable through the `/v1` API.
    pub fn delete_price(&mut self, id: &str, ctx: &Ctx) -> Answer {
        let price = self
            .prices
            .remove(id)
            .ok_or_else(|| ApiError::missing("price", id))?;
        self.emit("price.deleted", &price, None, ctx);
        Ok((200, json!({"id": id, "object": "price", "deleted": true})))
    }
}
