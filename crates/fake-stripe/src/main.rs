//! `fake-stripe [--port N]`: the fake Stripe as a standalone server for local trials.
//! Prints `PORT <n>` once listening; `/_fake/…` routes drive faults, webhooks and
//! checkout completion (see docs/USER_GUIDE.md).

use std::net::SocketAddr;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut port = 12111u16;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => match args.next().and_then(|p| p.parse().ok()) {
                Some(p) => port = p,
                None => {
                    eprintln!("error: --port takes a number (0 picks a free port)");
                    std::process::exit(2);
                }
            },
            "-h" | "--help" => {
                println!("usage: fake-stripe [--port N]   (default 12111; 0 picks a free port)");
                return;
            }
            other => {
                eprintln!("error: unknown argument {other:?}; usage: fake-stripe [--port N]");
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
    println!("PORT {}", fake.addr().port());
    let _ = tokio::signal::ctrl_c().await;
}
