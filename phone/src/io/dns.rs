//! DNS for the shell: one hickory resolver asking only the `--dns` server from the `--bind` address, its cache honouring TTLs (F5), and RFC 3263 (NAPTR, SRV by priority and weight, A/AAAA).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use rand::Rng;

use crate::core::{Lookup, Transport};
use crate::error::PhoneError;
use crate::quirks::{Quirk, Quirks};

/// The last good answer of each lookup, by lookup: served past its TTL while the DNS does not
/// answer, and for ever under `ignore-dns-ttl`.
type LastAnswers = Arc<Mutex<HashMap<String, Vec<SocketAddr>>>>;

/// Why a lookup found no addresses.
#[derive(Debug)]
enum LookupFailure {
    /// The DNS answered: the name has no such records (NXDOMAIN, or no data).
    NoRecords(String),
    /// The DNS did not answer: a timeout, ICMP port unreachable, a refused or reset TCP
    /// connection, SERVFAIL or REFUSED. The last good answer may stand in (serve-stale).
    Unanswered(String),
}

impl LookupFailure {
    fn of(what: &str, error: NetError) -> LookupFailure {
        if error.is_no_records_found() {
            LookupFailure::NoRecords(format!("{what}: {error}"))
        } else {
            LookupFailure::Unanswered(format!("{what}: {error}"))
        }
    }
}

/// Resolves configured server names into the addresses to try, in order.
#[derive(Clone)]
pub struct SipResolver {
    resolver: TokioResolver,
    server: SocketAddr,
    /// How long one lookup (NAPTR, SRV and A together) may wait for the DNS.
    timeout: Duration,
    last_answers: LastAnswers,
    /// `ignore-dns-ttl`: every answer kept for ever, whatever its TTL.
    ignore_ttl: bool,
    /// `ignore-srv-priority`: SRV targets highest priority value first.
    ignore_srv_priority: bool,
    /// `requery-dns`: the cache is bypassed, every lookup asks the DNS.
    requery: bool,
}

impl std::fmt::Debug for SipResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipResolver").field("server", &self.server).finish()
    }
}

impl SipResolver {
    /// A resolver that asks `server` only (UDP, then TCP for truncated answers), from `bind_ip`,
    /// never the system's configuration or hosts file. A lookup gives up after `timeout` however
    /// many queries it takes (one query, sent once and retransmitted within it, never retried
    /// after it), and then uses the last good answer of that lookup, past its TTL, if there is
    /// one (F5 allows it while the DNS does not answer). The cache keeps each answer for its TTL
    /// and no longer. The DNS quirks in `quirks` apply.
    pub fn new(
        server: SocketAddr,
        bind_ip: IpAddr,
        timeout: Duration,
        quirks: &Quirks,
    ) -> Result<SipResolver, PhoneError> {
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
        // hickory's `attempts` are retries after a failed query, each with a full timeout of its
        // own: a silent DNS would cost (1 + attempts) timeouts. One query it is.
        options.attempts = 0;
        // No TTL floor: a 1 s TTL expires 1 s after the answer came (F5). The ceiling stays
        // hickory's one day; negative answers live for the SOA's negative TTL (RFC 2308).
        options.positive_min_ttl = Some(Duration::ZERO);
        options.use_hosts_file = ResolveHosts::Never;
        options.ip_strategy = if bind_ip.is_ipv4() { LookupIpStrategy::Ipv4Only } else { LookupIpStrategy::Ipv6Only };
        // The lab's DNS is authoritative and never recurses.
        options.recursion_desired = false;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|e| PhoneError::Resolver(e.to_string()))?;
        Ok(SipResolver {
            resolver,
            server,
            timeout,
            last_answers: Arc::default(),
            ignore_ttl: quirks.has(Quirk::IgnoreDnsTtl),
            ignore_srv_priority: quirks.has(Quirk::IgnoreSrvPriority),
            requery: quirks.has(Quirk::RequeryDns),
        })
    }

    /// The addresses `lookup` names, in the order to try them: a fresh answer when the cached one's
    /// TTL ran out, or the last good one while the DNS does not answer.
    pub async fn resolve(&self, lookup: &Lookup) -> Result<Vec<SocketAddr>, String> {
        let key = format!("{lookup:?}");
        if self.ignore_ttl
            && let Some(found) = self.last_answer(&key)
        {
            tracing::debug!("DNS {key}: answered from the never-expiring cache (quirk ignore-dns-ttl)");
            return Ok(found);
        }
        if self.requery {
            tracing::debug!("DNS {key}: cache emptied, asking the DNS again (quirk requery-dns)");
            self.resolver.clear_cache();
        }
        let answer = match tokio::time::timeout(self.timeout, self.lookup(lookup)).await {
            Ok(answer) => answer,
            Err(_) => Err(LookupFailure::Unanswered(format!("{key}: no answer within {:?}", self.timeout))),
        };
        let mut last_answers = self.last_answers.lock().unwrap_or_else(|e| e.into_inner());
        match answer {
            Ok(found) => {
                if found.is_empty() {
                    last_answers.remove(&key);
                } else {
                    last_answers.insert(key, found.clone());
                }
                Ok(found)
            }
            Err(LookupFailure::NoRecords(detail)) => {
                last_answers.remove(&key);
                Err(detail)
            }
            Err(LookupFailure::Unanswered(detail)) => match last_answers.get(&key) {
                Some(found) => {
                    tracing::debug!(
                        "DNS {key}: {detail}; using the last answer {found:?} past its TTL until the DNS answers again"
                    );
                    Ok(found.clone())
                }
                None => Err(detail),
            },
        }
    }

    fn last_answer(&self, key: &str) -> Option<Vec<SocketAddr>> {
        self.last_answers.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    async fn lookup(&self, lookup: &Lookup) -> Result<Vec<SocketAddr>, LookupFailure> {
        match lookup {
            Lookup::Address { host, port } => self.addresses(host, *port).await,
            Lookup::Service { host, transport } => self.service(host, *transport).await,
        }
    }

    async fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, LookupFailure> {
        let answer = self.resolver.lookup_ip(absolute(host)).await.map_err(|e| LookupFailure::of(host, e))?;
        let addresses: Vec<SocketAddr> = answer.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        tracing::debug!("DNS {host} -> {addresses:?}");
        Ok(addresses)
    }

    /// RFC 3263 §4 for a host without a port: the NAPTR records of `host` for the transport
    /// (`SIP+D2U`, `SIP+D2T`, `SIPS+D2T`) by order and preference, each replacement's SRV
    /// records; without NAPTR, the SRV records `_sip._udp`, `_sip._tcp` or `_sips._tcp`;
    /// without SRV, the host's addresses on the transport's default port. A query the DNS does
    /// not answer ends the lookup at once.
    async fn service(&self, host: &str, transport: Transport) -> Result<Vec<SocketAddr>, LookupFailure> {
        let wanted = naptr_service(transport);
        let naptr = match self.resolver.lookup(absolute(host), RecordType::NAPTR).await {
            Ok(answer) => answer
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::NAPTR(naptr) => Some((
                        naptr.order,
                        naptr.preference,
                        String::from_utf8_lossy(&naptr.services).to_ascii_uppercase(),
                        String::from_utf8_lossy(&naptr.flags).to_ascii_uppercase(),
                        naptr.replacement.to_ascii(),
                    )),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => return Err(LookupFailure::of(&format!("{host} NAPTR"), e)),
        };
        let mut matching: Vec<_> =
            naptr.into_iter().filter(|(_, _, services, flags, _)| services == wanted && flags == "S").collect();
        matching.sort_by_key(|(order, preference, ..)| (*order, *preference));
        let mut last_error = None;
        for (_, _, _, _, replacement) in &matching {
            match self.srv(replacement).await {
                Ok(found) if !found.is_empty() => return Ok(found),
                Ok(_) => {}
                Err(e @ LookupFailure::Unanswered(_)) => return Err(e),
                Err(e) => last_error = Some(e),
            }
        }
        if !matching.is_empty() {
            return Err(last_error
                .unwrap_or_else(|| LookupFailure::NoRecords(format!("{host}: no usable {wanted} NAPTR target"))));
        }
        let service = format!("{}.{host}", srv_prefix(transport));
        match self.srv(&service).await {
            Ok(found) if !found.is_empty() => Ok(found),
            Ok(_) => {
                tracing::debug!("DNS {host}: no NAPTR or SRV records; using its addresses");
                self.addresses(host, transport.default_port()).await
            }
            Err(e) => Err(e),
        }
    }

    /// SRV records by priority, then weight (RFC 2782), each target's addresses in turn.
    async fn srv(&self, service: &str) -> Result<Vec<SocketAddr>, LookupFailure> {
        let records = match self.resolver.srv_lookup(absolute(service)).await {
            Ok(answer) => answer
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::SRV(srv) => Some((srv.priority, srv.weight, srv.port, srv.target.to_ascii())),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
            Err(e) => return Err(LookupFailure::of(service, e)),
        };
        let ordered = if self.ignore_srv_priority {
            tracing::debug!("DNS {service}: SRV targets highest priority value first (quirk ignore-srv-priority)");
            order_by_reversed_priority(records)
        } else {
            order_by_priority_and_weight(records)
        };
        let mut addresses = Vec::new();
        let mut last_error = None;
        for (_, _, port, target) in ordered {
            if target == "." {
                continue; // RFC 2782: the service is decidedly not available here.
            }
            match self.addresses(&target, port).await {
                Ok(found) => addresses.extend(found),
                Err(e @ LookupFailure::Unanswered(_)) => return Err(e),
                Err(e) => last_error = Some(e),
            }
        }
        if addresses.is_empty()
            && let Some(error) = last_error
        {
            return Err(error);
        }
        Ok(addresses)
    }
}

/// The NAPTR service field of a transport (RFC 3263 §4.1).
fn naptr_service(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "SIP+D2U",
        Transport::Tcp => "SIP+D2T",
        Transport::Tls => "SIPS+D2T",
    }
}

/// The SRV prefix of a transport (RFC 3263 §4.1).
fn srv_prefix(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls => "_sips._tcp",
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

/// The quirk `ignore-srv-priority`: the reverse of RFC 2782, highest priority value first, and
/// within one priority by target name, so the order is the same every time.
fn order_by_reversed_priority<T: Ord>(mut records: Vec<(u16, u16, u16, T)>) -> Vec<(u16, u16, u16, T)> {
    records.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.3.cmp(&b.3)));
    records
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
    fn quirk_ignore_srv_priority_puts_the_highest_priority_value_first_every_time() {
        for _ in 0..20 {
            let records = vec![(10, 60, 5060, "a"), (20, 60, 5060, "c"), (20, 40, 5060, "b"), (5, 0, 5060, "z")];
            let ordered: Vec<&str> = order_by_reversed_priority(records).into_iter().map(|r| r.3).collect();
            assert_eq!(ordered, vec!["b", "c", "a", "z"]);
        }
    }

    #[test]
    fn each_transport_has_its_naptr_service_and_srv_prefix() {
        assert_eq!((naptr_service(Transport::Udp), srv_prefix(Transport::Udp)), ("SIP+D2U", "_sip._udp"));
        assert_eq!((naptr_service(Transport::Tcp), srv_prefix(Transport::Tcp)), ("SIP+D2T", "_sip._tcp"));
        assert_eq!((naptr_service(Transport::Tls), srv_prefix(Transport::Tls)), ("SIPS+D2T", "_sips._tcp"));
    }

    #[test]
    fn names_are_made_absolute_once() {
        assert_eq!(absolute("registrar-a.lab.test"), "registrar-a.lab.test.");
        assert_eq!(absolute("registrar-a.lab.test."), "registrar-a.lab.test.");
    }
}
