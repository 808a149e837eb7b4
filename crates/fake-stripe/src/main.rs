//! `fake-stripe [--port N] [--empty] [--seed-products N] [--seed-prices M]
//! [--seed-customers N] [--seed-subscriptions N] [--seed-invoices N] [--rate-limit RPS]`:
//! the fake Stripe as a standalone server for local trials and benchmarks. It answers
//! Stripe-style requests (form-encoded, `Authorization: Bearer sk_test_…`) under `/v1`.
//! Without a `--seed-*` flag it starts with a small demo catalog (`State::seed_demo`),
//! so a first `stripe-manager sync` shows something; `--empty` starts with nothing.
//! Prints `PORT <n>` once listening; `/_fake/…` routes drive faults, webhooks and
//! checkout completion (see docs/USER_GUIDE.md).

use std::net::SocketAddr;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    const USAGE: &str = "usage: fake-stripe [--port N (default 12111; 0 picks one)] [--empty | --seed-products N [--seed-prices M]] [--seed-customers N] [--seed-subscriptions N] [--seed-invoices N] [--rate-limit RPS]\n\nWithout --empty or a --seed-* flag it starts with a demo catalog: two credit packs, two monthly plans and one invalid product.";
    let mut port = 12111u16;
    let (mut products, mut prices, mut rate) = (0usize, 0usize, None);
    let (mut customers, mut subscriptions, mut invoices) = (0usize, 0usize, 0usize);
    let (mut empty, mut seeded) = (false, false);
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| -> u64 {
            match args.next().and_then(|v| v.parse().ok()) {
                Some(n) => n,
                None => {
                    eprintln!("error: {flag} takes a whole number; {USAGE}");
                    std::process::exit(2);
                }
            }
        };
        seeded |= arg.starts_with("--seed-");
        match arg.as_str() {
            "--empty" => empty = true,
            "--port" => port = number("--port").try_into().unwrap_or(0),
            "--seed-products" => products = number("--seed-products") as usize,
            "--seed-prices" => prices = number("--seed-prices") as usize,
            "--rate-limit" => rate = Some(number("--rate-limit") as u32),
            "--seed-customers" => customers = number("--seed-customers") as usize,
            "--seed-subscriptions" => subscriptions = number("--seed-subscriptions") as usize,
            "--seed-invoices" => invoices = number("--seed-invoices") as usize,
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("error: unknown argument {other:?}; {USAGE}");
                std::process::exit(2);
            }
        }
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let fake = match fake_stripe::FakeStripe::start_on(addr).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    if products > 0 {
        fake.with_state(|s| s.seed_catalog(products, prices));
    } else if !seeded && !empty {
        fake.with_state(|s| s.seed_demo());
    }
    if customers > 0 {
        fake.with_state(|s| s.seed_billing(customers, subscriptions, invoices));
    }
    fake.set_rate_limit(rate);
    println!("PORT {}", fake.addr().port());
    let _ = tokio::signal::ctrl_c().await;
}
