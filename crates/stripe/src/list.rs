//! Cursor pagination as a stream of pages.
//!
//! Stripe lists are newest first, 10 per page by default (the system we replace read
//! only that first page). We always ask for 100, follow `starting_after` with the last
//! id of each page while `has_more` is true, and yield page by page so a caller can
//! write each page in one transaction and memory stays flat however big the catalog is.

use futures_util::stream::{self, Stream};
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::error::StripeError;
use crate::types::{Event, List, Price, Product, Raw, StripeObject};

/// Stripe's maximum page size.
pub const PAGE_SIZE: u32 = 100;

struct Cursor {
    client: Client,
    op: &'static str,
    path: &'static str,
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
        path: &'static str,
        params: Vec<(String, String)>,
    ) -> impl Stream<Item = Result<List<T>, StripeError>> + Send + 'static
    where
        T: DeserializeOwned + StripeObject + Send + 'static,
    {
        let cursor = Cursor {
            client: self.clone(),
            op,
            path,
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
            let page: List<T> = c.client.get(c.op, c.path, &query).await?;
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

    /// All prices, active and archived, of every product, with their exact JSON.
    pub fn price_pages(
        &self,
    ) -> impl Stream<Item = Result<List<Raw<Price>>, StripeError>> + Send + 'static {
        self.pages("prices.list", "/v1/prices", Vec::new())
    }

    /// All prices of one product.
    pub fn product_price_pages(
        &self,
        product: &str,
    ) -> impl Stream<Item = Result<List<Raw<Price>>, StripeError>> + Send + 'static {
        self.pages(
            "prices.list",
            "/v1/prices",
            vec![("product".into(), product.to_owned())],
        )
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
