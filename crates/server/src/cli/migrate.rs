use serde_json::json;
use sm_store::{ConnectOptions, Store};

use super::Failure;
use crate::config::Config;

pub async fn run(config: Config, json: bool) -> Result<u8, Failure> {
    let store = Store::connect(&config.database_url, &ConnectOptions::default()).await?;
    let applied = store.migrate().await?;
    let current = store.applied_migrations().await?;
    store.close().await;
    if json {
        println!(
            "{}",
            json!({"database": config.database_url.redacted(), "applied": applied, "current": current})
        );
    } else if applied.is_empty() {
        println!(
            "{}: up to date (version {})",
            config.database_url,
            current.last().unwrap_or(&0)
        );
    } else {
        println!("{}: applied migration(s) {applied:?}", config.database_url);
    }
    Ok(0)
}
