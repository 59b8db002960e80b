//! Applies desired sessions and routes to the BGP speaker, touching only what changed.
//!
//! The speaker's own Adj-RIB-Out already sends only the difference of a new desired table,
//! but handing it an identical table still costs a diff over every prefix; and a peer whose
//! settings did not change must not even be looked at. So this layer remembers what it last
//! gave each peer and calls the speaker only for peers whose table or settings changed.
//!
//! What it remembers is not a copy: the table is handed over in an `Arc` that the peer's
//! task keeps, so both hold the one allocation; and peers given equal tables (every router
//! of an ECMP pair, as a rule) share one.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_bgp::session::{PeerConfig, PeerSelector, Speaker};
use tokio::task::JoinHandle;

use crate::routes::RouteTable;

/// The sessions of this node, as configured in the BGP speaker.
pub struct Sessions {
    speaker: Speaker,
    configured: BTreeMap<IpAddr, PeerConfig>,
    /// The table each peer's task holds (the same allocation).
    sent: BTreeMap<IpAddr, Arc<RouteTable>>,
    /// Peers the speaker refused (invalid settings), with the reason.
    errors: BTreeMap<IpAddr, String>,
    /// Peers being removed (their Cease is being written).
    removing: HashMap<IpAddr, JoinHandle<()>>,
    /// Session resets caused by configuration changes (for the log and tests).
    pub resets: u64,
}

impl Sessions {
    /// Wrap a speaker with no peers yet.
    pub fn new(speaker: Speaker) -> Self {
        Sessions {
            speaker,
            configured: BTreeMap::new(),
            sent: BTreeMap::new(),
            errors: BTreeMap::new(),
            removing: HashMap::new(),
            resets: 0,
        }
    }

    /// The speaker handle.
    pub fn speaker(&self) -> &Speaker {
        &self.speaker
    }

    /// Peers the speaker refused, with the reason.
    pub fn errors(&self) -> &BTreeMap<IpAddr, String> {
        &self.errors
    }

    /// Number of prefixes last handed to `peer`.
    pub fn desired_count(&self, peer: IpAddr) -> usize {
        self.sent.get(&peer).map_or(0, |t| t.len())
    }

    /// The configured peers.
    pub fn configured(&self) -> &BTreeMap<IpAddr, PeerConfig> {
        &self.configured
    }

    /// Bring the speaker's peers to `desired`. Returns the peers removed.
    pub async fn apply_peers(&mut self, desired: &BTreeMap<IpAddr, PeerConfig>) -> Vec<IpAddr> {
        self.removing.retain(|_, h| !h.is_finished());
        let mut wanted = self.configured.clone();
        // Peers that failed before are retried as if new.
        for addr in self.errors.keys() {
            wanted.remove(addr);
        }
        let mut plan = crate::peers::plan(&wanted, desired);
        for addr in self.errors.keys() {
            if !desired.contains_key(addr) && self.configured.contains_key(addr) {
                plan.remove.push(*addr);
            }
        }
        for addr in &plan.remove {
            self.errors.remove(addr);
            self.sent.remove(addr);
            if self.configured.remove(addr).is_some() {
                tracing::info!(peer = %addr, "peer no longer configured for this node: removing session");
                let speaker = self.speaker.clone();
                let addr = *addr;
                let task = tokio::spawn(async move {
                    if let Err(e) = speaker.remove_peer(addr).await {
                        tracing::warn!(peer = %addr, error = %e, "removing peer failed");
                    }
                });
                self.removing.insert(addr, task);
            }
        }
        for pc in plan.update {
            let addr = pc.address;
            if !self.configured.contains_key(&addr) {
                continue;
            }
            match self.speaker.update_peer(pc.clone()) {
                Ok(reset) => {
                    if reset {
                        self.resets += 1;
                    }
                    tracing::info!(peer = %addr, reset, "peer settings changed");
                    self.configured.insert(addr, pc);
                }
                Err(e) => {
                    tracing::error!(peer = %addr, error = %e, "peer settings rejected; keeping the old ones");
                    self.errors.insert(addr, e.to_string());
                }
            }
        }
        for pc in plan.add {
            let addr = pc.address;
            if self.configured.contains_key(&addr) {
                // Listed in `errors` after a refused update: retry the update.
                match self.speaker.update_peer(pc.clone()) {
                    Ok(_) => {
                        self.errors.remove(&addr);
                        self.configured.insert(addr, pc);
                    }
                    Err(e) => {
                        self.errors.insert(addr, e.to_string());
                    }
                }
                continue;
            }
            if let Some(h) = self.removing.remove(&addr) {
                // Re-added while its removal is still writing the Cease: let that finish.
                let _ = h.await;
            }
            match self.speaker.add_peer(pc.clone()) {
                Ok(()) => {
                    tracing::info!(peer = %addr, remote_as = pc.remote_as, router_id = ?pc.router_id, "peer added");
                    self.errors.remove(&addr);
                    self.configured.insert(addr, pc);
                    // A new peer starts with nothing; the next route pass fills it.
                    self.sent.remove(&addr);
                }
                Err(e) => {
                    tracing::error!(peer = %addr, error = %e, "peer refused by the BGP speaker");
                    self.errors.insert(addr, e.to_string());
                }
            }
        }
        // Desired peers that are gone from `desired` but still have an error entry.
        self.errors.retain(|a, _| desired.contains_key(a));
        plan.remove
    }

    /// Hand each configured peer its table if it differs from the last one. Peers without a
    /// table get an empty one. Returns how many peers were updated.
    pub fn apply_routes(&mut self, mut tables: BTreeMap<IpAddr, RouteTable>) -> usize {
        let mut changed = 0;
        let peers: Vec<IpAddr> = self.configured.keys().copied().collect();
        for addr in peers {
            let table = tables.remove(&addr).unwrap_or_default();
            let first = !self.sent.contains_key(&addr);
            if !first && self.sent.get(&addr).is_some_and(|t| **t == table) {
                continue;
            }
            // Another peer's equal table, if there is one (compared by length first).
            let table = self
                .sent
                .values()
                .find(|t| t.len() == table.len() && ***t == table)
                .cloned()
                .unwrap_or_else(|| Arc::new(table));
            if first && table.is_empty() {
                self.sent.insert(addr, table);
                continue;
            }
            match self
                .speaker
                .set_desired(PeerSelector::Peer(addr), table.clone())
            {
                Ok(()) => {
                    tracing::debug!(peer = %addr, prefixes = table.len(), "desired routes updated");
                    self.sent.insert(addr, table);
                    changed += 1;
                }
                Err(e) => tracing::warn!(peer = %addr, error = %e, "cannot set routes"),
            }
        }
        changed
    }

    /// Cease every session (RFC 8203 `reason`) and wait for the NOTIFICATIONs to go out.
    pub async fn shutdown(&mut self, reason: &str) {
        self.stop(reason, false).await;
    }

    /// Stop for a restart: peers that negotiated graceful restart keep our routes (no
    /// NOTIFICATION), the others get a Cease with `reason`.
    pub async fn shutdown_for_restart(&mut self, reason: &str) {
        self.stop(reason, true).await;
    }

    async fn stop(&mut self, reason: &str, restart: bool) {
        for (_, h) in self.removing.drain() {
            let _ = h.await;
        }
        if restart {
            self.speaker.shutdown_for_restart(Some(reason)).await;
        } else {
            self.speaker.shutdown(Some(reason)).await;
        }
        self.configured.clear();
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_bgp::session::{RouteSpec, SpeakerConfig};
    use std::net::Ipv4Addr;

    fn peer(port: u16) -> PeerConfig {
        // Nothing listens on these loopback ports: the sessions just retry in the background.
        let mut pc = PeerConfig::new("127.0.0.1".parse().unwrap(), 64522, 64512);
        pc.port = port;
        pc.router_id = Some(Ipv4Addr::new(10, 0, 0, 1));
        pc
    }

    fn table(prefixes: &[&str], community: u32) -> RouteTable {
        let attrs = Arc::new(ferrolb_bgp::wire::PathAttributes {
            communities: vec![community],
            ..Default::default()
        });
        prefixes
            .iter()
            .map(|p| (p.parse().unwrap(), RouteSpec::self_next_hop(attrs.clone())))
            .collect()
    }

    #[tokio::test]
    async fn only_changed_tables_and_settings_reach_the_speaker() {
        let (speaker, _events) =
            Speaker::new(SpeakerConfig::new(Ipv4Addr::UNSPECIFIED)).expect("speaker");
        let mut s = Sessions::new(speaker);
        let p = peer(1);
        let addr = p.address;
        let desired = BTreeMap::from([(addr, p.clone())]);
        assert!(s.apply_peers(&desired).await.is_empty());
        assert_eq!(s.configured().len(), 1);
        assert!(s.errors().is_empty());

        let t1 = table(&["172.17.254.1/32"], 1);
        assert_eq!(s.apply_routes(BTreeMap::from([(addr, t1.clone())])), 1);
        assert_eq!(
            s.apply_routes(BTreeMap::from([(addr, t1.clone())])),
            0,
            "unchanged"
        );
        assert_eq!(s.desired_count(addr), 1);
        let t2 = table(&["172.17.254.1/32"], 2);
        assert_eq!(
            s.apply_routes(BTreeMap::from([(addr, t2)])),
            1,
            "new community"
        );
        assert_eq!(s.apply_routes(BTreeMap::new()), 1, "everything withdrawn");
        assert_eq!(s.desired_count(addr), 0);

        // Same settings: nothing; a next-hop override: no reset; hold time: reset.
        s.apply_peers(&desired).await;
        assert_eq!(s.resets, 0);
        let mut nh = p.clone();
        nh.ipv6_next_hop = Some("fd00::21".parse().unwrap());
        s.apply_peers(&BTreeMap::from([(addr, nh.clone())])).await;
        assert_eq!(s.resets, 0);
        let mut hold = nh.clone();
        hold.hold_time = 30;
        s.apply_peers(&BTreeMap::from([(addr, hold)])).await;
        assert_eq!(s.resets, 1);

        // Invalid settings are refused, reported and retried; removal forgets the peer.
        let mut bad = peer(2);
        bad.address = "127.0.0.2".parse().unwrap();
        bad.hold_time = 2;
        let both = BTreeMap::from([(addr, p.clone()), (bad.address, bad.clone())]);
        s.apply_peers(&both).await;
        assert!(
            s.errors()[&bad.address].contains("hold_time"),
            "{:?}",
            s.errors()
        );
        let removed = s.apply_peers(&BTreeMap::new()).await;
        assert_eq!(removed, vec![addr]);
        assert!(s.configured().is_empty());
        assert!(s.errors().is_empty());
        s.shutdown("test over").await;
    }

    #[tokio::test]
    async fn peers_given_equal_tables_share_one() {
        let (speaker, _events) =
            Speaker::new(SpeakerConfig::new(Ipv4Addr::UNSPECIFIED)).expect("speaker");
        let mut s = Sessions::new(speaker);
        let a = peer(3);
        let mut b = peer(4);
        b.address = "127.0.0.3".parse().unwrap();
        let peers = BTreeMap::from([(a.address, a.clone()), (b.address, b.clone())]);
        s.apply_peers(&peers).await;
        let t = table(&["172.17.254.1/32", "172.17.254.2/32"], 1);
        let tables = BTreeMap::from([(a.address, t.clone()), (b.address, t.clone())]);
        assert_eq!(s.apply_routes(tables), 2, "both peers get the table");
        assert!(
            Arc::ptr_eq(&s.sent[&a.address], &s.sent[&b.address]),
            "one allocation for both"
        );
        // One peer's table changes: the other keeps the shared one, unchanged.
        let t2 = table(&["172.17.254.1/32"], 1);
        let tables = BTreeMap::from([(a.address, t2.clone()), (b.address, t.clone())]);
        assert_eq!(s.apply_routes(tables), 1, "only the changed peer");
        assert!(!Arc::ptr_eq(&s.sent[&a.address], &s.sent[&b.address]));
        assert_eq!(*s.sent[&a.address], t2);
        assert_eq!(*s.sent[&b.address], t);
        s.shutdown("test over").await;
    }
}
