//! Every MetalLB example custom resource, from its documentation
//! (`website/content/configuration/*.md`, one file per YAML block) and its `configsamples/`
//! directory (v0.15.3, `tests/data/SOURCES.md`), read as a file and converted to the model:
//! the exact model, warnings and errors of each.

mod support;

use support::{data, outcome};

fn convert(rel: &str) -> Vec<String> {
    let text = std::fs::read_to_string(data(rel)).expect("fixture");
    let (resources, mut read_warnings) = match ferrolb_crds::resources::parse_resources(&text) {
        Ok(r) => r,
        Err(e) => {
            return e
                .lines()
                .into_iter()
                .map(|l| format!("read error: {l}"))
                .collect();
        }
    };
    let mut out = outcome(&ferrolb_crds::to_model::to_config(&resources));
    out.extend(
        read_warnings
            .drain(..)
            .map(|w| format!("read warning: {w}")),
    );
    out
}

/// (fixture, what it converts to). Reviewed against MetalLB's behaviour: fragments that
/// name a pool or peer defined in another block warn (MetalLB ignores the name silently);
/// the BGPPeer fields ferrolb does not implement are refused; L2Advertisements are reported.
const EXPECTED: &[(&str, &[&str])] = &[
    (
        "metallb-configsamples/bgpadv_selectspool_by_label.yaml",
        &[
            "warning: BGPAdvertisement/advertisement spec.ipAddressPoolSelectors: select no IPAddressPool",
        ],
    ),
    (
        "metallb-configsamples/bgpadv_selectspool_by_list.yaml",
        &[
            "warning: BGPAdvertisement/advertisement spec.peers[0]: BGPPeer \"ebgp-single-hop0\" does not exist: this advertisement goes to no such peer",
            "warning: BGPAdvertisement/advertisement spec.ipAddressPools[0]: IPAddressPool \"test-addresspool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-configsamples/bgpadvertisement_communities_localpref.yaml",
        &[
            "warning: BGPAdvertisement/advertisement spec.ipAddressPools[0]: IPAddressPool \"bgp-with-advertisement\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-configsamples/bgpadvertisement_community_alias.yaml",
        &[
            "alias NO_ADVERTISE = 65535:65282",
            "warning: BGPAdvertisement/advertisement spec.ipAddressPools[0]: IPAddressPool \"bgp-with-advertisement\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-configsamples/bgpadvertisement_with_node_selector.yaml",
        &[
            "warning: BGPAdvertisement/advertisement spec.ipAddressPools[0]: IPAddressPool \"first-pool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-configsamples/bgppeer_simple.yaml",
        &["peer peer 172.30.0.3:179 as 64512->64512 hold 90s keepalive 30s"],
    ),
    (
        "metallb-configsamples/bgppeer_with_bfdprofile.yaml",
        &[
            "peer peer 172.30.0.3:179 as 64512->64512 hold 90s keepalive 30s bfd testbfdprofile",
            "bfd testbfdprofile rx 380ms tx 270ms x3 echo 50ms ttl 254",
        ],
    ),
    (
        "metallb-configsamples/bgppeer_with_session_options.yaml",
        &[
            "error: BGPPeer/peer spec.connectTime: not supported: ferrolb retries connections with its own backoff (1 s to 120 s)",
        ],
    ),
    (
        "metallb-configsamples/bgppeer_with_vrf.yaml",
        &["error: BGPPeer/peer spec.vrf: not supported: ferrolb peers from the node's default VRF"],
    ),
    (
        "metallb-configsamples/bgppeer_withsecret.yaml",
        &[
            "peer peer-with-secret 172.30.0.3:179 as 64512->64512 hold 540s keepalive 0s password-secret secretname",
            "warning: BGPPeer/peer-with-secret spec.keepaliveTime: 0s sends no KEEPALIVE messages while the hold time is 540s; the peer will drop the session unless it sends updates",
        ],
    ),
    (
        "metallb-configsamples/ipaddresspool_simple.yaml",
        &[
            "pool example bgp [192.168.10.0/24, 192.168.9.1-192.168.9.5, fc00:f853:ccd:e799::/124]",
            "warning: IPAddressPool/example: no BGPAdvertisement selects this pool: its addresses are assigned to Services but not announced",
        ],
    ),
    (
        "metallb-configsamples/ipaddresspool_with_selector.yaml",
        &[
            "pool ippool-ns-service-alloc-sample bgp [192.168.20.0/24] avoid-buggy-ips allocation(priority Some(50), namespaces [\"namespace-a\", \"namespace-b\"], namespace-selectors 1, service-selectors 1)",
            "warning: IPAddressPool/ippool-ns-service-alloc-sample: no BGPAdvertisement selects this pool: its addresses are assigned to Services but not announced",
        ],
    ),
    (
        "metallb-configsamples/l2adv_selects_pools_by_list.yaml",
        &[
            "warning: L2Advertisement/example: not supported: ferrolb announces over BGP only; this advertisement is ignored",
            "warning: L2Advertisement/example spec.ipAddressPools[0]: IPAddressPool \"first-pool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-configsamples/l2adv_with_node_selector.yaml",
        &[
            "warning: L2Advertisement/example: not supported: ferrolb announces over BGP only; this advertisement is ignored",
        ],
    ),
    (
        "metallb-configsamples/simple_pool_adv_bgp.yaml",
        &[
            "pool example bgp [192.168.10.0/24, 192.168.9.1-192.168.9.5, fc00:f853:ccd:e799::/124]",
            "  ad /32 /128",
        ],
    ),
    (
        "metallb-configsamples/simple_pool_adv_l2.yaml",
        &[
            "pool example layer2 [192.168.10.0/24, 192.168.9.1-192.168.9.5, fc00:f853:ccd:e799::/124]",
            "warning: IPAddressPool/example: only L2Advertisements select this pool: its addresses are assigned to Services but not announced",
            "warning: L2Advertisement/empty: not supported: ferrolb announces over BGP only; this advertisement is ignored",
        ],
    ),
    (
        "metallb-docs/advanced-bgp-01.yaml",
        &[
            "pool first-pool bgp [198.51.100.0/24]",
            "warning: IPAddressPool/first-pool spec.addresses[0]: \"198.51.100.10/24\" has host bits set; the pool uses 198.51.100.0/24, as MetalLB does",
            "warning: IPAddressPool/first-pool: no BGPAdvertisement selects this pool: its addresses are assigned to Services but not announced",
        ],
    ),
    (
        "metallb-docs/advanced-bgp-02.yaml",
        &[
            "warning: BGPAdvertisement/local spec.ipAddressPools[0]: IPAddressPool \"first-pool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-docs/advanced-bgp-03.yaml",
        &[
            "warning: BGPAdvertisement/external spec.ipAddressPools[0]: IPAddressPool \"first-pool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-docs/advanced-bgp-04.yaml",
        &["peer example 172.30.0.3:180 as 64512->64512 hold 90s keepalive 30s node-selectors 2"],
    ),
    (
        "metallb-docs/advanced-bgp-05.yaml",
        &[
            "warning: BGPAdvertisement/example spec.ipAddressPools[0]: IPAddressPool \"first-pool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-docs/advanced-bgp-06.yaml",
        &[
            "warning: BGPAdvertisement/example spec.peers[0]: BGPPeer \"PeerA\" does not exist: this advertisement goes to no such peer",
            "warning: BGPAdvertisement/example spec.peers[1]: BGPPeer \"PeerB\" does not exist: this advertisement goes to no such peer",
            "warning: BGPAdvertisement/example spec.ipAddressPools[0]: IPAddressPool \"PoolA\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-docs/advanced-bgp-07.yaml",
        &[
            "peer example 172.30.0.3:179 as 64512->64512 hold 90s keepalive 30s source 172.30.0.2 node-selectors 1",
        ],
    ),
    (
        "metallb-docs/advanced-bgp-08.yaml",
        &[
            "alias NO_ADVERTISE = 65535:65282",
            "alias vpn-only = 1234:1",
        ],
    ),
    (
        "metallb-docs/advanced-bgp-09.yaml",
        &[
            "error: BGPAdvertisement/local spec.communities[0]: \"vpn-only\" is not a defined community alias (the Community kind defines no aliases)",
        ],
    ),
    (
        "metallb-docs/advanced-bgp-10.yaml",
        &[
            "error: BGPPeer/example spec.vrf: not supported: ferrolb peers from the node's default VRF",
        ],
    ),
    (
        "metallb-docs/advanced-bgp-11.yaml",
        &["peer peer 172.30.0.3:179 as 64512->64512 hold 90s keepalive 30s"],
    ),
    (
        "metallb-docs/advanced-bgp-12.yaml",
        &[
            "peer example 172.30.0.3:179 as 64512->64512 hold 90s keepalive 30s graceful-restart",
            // ferrolb's own warning (issue 13): GR without BFD keeps a dead node's routes.
            "warning: BGPPeer/example spec.enableGracefulRestart: graceful restart without a \
             bfdProfile: a crashed or silent node keeps its routes on a GR-aware router for the \
             hold time plus the restart time (60s); add a bfdProfile so a dead node still leaves \
             at once",
        ],
    ),
    (
        "metallb-docs/advanced-ipaddresspool-01.yaml",
        &[
            "pool cheap bgp [192.168.10.0/24]",
            "warning: IPAddressPool/cheap: no BGPAdvertisement selects this pool: its addresses are assigned to Services but not announced",
        ],
    ),
    (
        "metallb-docs/advanced-ipaddresspool-02.yaml",
        &[
            "pool expensive bgp [42.176.25.64/30] no-auto-assign",
            "warning: IPAddressPool/expensive: no BGPAdvertisement selects this pool: its addresses are assigned to Services but not announced",
        ],
    ),
    (
        "metallb-docs/advanced-ipaddresspool-03.yaml",
        &[
            "pool ippool-ns-service-alloc-sample bgp [192.168.20.0/24] avoid-buggy-ips allocation(priority Some(50), namespaces [\"namespace-a\", \"namespace-b\"], namespace-selectors 1, service-selectors 1)",
            "warning: IPAddressPool/ippool-ns-service-alloc-sample: no BGPAdvertisement selects this pool: its addresses are assigned to Services but not announced",
        ],
    ),
    (
        "metallb-docs/advanced-ipaddresspool-05.yaml",
        &[
            "warning: BGPAdvertisement/external spec.ipAddressPools[0]: IPAddressPool \"ipv4-pool\" does not exist: nothing of it is advertised",
            "warning: BGPAdvertisement/external spec.ipAddressPools[1]: IPAddressPool \"ipv6-pool\" does not exist: nothing of it is advertised",
            "warning: BGPAdvertisement/external spec.ipAddressPools[2]: IPAddressPool \"dualstack-pool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-docs/advanced-l2-01.yaml",
        &[
            "warning: L2Advertisement/example: not supported: ferrolb announces over BGP only; this advertisement is ignored",
            "warning: L2Advertisement/example spec.ipAddressPools[0]: IPAddressPool \"first-pool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-docs/advanced-l2-02.yaml",
        &[
            "warning: L2Advertisement/example: not supported: ferrolb announces over BGP only; this advertisement is ignored",
            "warning: L2Advertisement/example spec.ipAddressPools[0]: IPAddressPool \"second-pool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-docs/advanced-l2-03.yaml",
        &[
            "warning: L2Advertisement/example: not supported: ferrolb announces over BGP only; this advertisement is ignored",
            "warning: L2Advertisement/example spec.ipAddressPools[0]: IPAddressPool \"third-pool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-docs/advanced-l2-04.yaml",
        &[
            "warning: L2Advertisement/example: not supported: ferrolb announces over BGP only; this advertisement is ignored",
            "warning: L2Advertisement/example spec.ipAddressPools[0]: IPAddressPool \"fourth-pool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-docs/advanced-l2-05.yaml",
        &[
            "warning: L2Advertisement/example-advertisement10: not supported: ferrolb announces over BGP only; this advertisement is ignored",
            "warning: L2Advertisement/example-advertisement10 spec.ipAddressPools[0]: IPAddressPool \"pool1\" does not exist: nothing of it is advertised",
            "warning: L2Advertisement/example-advertisement9: not supported: ferrolb announces over BGP only; this advertisement is ignored",
        ],
    ),
    (
        "metallb-docs/configuration-01.yaml",
        &[
            "pool first-pool bgp [192.168.10.0/24, 192.168.9.1-192.168.9.5, fc00:f853:ccd:e799::/124]",
            "warning: IPAddressPool/first-pool: no BGPAdvertisement selects this pool: its addresses are assigned to Services but not announced",
        ],
    ),
    (
        "metallb-docs/configuration-02.yaml",
        &[
            "pool first-pool bgp [192.168.1.240-192.168.1.250]",
            "warning: IPAddressPool/first-pool: no BGPAdvertisement selects this pool: its addresses are assigned to Services but not announced",
        ],
    ),
    (
        "metallb-docs/configuration-03.yaml",
        &[
            "warning: L2Advertisement/example: not supported: ferrolb announces over BGP only; this advertisement is ignored",
        ],
    ),
    (
        "metallb-docs/configuration-04.yaml",
        &[
            "warning: L2Advertisement/example: not supported: ferrolb announces over BGP only; this advertisement is ignored",
            "warning: L2Advertisement/example spec.ipAddressPools[0]: IPAddressPool \"first-pool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-docs/configuration-05.yaml",
        &["peer sample 10.0.0.1:179 as 64500->64501 hold 90s keepalive 30s"],
    ),
    (
        "metallb-docs/configuration-06.yaml",
        &[
            "pool first-pool bgp [192.168.1.240-192.168.1.250]",
            "warning: IPAddressPool/first-pool: no BGPAdvertisement selects this pool: its addresses are assigned to Services but not announced",
        ],
    ),
    ("metallb-docs/configuration-07.yaml", &[]),
    (
        "metallb-docs/configuration-08.yaml",
        &[
            "warning: BGPAdvertisement/example spec.ipAddressPools[0]: IPAddressPool \"first-pool\" does not exist: nothing of it is advertised",
        ],
    ),
    (
        "metallb-docs/configuration-09.yaml",
        &["bfd testbfdprofile rx 380ms tx 270ms x3 echo 50ms ttl 254"],
    ),
    (
        "metallb-docs/configuration-10.yaml",
        &[
            "error: BGPPeer/peersample spec.bfdProfile: BFDProfile \"testbfdprofile\" does not exist (there are no BFDProfiles)",
        ],
    ),
    (
        "metallb-docs/scenario-advanced-bgp-community-alias.yaml",
        &[
            "peer example 172.30.0.3:179 as 64512->64512 hold 90s keepalive 30s source 172.30.0.2 node-selectors 1",
            "pool first-pool bgp [198.51.100.0/24]",
            "  ad /32 /128 node-selectors 2",
            "  ad /32 /128 localpref 100 communities [1234:1]",
            "alias NO_ADVERTISE = 65535:65282",
            "alias vpn-only = 1234:1",
            "warning: IPAddressPool/first-pool spec.addresses[0]: \"198.51.100.10/24\" has host bits set; the pool uses 198.51.100.0/24, as MetalLB does",
        ],
    ),
    (
        "metallb-docs/scenario-advanced-bgp-local-external.yaml",
        &[
            "peer example 172.30.0.3:180 as 64512->64512 hold 90s keepalive 30s node-selectors 2",
            "pool first-pool bgp [198.51.100.0/24]",
            "  ad /24 /128",
            "  ad /32 /128 localpref 100 communities [65535:65282]",
            "warning: IPAddressPool/first-pool spec.addresses[0]: \"198.51.100.10/24\" has host bits set; the pool uses 198.51.100.0/24, as MetalLB does",
        ],
    ),
    (
        "metallb-docs/scenario-advanced-ipaddresspool.yaml",
        &[
            "pool cheap bgp [192.168.10.0/24]",
            "  ad /32 /128",
            "pool expensive bgp [42.176.25.64/30] no-auto-assign",
            "  ad /32 /128",
        ],
    ),
    (
        "metallb-docs/scenario-configuration-bfd.yaml",
        &[
            "peer peersample 172.30.0.3:179 as 64512->64512 hold 90s keepalive 30s bfd testbfdprofile",
            "pool first-pool bgp [192.168.1.240-192.168.1.250]",
            "  ad /32 /128",
            "bfd testbfdprofile rx 380ms tx 270ms x3 echo 50ms ttl 254",
        ],
    ),
    (
        "metallb-docs/scenario-configuration-bgp.yaml",
        &[
            "peer sample 10.0.0.1:179 as 64500->64501 hold 90s keepalive 30s",
            "pool first-pool bgp [192.168.1.240-192.168.1.250]",
            "  ad /32 /128",
        ],
    ),
];

#[test]
fn every_metallb_example_converts_to_the_expected_model() {
    let mut files: Vec<String> = Vec::new();
    for dir in ["metallb-docs", "metallb-configsamples"] {
        for e in std::fs::read_dir(data(dir)).expect("fixture dir") {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            files.push(format!("{dir}/{name}"));
        }
    }
    files.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|(f, _)| *f).collect();
    assert_eq!(listed, files, "every fixture has an expectation");
    let mut failures = Vec::new();
    for (file, want) in EXPECTED {
        let got = convert(file);
        if got != *want {
            failures.push(format!("{file}:\n  want {want:#?}\n  got  {got:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
