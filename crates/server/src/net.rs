//! Network allow-lists in configuration: Stripe's webhook source addresses, the parser
//! for `WEBHOOK_ALLOWED_IPS` / `TRUSTED_PROXIES`, and the [`SourcePolicy`] they make. A
//! leaf module, so that configuration does not depend on the webhook code that applies
//! the policy (`webhooks::source`).

use std::net::IpAddr;

use ipnet::IpNet;

/// Stripe's webhook source addresses, as published at
/// <https://stripe.com/files/ips/ips_webhooks.txt> (15 addresses, May 2026). Stripe
/// announces changes seven days ahead on its api-announce list; list the addresses
/// explicitly in `WEBHOOK_ALLOWED_IPS` to follow a change before a release does.
pub const STRIPE_WEBHOOK_IPS: &[&str] = &[
    "3.18.12.63",
    "3.69.109.8",
    "3.120.168.93",
    "3.130.192.231",
    "13.235.14.237",
    "13.235.122.149",
    "18.211.135.69",
    "35.154.171.200",
    "35.157.207.129",
    "52.15.183.38",
    "54.88.130.119",
    "54.88.130.237",
    "54.187.174.169",
    "54.187.205.235",
    "54.187.216.72",
];

/// Parses a comma-separated list of addresses and CIDR networks (`10.0.0.0/8`,
/// `2001:db8::/32`, `127.0.0.1`); the word `stripe` stands for [`STRIPE_WEBHOOK_IPS`]
/// when `allow_stripe` is set. The error names the entry that is wrong.
pub fn parse_networks(raw: &str, allow_stripe: bool) -> Result<Vec<IpNet>, String> {
    let mut out = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if allow_stripe && entry.eq_ignore_ascii_case("stripe") {
            out.extend(
                STRIPE_WEBHOOK_IPS
                    .iter()
                    .map(|ip| IpNet::from(ip.parse::<IpAddr>().expect("a valid literal"))),
            );
            continue;
        }
        let net = entry
            .parse::<IpNet>()
            .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("{entry:?} is not an IP address or a network like 10.0.0.0/8"))?;
        out.push(net);
    }
    if out.is_empty() {
        return Err("lists no address".into());
    }
    Ok(out)
}

/// The source rules for `POST /webhooks/stripe`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourcePolicy {
    /// `None`: every source is allowed (the default).
    pub allowed: Option<Vec<IpNet>>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}
