//! Fault injection against the real binary (issue #15, item 10): killed with SIGKILL in
//! the middle of a burst of consumptions, on SQLite and PostgreSQL. Every consumption
//! that was answered 200 is in the ledger after a restart, none is applied twice (a
//! retry with the same key is answered from the record), and the ledger balances.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use sm_store::testing::TestDb;

sm_store::contract_tests!(a_killed_server_keeps_every_acknowledged_consumption_once);

const ACCOUNT: &str = "acct_kill";

async fn a_killed_server_keeps_every_acknowledged_consumption_once(db: TestDb) {
    let env = env_for(None, &db);
    let token = grant_token(&db.store, "kill", "all").await;
    let now = unix_now();
    db.store.ensure_account(ACCOUNT, None, now).await.unwrap();
    let ledger = stripe_manager::credits::Ledger::new(db.store.clone());
    ledger
        .adjust(
            ACCOUNT,
            &stripe_manager::credits::AdjustRequest {
                kind: stripe_manager::credits::Adjustment::Grant,
                amount: sm_domain::credits::Credits::whole(100_000),
                reason: "kill test",
                actor: "test",
                origin: "test",
            },
            now,
        )
        .await
        .unwrap();
    let (mut child, addr) = spawn_serve(&env).await;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let sender = {
        let acknowledged = acknowledged.clone();
        let url = format!("http://{addr}/api/v1/accounts/{ACCOUNT}/credits/consume");
        let token = token.clone();
        tokio::spawn(async move {
            let client = http();
            futures_util::stream::iter(0..5000)
                .map(|i| {
                    let (client, url, token, acknowledged) = (
                        client.clone(),
                        url.clone(),
                        token.clone(),
                        acknowledged.clone(),
                    );
                    async move {
                        let key = format!("job-{i:05}");
                        let sent = client
                            .post(&url)
                            .bearer_auth(&token)
                            .json(&json!({"amount": "1", "idempotency_key": key}))
                            .send()
                            .await;
                        if let Ok(r) = sent
                            && r.status() == 200
                        {
                            acknowledged.lock().unwrap().push(key);
                        }
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<()>>()
                .await;
        })
    };
    while acknowledged.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(
        tokio::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let _ = child.wait().await;
    sender.await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 300 && acknowledged.len() < 5000);

    // Restart on the same database: every acknowledged key is recorded once, and a
    // retry of it is answered from the record.
    let (mut child, addr) = spawn_serve(&env).await;
    use_token(&addr, &token);
    let url = format!("http://{addr}/api/v1/accounts/{ACCOUNT}/credits/consume");
    for key in &acknowledged {
        let (status, body) = post_json(&url, json!({"amount": "1", "idempotency_key": key})).await;
        assert_eq!(status, 200, "{key}: {body}");
        assert_eq!(body["replayed"], true, "{key} was applied again: {body}");
    }
    let entries = db.store.credit_entries(ACCOUNT, 10_000).await.unwrap();
    let consumed = entries.iter().filter(|e| e.kind == "consume").count();
    assert!(
        consumed >= acknowledged.len(),
        "{consumed} < {}",
        acknowledged.len()
    );
    let (journal, lots, _) = db.store.credit_totals(ACCOUNT).await.unwrap();
    assert_eq!(journal, lots, "journal and lots disagree");
    assert_eq!(
        lots,
        (100_000 - consumed as i64) * 100,
        "each consumption once"
    );
    let _ = child.kill().await;
}
