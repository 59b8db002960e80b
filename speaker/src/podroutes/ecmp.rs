//! Installing an ECMP route when some of its next hops are unusable.
//!
//! The kernel refuses a multipath route as a whole when any one gateway is unusable (not
//! on a connected network, e.g. because the link towards that router went down while its
//! BGP session is still within its hold time). Refusing the whole route would leave a pod
//! CIDR unreachable although other routers still lead to it, so after such a refusal
//! each next hop is tried alone and the route is installed over the ones the kernel
//! accepts. The pass still counts as failed, so the full set is tried again after the
//! retry interval and comes back as soon as the kernel accepts it.
//!
//! Trying a next hop alone replaces our route for that prefix for a moment (always with a
//! usable gateway, so nothing is dropped). To keep that from happening on every retry,
//! the outcome is remembered: while the wanted next hops and the route in the kernel are
//! what the last attempt left, nothing is tried again.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::desired::NextHops;
use super::netlink::{KernelRoutes, NetlinkError};

/// The result of installing what the kernel accepts of one ECMP route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    /// The next hops we wanted.
    pub wanted: NextHops,
    /// The next hops now installed.
    pub usable: NextHops,
    /// The next hops the kernel refused, with its error.
    pub refused: Vec<(IpAddr, String)>,
}

impl Partial {
    /// The refused next hops and a message naming each, for the status page.
    pub fn refused_summary(&self) -> (Vec<IpAddr>, String) {
        let hops = self.refused.iter().map(|(h, _)| *h).collect();
        let text = self
            .refused
            .iter()
            .map(|(h, e)| format!("next hop {h} refused: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        (hops, text)
    }
}

/// Remembered partial installs, by prefix.
pub type PartialInstalls = BTreeMap<IpNet, Partial>;

/// After the kernel refused `wanted` for `prefix`: installs the next hops it accepts.
/// `installed` is what the kernel holds for the prefix now (our route), if anything.
///
/// Returns the partial install (new or unchanged), `Ok(None)` when the kernel accepts
/// none of the next hops (the route is left as it was), or the error that broke the
/// netlink connection.
pub async fn install_usable(
    kernel: &KernelRoutes,
    prefix: IpNet,
    wanted: &NextHops,
    installed: Option<&NextHops>,
    memo: &mut PartialInstalls,
) -> Result<Option<Partial>, NetlinkError> {
    if let Some(p) = memo.get(&prefix)
        && &p.wanted == wanted
        && installed == Some(&p.usable)
    {
        return Ok(Some(p.clone()));
    }
    let mut usable = NextHops::new();
    let mut refused = Vec::new();
    for hop in wanted {
        let alone: NextHops = [*hop].into();
        match kernel.replace(prefix, &alone).await {
            Ok(()) => {
                usable.insert(*hop);
            }
            Err(e) if e.is_connection_lost() => return Err(e),
            Err(e) => refused.push((*hop, root_cause(&e))),
        }
    }
    // With one usable next hop the last successful try already installed it.
    if usable.len() > 1 {
        kernel.replace(prefix, &usable).await?;
    }
    if usable.is_empty() {
        memo.remove(&prefix);
        return Ok(None);
    }
    let p = Partial {
        wanted: wanted.clone(),
        usable,
        refused,
    };
    memo.insert(prefix, p.clone());
    Ok(Some(p))
}

/// The kernel's own words, without our "replacing route P" context (the status line
/// already names the prefix).
fn root_cause(e: &NetlinkError) -> String {
    match e {
        NetlinkError::Request { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}
