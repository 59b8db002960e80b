//! Shared by the crds tests: a compact, line-per-fact rendering of a model and its
//! warnings, so expectations read like a report.
#![allow(dead_code)]

use std::path::PathBuf;

use ferrolb_config::{Config, ConfigErrors, Parsed};

pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// One line per peer, pool, advertisement, BFD profile and alias.
pub fn render(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for p in &c.peers {
        let mut l = format!(
            "peer {} {}:{} as {}->{} hold {}s keepalive {}s",
            p.name.as_deref().unwrap_or("-"),
            p.address,
            p.port,
            p.my_asn,
            p.peer_asn,
            p.hold_time.as_secs(),
            p.keepalive_time.as_secs()
        );
        if let Some(r) = p.router_id {
            l += &format!(" router-id {r}");
        }
        if let Some(s) = p.source_address {
            l += &format!(" source {s}");
        }
        if !p.node_selectors.is_empty() {
            l += &format!(" node-selectors {}", p.node_selectors.len());
        }
        if p.password.is_some() {
            l += " password";
        }
        if let Some(s) = &p.password_secret {
            l += &format!(" password-secret {}", s.name);
        }
        if let Some(b) = &p.bfd_profile {
            l += &format!(" bfd {b}");
        }
        if p.ebgp_multihop {
            l += " multihop";
        }
        if p.graceful_restart {
            l += " graceful-restart";
        }
        out.push(l);
    }
    for p in &c.pools {
        let addrs: Vec<String> = p.addresses.iter().map(ToString::to_string).collect();
        let mut l = format!("pool {} {} [{}]", p.name, p.protocol, addrs.join(", "));
        if !p.auto_assign {
            l += " no-auto-assign";
        }
        if p.avoid_buggy_ips {
            l += " avoid-buggy-ips";
        }
        if let Some(a) = &p.service_allocation {
            l += &format!(
                " allocation(priority {:?}, namespaces {:?}, namespace-selectors {}, service-selectors {})",
                a.priority,
                a.namespaces,
                a.namespace_selectors.len(),
                a.service_selectors.len()
            );
        }
        out.push(l);
        for a in &p.bgp_advertisements {
            let comms: Vec<String> = a.communities.iter().map(ToString::to_string).collect();
            let mut l = format!(
                "  ad /{} /{}",
                a.aggregation_length, a.aggregation_length_v6
            );
            if let Some(lp) = a.local_pref {
                l += &format!(" localpref {lp}");
            }
            if !comms.is_empty() {
                l += &format!(" communities [{}]", comms.join(" "));
            }
            if !a.peers.is_empty() {
                l += &format!(" peers {:?}", a.peers);
            }
            if !a.node_selectors.is_empty() {
                l += &format!(" node-selectors {}", a.node_selectors.len());
            }
            if a.weight_by_endpoints {
                l += " weight-by-endpoints";
            }
            out.push(l);
        }
    }
    for b in &c.bfd_profiles {
        out.push(format!(
            "bfd {} rx {}ms tx {}ms x{} echo {}ms{}{} ttl {}",
            b.name,
            b.receive_interval.as_millis(),
            b.transmit_interval.as_millis(),
            b.detect_multiplier,
            b.echo_interval.as_millis(),
            if b.echo_mode { " echo-mode" } else { "" },
            if b.passive_mode { " passive" } else { "" },
            b.minimum_ttl
        ));
    }
    for (k, v) in &c.communities {
        out.push(format!("alias {k} = {v}"));
    }
    out
}

/// The model and warnings, or the errors and warnings, as lines.
pub fn outcome(r: &Result<Parsed, ConfigErrors>) -> Vec<String> {
    match r {
        Ok(p) => {
            let mut out = render(&p.config);
            out.extend(p.warnings.iter().map(|w| format!("warning: {w}")));
            out
        }
        Err(e) => {
            let mut out: Vec<String> = e.errors.iter().map(|e| format!("error: {e}")).collect();
            out.extend(e.warnings.iter().map(|w| format!("warning: {w}")));
            out
        }
    }
}
