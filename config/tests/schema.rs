//! Every key, every default, and what is accepted (with or without a warning).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_config::{
    BfdProfile, BgpAdvertisement, Community, Config, Protocol, SelectorOperator, parse_config,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn ok(text: &str) -> Config {
    match parse_config(text) {
        Ok(p) => {
            assert!(
                p.warnings.is_empty(),
                "unexpected warnings {:?}",
                p.warnings
            );
            p.config
        }
        Err(e) => panic!("expected valid config, got:\n{e}"),
    }
}

#[test]
fn empty_configs_are_valid_with_nothing() {
    for text in [
        "",
        "{}",
        "# only a comment\n",
        "---\n",
        "peers:\naddress-pools:\n",
        "peers: []\n",
    ] {
        assert_eq!(ok(text), Config::default(), "{text:?}");
    }
}

#[test]
fn peer_defaults() {
    let c = ok("peers:\n- peer-address: 10.0.0.1\n  peer-asn: 65001\n  my-asn: 65000\n");
    let p = &c.peers[0];
    assert_eq!(p.port, 179);
    assert_eq!(p.hold_time, Duration::from_secs(90));
    assert_eq!(p.keepalive_time, Duration::from_secs(30));
    assert_eq!(p.router_id, None);
    assert_eq!(p.source_address, None);
    assert!(p.node_selectors.is_empty());
    assert_eq!(p.password, None);
    assert_eq!(p.bfd_profile, None);
    assert!(!p.ebgp_multihop);
    assert!(!p.is_ibgp());
}

#[test]
fn every_peer_key() {
    let c = ok("\
peers:
- peer-address: 2001:db8::1
  peer-asn: 4200000000
  my-asn: 4200000000
  peer-port: 1179
  hold-time: 3m
  keepalive-time: 1m
  router-id: 10.1.1.1
  source-address: 2001:db8::2
  node-selectors:
  - match-labels: {rack: r1}
    match-expressions:
    - {key: gpu, operator: DoesNotExist}
    - {key: zone, operator: Exists, values: []}
  password: 1234
  bfd-profile: fast
  ebgp-multihop: false
bfd-profiles:
- name: fast
");
    let p = &c.peers[0];
    assert_eq!(p.address, ip("2001:db8::1"));
    assert_eq!((p.peer_asn, p.my_asn), (4_200_000_000, 4_200_000_000));
    assert!(p.is_ibgp());
    assert_eq!(p.port, 1179);
    assert_eq!(p.hold_time, Duration::from_secs(180));
    assert_eq!(p.keepalive_time, Duration::from_secs(60));
    assert_eq!(p.router_id, Some("10.1.1.1".parse().expect("v4")));
    assert_eq!(p.source_address, Some(ip("2001:db8::2")));
    // yaml.v2 hands a plain number to a string field as its text.
    assert_eq!(p.password.as_deref(), Some("1234"));
    assert_eq!(p.bfd_profile.as_deref(), Some("fast"));
    let sel = &p.node_selectors[0];
    assert_eq!(sel.match_labels.get("rack").map(String::as_str), Some("r1"));
    assert_eq!(
        sel.match_expressions[0].operator,
        SelectorOperator::DoesNotExist
    );
    assert_eq!(sel.match_expressions[1].operator, SelectorOperator::Exists);
    let mut node = BTreeMap::new();
    node.insert("rack".to_string(), "r1".to_string());
    assert!(!p.selects_node(&node), "zone must exist");
    node.insert("zone".to_string(), "a".to_string());
    assert!(p.selects_node(&node));
    node.insert("gpu".to_string(), "yes".to_string());
    assert!(!p.selects_node(&node), "gpu must not exist");
}

#[test]
fn keepalive_default_is_a_third_of_hold_time_in_whole_seconds() {
    let c = ok(
        "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n  hold-time: 100s\n\
                - peer-address: 10.0.0.2\n  peer-asn: 1\n  my-asn: 2\n  hold-time: 0s\n\
                - peer-address: 10.0.0.3\n  peer-asn: 1\n  my-asn: 2\n  hold-time: 3s\n  \
                keepalive-time: 3s\n",
    );
    assert_eq!(c.peers[0].keepalive_time, Duration::from_secs(33));
    assert_eq!(c.peers[1].hold_time, Duration::ZERO);
    assert_eq!(c.peers[1].keepalive_time, Duration::ZERO);
    assert_eq!(
        c.peers[2].keepalive_time,
        Duration::from_secs(3),
        "equal to hold is fine"
    );
}

#[test]
fn zero_keepalive_with_hold_time_warns() {
    let parsed = parse_config(
        "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n  keepalive-time: 0s\n",
    )
    .expect("valid");
    assert_eq!(parsed.config.peers[0].keepalive_time, Duration::ZERO);
    assert_eq!(
        parsed
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "peers[0].keepalive-time (line 5): 0s sends no KEEPALIVE messages while the hold \
             time is 90s; the peer will drop the session unless it sends updates"
        ]
    );
}

#[test]
fn go_duration_spellings() {
    let c = ok(
        "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n  hold-time: 1m30s\n  \
                keepalive-time: 0.5m\n",
    );
    assert_eq!(c.peers[0].hold_time, Duration::from_secs(90));
    assert_eq!(c.peers[0].keepalive_time, Duration::from_secs(30));
}

#[test]
fn similar_but_different_peers_are_allowed() {
    let c = ok(
        "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n\
                - peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n  node-selectors:\n  \
                - match-labels: {rack: b}\n",
    );
    assert_eq!(c.peers.len(), 2);
}

#[test]
fn ebgp_multihop_on_ebgp_peer_is_fine() {
    let c =
        ok("peers:\n- peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n  ebgp-multihop: yes\n");
    assert!(c.peers[0].ebgp_multihop);
}

#[test]
fn bare_dash_advertisement_is_one_default_advertisement() {
    // MetalLB's yaml.v2 reads a null list item as the zero struct: every default.
    let c = ok(
        "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  \
                bgp-advertisements:\n  -\n",
    );
    assert_eq!(
        c.pools[0].bgp_advertisements,
        vec![BgpAdvertisement::default()]
    );
}

#[test]
fn advertisements_equal_only_after_defaults_are_both_kept() {
    // MetalLB compares advertisements as written: `{}` and `aggregation-length: 32` differ.
    let c = ok(
        "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  \
                bgp-advertisements:\n  - {}\n  - aggregation-length: 32\n",
    );
    assert_eq!(
        c.pools[0].bgp_advertisements,
        vec![BgpAdvertisement::default(), BgpAdvertisement::default()]
    );
}

#[test]
fn pool_defaults() {
    let c = ok(
        "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n\
                - name: b\n  protocol: layer2\n  addresses: [10.0.1.0/24]\n  bgp-advertisements: []\n",
    );
    let a = &c.pools[0];
    assert!(a.auto_assign);
    assert!(!a.avoid_buggy_ips);
    assert_eq!(a.bgp_advertisements, vec![BgpAdvertisement::default()]);
    assert_eq!(a.bgp_advertisements[0].aggregation_length, 32);
    assert_eq!(a.bgp_advertisements[0].aggregation_length_v6, 128);
    assert_eq!(a.bgp_advertisements[0].local_pref, None);
    assert!(a.bgp_advertisements[0].communities.is_empty());
    let b = &c.pools[1];
    assert_eq!(b.protocol, Protocol::Layer2);
    assert!(b.bgp_advertisements.is_empty());
    // An advertisement given with no fields gets every default.
    let c = ok(
        "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  \
                bgp-advertisements:\n  - {}\n",
    );
    assert_eq!(
        c.pools[0].bgp_advertisements,
        vec![BgpAdvertisement::default()]
    );
}

#[test]
fn every_pool_key_with_ipv6_and_large_communities() {
    let c = ok("\
bgp-communities:
  no-export: 65535:65281
  mine: large:64512:1:2
address-pools:
- name: v6
  protocol: bgp
  auto-assign: false
  avoid-buggy-ips: true
  addresses:
  - 2001:db8:1::/64
  - 2001:db8:2::10 - 2001:db8:2::1f
  - 192.0.2.0/28
  bgp-advertisements:
  - aggregation-length: 28
    aggregation-length-v6: 124
    localpref: 200
    communities: [no-export, mine, 1:2, large:1:2:3]
");
    let p = &c.pools[0];
    assert!(!p.auto_assign);
    assert!(p.avoid_buggy_ips);
    assert_eq!(p.addresses.len(), 3);
    assert!(p.contains(ip("2001:db8:2::1a")));
    assert!(!p.contains(ip("2001:db8:2::20")));
    assert!(
        p.is_usable(ip("2001:db8:1::ff")),
        "avoid-buggy-ips is IPv4 only"
    );
    assert!(!p.is_usable(ip("192.0.2.0")));
    assert_eq!(
        p.bgp_advertisements[0],
        BgpAdvertisement {
            aggregation_length: 28,
            aggregation_length_v6: 124,
            local_pref: Some(200),
            communities: vec![
                Community::Standard(0xffff_ff01),
                Community::Large(64512, 1, 2),
                Community::Standard((1 << 16) | 2),
                Community::Large(1, 2, 3),
            ],
            ..BgpAdvertisement::default()
        }
    );
    assert_eq!(
        c.pool_for_ip(ip("2001:db8:1::5")).map(|p| p.name.as_str()),
        Some("v6")
    );
}

#[test]
fn aggregation_length_equal_to_range_widest_block_is_allowed() {
    // 192.168.0.150-192.168.0.200 summarises to .150/31 .152/29 .160/27 .192/29 .200/32.
    let c = ok(
        "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [192.168.0.150-192.168.0.200]\n  \
                bgp-advertisements:\n  - aggregation-length: 27\n",
    );
    assert_eq!(c.pools[0].bgp_advertisements[0].aggregation_length, 27);
}

#[test]
fn bfd_defaults_and_every_key() {
    let c = ok(
        "bfd-profiles:\n- name: d\n- name: all\n  receive-interval: 10\n  transmit-interval: \
                60000\n  detect-multiplier: 2\n  echo-interval: 60000\n  echo-mode: true\n  \
                passive-mode: true\n  minimum-ttl: 1\n",
    );
    assert_eq!(
        c.bfd_profiles[0],
        BfdProfile {
            name: "d".into(),
            receive_interval: Duration::from_millis(300),
            transmit_interval: Duration::from_millis(300),
            detect_multiplier: 3,
            echo_interval: Duration::from_millis(50),
            echo_mode: false,
            passive_mode: false,
            minimum_ttl: 254,
        }
    );
    assert_eq!(
        c.bfd_profiles[1],
        BfdProfile {
            name: "all".into(),
            receive_interval: Duration::from_millis(10),
            transmit_interval: Duration::from_millis(60000),
            detect_multiplier: 2,
            echo_interval: Duration::from_millis(60000),
            echo_mode: true,
            passive_mode: true,
            minimum_ttl: 1,
        }
    );
}

#[test]
fn anchors_and_merge_keys_work() {
    let c = ok("\
peers:
- &base {peer-address: 10.0.0.1, peer-asn: 64512, my-asn: 64513}
- <<: *base
  peer-address: 10.0.0.2
");
    assert_eq!(c.peers.len(), 2);
    assert_eq!(c.peers[1].address, ip("10.0.0.2"));
    assert_eq!(c.peers[1].peer_asn, 64512);
}

#[test]
fn warnings_for_accepted_oddities() {
    let parsed = parse_config(
        "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n  peer-port: 0\n\
         address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.1/24]\n",
    )
    .expect("valid");
    assert_eq!(parsed.config.peers[0].port, 179);
    assert_eq!(
        parsed.config.pools[0].addresses[0].cidr,
        Some("10.0.0.0/24".parse().expect("net"))
    );
    assert_eq!(
        parsed
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "peers[0].peer-port (line 5): 0 means the default port, 179 (as in MetalLB)",
            "address-pools[0].addresses[0] (line 9): \"10.0.0.1/24\" has host bits set; the \
             pool uses 10.0.0.0/24, as MetalLB does",
        ]
    );
}

#[test]
fn weight_by_endpoints_is_our_opt_in_key_off_by_default() {
    let c = ok(
        "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  \
                bgp-advertisements:\n  - ferrolb-weight-by-endpoints: true\n  - {}\n  \
                - ferrolb-weight-by-endpoints: false\n",
    );
    let weights: Vec<bool> = c.pools[0]
        .bgp_advertisements
        .iter()
        .map(|a| a.weight_by_endpoints)
        .collect();
    assert_eq!(weights, vec![true, false, false]);
}

#[test]
fn graceful_restart_is_our_opt_in_peer_key_with_a_restart_time() {
    let c = ok("peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64512\n  my-asn: 64513\n");
    assert!(!c.peers[0].graceful_restart, "off by default");
    assert_eq!(c.peers[0].graceful_restart_time, Duration::from_secs(60));
    let text = "bfd-profiles:\n- name: fast\npeers:\n- peer-address: 10.0.0.1\n  peer-asn: 64512\n  \
                my-asn: 64513\n  bfd-profile: fast\n  ferrolb-graceful-restart: true\n  \
                ferrolb-graceful-restart-time: 2m\n";
    let parsed = ferrolb_config::parse_config(text).expect("valid");
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    assert!(parsed.config.peers[0].graceful_restart);
    assert_eq!(
        parsed.config.peers[0].graceful_restart_time,
        Duration::from_secs(120)
    );
}

#[test]
fn graceful_restart_without_bfd_is_allowed_with_a_warning_naming_the_peer() {
    let text = "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64512\n  my-asn: 64513\n  \
                ferrolb-graceful-restart: true\n";
    let parsed = ferrolb_config::parse_config(text).expect("valid");
    let w: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "peers[0].ferrolb-graceful-restart (line 5): graceful restart without a bfd-profile: a \
          crashed or silent node keeps its routes on a GR-aware router for the hold time plus \
          the restart time (60s); add a bfd-profile so a dead node still leaves at once"
        ]
    );
}
