//! What the loop tells the outside after a reconcile: Kubernetes Events about the Services
//! it announces or cannot announce, and the status snapshot the HTTP server reads.

use std::collections::{BTreeMap, BTreeSet};

use super::Driver;
use crate::decision::{Decision, Origin};
use crate::events::{Severity, about_service};
use crate::options::StopMode;
use crate::shared::{PeerInfo, Snapshot};

impl Driver {
    pub(super) fn emit_events(&mut self, decision: &Decision) {
        for (key, ips) in &decision.announced_services {
            if self.announced.get(key) == Some(ips) {
                continue;
            }
            let Some(svc) = self.cache.service(key) else {
                continue;
            };
            tracing::info!(service = %key, ips = ?ips, "service announced from this node");
            self.events.publish(about_service(
                &svc.namespace,
                &svc.name,
                svc.uid.clone(),
                Severity::Normal,
                "nodeAssigned",
                format!(
                    "announcing from node {:?} with protocol \"bgp\"",
                    self.node_name
                ),
            ));
        }
        for key in self.announced.keys() {
            if !decision.announced_services.contains_key(key) {
                tracing::info!(service = %key, "service no longer announced from this node");
            }
        }
        // (Service, Event reason, message): a warning is published once while it lasts.
        let now: BTreeSet<(String, &'static str, String)> = decision
            .problems
            .iter()
            .map(|p| (p.service.clone(), "AnnounceFailed", p.reason.clone()))
            .chain(
                decision
                    .weight_ignored
                    .iter()
                    .map(|p| (p.service.clone(), "WeightIgnored", p.reason.clone())),
            )
            .collect();
        for (key, event_reason, reason) in now.difference(&self.warned) {
            let Some(svc) = self.cache.service(key) else {
                continue;
            };
            if *event_reason == "AnnounceFailed" {
                tracing::warn!(service = %key, %reason, "service not announced");
            } else {
                tracing::warn!(service = %key, %reason, "service announced without weight");
            }
            self.events.publish(about_service(
                &svc.namespace,
                &svc.name,
                svc.uid.clone(),
                Severity::Warning,
                event_reason,
                format!("node {:?}: {reason}", self.node_name),
            ));
        }
        self.warned = now;
    }

    /// Publish only the config state (announcements stay as last published).
    pub(super) fn publish(&self) {
        self.shared.set_config(self.config_report.clone());
    }

    pub(super) fn publish_with(&self, decision: &Decision) {
        let mut peers = BTreeMap::new();
        let configured = self.sessions.configured();
        let bfd_profiles = self.bfd.profiles();
        let config_peers = self
            .config
            .as_ref()
            .map(|c| c.peers.as_slice())
            .unwrap_or(&[]);
        for (addr, pc) in &self.desired_peers.peers {
            peers.insert(
                *addr,
                PeerInfo {
                    port: pc.port,
                    local_as: pc.local_as,
                    remote_as: pc.remote_as,
                    desired: self.sessions.desired_count(*addr),
                    error: self.sessions.errors().get(addr).cloned(),
                    configured: configured.contains_key(addr),
                    bfd_profile: bfd_profiles.get(addr).cloned(),
                    bfd_error: self.bfd.errors().get(addr).cloned(),
                },
            );
        }
        for (addr, why) in &self.desired_peers.problems {
            if peers.contains_key(addr) {
                continue;
            }
            let cp = config_peers.iter().find(|p| p.address == *addr);
            peers.insert(
                *addr,
                PeerInfo {
                    port: cp.map_or(179, |p| p.port),
                    local_as: cp.map_or(0, |p| p.my_asn),
                    remote_as: cp.map_or(0, |p| p.peer_asn),
                    desired: 0,
                    error: Some(why.clone()),
                    configured: false,
                    bfd_profile: None,
                    bfd_error: None,
                },
            );
        }
        let pod_cidrs = decision
            .per_peer
            .values()
            .flat_map(|t| t.iter())
            .filter(|(_, a)| a.origin == Origin::PodCidr)
            .map(|(p, _)| *p)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.shared.publish(Snapshot {
            synced: self.synced.all() && self.cache.node.is_some(),
            config: self.config_report.clone(),
            peers,
            announced: decision.announced_services.clone(),
            problems: decision
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.service, p.reason))
                .collect(),
            pod_cidrs,
            on_sigterm: match self.stop_mode {
                StopMode::Restart => {
                    "restart (graceful restart where negotiated, else Cease)".into()
                }
                StopMode::Drain => format!(
                    "drain (GRACEFUL_SHUTDOWN for {}s, then Cease)",
                    self.drain_period.as_secs()
                ),
                StopMode::Withdraw => "withdraw (Cease)".into(),
            },
            draining: self.drain.map(|d| {
                let left = d
                    .until
                    .saturating_duration_since(tokio::time::Instant::now());
                format!(
                    "{}: Service routes carry GRACEFUL_SHUTDOWN (65535:0), withdrawn in {}s",
                    d.why.as_str(),
                    left.as_secs()
                )
            }),
        });
    }
}
