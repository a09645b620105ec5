//! DNS for the shell: one hickory resolver asking only the `--dns` server from the `--bind` address, its cache honouring TTLs (F5), and RFC 3263 SRV ordering.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use rand::Rng;

use crate::config::DEFAULT_SIP_PORT;
use crate::core::Lookup;
use crate::error::PhoneError;

/// Resolves configured server names into the addresses to try, in order.
#[derive(Clone)]
pub struct SipResolver {
    resolver: TokioResolver,
    server: SocketAddr,
}

impl std::fmt::Debug for SipResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipResolver").field("server", &self.server).finish()
    }
}

impl SipResolver {
    /// A resolver that asks `server` only (UDP, then TCP for truncated answers), from `bind_ip`,
    /// never the system's configuration or hosts file; a query gives up after `timeout`.
    pub fn new(server: SocketAddr, bind_ip: IpAddr, timeout: Duration) -> Result<SipResolver, PhoneError> {
        let connection = |mut connection: ConnectionConfig| {
            connection.port = server.port();
            connection.bind_addr = Some(SocketAddr::new(bind_ip, 0));
            connection
        };
        let mut name_server = NameServerConfig::udp_and_tcp(server.ip());
        name_server.connections = vec![connection(ConnectionConfig::udp()), connection(ConnectionConfig::tcp())];
        let config = ResolverConfig::from_name_servers(vec![name_server]);
        let mut options = ResolverOpts::default();
        options.timeout = timeout;
        options.use_hosts_file = ResolveHosts::Never;
        options.ip_strategy = if bind_ip.is_ipv4() { LookupIpStrategy::Ipv4Only } else { LookupIpStrategy::Ipv6Only };
        // The lab's DNS is authoritative and never recurses.
        options.recursion_desired = false;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|e| PhoneError::Resolver(e.to_string()))?;
        Ok(SipResolver { resolver, server })
    }

    /// The addresses `lookup` names, in the order to try them.
    pub async fn resolve(&self, lookup: &Lookup) -> Result<Vec<SocketAddr>, String> {
        match lookup {
            Lookup::Address { host, port } => self.addresses(host, *port).await,
            Lookup::Service { service, host } => self.service(service, host).await,
        }
    }

    async fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let answer = self.resolver.lookup_ip(absolute(host)).await.map_err(|e| format!("{host}: {e}"))?;
        let addresses: Vec<SocketAddr> = answer.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        tracing::debug!("DNS {host} -> {addresses:?}");
        Ok(addresses)
    }

    /// SRV records by priority, then weight (RFC 2782), each target's addresses in turn; the
    /// host itself on port 5060 when there are no SRV records (RFC 3263 §4.2).
    async fn service(&self, service: &str, host: &str) -> Result<Vec<SocketAddr>, String> {
        let records = match self.resolver.srv_lookup(absolute(service)).await {
            Ok(answer) => answer
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::SRV(srv) => Some((srv.priority, srv.weight, srv.port, srv.target.to_ascii())),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => return Err(format!("{service}: {e}")),
        };
        if records.is_empty() {
            tracing::debug!("DNS {service}: no SRV records; using {host}");
            return self.addresses(host, DEFAULT_SIP_PORT).await;
        }
        let mut addresses = Vec::new();
        let mut last_error = None;
        for (_, _, port, target) in order_by_priority_and_weight(records) {
            if target == "." {
                continue; // RFC 2782: the service is decidedly not available here.
            }
            match self.addresses(&target, port).await {
                Ok(found) => addresses.extend(found),
                Err(e) => last_error = Some(e),
            }
        }
        if addresses.is_empty() {
            return Err(last_error.unwrap_or_else(|| format!("{service}: no usable SRV target")));
        }
        Ok(addresses)
    }
}

/// The name with a final dot, so no search list applies.
fn absolute(name: &str) -> String {
    if name.ends_with('.') { name.to_owned() } else { format!("{name}.") }
}

/// RFC 2782: lowest priority first; within one priority, a weighted random order.
fn order_by_priority_and_weight<T>(mut records: Vec<(u16, u16, u16, T)>) -> Vec<(u16, u16, u16, T)> {
    records.sort_by_key(|r| r.0);
    let mut ordered = Vec::with_capacity(records.len());
    let mut rng = rand::rng();
    while !records.is_empty() {
        let priority = records[0].0;
        let same_priority = records.iter().take_while(|r| r.0 == priority).count();
        let mut group: Vec<_> = records.drain(..same_priority).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.1)).sum();
            let index = if total == 0 {
                0
            } else {
                let mut pick = rng.random_range(0..total);
                group
                    .iter()
                    .position(|r| {
                        let weight = u32::from(r.1);
                        if pick < weight {
                            true
                        } else {
                            pick -= weight;
                            false
                        }
                    })
                    .unwrap_or(0)
            };
            ordered.push(group.remove(index));
        }
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_records_come_lowest_priority_first_and_zero_weights_keep_their_order() {
        let records = vec![(20, 0, 5060, "c"), (10, 0, 5060, "a"), (10, 0, 5062, "b"), (30, 5, 5060, "d")];
        let ordered: Vec<&str> = order_by_priority_and_weight(records).into_iter().map(|r| r.3).collect();
        assert_eq!(ordered, vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn a_weighted_group_keeps_every_record() {
        let records = vec![(10, 60, 5060, "a"), (10, 40, 5060, "b"), (10, 0, 5060, "c")];
        let mut ordered: Vec<&str> = order_by_priority_and_weight(records).into_iter().map(|r| r.3).collect();
        ordered.sort();
        assert_eq!(ordered, vec!["a", "b", "c"]);
    }

    #[test]
    fn names_are_made_absolute_once() {
        assert_eq!(absolute("registrar-a.lab.test"), "registrar-a.lab.test.");
        assert_eq!(absolute("registrar-a.lab.test."), "registrar-a.lab.test.");
    }
}
