//! The egress deny-list: addresses a pipeline may never make a worker fetch from, whatever
//! its URL, next links or redirects say. By default: link-local networks (169.254.0.0/16,
//! fe80::/10), which hold the cloud metadata services, the other well-known metadata
//! addresses and host names. Loopback is allowed unless `--egress-deny-loopback` (tests
//! and local development fetch from 127.0.0.1); operators add networks with
//! `--egress-deny CIDR` (docs/operations.md "Limits").
//!
//! What is covered: literal IP addresses and the metadata host names in URLs (checked by
//! the fetcher before each request and by the redirect policy), and every address a host
//! name resolves to (checked by [`EgressResolver`], the client's DNS resolver, on the
//! addresses that are then connected to, so DNS rebinding between check and connect does
//! not get through). What is not: a worker configured with an HTTP proxy connects to the
//! proxy, and the proxy resolves the target; the deny-list then applies to the proxy only.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use url::{Host, Url};

/// Host names of cloud metadata services (GCP, Azure/AWS aliases, OpenStack).
const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Networks refused by default: link-local (AWS, GCP, Azure and OpenStack metadata live at
/// 169.254.169.254), AWS's IPv6 metadata address and Alibaba Cloud's metadata address.
const DEFAULT_DENY: &[&str] = &[
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
];

/// Loopback, and the unspecified addresses (connecting to them reaches loopback).
const LOOPBACK: &[&str] = &["127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128"];

/// A refused destination: which host or address, and which rule refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{target} is refused by the egress deny-list ({rule}); a pipeline may not fetch from \
     this address (worker flags --egress-deny / --egress-deny-loopback, docs/operations.md)"
)]
pub struct Denied {
    pub target: String,
    pub rule: String,
}

/// The networks and host names no request may reach. Cheap to share (`Arc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    deny: Vec<IpNet>,
}

impl Default for Egress {
    fn default() -> Self {
        Self::new(Vec::new(), false)
    }
}

impl Egress {
    /// The default deny-list plus `extra` networks, and loopback when `deny_loopback`.
    #[allow(
        clippy::expect_used,
        reason = "the built-in networks are constants, parsed in a unit test"
    )]
    pub fn new(extra: Vec<IpNet>, deny_loopback: bool) -> Self {
        let mut deny: Vec<IpNet> = DEFAULT_DENY
            .iter()
            .map(|n| n.parse().expect("valid built-in network"))
            .collect();
        if deny_loopback {
            deny.extend(LOOPBACK.iter().map(|n| n.parse::<IpNet>().expect("valid")));
        }
        deny.extend(extra);
        Self { deny }
    }

    /// The networks refused, for the start-up log.
    pub fn networks(&self) -> &[IpNet] {
        &self.deny
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        // ::ffff:169.254.169.254 is 169.254.169.254.
        let ip = ip.to_canonical();
        match self.deny.iter().find(|n| n.contains(&ip)) {
            Some(net) => Err(Denied {
                target: ip.to_string(),
                rule: format!("in {net}"),
            }),
            None => Ok(()),
        }
    }

    /// Checks the host of `url`: a literal address against the networks, a name against
    /// the metadata host names (its addresses are checked when it is resolved).
    pub fn check_url(&self, url: &Url) -> Result<(), Denied> {
        match url.host() {
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if METADATA_HOSTS.contains(&name.as_str()) {
                    return Err(Denied {
                        target: name,
                        rule: "a cloud metadata host name".to_string(),
                    });
                }
                // A name that is an address in another notation (`0xa9fea9fe`) is parsed
                // by the url crate already; nothing else to do here.
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// The DNS resolver of the worker's HTTP client: the system resolver, then the deny-list
/// on every address. Addresses that are refused are dropped; a host with no address left
/// fails with [`Denied`].
#[derive(Debug, Clone)]
pub struct EgressResolver {
    pub egress: Arc<Egress>,
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.egress.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_denied = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match egress.check_ip(a.ip()) {
                    Ok(()) => true,
                    Err(d) => {
                        first_denied.get_or_insert(d);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                if let Some(d) = first_denied {
                    tracing::warn!(host = %host, address = %d.target, "limit egress_deny: host refused");
                    return Err(Box::new(Denied {
                        target: format!("{host} ({})", d.target),
                        rule: d.rule,
                    })
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}
