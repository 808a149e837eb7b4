//! Cursor pagination as a stream of pages.
//!
//! Stripe lists are newest first, 10 per page by default (the system we replace read
//! only that first page). We always ask for 100, follow `starting_after` with the last
//! id of each page while `has_more` is true, and yield page by page so a caller can
//! write each page in one transaction and memory stays flat however big the catalog is.

use futures_util::TryStreamExt;
use futures_util::stream::{self, Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::error::StripeError;
use crate::types::{
    ActiveEntitlement, Event, Feature, InvoiceLine, InvoicePayment, List, PaymentMethod, Price,
    Product, ProductFeature, Raw, Refund, StripeObject,
};

/// Stripe's maximum page size.
pub const PAGE_SIZE: u32 = 100;

struct Cursor {
    client: Client,
    op: &'static str,
    path: String,
    params: Vec<(String, String)>,
    starting_after: Option<String>,
    done: bool,
}

impl Client {
    /// Every page of the list at `path` with the given filters. The stream ends after
    /// the page with `has_more: false`; an error ends it after being yielded.
    pub fn pages<T>(
        &self,
        op: &'static str,
        path: impl Into<String>,
        params: Vec<(String, String)>,
    ) -> impl Stream<Item = Result<List<T>, StripeError>> + Send + 'static
    where
        T: DeserializeOwned + StripeObject + Send + 'static,
    {
        let cursor = Cursor {
            client: self.clone(),
            op,
            path: path.into(),
            params,
            starting_after: None,
            done: false,
        };
        stream::try_unfold(cursor, |mut c| async move {
            if c.done {
                return Ok(None);
            }
            let mut query = c.params.clone();
            query.push(("limit".into(), PAGE_SIZE.to_string()));
            if let Some(after) = &c.starting_after {
                query.push(("starting_after".into(), after.clone()));
            }
            let page: List<T> = c.client.get(c.op, &c.path, &query).await?;
            match page.data.last() {
                Some(last) if page.has_more => c.starting_after = Some(last.id().to_owned()),
                _ => c.done = true,
            }
            Ok(Some((page, c)))
        })
    }

    /// All products, active and archived, each with the exact JSON Stripe sent.
    pub fn product_pages(
        &self,
    ) -> impl Stream<Item = Result<List<Raw<Product>>, StripeError>> + Send + 'static {
        self.pages("products.list", "/v1/products", Vec::new())
    }

    /// The products among `ids` that exist, active or archived, in one request: Stripe's
    /// `ids[]` filter cannot be paged (`starting_after` is refused with it), so at most
    /// [`PAGE_SIZE`] ids per call. A product Stripe deleted is simply absent.
    pub async fn products_by_ids(&self, ids: &[&str]) -> Result<List<Raw<Product>>, StripeError> {
        debug_assert!(
            ids.len() <= PAGE_SIZE as usize,
            "at most {PAGE_SIZE} ids per call"
        );
        let mut query: Vec<(String, String)> = ids
            .iter()
            .map(|id| ("ids[]".to_owned(), (*id).to_owned()))
            .collect();
        query.push(("limit".into(), PAGE_SIZE.to_string()));
        self.get("products.list", "/v1/products", &query).await
    }

    /// All prices, active and archived, of every product, with their exact JSON.
    ///
    /// Stripe's price list "returns a list of your active prices" unless `active=false`
    /// is asked, so this is two lists: the active prices, then the archived ones.
    pub fn price_pages(
        &self,
    ) -> impl Stream<Item = Result<List<Raw<Price>>, StripeError>> + Send + 'static {
        self.both_price_lists(Vec::new())
    }

    /// All prices of one product, active then archived (see [`Client::price_pages`]).
    pub fn product_price_pages(
        &self,
        product: &str,
    ) -> impl Stream<Item = Result<List<Raw<Price>>, StripeError>> + Send + 'static {
        self.both_price_lists(vec![("product".into(), product.to_owned())])
    }

    fn both_price_lists(
        &self,
        params: Vec<(String, String)>,
    ) -> impl Stream<Item = Result<List<Raw<Price>>, StripeError>> + Send + 'static {
        let with = |active: &str| {
            let mut p = params.clone();
            p.push(("active".into(), active.to_owned()));
            p
        };
        self.pages("prices.list", "/v1/prices", with("true"))
            .chain(self.pages("prices.list", "/v1/prices", with("false")))
    }

    /// Every entitlement feature, active then archived: the list leaves archived
    /// features out unless asked ("Inactive features … will not be returned from the
    /// features list endpoint", stripe@18.0.0 `Entitlements/Features.d.ts`), and they
    /// still give entitlements on the products they are attached to.
    pub fn feature_pages(
        &self,
    ) -> impl Stream<Item = Result<List<Raw<Feature>>, StripeError>> + Send + 'static {
        let path = "/v1/entitlements/features";
        self.pages(
            "entitlements.features.list",
            path,
            vec![("archived".into(), "false".into())],
        )
        .chain(self.pages(
            "entitlements.features.list",
            path,
            vec![("archived".into(), "true".into())],
        ))
    }

    /// Every feature attached to a product (`GET /v1/products/{id}/features`).
    pub fn product_feature_pages(
        &self,
        product: &str,
    ) -> impl Stream<Item = Result<List<ProductFeature>, StripeError>> + Send + 'static {
        self.pages(
            "products.features.list",
            format!(
                "/v1/products/{}/features",
                crate::client::path_segment(product)
            ),
            Vec::new(),
        )
    }

    /// A customer's active entitlements, as Stripe answers them
    /// (`GET /v1/entitlements/active_entitlements?customer=`).
    pub fn active_entitlement_pages(
        &self,
        customer: &str,
    ) -> impl Stream<Item = Result<List<ActiveEntitlement>, StripeError>> + Send + 'static {
        self.pages(
            "entitlements.active_entitlements.list",
            "/v1/entitlements/active_entitlements",
            vec![("customer".into(), customer.to_owned())],
        )
    }

    /// A customer's saved cards, newest first (`GET /v1/customers/{id}/payment_methods`).
    pub async fn customer_cards(&self, customer: &str) -> Result<List<PaymentMethod>, StripeError> {
        self.get(
            "customers.payment_methods.list",
            &format!(
                "/v1/customers/{}/payment_methods",
                crate::client::path_segment(customer)
            ),
            &[
                ("type".into(), "card".into()),
                ("limit".into(), "10".into()),
            ],
        )
        .await
    }

    /// Every refund of a charge, newest first. Since API version 2022-11-15 a charge no
    /// longer embeds its refunds, so `charge.refunded` needs this list.
    pub fn charge_refund_pages(
        &self,
        charge: &str,
    ) -> impl Stream<Item = Result<List<Refund>, StripeError>> + Send + 'static {
        self.pages(
            "refunds.list",
            "/v1/refunds",
            vec![("charge".into(), charge.to_owned())],
        )
    }

    /// Every line of an invoice (its payload embeds only the first page).
    pub fn invoice_line_pages(
        &self,
        invoice: &str,
    ) -> impl Stream<Item = Result<List<InvoiceLine>, StripeError>> + Send + 'static {
        self.pages(
            "invoices.lines",
            format!(
                "/v1/invoices/{}/lines",
                crate::client::path_segment(invoice)
            ),
            Vec::new(),
        )
    }

    /// Every payment of an invoice (basil invoices may be paid by several).
    pub fn invoice_payment_pages(
        &self,
        invoice: &str,
    ) -> impl Stream<Item = Result<List<InvoicePayment>, StripeError>> + Send + 'static {
        self.pages(
            "invoice_payments.list",
            "/v1/invoice_payments",
            vec![("invoice".into(), invoice.to_owned())],
        )
    }

    /// Collects every item of a paged list (for lists known to be short: an invoice's
    /// lines and payments, a charge's refunds).
    pub async fn collect_all<T>(
        pages: impl Stream<Item = Result<List<T>, StripeError>>,
    ) -> Result<Vec<T>, StripeError> {
        let mut pages = std::pin::pin!(pages);
        let mut all = Vec::new();
        while let Some(page) = pages.try_next().await? {
            all.extend(page.data);
        }
        Ok(all)
    }

    /// Events created at or after `since` (unix seconds), newest first. Stripe keeps 30
    /// days of them.
    pub fn event_pages(
        &self,
        since: i64,
    ) -> impl Stream<Item = Result<List<Raw<Event>>, StripeError>> + Send + 'static {
        self.pages(
            "events.list",
            "/v1/events",
            vec![("created[gte]".into(), since.to_string())],
        )
    }
}
