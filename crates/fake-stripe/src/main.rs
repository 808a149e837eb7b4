//! `fake-stripe [--port N] [--seed-products N] [--seed-prices M] [--rate-limit RPS]`:
//! the fake Stripe as a standalone server for local trials and benchmarks. Prints
//! `PORT <n>` once listening; `/_fake/…` routes drive faults, webhooks and checkout
//! completion (see docs/USER_GUIDE.md).

use std::net::SocketAddr;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    const USAGE: &str = "usage: fake-stripe [--port N (default 12111; 0 picks one)] [--seed-products N] [--seed-prices M] [--rate-limit RPS]";
    let mut port = 12111u16;
    let (mut products, mut prices, mut rate) = (0usize, 0usize, None);
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
        match arg.as_str() {
            "--port" => port = number("--port").try_into().unwrap_or(0),
            "--seed-products" => products = number("--seed-products") as usize,
            "--seed-prices" => prices = number("--seed-prices") as usize,
            "--rate-limit" => rate = Some(number("--rate-limit") as u32),
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
    }
    fake.set_rate_limit(rate);
    println!("PORT {}", fake.addr().port());
    let _ = tokio::signal::ctrl_c().await;
}
