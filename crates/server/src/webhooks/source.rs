//! Which network a webhook may come from: an optional allow-list of source networks
//! (Stripe publishes the addresses it sends webhooks from), and the proxies whose
//! `X-Forwarded-For` we believe.
//!
//! The signature already proves an event came from Stripe; the allow-list is defence
//! in depth (a leaked signing secret alone is not enough) and sheds unsigned noise
//! before any HMAC is computed. It is off by default because it breaks
//! `stripe listen --forward-to` and every proxy set-up that is not declared here.
//!
//! `X-Forwarded-For` is only read when the connection itself comes from a trusted
//! proxy, and then from the right: each hop appends the address it saw, so the
//! rightmost entry not added by one of our own proxies is the first one nobody could
//! forge. Taking the leftmost entry, as many frameworks do, lets any client choose its
//! own address.

use std::net::IpAddr;

pub use crate::net::{STRIPE_WEBHOOK_IPS, SourcePolicy, parse_networks};

impl SourcePolicy {
    /// The client's address: the connection's peer, or, when the peer is a trusted
    /// proxy, the rightmost `X-Forwarded-For` entry that is not a trusted proxy.
    /// `None` when a believed entry is not an address (a broken or hostile proxy chain).
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let peer = canonical(peer);
        if !self.trusted(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = forwarded_for
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            client = canonical(hop.parse().ok()?);
            if !self.trusted(client) {
                break;
            }
        }
        Some(client)
    }

    /// [`SourcePolicy::client_ip`] from a request's `X-Forwarded-For` headers.
    pub fn client_from_headers(
        &self,
        peer: IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> Option<IpAddr> {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        self.client_ip(peer, forwarded)
    }

    /// Whether the request reached us over HTTPS: a trusted proxy says so in
    /// `X-Forwarded-Proto` (the service itself speaks plain HTTP).
    pub fn over_https(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> bool {
        self.trusted(canonical(peer))
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"))
    }

    /// Whether a request from `ip` may be processed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match &self.allowed {
            None => true,
            Some(nets) => nets.iter().any(|n| n.contains(&canonical(ip))),
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

/// `::ffff:1.2.3.4` (an IPv4 client on a dual-stack socket) is `1.2.3.4`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(allowed: Option<&str>, proxies: &str) -> SourcePolicy {
        SourcePolicy {
            allowed: allowed.map(|a| parse_networks(a, true).unwrap()),
            trusted_proxies: if proxies.is_empty() {
                vec![]
            } else {
                parse_networks(proxies, false).unwrap()
            },
        }
    }

    #[test]
    fn parses_addresses_networks_and_the_stripe_list() {
        let nets = parse_networks(" 10.0.0.0/8, 127.0.0.1 ,2001:db8::/32,stripe", true).unwrap();
        assert_eq!(nets.len(), 3 + STRIPE_WEBHOOK_IPS.len());
        assert!(nets[1].contains(&ip("127.0.0.1")));
        let err = parse_networks("10.0.0.0/8,10.0.0.300", true).unwrap_err();
        assert!(err.contains("\"10.0.0.300\""), "{err}");
        assert!(parse_networks("stripe", false).is_err());
        assert!(parse_networks(" , ", true).is_err());
        assert!(parse_networks("10.0.0.0/33", true).is_err());
    }

    #[test]
    fn the_allow_list_is_off_by_default_and_exact_when_on() {
        assert!(SourcePolicy::default().allows(ip("203.0.113.9")));
        let p = policy(Some("stripe,10.1.0.0/16"), "");
        assert!(p.allows(ip("54.187.216.72")));
        assert!(p.allows(ip("10.1.200.3")));
        assert!(p.allows(ip("::ffff:54.187.216.72")));
        assert!(!p.allows(ip("10.2.0.1")));
        assert!(!p.allows(ip("54.187.216.73")));
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let p = policy(None, "10.0.0.0/8");
        let got = p.client_ip(ip("198.51.100.7"), ["54.187.216.72"].into_iter());
        assert_eq!(got, Some(ip("198.51.100.7")));
    }

    #[test]
    fn forwarded_for_is_read_from_the_right_through_trusted_proxies() {
        let p = policy(None, "10.0.0.0/8");
        // A client that forges an entry: the proxy appends what it saw.
        let got = p.client_ip(
            ip("10.0.0.2"),
            ["54.187.216.72, 198.51.100.7", "10.0.0.5"].into_iter(),
        );
        assert_eq!(got, Some(ip("198.51.100.7")));
        // Nothing forwarded: the proxy itself.
        assert_eq!(
            p.client_ip(ip("10.0.0.2"), std::iter::empty()),
            Some(ip("10.0.0.2"))
        );
        // Every hop is ours: the leftmost.
        assert_eq!(
            p.client_ip(ip("10.0.0.2"), ["10.9.9.9, 10.0.0.5"].into_iter()),
            Some(ip("10.9.9.9"))
        );
        // Garbage where a trusted proxy should have written an address.
        assert_eq!(p.client_ip(ip("10.0.0.2"), ["not-an-ip"].into_iter()), None);
    }
}
