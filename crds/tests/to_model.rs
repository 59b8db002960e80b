//! The CR -> model conversion, field by field: every default, every rule, every error
//! naming its object and field, and the conflicts between objects.

mod support;

use std::collections::BTreeMap;

use ferrolb_crds::IPAddressPool;
use ferrolb_crds::resources::parse_resources;
use ferrolb_crds::to_model::{Resources, to_config};
use support::outcome;

const NS: &str = "  namespace: metallb-system\n";

fn doc(api: &str, kind: &str, name: &str, spec: &str) -> String {
    let spec = if spec.is_empty() {
        String::new()
    } else {
        format!("spec:\n{spec}")
    };
    format!(
        "---\napiVersion: metallb.io/{api}\nkind: {kind}\nmetadata:\n  name: {name}\n{NS}{spec}"
    )
}

fn pool(name: &str, spec: &str) -> String {
    doc("v1beta1", "IPAddressPool", name, spec)
}
fn ad(name: &str, spec: &str) -> String {
    doc("v1beta1", "BGPAdvertisement", name, spec)
}
fn peer(name: &str, spec: &str) -> String {
    doc("v1beta2", "BGPPeer", name, spec)
}

fn resources(text: &str) -> Resources {
    match parse_resources(text) {
        Ok((r, w)) => {
            assert!(w.is_empty(), "read warnings: {w:?}");
            r
        }
        Err(e) => panic!("read errors: {:#?}", e.lines()),
    }
}

fn lines(text: &str) -> Vec<String> {
    outcome(&to_config(&resources(text)))
}

fn with_nodes(text: &str, nodes: &[(&str, &[(&str, &str)])]) -> Vec<String> {
    let mut r = resources(text);
    r.nodes = Some(
        nodes
            .iter()
            .map(|(n, labels)| {
                let l: BTreeMap<String, String> = labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (n.to_string(), l)
            })
            .collect(),
    );
    outcome(&to_config(&r))
}

const PEER_A: &str = "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 10.0.0.1\n";

// --- BGPPeer --------------------------------------------------------------------------------

#[test]
fn peer_defaults() {
    assert_eq!(
        lines(&peer("a", PEER_A)),
        ["peer a 10.0.0.1:179 as 64512->64513 hold 90s keepalive 30s"]
    );
}

#[test]
fn peer_every_supported_field() {
    let text = format!(
        "{}{}",
        doc("v1beta1", "BFDProfile", "fast", ""),
        peer(
            "a",
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 10.0.0.1\n  peerPort: 1179\n  \
             sourceAddress: 10.0.0.2\n  holdTime: 1m30s\n  keepaliveTime: 10s\n  routerID: \
             10.9.9.9\n  nodeSelectors:\n  - matchLabels: {rack: r1}\n  password: secret\n  \
             bfdProfile: fast\n  ebgpMultiHop: true\n  enableGracefulRestart: true\n  \
             dualStackAddressFamily: true\n"
        )
    );
    assert_eq!(
        lines(&text),
        [
            "peer a 10.0.0.1:1179 as 64512->64513 hold 90s keepalive 10s router-id 10.9.9.9 \
             source 10.0.0.2 node-selectors 1 password bfd fast multihop graceful-restart",
            "bfd fast rx 300ms tx 300ms x3 echo 50ms ttl 254",
        ]
    );
}

#[test]
fn peer_timers_follow_metallbs_cr_rule() {
    let t = |extra: &str| lines(&peer("a", &format!("{PEER_A}{extra}")));
    assert_eq!(
        t("  holdTime: 9s\n"),
        ["peer a 10.0.0.1:179 as 64512->64513 hold 9s keepalive 3s"]
    );
    // Only a keepalive: the hold time is three times it (MetalLB's parseTimers).
    assert_eq!(
        t("  keepaliveTime: 20s\n"),
        ["peer a 10.0.0.1:179 as 64512->64513 hold 60s keepalive 20s"]
    );
    assert_eq!(
        t("  holdTime: 2s\n"),
        ["error: BGPPeer/a spec.holdTime: 2s is not allowed: must be 0 or at least 3s"]
    );
    assert_eq!(
        t("  holdTime: 1500ms\n"),
        ["error: BGPPeer/a spec.holdTime: \"1500ms\" is not a whole number of seconds"]
    );
    assert_eq!(
        t("  holdTime: 9s\n  keepaliveTime: 10s\n"),
        ["error: BGPPeer/a spec.keepaliveTime: 10s is longer than the hold time (9s)"]
    );
    assert_eq!(
        t("  keepaliveTime: 30000s\n"),
        [
            "error: BGPPeer/a spec.keepaliveTime: makes the hold time 3 × 30000s, and 90000s is \
          more than 65535s, the largest BGP hold time"
        ]
    );
}

#[test]
fn peer_errors_name_the_field() {
    let t = |spec: &str| lines(&peer("a", spec));
    assert_eq!(
        t("  myASN: 0\n  peerASN: 1\n  peerAddress: 10.0.0.1\n"),
        ["error: BGPPeer/a spec.myASN: must not be 0 (an AS number is 1 to 4294967295)"]
    );
    assert_eq!(
        t("  myASN: 1\n  peerAddress: 10.0.0.1\n"),
        [
            "error: BGPPeer/a spec.peerASN: required: the peer's AS number (an AS number is 1 to \
          4294967295)"
        ]
    );
    assert_eq!(
        t("  myASN: 1\n  peerASN: 2\n"),
        ["error: BGPPeer/a spec.peerAddress: required: the address to dial"]
    );
    assert_eq!(
        t("  myASN: 1\n  peerASN: 2\n  peerAddress: 10.0.0.300\n"),
        ["error: BGPPeer/a spec.peerAddress: \"10.0.0.300\" is not an IP address"]
    );
    assert_eq!(
        t(&format!("{PEER_A}  routerID: fd00::1\n")),
        [
            "error: BGPPeer/a spec.routerID: \"fd00::1\" is not an IPv4 address (a BGP router ID \
          is 32 bits)"
        ]
    );
    assert_eq!(
        t(&format!("{PEER_A}  sourceAddress: fd00::1\n")),
        [
            "error: BGPPeer/a spec.sourceAddress: fd00::1 and peerAddress 10.0.0.1 are of \
          different address families"
        ]
    );
    assert_eq!(
        t("  myASN: 5\n  peerASN: 5\n  peerAddress: 10.0.0.1\n  ebgpMultiHop: true\n"),
        [
            "error: BGPPeer/a spec.ebgpMultiHop: ebgpMultiHop is set on an iBGP peer (peerASN 5 \
          equals myASN 5)"
        ]
    );
    assert_eq!(
        t(&format!("{PEER_A}  password: {}\n", "x".repeat(81))),
        ["error: BGPPeer/a spec.password: is 81 bytes long; a TCP MD5 key is at most 80 bytes"]
    );
    assert_eq!(
        t(&format!(
            "{PEER_A}  password: p\n  passwordSecret: {{name: s}}\n"
        )),
        [
            "error: BGPPeer/a spec.passwordSecret: both spec.password and spec.passwordSecret are \
          set; give one (MetalLB rejects both)"
        ]
    );
    assert_eq!(
        t(&format!("{PEER_A}  bfdProfile: nope\n")),
        [
            "error: BGPPeer/a spec.bfdProfile: BFDProfile \"nope\" does not exist (there are no \
          BFDProfiles)"
        ]
    );
}

#[test]
fn password_secret_is_carried_for_the_edge_to_resolve() {
    assert_eq!(
        lines(&peer(
            "a",
            &format!("{PEER_A}  passwordSecret: {{name: bgp-md5, namespace: metallb-system}}\n")
        )),
        ["peer a 10.0.0.1:179 as 64512->64513 hold 90s keepalive 30s password-secret bgp-md5"]
    );
}

#[test]
fn unsupported_peer_fields_are_refused() {
    let text = peer(
        "a",
        "  myASN: 1\n  dynamicASN: external\n  interface: eth0\n  vrf: red\n  connectTime: 5s\n  \
         disableMP: true\n",
    );
    assert_eq!(
        lines(&text),
        [
            "error: BGPPeer/a spec.dynamicASN: not supported: give the peer's AS number in \
             spec.peerASN",
            "error: BGPPeer/a spec.interface: not supported (unnumbered BGP): give \
             spec.peerAddress",
            "error: BGPPeer/a spec.vrf: not supported: ferrolb peers from the node's default VRF",
            "error: BGPPeer/a spec.connectTime: not supported: ferrolb retries connections with \
             its own backoff (1 s to 120 s)",
            "error: BGPPeer/a spec.disableMP: not supported: ferrolb carries IPv4 and IPv6 \
             routes over one session",
            "error: BGPPeer/a spec.peerAddress: required: the address to dial",
        ]
    );
}

#[test]
fn one_address_on_two_ports_names_both_peers() {
    let text = format!(
        "{}{}",
        peer("a", PEER_A),
        peer("b", &format!("{PEER_A}  peerPort: 1179\n"))
    );
    assert_eq!(
        lines(&text),
        [
            "error: BGPPeer/b spec.peerAddress: peer 10.0.0.1 is also BGPPeer/a, on port 179; \
          ferrolb runs one BGP session per peer address, so one address on two ports (179 and \
          1179) is refused"
        ]
    );
}

#[test]
fn peer_selecting_no_node_warns_when_nodes_are_known() {
    let text = peer(
        "a",
        &format!("{PEER_A}  nodeSelectors:\n  - matchLabels: {{rack: r9}}\n"),
    );
    assert_eq!(
        with_nodes(&text, &[("n1", &[("rack", "r1")])]),
        [
            "peer a 10.0.0.1:179 as 64512->64513 hold 90s keepalive 30s node-selectors 1",
            "warning: BGPPeer/a spec.nodeSelectors: select no node: no node peers with this \
             router",
        ]
    );
    assert_eq!(
        with_nodes(&text, &[("n1", &[("rack", "r9")])]).len(),
        1,
        "a matching node: no warning"
    );
}

#[test]
fn selectors_are_checked_as_kubernetes_does() {
    let t = |sel: &str| lines(&peer("a", &format!("{PEER_A}  nodeSelectors:\n{sel}")));
    assert_eq!(
        t("  - matchExpressions:\n    - {key: rack, operator: in, values: [a]}\n"),
        [
            "error: BGPPeer/a spec.nodeSelectors[0].matchExpressions[0].operator: \"in\" is not a \
          valid operator (In, NotIn, Exists, DoesNotExist); did you mean \"In\"?"
        ]
    );
    assert_eq!(
        t("  - matchExpressions:\n    - {key: rack, operator: In}\n"),
        [
            "error: BGPPeer/a spec.nodeSelectors[0].matchExpressions[0].values: operator In needs \
          at least one value"
        ]
    );
    assert_eq!(
        t("  - matchExpressions:\n    - {key: rack, operator: Exists, values: [a]}\n"),
        [
            "error: BGPPeer/a spec.nodeSelectors[0].matchExpressions[0].values: operator Exists \
          takes no values"
        ]
    );
    assert_eq!(
        t("  - matchLabels: {\"bad key!\": x}\n"),
        [
            "error: BGPPeer/a spec.nodeSelectors[0].matchLabels.bad key!: \"bad key!\" is not a \
             valid label key: the name must be at most 63 characters of letters, digits, '-', \
             '_', '.', starting and ending with a letter or digit"
        ]
    );
    // MetalLB's duplicate rules: a selector, an expression or a value given twice.
    assert_eq!(
        t("  - matchLabels: {rack: a}\n  - matchLabels: {rack: a}\n"),
        [
            "error: BGPPeer/a spec.nodeSelectors[1]: the same selector as spec.nodeSelectors[0] \
          (MetalLB rejects this too)"
        ]
    );
    assert_eq!(
        t(
            "  - matchExpressions:\n    - {key: r, operator: In, values: [a, b]}\n    - {key: r, \
           operator: In, values: [b, a]}\n"
        ),
        [
            "error: BGPPeer/a spec.nodeSelectors[0].matchExpressions[1]: the same expression as \
          spec.nodeSelectors[0].matchExpressions[0] (MetalLB rejects this too)"
        ]
    );
    assert_eq!(
        t("  - matchExpressions:\n    - {key: r, operator: In, values: [a, a]}\n"),
        [
            "error: BGPPeer/a spec.nodeSelectors[0].matchExpressions[0].values[1]: duplicate value \
          \"a\" (also spec.nodeSelectors[0].matchExpressions[0].values[0])"
        ]
    );
}

// --- IPAddressPool --------------------------------------------------------------------------

#[test]
fn pool_defaults_and_fields() {
    let text = format!(
        "{}{}{}",
        pool(
            "a",
            "  addresses: [10.0.0.0/24, 10.0.1.10-10.0.1.20, 'fd00::/120']\n"
        ),
        pool(
            "b",
            "  addresses: [10.0.2.0/24]\n  autoAssign: false\n  avoidBuggyIPs: true\n"
        ),
        ad("all", "")
    );
    assert_eq!(
        lines(&text),
        [
            "pool a bgp [10.0.0.0/24, 10.0.1.10-10.0.1.20, fd00::/120]",
            "  ad /32 /128",
            "pool b bgp [10.0.2.0/24] no-auto-assign avoid-buggy-ips",
            "  ad /32 /128",
        ]
    );
}

#[test]
fn pool_errors_name_the_field() {
    assert_eq!(
        lines(&pool("a", "  addresses: []\n")),
        ["error: IPAddressPool/a spec.addresses: a pool needs at least one address range"]
    );
    assert_eq!(
        lines(&pool("a", "  addresses: [10.0.0.0/33]\n")),
        [
            "error: IPAddressPool/a spec.addresses[0]: \"10.0.0.0/33\" is not a valid CIDR or \
          range: prefix length 33 is more than 32"
        ]
    );
}

#[test]
fn overlapping_pools_name_both() {
    let text = format!(
        "{}{}",
        pool("a", "  addresses: [10.0.0.0/24]\n"),
        pool("b", "  addresses: [10.0.0.128/25]\n")
    );
    assert_eq!(
        lines(&text),
        [
            "error: IPAddressPool/b spec.addresses[0]: \"10.0.0.128/25\" overlaps \"10.0.0.0/24\" \
             (spec.addresses[0], of IPAddressPool/a)",
            "warning: IPAddressPool/a: no BGPAdvertisement selects this pool: its addresses are \
             assigned to Services but not announced",
        ]
    );
}

#[test]
fn service_allocation_is_read_and_checked() {
    let text = pool(
        "a",
        "  addresses: [10.0.0.0/24]\n  serviceAllocation:\n    priority: 5\n    namespaces: [x, \
         x]\n",
    );
    assert_eq!(
        lines(&text),
        [
            "error: IPAddressPool/a spec.serviceAllocation.namespaces[1]: duplicate namespace \
             \"x\" (also spec.serviceAllocation.namespaces[0])",
        ]
    );
}

// --- BGPAdvertisement -----------------------------------------------------------------------

#[test]
fn advertisement_every_field() {
    let text = format!(
        "{}{}{}{}",
        doc(
            "v1beta1",
            "Community",
            "c",
            "  communities:\n  - {name: no-export, value: '65535:65281'}\n  - {name: big, value: \
             'large:1:2:3'}\n"
        ),
        pool("a", "  addresses: [10.0.0.0/24, 'fd00::/64']\n"),
        peer("r1", PEER_A),
        ad(
            "x",
            "  ipAddressPools: [a]\n  aggregationLength: 24\n  aggregationLengthV6: 64\n  \
             localPref: 200\n  communities: [no-export, big, '1:2']\n  peers: [r1]\n  \
             nodeSelectors:\n  - matchLabels: {rack: r1}\n"
        )
    );
    assert_eq!(
        lines(&text),
        [
            "peer r1 10.0.0.1:179 as 64512->64513 hold 90s keepalive 30s",
            "pool a bgp [10.0.0.0/24, fd00::/64]",
            "  ad /24 /64 localpref 200 communities [65535:65281 large:1:2:3 1:2] peers [\"r1\"] \
             node-selectors 1",
            "alias big = large:1:2:3",
            "alias no-export = 65535:65281",
        ]
    );
}

#[test]
fn pool_selection_by_name_label_or_all() {
    let labelled = "---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: \
                    l\n  namespace: metallb-system\n  labels: {tier: gold}\nspec:\n  addresses: \
                    [10.0.2.0/24]\n";
    let text = format!(
        "{}{}{labelled}{}{}",
        pool("a", "  addresses: [10.0.0.0/24]\n"),
        pool("b", "  addresses: [10.0.1.0/24]\n"),
        ad(
            "by-label",
            "  ipAddressPoolSelectors:\n  - matchLabels: {tier: gold}\n  localPref: 1\n"
        ),
        ad("by-name", "  ipAddressPools: [b]\n  localPref: 2\n"),
    );
    assert_eq!(
        lines(&text),
        [
            "pool a bgp [10.0.0.0/24]",
            "pool b bgp [10.0.1.0/24]",
            "  ad /32 /128 localpref 2",
            "pool l bgp [10.0.2.0/24]",
            "  ad /32 /128 localpref 1",
            "warning: IPAddressPool/a: no BGPAdvertisement selects this pool: its addresses are \
             assigned to Services but not announced",
        ]
    );
}

#[test]
fn weight_by_endpoints_is_an_annotation_true_false_or_an_error() {
    let annotated = |name: &str, value: &str| {
        format!(
            "---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata:\n  name: \
             {name}\n  namespace: metallb-system\n  annotations:\n    \
             ferrolb.io/weight-by-endpoints: {value:?}\nspec:\n  ipAddressPools: [a]\n  \
             localPref: 1\n"
        )
    };
    let p = pool("a", "  addresses: [10.0.0.0/24]\n");
    assert_eq!(
        lines(&format!("{p}{}", annotated("w", "true"))),
        [
            "pool a bgp [10.0.0.0/24]",
            "  ad /32 /128 localpref 1 weight-by-endpoints"
        ]
    );
    assert_eq!(
        lines(&format!("{p}{}", annotated("u", "false"))),
        ["pool a bgp [10.0.0.0/24]", "  ad /32 /128 localpref 1"]
    );
    assert_eq!(
        lines(&format!("{p}{}", annotated("bad", "yes")))[0],
        "error: BGPAdvertisement/bad metadata.annotations[\"ferrolb.io/weight-by-endpoints\"]: \
         \"yes\" is not \"true\" or \"false\""
    );
}

#[test]
fn advertisement_naming_missing_objects_warns() {
    let text = format!(
        "{}{}",
        pool("a", "  addresses: [10.0.0.0/24]\n"),
        ad("x", "  ipAddressPools: [a, gone]\n  peers: [nobody]\n")
    );
    assert_eq!(
        lines(&text),
        [
            "pool a bgp [10.0.0.0/24]",
            "  ad /32 /128 peers [\"nobody\"]",
            "warning: BGPAdvertisement/x spec.peers[0]: BGPPeer \"nobody\" does not exist: this \
             advertisement goes to no such peer",
            "warning: BGPAdvertisement/x spec.ipAddressPools[1]: IPAddressPool \"gone\" does not \
             exist: nothing of it is advertised",
        ]
    );
}

#[test]
fn advertisement_errors_name_the_field() {
    let p = pool("a", "  addresses: [10.0.0.0/24, 10.0.1.0-10.0.1.127]\n");
    let t = |spec: &str| lines(&format!("{p}{}", ad("x", spec)));
    assert_eq!(
        t("  aggregationLength: 23\n"),
        [
            "error: BGPAdvertisement/x spec.aggregationLength: 23 is shorter than /24, the prefix \
          of IPAddressPool/a spec.addresses[0] (\"10.0.0.0/24\"); announcing a /23 would cover \
          addresses outside the pool",
            "error: BGPAdvertisement/x spec.aggregationLength: 23 is shorter than /25, the widest \
          CIDR block of IPAddressPool/a spec.addresses[1] (\"10.0.1.0-10.0.1.127\"); \
          announcing a /23 would cover addresses outside the pool",
            "warning: IPAddressPool/a: no BGPAdvertisement selects this pool: its addresses are \
          assigned to Services but not announced"
        ]
    );
    assert_eq!(
        t("  aggregationLength: 33\n")[0],
        "error: BGPAdvertisement/x spec.aggregationLength: 33 is out of range: must be 0 to 32"
    );
    assert_eq!(
        t("  communities: [nope]\n")[0],
        "error: BGPAdvertisement/x spec.communities[0]: \"nope\" is not a defined community \
         alias (the Community kind defines no aliases)"
    );
    assert_eq!(
        t("  communities: ['1:1', '1:1']\n")[0],
        "error: BGPAdvertisement/x spec.communities[1]: duplicate community \"1:1\" (also \
         spec.communities[0])"
    );
    assert_eq!(
        t("  communities: ['65536:1']\n")[0],
        "error: BGPAdvertisement/x spec.communities[0]: \"65536:1\" is not a valid community: \
         first part \"65536\" is not a number from 0 to 65535"
    );
    assert_eq!(
        t("  ipAddressPools: [a, a]\n")[0],
        "error: BGPAdvertisement/x spec.ipAddressPools[1]: duplicate pool \"a\" (also \
         spec.ipAddressPools[0])"
    );
}

#[test]
fn alias_and_its_value_in_one_advertisement_are_refused() {
    let text = format!(
        "{}{}{}",
        doc(
            "v1beta1",
            "Community",
            "c",
            "  communities:\n  - {name: ne, value: '65535:65281'}\n"
        ),
        pool("a", "  addresses: [10.0.0.0/24]\n"),
        ad("x", "  communities: [ne, '65535:65281']\n")
    );
    assert_eq!(
        lines(&text)[0],
        "error: BGPAdvertisement/x spec.communities[1]: duplicate community 65535:65281 (also \
         spec.communities[0])"
    );
}

#[test]
fn different_local_prefs_for_the_same_routes_are_refused_when_nodes_are_known() {
    let text = format!(
        "{}{}{}",
        pool("a", "  addresses: [10.0.0.0/24]\n"),
        ad("x", "  localPref: 100\n"),
        ad("z", "  localPref: 200\n"),
    );
    let nodes: &[(&str, &[(&str, &str)])] = &[("n1", &[])];
    assert_eq!(
        with_nodes(&text, nodes),
        [
            "error: BGPAdvertisement/z spec.localPref: 200 differs from BGPAdvertisement/x's \
             localPref 100 for the same routes of IPAddressPool/a (same aggregation, peers and \
             nodes); a route has one LOCAL_PREF (MetalLB rejects this too)"
        ]
    );
    // Without nodes MetalLB (an empty node list) sees no overlap; so does ferrolb.
    assert_eq!(lines(&text).len(), 3);
    // Different aggregation, disjoint peers or disjoint nodes: no conflict.
    for y in [
        "  localPref: 200\n  aggregationLength: 24\n",
        "  localPref: 200\n  nodeSelectors:\n  - matchLabels: {rack: r2}\n",
    ] {
        let text = format!(
            "{}{}{}",
            pool("a", "  addresses: [10.0.0.0/24]\n"),
            ad(
                "x",
                "  localPref: 100\n  nodeSelectors:\n  - matchLabels: {rack: r1}\n"
            ),
            ad("z", y),
        );
        let nodes: &[(&str, &[(&str, &str)])] =
            &[("n1", &[("rack", "r1")]), ("n2", &[("rack", "r2")])];
        let out = with_nodes(&text, nodes);
        assert!(!out.iter().any(|l| l.starts_with("error")), "{out:#?}");
    }
}

// --- BFDProfile, Community, L2Advertisement ---------------------------------------------------

#[test]
fn bfd_profile_fields_and_ranges() {
    assert_eq!(
        lines(&doc(
            "v1beta1",
            "BFDProfile",
            "p",
            "  receiveInterval: 100\n  transmitInterval: 200\n  detectMultiplier: 5\n  \
             echoInterval: 30\n  echoMode: true\n  passiveMode: true\n  minimumTtl: 10\n"
        )),
        ["bfd p rx 100ms tx 200ms x5 echo 30ms echo-mode passive ttl 10"]
    );
    assert_eq!(
        lines(&doc(
            "v1beta1",
            "BFDProfile",
            "p",
            "  detectMultiplier: 1\n"
        )),
        ["error: BFDProfile/p spec.detectMultiplier: 1 is out of range: must be 2 to 255"]
    );
}

#[test]
fn community_aliases_across_objects() {
    let text = format!(
        "{}{}",
        doc(
            "v1beta1",
            "Community",
            "a",
            "  communities:\n  - {name: x, value: '1:1'}\n"
        ),
        doc(
            "v1beta1",
            "Community",
            "b",
            "  communities:\n  - {name: x, value: '1:2'}\n  - {name: z, value: 'large:1'}\n"
        ),
    );
    assert_eq!(
        lines(&text),
        [
            "error: Community/b spec.communities[0].name: alias \"x\" is defined more than once \
             (also Community/a spec.communities[0])",
            "error: Community/b spec.communities[1].value: \"large:1\" is not a valid community: \
             a large community has the form large:<u32>:<u32>:<u32>",
        ]
    );
}

#[test]
fn objects_are_read_in_name_order_whatever_the_listing_order() {
    let one = format!(
        "{}{}",
        pool("b", "  addresses: [10.0.1.0/24]\n"),
        pool("a", "  addresses: [10.0.0.0/24]\n")
    );
    let two = format!(
        "{}{}",
        pool("a", "  addresses: [10.0.0.0/24]\n"),
        pool("b", "  addresses: [10.0.1.0/24]\n")
    );
    assert_eq!(lines(&one), lines(&two));
    assert!(lines(&one)[0].starts_with("pool a"));
}

// --- reading files --------------------------------------------------------------------------

#[test]
fn unknown_fields_and_kinds_in_a_file_are_errors() {
    let text = format!(
        "{}{}",
        pool("a", "  addresses: [10.0.0.0/24]\n  autoassign: false\n"),
        doc("v1beta1", "ServiceBGPStatus", "s", "")
    );
    let e = parse_resources(&text).expect_err("rejected");
    assert_eq!(
        e.lines(),
        [
            "IPAddressPool/a spec.autoassign: unknown field; valid fields here: addresses, \
             autoAssign, avoidBuggyIPs, serviceAllocation",
            "ServiceBGPStatus/s apiVersion: metallb.io/v1beta1 ServiceBGPStatus is not a kind \
             ferrolb serves",
        ]
    );
}

#[test]
fn v1beta1_bgp_peer_in_a_file_is_read_as_v1beta2() {
    let (r, warnings) = parse_resources(&doc("v1beta1", "BGPPeer", "old", PEER_A)).expect("read");
    assert_eq!(r.peers.len(), 1);
    assert_eq!(
        warnings[0].to_string(),
        "BGPPeer/old apiVersion: metallb.io/v1beta1 BGPPeer is deprecated and not served by \
         ferrolb's CRD; read as metallb.io/v1beta2 (same fields)"
    );
}

#[test]
fn same_session_twice_warns_and_advertisement_without_nodes_warns() {
    let text = format!(
        "{}{}{}{}",
        peer("a", PEER_A),
        peer("b", PEER_A),
        pool("p", "  addresses: [10.0.0.0/24]\n"),
        ad("x", "  nodeSelectors:\n  - matchLabels: {rack: r9}\n")
    );
    assert_eq!(
        with_nodes(&text, &[("n1", &[("rack", "r1")])]),
        [
            "peer a 10.0.0.1:179 as 64512->64513 hold 90s keepalive 30s",
            "peer b 10.0.0.1:179 as 64512->64513 hold 90s keepalive 30s",
            "pool p bgp [10.0.0.0/24]",
            "  ad /32 /128 node-selectors 1",
            "warning: BGPAdvertisement/x spec.nodeSelectors: select no node: no node announces \
             this advertisement",
            "warning: BGPPeer/b: the same session as BGPPeer/a: one BGP session is made for both",
        ]
    );
}

#[test]
fn objects_without_a_name_or_with_the_same_name_are_errors() {
    let mut r = resources(&format!(
        "{}{}",
        pool("a", "  addresses: [10.0.0.0/24]\n"),
        pool("a", "  addresses: [10.0.1.0/24]\n")
    ));
    r.pools.push(IPAddressPool {
        metadata: Default::default(),
        spec: r.pools[0].spec.clone(),
        status: None,
    });
    assert_eq!(
        outcome(&to_config(&r)),
        [
            "error: IPAddressPool/ metadata.name: required",
            "error: IPAddressPool/a metadata.name: another IPAddressPool has this name",
            "warning: IPAddressPool/a: no BGPAdvertisement selects this pool: its addresses are \
             assigned to Services but not announced",
        ]
    );
}
