//! Real, published MetalLB ConfigMaps (tests/data, see SOURCES.md) get the right verdict.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_config::{
    AddressRange, BgpAdvertisement, Community, Line, Protocol, SelectorOperator, check_config_file,
    parse_config, parse_configmap_manifest,
};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(data(name)).expect("fixture readable")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn seed_lab_configmap_is_valid_with_its_values() {
    let parsed = parse_configmap_manifest(&read("seed-lab-metallb-bgp.yaml")).expect("valid");
    assert!(parsed.warnings.is_empty());
    let c = parsed.config;
    assert_eq!(c.peers.len(), 1);
    let p = &c.peers[0];
    assert_eq!(p.address, ip("172.17.0.1"));
    assert_eq!(p.my_asn, 64522);
    assert_eq!(p.peer_asn, 64512);
    assert!(!p.is_ibgp());
    // Defaults.
    assert_eq!(p.port, 179);
    assert_eq!(p.hold_time, Duration::from_secs(90));
    assert_eq!(p.keepalive_time, Duration::from_secs(30));
    assert_eq!(p.router_id, None);
    assert_eq!(p.source_address, None);
    assert!(p.node_selectors.is_empty());
    assert!(p.selects_node(&labels(&[("any", "node")])));
    assert_eq!(p.password, None);
    assert_eq!(p.bfd_profile, None);
    assert!(!p.ebgp_multihop);

    assert_eq!(c.pools.len(), 1);
    let pool = &c.pools[0];
    assert_eq!(pool.name, "my-ip-space");
    assert_eq!(pool.protocol, Protocol::Bgp);
    assert!(pool.avoid_buggy_ips);
    assert!(pool.auto_assign);
    assert_eq!(
        pool.addresses,
        vec![AddressRange {
            start: ip("172.17.254.0"),
            end: ip("172.17.254.255"),
            cidr: Some("172.17.254.0/24".parse().expect("net")),
        }]
    );
    assert_eq!(pool.bgp_advertisements, vec![BgpAdvertisement::default()]);
    assert!(pool.is_usable(ip("172.17.254.1")));
    assert!(!pool.is_usable(ip("172.17.254.0")), "avoid-buggy-ips");
    assert!(!pool.is_usable(ip("172.17.254.255")), "avoid-buggy-ips");
    assert_eq!(
        c.pool_for_ip(ip("172.17.254.77")).map(|p| p.name.as_str()),
        Some("my-ip-space")
    );
    assert_eq!(c.pool_for_ip(ip("172.17.253.77")), None);

    let (report, ok) = check_config_file(data("seed-lab-metallb-bgp.yaml"));
    assert!(ok);
    assert_eq!(
        report,
        "OK: 1 peers, 1 pools (my-ip-space: bgp, 256 addresses)\n"
    );
}

#[test]
fn v0_12_1_layer2_example_is_valid() {
    let c = parse_configmap_manifest(&read("metallb-v0.12.1-layer2-configmap.yaml"))
        .expect("valid")
        .config;
    assert!(c.peers.is_empty());
    assert_eq!(c.pools.len(), 1);
    assert_eq!(c.pools[0].name, "my-ip-space");
    assert_eq!(c.pools[0].protocol, Protocol::Layer2);
    assert_eq!(c.pools[0].addresses[0].start, ip("192.168.1.240"));
    assert_eq!(c.pools[0].addresses[0].end, ip("192.168.1.255"));
    assert!(
        c.pools[0].bgp_advertisements.is_empty(),
        "layer2: no advertisements"
    );
    assert!(!c.pools[0].avoid_buggy_ips);
    let (report, ok) = check_config_file(data("metallb-v0.12.1-layer2-configmap.yaml"));
    assert!(ok);
    assert_eq!(
        report,
        "OK: 0 peers, 1 pools (my-ip-space: layer2, 16 addresses)\n"
    );
}

/// MetalLB's own v0.12.1 `manifests/example-config.yaml`.
///
/// What MetalLB 0.12.1 itself says (from reading its internal/config/config.go: the document
/// is decoded with yaml.v2 `UnmarshalStrict` into a struct whose peer field is tagged
/// `bfd-profile`): the decode fails before any validation, with
/// `could not parse config: yaml: unmarshal errors:\n  line 32: field bfdProfile not found in
/// type config.peer` (line 32 of data.config = line 39 of the file). Had the key been spelt
/// `bfd-profile`, its validation would then have rejected the peer twice over: ebgp-multihop
/// on an iBGP peer (64512 == 64512), and a reference to the undefined profile `bfdProfile1`
/// (the file defines `bfdprofilename`). The BFD profile values themselves are in range.
///
/// ferrolb accepts the misspelling with a warning (the compat reference asks for that), and
/// reports both semantic errors at once, with file lines.
#[test]
fn v0_12_1_full_example_is_rejected_with_precise_errors() {
    let errs = parse_configmap_manifest(&read("metallb-v0.12.1-example-configmap.yaml"))
        .expect_err("invalid");
    assert_eq!(
        errs.lines(),
        vec![
            "peers[0].bfdProfile (line 39): BFD profile \"bfdProfile1\" is not defined in \
             bfd-profiles (defined: \"bfdprofilename\")",
            "peers[0].ebgp-multihop (line 42): ebgp-multihop is set on an iBGP peer \
             (peer-asn 64512 equals my-asn 64512)",
        ]
    );
    assert_eq!(errs.errors[0].line, Line::At(39));
    assert_eq!(
        errs.warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "peers[0].bfdProfile (line 39): \"bfdProfile\" is accepted as \"bfd-profile\" \
             (MetalLB 0.12 itself rejects this spelling, used in its example config); write \
             bfd-profile"
        ]
    );
    let (report, ok) = check_config_file(data("metallb-v0.12.1-example-configmap.yaml"));
    assert!(!ok);
    assert_eq!(report.lines().count(), 3);
    assert!(report.starts_with("error: peers[0].bfdProfile (line 39): "));
    assert!(
        report
            .lines()
            .nth(2)
            .is_some_and(|l| l.starts_with("warning: "))
    );
}

/// The same example with its two mistakes fixed parses to exactly the values it states.
#[test]
fn v0_12_1_full_example_fixed_has_every_value() {
    let text = read("metallb-v0.12.1-example-configmap.yaml")
        .replace(
            "bfdProfile: \"bfdProfile1\"",
            "bfd-profile: \"bfdprofilename\"",
        )
        .replace("ebgp-multihop: true", "ebgp-multihop: false");
    let parsed = parse_configmap_manifest(&text).expect("valid once fixed");
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let c = parsed.config;
    let p = &c.peers[0];
    assert_eq!(p.address, ip("10.0.0.1"));
    assert_eq!((p.peer_asn, p.my_asn), (64512, 64512));
    assert!(p.is_ibgp());
    assert_eq!(p.port, 179);
    assert_eq!(p.source_address, Some(ip("10.0.0.2")));
    assert_eq!(p.hold_time, Duration::from_secs(120));
    assert_eq!(p.keepalive_time, Duration::from_secs(30));
    assert_eq!(p.router_id, Some("1.2.3.4".parse().expect("v4")));
    assert_eq!(p.password.as_deref(), Some("yourPassword"));
    assert_eq!(p.bfd_profile.as_deref(), Some("bfdprofilename"));
    assert!(!p.ebgp_multihop);
    assert_eq!(p.node_selectors.len(), 1);
    let sel = &p.node_selectors[0];
    assert_eq!(
        sel.match_labels,
        labels(&[("kubernetes.io/hostname", "prod-01")])
    );
    assert_eq!(sel.match_expressions.len(), 1);
    assert_eq!(sel.match_expressions[0].key, "beta.kubernetes.io/arch");
    assert_eq!(sel.match_expressions[0].operator, SelectorOperator::In);
    assert_eq!(sel.match_expressions[0].values, vec!["amd64", "arm"]);
    assert!(p.selects_node(&labels(&[
        ("kubernetes.io/hostname", "prod-01"),
        ("beta.kubernetes.io/arch", "arm")
    ])));
    assert!(!p.selects_node(&labels(&[
        ("kubernetes.io/hostname", "prod-02"),
        ("beta.kubernetes.io/arch", "arm")
    ])));

    let pool = &c.pools[0];
    assert_eq!(pool.name, "my-ip-space");
    assert_eq!(pool.protocol, Protocol::Bgp);
    assert_eq!(pool.addresses.len(), 2);
    assert!(pool.addresses[0].is_cidr());
    assert_eq!(pool.addresses[1].start, ip("192.168.0.150"));
    assert_eq!(pool.addresses[1].end, ip("192.168.0.200"));
    assert!(!pool.addresses[1].is_cidr());
    assert!(pool.avoid_buggy_ips);
    assert!(!pool.auto_assign);
    assert_eq!(pool.size(), 256 + 51);
    assert_eq!(
        pool.bgp_advertisements,
        vec![BgpAdvertisement {
            aggregation_length: 32,
            aggregation_length_v6: 64,
            local_pref: Some(100),
            communities: vec![
                Community::Standard((64512 << 16) | 1),
                Community::Standard((65535 << 16) | 65281),
            ],
            ..BgpAdvertisement::default()
        }]
    );
    assert_eq!(
        c.communities.get("no-export"),
        Some(&Community::Standard((65535 << 16) | 65281))
    );
    let bfd = c.bfd_profile("bfdprofilename").expect("profile");
    assert_eq!(bfd.receive_interval, Duration::from_millis(280));
    assert_eq!(bfd.transmit_interval, Duration::from_millis(270));
    assert_eq!(bfd.echo_interval, Duration::from_millis(62));
    assert!(!bfd.echo_mode);
    assert!(!bfd.passive_mode);
    assert_eq!(bfd.minimum_ttl, 254);
    assert_eq!(bfd.detect_multiplier, 200);
}

#[test]
fn metallb_dev_env_layer2_is_valid() {
    let c = parse_configmap_manifest(&read("metallb-dev-env-layer2-config.yaml"))
        .expect("valid")
        .config;
    let pool = &c.pools[0];
    assert_eq!(pool.name, "doug-ip-space");
    assert_eq!(pool.protocol, Protocol::Layer2);
    assert_eq!(pool.addresses[0].start, ip("10.240.128.2"));
    assert_eq!(pool.addresses[0].end, ip("10.240.128.20"));
    assert_eq!(pool.size(), 19);
}

#[test]
fn metalk8s_salt_state_configmap_named_metallb_config_is_valid() {
    let c = parse_configmap_manifest(&read("scality-metalk8s-metallb-configured.sls"))
        .expect("valid")
        .config;
    assert_eq!(c.pools[0].name, "default");
    assert_eq!(c.pools[0].addresses[0].start, ip("172.21.254.47"));
    assert_eq!(c.pools[0].addresses[0].end, ip("172.21.254.62"));
    let (report, ok) = check_config_file(data("scality-metalk8s-metallb-configured.sls"));
    assert!(ok);
    assert_eq!(
        report,
        "OK: 0 peers, 1 pools (default: layer2, 16 addresses)\n"
    );
}

#[test]
fn metallb_tutorial_3_old_format_is_rejected() {
    let errs = parse_configmap_manifest(&read("metallb-tutorial-3.yaml")).expect_err("invalid");
    assert_eq!(
        errs.lines(),
        vec![
            "address-pools[0] (line 18): missing required key \"addresses\"",
            "address-pools[0].cidr (line 21): unknown key; did you mean \"addresses\"?",
        ]
    );
}

#[test]
fn metallb_tutorial_4_old_format_reports_every_problem() {
    let (report, ok) = check_config_file(data("metallb-tutorial-4.yaml"));
    assert!(!ok);
    assert_eq!(
        report,
        "error: address-pools[0] (line 13): missing required key \"protocol\" (bgp or layer2)\n\
         error: address-pools[0] (line 13): missing required key \"addresses\"\n\
         error: address-pools[0].cidr (line 15): unknown key; did you mean \"addresses\"?\n\
         error: address-pools[0].advertisements (line 17): unknown key; did you mean \
         \"bgp-advertisements\"?\n"
    );
}

#[test]
fn metallb_docs_advertisement_example_is_valid() {
    let c = parse_configmap_manifest(&read("metallb-website-bgp-advertisements.yaml"))
        .expect("valid")
        .config;
    assert_eq!(c.peers[0].address, ip("10.0.0.1"));
    assert_eq!((c.peers[0].peer_asn, c.peers[0].my_asn), (64501, 64500));
    let no_advertise = Community::Standard((65535 << 16) | 65282);
    assert_eq!(c.communities.get("no-advertise"), Some(&no_advertise));
    assert_eq!(
        c.pools[0].bgp_advertisements,
        vec![
            BgpAdvertisement {
                aggregation_length: 32,
                aggregation_length_v6: 128,
                local_pref: Some(100),
                communities: vec![no_advertise],
                ..BgpAdvertisement::default()
            },
            BgpAdvertisement {
                aggregation_length: 24,
                ..BgpAdvertisement::default()
            },
        ]
    );
}

#[test]
fn metallb_docs_node_selector_example_is_a_valid_bare_config() {
    let text = read("metallb-website-node-selectors.yaml");
    let c = parse_config(&text).expect("valid").config;
    let p = &c.peers[0];
    assert_eq!(p.node_selectors.len(), 2);
    // "hostA or hostB, or rack=frontend without network-speed=slow".
    assert!(p.selects_node(&labels(&[("kubernetes.io/hostname", "hostA")])));
    assert!(p.selects_node(&labels(&[("rack", "frontend")])));
    assert!(p.selects_node(&labels(&[("rack", "frontend"), ("network-speed", "fast")])));
    assert!(!p.selects_node(&labels(&[("rack", "frontend"), ("network-speed", "slow")])));
    assert!(!p.selects_node(&labels(&[("kubernetes.io/hostname", "hostC")])));
    let (report, ok) = check_config_file(data("metallb-website-node-selectors.yaml"));
    assert!(ok);
    assert_eq!(report, "OK: 1 peers, 0 pools\n");
}
