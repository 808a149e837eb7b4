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

/// Whether `ip` is an address on the public internet. Loopback, private (RFC 1918,
/// unique local), link-local, shared (CGNAT), unspecified, broadcast, documentation
/// and multicast ranges are not; an IPv4-mapped IPv6 address is judged by its IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                is_public(IpAddr::V4(std::net::Ipv4Addr::from(
                    (u32::from(hi) << 16) | u32::from(lo),
                )))
            };
            // Forms that carry an IPv4 address reach it: judge that one. NAT64
            // (64:ff9b::/96), 6to4 (2002::/16), IPv4-compatible (::a.b.c.d).
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return embedded(seg[6], seg[7]);
            }
            if seg[0] == 0x2002 {
                return embedded(seg[1], seg[2]);
            }
            if seg[..6] == [0; 6] && !(v6.is_loopback() || v6.is_unspecified()) {
                return embedded(seg[6], seg[7]);
            }
            let first = seg[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || (first == 0x2001 && seg[1] == 0x0db8)
                || (first == 0x2001 && seg[1] == 0))
        }
    }
}

/// The group a peer's connections are counted in for `HTTP_MAX_CONNECTIONS_PER_ADDRESS`:
/// an IPv4 address is its own group; an IPv6 address counts with its whole /64, the
/// smallest network a host is normally given (one host may use any of its 2^64
/// addresses); an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener
/// on `[::]` sees for an IPv4 peer) is its IPv4 address.
pub fn address_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
    }
}

/// An endpoint as logs and pages show it: scheme, host, port and path, without a query
/// or credentials (either may hold a secret).
pub fn redact_url(endpoint: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(mut u) => {
            u.set_query(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:a00:1::",
            "::10.0.0.1",
            "fec0::1",
            "2001:0:4136:e378::1",
            "224.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn ipv6_peers_are_grouped_by_their_64_and_mapped_ipv4_by_its_address() {
        let group = |s: &str| address_group(s.parse().unwrap()).to_string();
        assert_eq!(group("203.0.113.7"), "203.0.113.7");
        assert_eq!(group("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(group("2001:db8:1:2::1"), group("2001:db8:1:2:ffff::9"));
        assert_ne!(group("2001:db8:1:2::1"), group("2001:db8:1:3::1"));
        assert_eq!(group("::ffff:198.51.100.4"), "198.51.100.4");
        assert_eq!(group("::1"), "::");
    }

    #[test]
    fn endpoints_print_without_query_or_credentials() {
        assert_eq!(
            redact_url("https://user:pw@app.example/hooks?token=s3cret"),
            "https://app.example/hooks"
        );
    }
}
