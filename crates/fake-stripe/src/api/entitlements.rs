//! Entitlements, as at 2025-03-31.basil: features (`entitlements.feature`), features
//! attached to products (`product_feature`), each customer's active entitlements
//! (`entitlements.active_entitlement`) and the event announcing a change of them.
//!
//! - Features (docs.stripe.com/api/entitlements/feature/create): `name` and
//!   `lookup_key` are required; "Because the Lookup Key is unique to each feature, you
//!   can't reuse it across different features unless you archive the feature associated
//!   with the Lookup Key." (docs.stripe.com/billing/entitlements). Archiving is
//!   `active=false` on update (`FeatureUpdateParams` of stripe@18.0.0): "Inactive
//!   features cannot be attached to new products and will not be returned from the
//!   features list endpoint." (docs.stripe.com/api/entitlements/feature/update); the
//!   list's `archived` filter asks for them.
//! - Product features (docs.stripe.com/api/product-feature): `POST
//!   /v1/products/{id}/features` with `entitlement_feature`; the object embeds the whole
//!   feature.
//! - Which subscriptions entitle: docs.stripe.com/billing/entitlements says Stripe
//!   grants and revokes access "according to your customer's subscription status"
//!   without listing the statuses. The subscription-status table
//!   (docs.stripe.com/billing/subscriptions/overview#subscription-statuses) calls only
//!   `trialing` and `active` ones where "it's safe to provision your product for your
//!   customer"; so `active` and `trialing` entitle here, and `past_due`, `unpaid`,
//!   `incomplete`, `incomplete_expired`, `paused` and `canceled` do not (a choice where the
//!   docs are silent). Paused collection (`pause_collection`) leaves the status
//!   `active`, so it keeps them.
//! - When products' features change: "Existing subscriptions will create active
//!   entitlements for any product feature changes at the start of the next billing
//!   period." (docs.stripe.com/billing/entitlements?dashboard-or-api=api). So each
//!   subscription keeps the features its items' products had when it started, when its
//!   items last changed, or when its current period began
//!   ([`State::snapshot_features`]); attaching or detaching a product feature changes no
//!   customer's entitlements until then.
//! - Archived features: the docs do not say what happens to active entitlements to a
//!   feature that gets archived; the fake drops them at once (and announces it).
//! - The event: `entitlements.active_entitlement_summary.updated` ("Occurs whenever a
//!   customer's entitlements change", stripe@18.0.0 `EventTypes.d.ts`), its object the
//!   customer's summary with the first ten entitlements (`has_more` beyond, list `url`
//!   `/v1/customer/{id}/entitlements` as in the docs' example payload) and the previous
//!   list as `previous_attributes.entitlements`. [`State::sync_entitlements`] sends it
//!   only when the set of features changes; subscription changes call it.

use serde_json::{Value, json};

use super::{Answer, ApiError, Ctx, Params, State, list, merge_metadata, new_id, random_tail};

/// Subscription statuses whose items' features are entitled (see the module doc).
const ENTITLING: [&str; 2] = ["active", "trialing"];

/// How many entitlements the summary event embeds.
const SUMMARY_EMBEDDED: usize = 10;

pub(super) fn route(s: &mut State, m: &str, seg: &[&str], p: &Value, ctx: &Ctx) -> Option<Answer> {
    Some(match (m, seg) {
        ("GET", ["v1", "entitlements", "features"]) => s.list_features(p),
        ("POST", ["v1", "entitlements", "features"]) => s.create_feature(p, ctx),
        ("GET", ["v1", "entitlements", "features", id]) => s.retrieve_feature(id),
        ("POST", ["v1", "entitlements", "features", id]) => s.update_feature(id, p, ctx),

        ("GET", ["v1", "products", product, "features"]) => s.list_product_features(product, p),
        ("POST", ["v1", "products", product, "features"]) => match p.text("entitlement_feature") {
            Some(feature) => s.attach_product_feature(product, &feature, ctx),
            None => Err(ApiError::required("entitlement_feature")),
        },
        ("GET", ["v1", "products", product, "features", id]) => {
            s.retrieve_product_feature(product, id)
        }
        ("DELETE", ["v1", "products", product, "features", id]) => {
            s.detach_product_feature(product, id, ctx)
        }

        ("GET", ["v1", "entitlements", "active_entitlements"]) => s.list_active_entitlements(p),
        ("GET", ["v1", "entitlements", "active_entitlements", id]) => s
            .active_entitlements
            .get(id)
            .map(|v| (200, v.clone()))
            .ok_or_else(|| ApiError::missing("entitlements.active_entitlement", id)),
        _ => return None,
    })
}

impl State {
    /// `feat_test_…`, `ent_test_…`: the ids Stripe gives these objects name the mode.
    fn mode_id(&self, prefix: &str) -> String {
        let mode = if self.livemode { "live" } else { "test" };
        format!("{prefix}_{mode}_{}", random_tail(32))
    }

    /// An active feature other than `except` with this `lookup_key`.
    fn active_feature_with_key(&self, key: &str, except: Option<&str>) -> Option<String> {
        self.features
            .values()
            .find(|f| {
                f["active"] == json!(true)
                    && f["lookup_key"] == json!(key)
                    && except.is_none_or(|e| f["id"] != json!(e))
            })
            .and_then(|f| f["id"].as_str().map(str::to_owned))
    }

    /// `POST /v1/entitlements/features`: `name`, `lookup_key` (at most 80 characters,
    /// unique among active features), `metadata`. Stripe sends no event for features.
    pub fn create_feature(&mut self, p: &Value, ctx: &Ctx) -> Answer {
        let _ = ctx;
        let name = p.text("name").ok_or_else(|| ApiError::required("name"))?;
        let key = p
            .text("lookup_key")
            .ok_or_else(|| ApiError::required("lookup_key"))?;
        // "A unique key you provide as your own system identifier. This may be up to 80
        // characters." (FeatureCreateParams.lookup_key, stripe@18.0.0)
        if key.is_empty() || key.chars().count() > 80 {
            return Err(ApiError::invalid(
                "lookup_key",
                "lookup_key must be between 1 and 80 characters.",
            ));
        }
        if let Some(other) = self.active_feature_with_key(&key, None) {
            // The rule is Stripe's (module doc); the wording is the fake's.
            return Err(ApiError::invalid(
                "lookup_key",
                format!("A feature with lookup_key '{key}' already exists: {other}."),
            ));
        }
        let id = self.mode_id("feat");
        let mut feature = json!({
            "id": id,
            "object": "entitlements.feature",
            "active": true,
            "livemode": self.livemode,
            "lookup_key": key,
            "metadata": {},
            "name": name,
        });
        merge_metadata(&mut feature, p);
        self.features.insert(&id, feature.clone());
        Ok((200, feature))
    }

    pub fn retrieve_feature(&self, id: &str) -> Answer {
        self.features
            .get(id)
            .map(|v| (200, v.clone()))
            .ok_or_else(|| ApiError::missing("feature", id))
    }

    /// `GET /v1/entitlements/features`: active features, or archived ones with
    /// `archived=true`; `lookup_key` filters.
    pub fn list_features(&self, q: &Value) -> Answer {
        let archived = q.flag("archived")?.unwrap_or(false);
        let key = q.text("lookup_key");
        list(&self.features, q, "/v1/entitlements/features", |f| {
            f["active"] == json!(!archived)
                && key.as_ref().is_none_or(|k| f["lookup_key"] == json!(k))
        })
    }

    /// `POST /v1/entitlements/features/{id}`: `name`, `metadata`, `active` (archive
    /// with `false`, unarchive with `true` while no active feature has its lookup key).
    /// Archiving drops the feature from every customer's active entitlements at once
    /// (module doc), with a summary event for each.
    pub fn update_feature(&mut self, id: &str, p: &Value, ctx: &Ctx) -> Answer {
        let _ = ctx;
        let mut feature = self
            .features
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing("feature", id))?;
        let active = p.flag("active")?;
        if active == Some(true)
            && feature["active"] == json!(false)
            && let Some(other) = self.active_feature_with_key(
                feature["lookup_key"].as_str().unwrap_or_default(),
                Some(id),
            )
        {
            return Err(ApiError::invalid(
                "active",
                format!(
                    "An active feature already uses lookup_key '{}': {other}.",
                    feature["lookup_key"].as_str().unwrap_or_default()
                ),
            ));
        }
        if let Some(name) = p.text("name") {
            feature["name"] = json!(name);
        }
        let changed_state = active.is_some_and(|a| feature["active"] != json!(a));
        if let Some(a) = active {
            feature["active"] = json!(a);
        }
        merge_metadata(&mut feature, p);
        self.features.insert(id, feature.clone());
        if changed_state {
            for customer in self.customers_with_feature(id) {
                self.sync_entitlements(&customer);
            }
        }
        Ok((200, feature))
    }

    /// Customers entitled to `feature` now, or holding a subscription that lists it.
    fn customers_with_feature(&self, feature: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .entitled
            .iter()
            .filter(|(_, ents)| ents.iter().any(|(f, _)| f == feature))
            .map(|(c, _)| c.clone())
            .collect();
        for (sub, features) in &self.subscription_features {
            if features.iter().any(|f| f == feature)
                && let Some(c) = self
                    .subscriptions
                    .get(sub)
                    .and_then(|s| s["customer"].as_str())
                && !out.iter().any(|o| o == c)
            {
                out.push(c.to_owned());
            }
        }
        out.sort();
        out
    }

    /// A stored product feature as Stripe serves it: the feature embedded as it is now.
    fn render_product_feature(&self, stored: &Value) -> Value {
        let feature = stored["feature"]
            .as_str()
            .and_then(|f| self.features.get(f))
            .cloned()
            .unwrap_or(Value::Null);
        json!({
            "id": stored["id"],
            "object": "product_feature",
            "entitlement_feature": feature,
            "livemode": self.livemode,
        })
    }

    /// `POST /v1/products/{product}/features` (`entitlement_feature`). Customers already
    /// subscribed get the feature when their next period starts (module doc).
    pub fn attach_product_feature(&mut self, product: &str, feature: &str, ctx: &Ctx) -> Answer {
        let _ = ctx;
        if self.products.get(product).is_none() {
            return Err(ApiError::missing("product", product));
        }
        let f = self
            .features
            .get(feature)
            .cloned()
            .ok_or_else(|| ApiError::no_such("entitlement_feature", "feature", feature))?;
        if f["active"] != json!(true) {
            return Err(ApiError::invalid(
                "entitlement_feature",
                "Inactive features cannot be attached to new products.",
            ));
        }
        if self
            .product_features
            .values()
            .any(|pf| pf["product"] == json!(product) && pf["feature"] == json!(feature))
        {
            // Wording is the fake's.
            return Err(ApiError::invalid(
                "entitlement_feature",
                format!("The feature {feature} is already attached to product {product}."),
            ));
        }
        let id = new_id("prodft");
        let stored = json!({"id": id, "product": product, "feature": feature});
        self.product_features.insert(&id, stored.clone());
        Ok((200, self.render_product_feature(&stored)))
    }

    /// The product feature `id` of `product`.
    fn stored_product_feature(&self, product: &str, id: &str) -> Result<Value, ApiError> {
        if self.products.get(product).is_none() {
            return Err(ApiError::missing("product", product));
        }
        self.product_features
            .get(id)
            .filter(|pf| pf["product"] == json!(product))
            .cloned()
            .ok_or_else(|| ApiError::missing("product_feature", id))
    }

    pub fn retrieve_product_feature(&self, product: &str, id: &str) -> Answer {
        let stored = self.stored_product_feature(product, id)?;
        Ok((200, self.render_product_feature(&stored)))
    }

    /// `GET /v1/products/{product}/features`, newest first.
    pub fn list_product_features(&self, product: &str, q: &Value) -> Answer {
        if self.products.get(product).is_none() {
            return Err(ApiError::missing("product", product));
        }
        let url = format!("/v1/products/{product}/features");
        let (status, mut page) = list(&self.product_features, q, &url, |pf| {
            pf["product"] == json!(product)
        })?;
        let data: Vec<Value> = page["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|pf| self.render_product_feature(pf))
            .collect();
        page["data"] = json!(data);
        Ok((status, page))
    }

    /// `DELETE /v1/products/{product}/features/{id}`: the deleted stub. Customers keep
    /// the feature until their subscription's next period (module doc).
    pub fn detach_product_feature(&mut self, product: &str, id: &str, ctx: &Ctx) -> Answer {
        let _ = ctx;
        self.stored_product_feature(product, id)?;
        self.product_features.remove(id);
        Ok((
            200,
            json!({"id": id, "object": "product_feature", "deleted": true}),
        ))
    }

    /// `GET /v1/entitlements/active_entitlements?customer=…`, newest first.
    pub fn list_active_entitlements(&self, q: &Value) -> Answer {
        let customer = q
            .text("customer")
            .ok_or_else(|| ApiError::required("customer"))?;
        if self.customers.get(&customer).is_none() {
            return Err(ApiError::no_such("customer", "customer", &customer));
        }
        list(
            &self.active_entitlements,
            q,
            "/v1/entitlements/active_entitlements",
            |e| self.owns_entitlement(&customer, e),
        )
    }

    fn owns_entitlement(&self, customer: &str, entitlement: &Value) -> bool {
        entitlement["id"]
            .as_str()
            .and_then(|id| self.entitlement_customer.get(id))
            .is_some_and(|c| c == customer)
    }

    /// Records the features subscription `sub` entitles to from now on: those attached
    /// to its items' products now (each once, in item order).
    pub(super) fn snapshot_features(&mut self, sub: &str) {
        let Some(s) = self.subscriptions.get(sub) else {
            return;
        };
        let mut features: Vec<String> = Vec::new();
        for item in s["items"]["data"].as_array().into_iter().flatten() {
            let product = &item["price"]["product"];
            for pf in self.product_features.values() {
                if &pf["product"] == product
                    && let Some(f) = pf["feature"].as_str()
                    && !features.iter().any(|x| x == f)
                {
                    features.push(f.to_owned());
                }
            }
        }
        if features.is_empty() {
            self.subscription_features.remove(sub);
        } else {
            self.subscription_features.insert(sub.to_owned(), features);
        }
    }

    /// The features `customer` is entitled to now: those of their `active` and
    /// `trialing` subscriptions that are not archived, each once.
    fn entitled_features(&self, customer: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.subscriptions.values() {
            if s["customer"] != json!(customer)
                || !ENTITLING.iter().any(|st| s["status"] == json!(st))
            {
                continue;
            }
            let Some(features) = s["id"]
                .as_str()
                .and_then(|id| self.subscription_features.get(id))
            else {
                continue;
            };
            for f in features {
                let active = self
                    .features
                    .get(f)
                    .is_some_and(|v| v["active"] == json!(true));
                if active && !out.contains(f) {
                    out.push(f.clone());
                }
            }
        }
        out
    }

    /// The summary of `customer`'s active entitlements, as the event carries it.
    fn entitlement_summary(&self, customer: &str) -> Value {
        let page = self
            .active_entitlements
            .list(
                |e| self.owns_entitlement(customer, e),
                SUMMARY_EMBEDDED,
                None,
                None,
            )
            .expect("no cursor");
        json!({
            "object": "entitlements.active_entitlement_summary",
            "customer": customer,
            "entitlements": {
                "object": "list",
                "data": page.data,
                "has_more": page.has_more,
                "url": format!("/v1/customer/{customer}/entitlements"),
            },
            "livemode": self.livemode,
        })
    }

    /// Recomputes `customer`'s active entitlements and, when the set of features differs
    /// from the one last announced, updates them (a feature kept keeps its entitlement
    /// id) and sends `entitlements.active_entitlement_summary.updated`. Called at the
    /// end of every change that can move it; cheap when no feature exists.
    pub(crate) fn sync_entitlements(&mut self, customer: &str) {
        if self.features.is_empty() && !self.entitled.contains_key(customer) {
            return;
        }
        let want = self.entitled_features(customer);
        let had = self.entitled.get(customer).cloned().unwrap_or_default();
        let same = want.len() == had.len() && had.iter().all(|(f, _)| want.contains(f));
        if same {
            return;
        }
        let previous = self.entitlement_summary(customer)["entitlements"].clone();
        for (f, ent) in &had {
            if !want.contains(f) {
                self.active_entitlements.remove(ent);
                self.entitlement_customer.remove(ent);
            }
        }
        let mut now = Vec::new();
        for f in want {
            if let Some((_, ent)) = had.iter().find(|(h, _)| *h == f) {
                now.push((f, ent.clone()));
                continue;
            }
            let id = self.mode_id("ent");
            let lookup_key = self
                .features
                .get(&f)
                .map(|v| v["lookup_key"].clone())
                .unwrap_or(Value::Null);
            let entitlement = json!({
                "id": id,
                "object": "entitlements.active_entitlement",
                "feature": f,
                "livemode": self.livemode,
                "lookup_key": lookup_key,
            });
            self.active_entitlements.insert(&id, entitlement);
            self.entitlement_customer
                .insert(id.clone(), customer.to_owned());
            now.push((f, id));
        }
        if now.is_empty() {
            self.entitled.remove(customer);
        } else {
            self.entitled.insert(customer.to_owned(), now);
        }
        let summary = self.entitlement_summary(customer);
        self.emit(
            "entitlements.active_entitlement_summary.updated",
            &summary,
            Some(json!({ "entitlements": previous })),
            &Ctx::default(),
        );
    }
}
