//! How fast a call fails once the circuit breaker is open, and proof that it sends
//! nothing. Run: `cargo run --release -p sm-stripe --example open_circuit`.

use std::time::{Duration, Instant};

use fake_stripe::{FakeStripe, Fault};
use sm_stripe::{ApiKey, BreakerConfig, Client, ClientConfig, RetryPolicy, StripeError};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let fake = FakeStripe::start().await;
    let config = ClientConfig {
        api_base: fake.url(),
        max_rps: 0,
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        breaker: BreakerConfig {
            failure_threshold: 10,
            open_for: Duration::from_secs(3600),
        },
        ..ClientConfig::default()
    };
    let client = Client::new(ApiKey::parse("sk_test_bench").unwrap(), config).unwrap();
    fake.inject(Fault::on_path("/v1/products", Fault::status(500)));
    for _ in 0..10 {
        let _ = client.retrieve_product("prod_bench").await;
    }
    let sent = fake.request_count();

    const N: usize = 100_000;
    let mut samples = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let err = client.retrieve_product("prod_bench").await.unwrap_err();
        samples.push(t.elapsed());
        assert!(matches!(err, StripeError::CircuitOpen { .. }));
    }
    assert_eq!(fake.request_count(), sent, "an open circuit sends nothing");
    samples.sort();
    let pct = |p: f64| samples[((N as f64 * p) as usize).min(N - 1)];
    println!(
        "open-circuit call: {N} calls, p50 {:?}, p99 {:?}, max {:?}; requests sent while open: {}",
        pct(0.50),
        pct(0.99),
        samples[N - 1],
        fake.request_count() - sent
    );
}
