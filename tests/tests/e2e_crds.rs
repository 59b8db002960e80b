//! End-to-end test of the `metallb.io` CRs as the configuration (issue 14 phase B), on the
//! real kube-apiserver (the lab API server serves no CRDs) with FRR as the router (its
//! `connectionsEstablished` counter proves no session was reset).
//!
//! The seed lab runs on the ConfigMap; the CRs `convert-config` prints for that ConfigMap
//! are applied beside it: they win, and since they give the same model nothing moves (same
//! IP, same routes, same sessions). Then a community change, made once in the ConfigMap
//! (while it is the configuration) and once in the BGPAdvertisement, is timed from the
//! write to the router's RIB: the CR path must be as fast. An invalid CR (a pool
//! overlapping another) is refused with an Event on the IPAddressPool and changes nothing;
//! the IPAddressPool's status shows the assignment.

use std::time::{Duration, Instant};

use ferrolb_lab::k8s;
use ferrolb_lab::netlab::{ApiServerKind, NetLab};
use ferrolb_lab::router::RouterKind;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Event, Service};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

const SEED: &str = "peers:\n- peer-address: 172.17.0.1\n  peer-asn: 64512\n  my-asn: 64522\n\
                    address-pools:\n- name: default\n  protocol: bgp\n  avoid-buggy-ips: true\n  \
                    addresses:\n  - 172.17.254.0/24\n";

/// The seed configuration whose one advertisement carries `community`.
fn config(community: &str) -> String {
    format!("{SEED}  bgp-advertisements:\n  - communities:\n    - \"{community}\"\n")
}

/// How many of the router's paths to `prefix` carry `c`.
fn paths_with(lab: &NetLab, prefix: IpNet, c: &str) -> usize {
    lab.router()
        .frr_path_communities(prefix)
        .unwrap_or_default()
        .iter()
        .filter(|p| p.iter().any(|x| x == c))
        .count()
}

/// Waits until all three paths carry `c`; how long that took from `start`.
fn until_three_with(lab: &NetLab, prefix: IpNet, c: &str, start: Instant) -> Duration {
    loop {
        if paths_with(lab, prefix, c) == 3 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "three paths to {prefix} never carried {c}: {:?}",
            lab.router().frr_path_communities(prefix)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn resource(kind: &str, version: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("metallb.io", version, kind), plural)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn service_ip(lab: &NetLab) -> Vec<String> {
    lab.kube(|c| async move { k8s::service_ips(&c).await })
        .expect("service IPs")
}

/// Real API server only (the lab API server serves no CRDs); skipped with a message when
/// its binaries are missing (an error under `CI=true`).
#[test]
fn crs_configure_the_lab_and_updates_need_no_reset() {
    if ferrolb_kubeapi::assets::require(concat!(module_path!(), "::real")).is_none() {
        return;
    }
    let kind = ApiServerKind::Real;
    let Some(mut spec) = ferrolb_lab::testing::spec_with_router(RouterKind::Frr) else {
        return;
    };
    spec.apiserver = kind;
    spec.config = config("64500:1");
    let lab = NetLab::up(spec, &mut |_| {}).unwrap_or_else(|e| panic!("lab: {e:#}"));
    let ip = ferrolb_lab::testing::seed_ready(&lab);
    let prefix = ferrolb_lab::testing::host(ip);
    until_three_with(&lab, prefix, "64500:1", Instant::now());
    let sessions = lab.router().frr_connections_established().unwrap();
    let ips = service_ip(&lab);

    // The reference: a community change through the ConfigMap.
    let mut via_configmap = Vec::new();
    for round in 0..4 {
        let c = if round % 2 == 0 { "64500:2" } else { "64500:1" };
        let text = config(c);
        let start = lab
            .kube(move |cl| async move {
                let start = Instant::now();
                k8s::apply_config(&cl, &text).await?;
                Ok(start)
            })
            .unwrap();
        via_configmap.push(until_three_with(&lab, prefix, c, start));
    }

    // The same configuration as CRs, beside the ConfigMap: they win, nothing moves.
    let crs = ferrolb_crds::migrate::convert_config_text(&config("64500:1"), "seed")
        .expect("converts")
        .yaml;
    lab.kube(move |c| async move {
        ferrolb_kubeapi::apply::apply_yaml(&c, "e2e-crds", &crs).await?;
        Ok(())
    })
    .unwrap();
    let pools = resource("IPAddressPool", "v1beta1", "ipaddresspools");
    let status_start = Instant::now();
    loop {
        let p = pools.clone();
        let st = lab
            .kube(move |c| async move {
                let api: Api<DynamicObject> = Api::namespaced_with(c, k8s::SYSTEM_NS, &p);
                Ok(api.get("default").await?.data["status"].clone())
            })
            .unwrap();
        // The controller runs on the CRs now: it writes the pool's status (/24 without .0
        // and .255, one address assigned).
        if st["assignedIPv4"] == 1 && st["availableIPv4"] == 253 {
            break;
        }
        assert!(
            status_start.elapsed() < Duration::from_secs(20),
            "IPAddressPool status never showed the assignment: {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(service_ip(&lab), ips, "the Service keeps its IP");
    assert_eq!(paths_with(&lab, prefix, "64500:1"), 3);

    // The community changed in the BGPAdvertisement.
    let ads = resource("BGPAdvertisement", "v1beta1", "bgpadvertisements");
    let mut via_crs = Vec::new();
    for round in 0..4 {
        let c = if round % 2 == 0 { "64500:3" } else { "64500:1" };
        let a = ads.clone();
        let start = lab
            .kube(move |cl| async move {
                let api: Api<DynamicObject> = Api::namespaced_with(cl, k8s::SYSTEM_NS, &a);
                let patch = json!({"spec": {"communities": [c]}});
                let start = Instant::now();
                api.patch(
                    "bgpadvertisement1",
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
                Ok(start)
            })
            .unwrap();
        via_crs.push(until_three_with(&lab, prefix, c, start));
    }
    let (cm, cr) = (median(via_configmap.clone()), median(via_crs.clone()));
    eprintln!(
        "community change -> router RIB: ConfigMap median {cm:?} {via_configmap:?}; \
         BGPAdvertisement median {cr:?} {via_crs:?}; ratio {:.2}",
        cr.as_secs_f64() / cm.as_secs_f64()
    );
    // The same pipeline after the watch: a CR change must not be slower than a ConfigMap
    // change beyond noise (a broken path would wait for the 30 s probe or a resync).
    assert!(cr < Duration::from_secs(1), "{via_crs:?}");
    assert!(
        cr <= cm * 3 + Duration::from_millis(100),
        "CR {cr:?} vs ConfigMap {cm:?}"
    );

    // An invalid CR: refused with an Event on it, the configuration in force kept.
    let overlapping = json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "overlap", "namespace": k8s::SYSTEM_NS},
        "spec": {"addresses": ["172.17.254.0/28"]}
    });
    lab.kube(move |c| async move {
        ferrolb_kubeapi::apply::apply_value(&c, "e2e-crds", &overlapping).await?;
        Ok(())
    })
    .unwrap();
    let event_start = Instant::now();
    let event = loop {
        let evs = lab
            .kube(|c| async move {
                let api: Api<Event> = Api::namespaced(c, k8s::SYSTEM_NS);
                Ok(api.list(&Default::default()).await?.items)
            })
            .unwrap();
        if let Some(e) = evs.into_iter().find(|e| {
            e.reason.as_deref() == Some("InvalidConfig")
                && e.involved_object.kind.as_deref() == Some("IPAddressPool")
        }) {
            break e;
        }
        assert!(
            event_start.elapsed() < Duration::from_secs(20),
            "no InvalidConfig Event on an IPAddressPool"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let message = event.message.unwrap_or_default();
    eprintln!(
        "InvalidConfig on IPAddressPool/{:?}: {message}",
        event.involved_object.name
    );
    assert!(message.contains("overlap"), "{message}");
    assert_eq!(
        event.involved_object.api_version.as_deref(),
        Some("metallb.io/v1beta1")
    );
    assert!(
        event.involved_object.uid.is_some(),
        "the Event names the object's uid"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(service_ip(&lab), ips, "nothing re-allocated");
    assert_eq!(paths_with(&lab, prefix, "64500:1"), 3, "routes kept");

    assert_eq!(
        lab.router().frr_connections_established().unwrap(),
        sessions,
        "no session was reset by any of the changes"
    );
    // The Service object itself never changed hands.
    let svc: Service = lab
        .kube(|c| async move {
            let api: Api<Service> = Api::namespaced(c, k8s::SERVICE_NS);
            Ok(api.get(k8s::SERVICE).await?)
        })
        .unwrap();
    assert!(svc.status.is_some());
}
