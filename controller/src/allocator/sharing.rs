//! MetalLB's IP-sharing rule, in one place.
//!
//! Two Services may hold the same IP only if both set the same `allow-shared-ip` key, their
//! (protocol, port) sets do not overlap, and they have the same "backend": both
//! `externalTrafficPolicy: Cluster`, or both `Local` with identical pod selectors. The backend
//! rule exists because one IP is announced from one set of nodes: a Local Service is announced
//! only from nodes with its endpoints, so it can share only with Services whose endpoints are the
//! same pods.
//!
//! One deliberate difference from MetalLB: MetalLB encodes a Cluster Service's backend as "" and a
//! Local one's as its selector string, so a Local Service with an *empty* selector could share
//! with Cluster Services. Here Local never matches Cluster.
//!
//! The rule is symmetric, so checking a newcomer against every current holder is enough.

use super::error::ConflictReason;
use super::types::Request;

/// Whether `new` may hold an IP that `holder` already holds.
pub(crate) fn check(new: &Request, holder: &Request) -> Result<(), ConflictReason> {
    let Some(new_key) = new.sharing() else {
        return Err(ConflictReason::RequesterNotSharing);
    };
    let Some(held_key) = holder.sharing() else {
        return Err(ConflictReason::HolderNotSharing);
    };
    if new_key != held_key {
        return Err(ConflictReason::DifferentSharingKey {
            requested: new_key.to_string(),
            held: held_key.to_string(),
        });
    }
    if new.backend() != holder.backend() {
        return Err(ConflictReason::BackendMismatch);
    }
    if let Some(port) = new.ports.iter().find(|p| holder.ports.contains(p)) {
        return Err(ConflictReason::PortConflict { port: *port });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::types::{Port, TrafficPolicy};

    fn svc(key: Option<&str>, ports: &[Port]) -> Request {
        Request {
            sharing_key: key.map(str::to_string),
            ports: ports.to_vec(),
            ..Request::new("ns/x")
        }
    }

    #[test]
    fn rules() {
        let a = svc(Some("k"), &[Port::tcp(80)]);
        assert_eq!(check(&svc(Some("k"), &[Port::udp(80)]), &a), Ok(()));
        assert_eq!(
            check(&svc(Some("k"), &[Port::tcp(443), Port::tcp(80)]), &a),
            Err(ConflictReason::PortConflict {
                port: Port::tcp(80)
            })
        );
        assert_eq!(
            check(&svc(None, &[Port::tcp(1)]), &a),
            Err(ConflictReason::RequesterNotSharing)
        );
        assert_eq!(
            check(&svc(Some(""), &[Port::tcp(1)]), &a),
            Err(ConflictReason::RequesterNotSharing),
            "an empty key is no key"
        );
        assert_eq!(
            check(&a, &svc(None, &[Port::tcp(1)])),
            Err(ConflictReason::HolderNotSharing)
        );
        assert_eq!(
            check(&svc(Some("j"), &[Port::tcp(1)]), &a),
            Err(ConflictReason::DifferentSharingKey {
                requested: "j".into(),
                held: "k".into()
            })
        );
        let mut local = svc(Some("k"), &[Port::tcp(1)]);
        local.traffic_policy = TrafficPolicy::Local;
        assert_eq!(check(&local, &a), Err(ConflictReason::BackendMismatch));
        let mut local2 = svc(Some("k"), &[Port::tcp(2)]);
        local2.traffic_policy = TrafficPolicy::Local;
        assert_eq!(check(&local, &local2), Ok(()), "same (empty) selectors");
        local2.selector.insert("app".into(), "web".into());
        assert_eq!(check(&local, &local2), Err(ConflictReason::BackendMismatch));
        local.selector.insert("app".into(), "web".into());
        assert_eq!(check(&local, &local2), Ok(()));
        // Cluster services share regardless of selectors.
        let mut c = svc(Some("k"), &[Port::tcp(9)]);
        c.selector.insert("app".into(), "other".into());
        assert_eq!(check(&c, &a), Ok(()));
    }
}
