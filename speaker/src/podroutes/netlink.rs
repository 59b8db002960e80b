//! The kernel driver: our routes in the main table, read and written over rtnetlink
//! (one socket of our own, `podroutes::batch`; `rtnetlink`'s message types and builders).
//!
//! Every route we install carries [`ROUTE_PROTOCOL`] and a metric of our choosing
//! ([`DEFAULT_METRIC`] unless configured). The protocol number is how we recognise our
//! routes (and only ours) across restarts; the metric keeps us away from anybody else's
//! route for the same prefix: `NLM_F_REPLACE` replaces the route with the same prefix
//! *and metric*, whatever its protocol, so using a metric nobody else uses means we never
//! replace a CNI's or an administrator's route.
//!
//! Errors are returned, never panicked on; the reconciler logs them and retries.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol,
    RouteScope, RouteType,
};
use rtnetlink::{RouteMessageBuilder, RouteNextHopBuilder};

use super::batch::{self, BatchSocket, DumpPart};
use super::desired::{InstalledRoute, NextHops, Op};
use super::message::RtMessage;

/// The routing protocol number on every route we install: `proto 210` in `ip route`.
///
/// Chosen because nothing common uses it: iproute2's `/etc/iproute2/rt_protos` names
/// 0–18, 42, 99, 186–189 and 192; FRR takes 186–198 (196 is FRR's `static`, which is why
/// we do not use it). Routes with this number that we do not want are deleted, so it
/// must not be shared with another routing daemon on the node.
pub const ROUTE_PROTOCOL: u8 = 210;

/// Default metric of our routes. Higher than the kernel's connected routes (0 for IPv4,
/// 256 for IPv6) and iproute2's IPv6 default (1024), so any other route for the same
/// prefix — a CNI's, an administrator's — takes precedence over ours.
pub const DEFAULT_METRIC: u32 = 2000;

/// The main routing table.
const MAIN_TABLE: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// ESRCH: the route to delete is already gone.
const ESRCH: i32 = 3;

/// A kernel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The network namespace file could not be opened or entered.
    #[error("entering network namespace {path}: {source}")]
    Namespace {
        /// The namespace file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The netlink socket could not be created.
    #[error("opening the rtnetlink socket: {0}")]
    Connect(std::io::Error),
    /// The kernel refused a request.
    #[error("{what}: {source}")]
    Request {
        /// What we were doing, e.g. `replacing route 10.244.3.0/24`.
        what: String,
        /// The kernel's errno.
        source: std::io::Error,
    },
    /// The batch socket failed (its replies can no longer be trusted).
    #[error("{what}: netlink socket: {source}")]
    Socket {
        /// What we were doing.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A route could not be expressed as a netlink message.
    #[error("invalid route {prefix}: {reason}")]
    Invalid {
        /// Destination.
        prefix: IpNet,
        /// Why.
        reason: String,
    },
}

impl NetlinkError {
    /// True when the error means the connection itself is broken (reconnect).
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, NetlinkError::Socket { .. })
    }
}

/// Our routes in one network namespace's main table.
#[derive(Debug)]
pub struct KernelRoutes {
    /// Many writes per system call ([`KernelRoutes::apply_all`]) and the dumps; held
    /// across the yields of a dump, hence tokio's lock.
    socket: tokio::sync::Mutex<BatchSocket>,
    metric: u32,
}

/// Opens the rtnetlink socket. A netlink socket belongs to the network namespace of the
/// thread that creates it, so for `netns` a short-lived thread enters the namespace,
/// creates the socket and hands it back; no runtime thread ever changes namespace.
fn open_connection(netns: Option<&Path>) -> Result<BatchSocket, NetlinkError> {
    let open = || BatchSocket::open().map_err(NetlinkError::Connect);
    let Some(path) = netns else {
        return open();
    };
    let path = path.to_path_buf();
    let ns_err = |path: &Path, source| NetlinkError::Namespace {
        path: path.to_path_buf(),
        source,
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(&path).map_err(|e| ns_err(&path, e))?;
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| ns_err(&path, std::io::Error::from(e)))?;
            open()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetlinkError::Connect(std::io::Error::other(
                "namespace thread panicked",
            )))
        })
    })
}

impl KernelRoutes {
    /// Connects to the current network namespace, or to the one at `netns` (e.g.
    /// `/var/run/netns/NAME`). Our routes get `metric`.
    pub fn connect(netns: Option<&Path>, metric: u32) -> Result<KernelRoutes, NetlinkError> {
        Ok(KernelRoutes {
            socket: tokio::sync::Mutex::new(open_connection(netns)?),
            metric,
        })
    }

    /// Runs a dump, handing each message to `f` as it is read; other tasks run between
    /// its parts.
    async fn dump(
        &self,
        request: RtMessage,
        what: &str,
        mut f: impl FnMut(RtMessage),
    ) -> Result<(), NetlinkError> {
        let lost = |source| NetlinkError::Socket {
            what: what.to_string(),
            source,
        };
        let mut socket = self.socket.lock().await;
        let seq = socket.start_dump(request).map_err(lost)?;
        loop {
            match socket.read_dump(seq, &mut f).map_err(lost)? {
                DumpPart::More => tokio::task::yield_now().await,
                DumpPart::Done => break,
                DumpPart::Refused(code) => {
                    return Err(NetlinkError::Request {
                        what: what.to_string(),
                        source: std::io::Error::from_raw_os_error(code),
                    });
                }
            }
        }
        Ok(())
    }

    /// Sends one request and returns the kernel's answer.
    async fn request(
        &self,
        request: batch::Request,
        what: &str,
    ) -> Result<batch::Reply, NetlinkError> {
        let replies = self.socket.lock().await.send(vec![request]);
        match replies {
            Ok(mut r) if r.len() == 1 => Ok(r.remove(0)),
            Ok(_) => Err(NetlinkError::Socket {
                what: what.to_string(),
                source: std::io::Error::other("no answer"),
            }),
            Err(source) => Err(NetlinkError::Socket {
                what: what.to_string(),
                source,
            }),
        }
    }

    /// The metric our routes are installed with.
    pub fn metric(&self) -> u32 {
        self.metric
    }

    /// Every route in the main table (IPv4 and IPv6) with our protocol number. Routes
    /// the kernel reports in parts (IPv6 siblings) are merged per prefix and metric.
    pub async fn list(&self) -> Result<Vec<InstalledRoute>, NetlinkError> {
        let mut out: BTreeMap<(IpNet, u32), InstalledRoute> = BTreeMap::new();
        self.for_each_route(|r| match out.entry((r.prefix, r.metric)) {
            Entry::Occupied(mut o) => o.get_mut().next_hops.extend(r.next_hops),
            Entry::Vacant(v) => {
                v.insert(r);
            }
        })
        .await?;
        Ok(out.into_values().collect())
    }

    /// Every route (or part of one: IPv6 siblings come one by one) in the main table
    /// with our protocol number, handed to `f` as it is read (no table in between).
    pub async fn for_each_route(
        &self,
        mut f: impl FnMut(InstalledRoute),
    ) -> Result<(), NetlinkError> {
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family;
            let what = format!("listing {family:?} routes");
            self.dump(RtMessage::GetRoute(msg), &what, |m| {
                if let RtMessage::NewRoute(m) = m
                    && let Some(r) = parse_ours(&m)
                {
                    f(r);
                }
            })
            .await?;
        }
        Ok(())
    }

    /// Every address configured on this namespace's interfaces.
    pub async fn local_addresses(&self) -> Result<BTreeSet<IpAddr>, NetlinkError> {
        Ok(self.addresses().await?.0)
    }

    /// This namespace's addresses, and the subnets they connect it to (each address with
    /// its prefix length).
    pub async fn addresses(&self) -> Result<(BTreeSet<IpAddr>, BTreeSet<IpNet>), NetlinkError> {
        let mut out = BTreeSet::new();
        let mut connected = BTreeSet::new();
        let request = RtMessage::GetAddress(AddressMessage::default());
        self.dump(request, "listing addresses", |m| {
            let RtMessage::NewAddress(m) = m else { return };
            for a in &m.attributes {
                if let AddressAttribute::Address(ip) | AddressAttribute::Local(ip) = a {
                    out.insert(*ip);
                    if let Ok(n) = IpNet::new(*ip, m.header.prefix_len) {
                        connected.insert(n.trunc());
                    }
                }
            }
        })
        .await?;
        Ok((out, connected))
    }

    /// Creates or replaces our route for `prefix`: one gateway, or ECMP (RTA_MULTIPATH)
    /// over several.
    pub async fn replace(&self, prefix: IpNet, next_hops: &NextHops) -> Result<(), NetlinkError> {
        let op = Op::Replace {
            prefix,
            next_hops: next_hops.clone(),
        };
        self.apply(&op).await
    }

    /// Deletes our route for `prefix` at `metric` (all its paths). A route already gone
    /// is not an error.
    pub async fn delete(&self, prefix: IpNet, metric: u32) -> Result<(), NetlinkError> {
        self.apply(&Op::Delete { prefix, metric }).await
    }

    /// Applies planned operations, 64 (`batch::BATCH`) per system call (see
    /// `podroutes::batch`); the results come back in the order of `ops`. Callers order
    /// dependent operations (deletes before replaces) by calling this once per group.
    /// Other tasks run between batches.
    pub async fn apply_all(&self, ops: &[Op]) -> Vec<Result<(), NetlinkError>> {
        let mut out = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(batch::BATCH) {
            // Per op of the chunk: its result already (not expressible), or its request.
            let mut results: Vec<Option<Result<(), NetlinkError>>> = Vec::new();
            let mut requests = Vec::with_capacity(chunk.len());
            for op in chunk {
                let request = match op {
                    Op::Replace { prefix, next_hops } => self
                        .route_message(*prefix, next_hops)
                        .map(batch::Request::Replace),
                    Op::Delete { prefix, metric } => {
                        delete_message(*prefix, *metric).map(batch::Request::Delete)
                    }
                };
                match request {
                    Ok(r) => {
                        requests.push(r);
                        results.push(None);
                    }
                    Err(e) => results.push(Some(Err(e))),
                }
            }
            let replies = self.socket.lock().await.send(requests);
            let mut answered = 0;
            for (op, slot) in chunk.iter().zip(results) {
                out.push(slot.unwrap_or_else(|| {
                    let k = answered;
                    answered += 1;
                    match &replies {
                        Ok(r) => reply_result(op, &r[k]),
                        Err(e) => Err(NetlinkError::Socket {
                            what: describe(op),
                            source: std::io::Error::new(e.kind(), e.to_string()),
                        }),
                    }
                }));
            }
            tokio::task::yield_now().await;
        }
        out
    }

    /// Applies one planned operation.
    pub async fn apply(&self, op: &Op) -> Result<(), NetlinkError> {
        let request = match op {
            Op::Replace { prefix, next_hops } => {
                batch::Request::Replace(self.route_message(*prefix, next_hops)?)
            }
            Op::Delete { prefix, metric } => {
                batch::Request::Delete(delete_message(*prefix, *metric)?)
            }
        };
        let reply = self.request(request, &describe(op)).await?;
        reply_result(op, &reply)
    }

    fn route_message(
        &self,
        prefix: IpNet,
        next_hops: &NextHops,
    ) -> Result<RouteMessage, NetlinkError> {
        let mut msg = base_message(prefix)?;
        msg.attributes.push(RouteAttribute::Priority(self.metric));
        let invalid = |reason: String| NetlinkError::Invalid { prefix, reason };
        match next_hops.len() {
            0 => return Err(invalid("no next hop".into())),
            1 => {
                let gw = next_hops
                    .iter()
                    .next()
                    .copied()
                    .ok_or_else(|| invalid("no next hop".into()))?;
                check_family(prefix, gw).map_err(invalid)?;
                msg.attributes.push(RouteAttribute::Gateway(gw.into()));
            }
            _ => {
                let mut paths: Vec<RouteNextHop> = Vec::with_capacity(next_hops.len());
                for gw in next_hops {
                    check_family(prefix, *gw).map_err(invalid)?;
                    let nh = RouteNextHopBuilder::new(msg.header.address_family)
                        .via(*gw)
                        .map_err(|e| invalid(e.to_string()))?
                        .build();
                    paths.push(nh);
                }
                msg.attributes.push(RouteAttribute::MultiPath(paths));
            }
        }
        Ok(msg)
    }
}

/// The message deleting our route for `prefix` at `metric`: like `ip route del`, any
/// scope and type; protocol and metric select ours only.
fn delete_message(prefix: IpNet, metric: u32) -> Result<RouteMessage, NetlinkError> {
    let mut msg = base_message(prefix)?;
    msg.header.scope = RouteScope::NoWhere;
    msg.header.kind = RouteType::Unspec;
    msg.attributes.push(RouteAttribute::Priority(metric));
    Ok(msg)
}

/// What `op` does, for error messages.
fn describe(op: &Op) -> String {
    match op {
        Op::Replace { prefix, .. } => format!("replacing route {prefix}"),
        Op::Delete { prefix, metric } => format!("deleting route {prefix} metric {metric}"),
    }
}

/// The result of `op` from the kernel's reply: as [`KernelRoutes::replace`] and
/// [`KernelRoutes::delete`] report it (a route already gone is not an error).
fn reply_result(op: &Op, reply: &batch::Reply) -> Result<(), NetlinkError> {
    match (reply, op) {
        (batch::Reply::Ok, _) => Ok(()),
        (batch::Reply::Refused(ESRCH), Op::Delete { .. }) => Ok(()),
        (batch::Reply::Refused(code), _) => Err(NetlinkError::Request {
            what: describe(op),
            source: std::io::Error::from_raw_os_error(*code),
        }),
    }
}

fn check_family(prefix: IpNet, gw: IpAddr) -> Result<(), String> {
    if prefix.addr().is_ipv4() == gw.is_ipv4() {
        Ok(())
    } else {
        Err(format!("next hop {gw} is of the other address family"))
    }
}

/// A unicast route message for `prefix` in the main table with our protocol.
fn base_message(prefix: IpNet) -> Result<RouteMessage, NetlinkError> {
    let msg = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(prefix.network(), prefix.prefix_len())
        .map_err(|e| NetlinkError::Invalid {
            prefix,
            reason: e.to_string(),
        })?
        .table_id(MAIN_TABLE)
        .protocol(RouteProtocol::from(ROUTE_PROTOCOL))
        .scope(RouteScope::Universe)
        .kind(RouteType::Unicast)
        .build();
    Ok(msg)
}

fn route_address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Our route from a dumped message: main table, our protocol, unicast. `None` otherwise.
fn parse_ours(m: &RouteMessage) -> Option<InstalledRoute> {
    let table = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(m.header.table));
    if table != MAIN_TABLE
        || u8::from(m.header.protocol) != ROUTE_PROTOCOL
        || m.header.kind != RouteType::Unicast
    {
        return None;
    }
    let len = m.header.destination_prefix_length;
    let dst = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(d) => route_address(d),
        _ => None,
    });
    let dst = match (dst, m.header.address_family) {
        (Some(a), _) => a,
        (None, AddressFamily::Inet) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    let prefix = IpNet::new(dst, len).ok()?;
    let mut metric = 0;
    let mut next_hops = NextHops::new();
    for a in &m.attributes {
        match a {
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Gateway(g) => next_hops.extend(route_address(g)),
            RouteAttribute::MultiPath(paths) => {
                for p in paths {
                    for pa in &p.attributes {
                        if let RouteAttribute::Gateway(g) = pa {
                            next_hops.extend(route_address(g));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Some(InstalledRoute {
        prefix,
        metric,
        next_hops,
    })
}
