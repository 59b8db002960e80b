//! Every rule that rejects a configuration, with the exact error text (path, line, reason).

use ferrolb_config::{ConfigErrors, parse_config};

/// The error lines for `text`, which must be rejected.
fn errors(text: &str) -> Vec<String> {
    match parse_config(text) {
        Ok(p) => panic!("expected rejection, got {p:#?}"),
        Err(e) => e.lines(),
    }
}

fn one_error(text: &str) -> String {
    let e = errors(text);
    assert_eq!(e.len(), 1, "expected exactly one error, got {e:#?}");
    e[0].clone()
}

const PEER: &str = "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64512\n  my-asn: 64513\n";

fn peer_with(extra: &str) -> String {
    format!("{PEER}{extra}")
}

fn pool_with(extra: &str) -> String {
    format!("address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n{extra}")
}

// --- keys and types ---------------------------------------------------------------------

#[test]
fn unknown_top_level_key() {
    assert_eq!(
        one_error("peers: []\naddress-pool: []\n"),
        "address-pool (line 2): unknown key; did you mean \"address-pools\"?"
    );
    assert_eq!(
        one_error("ipAddressPools: []\n"),
        "ipAddressPools (line 1): unknown key; did you mean \"address-pools\"?"
    );
    assert_eq!(
        one_error("spec: {}\n"),
        "spec (line 1): unknown key; valid keys here: peers, bgp-communities, address-pools, \
         bfd-profiles"
    );
}

#[test]
fn misspelled_peer_key() {
    assert_eq!(
        one_error(&peer_with("  hold_time: 30s\n")),
        "peers[0].hold_time (line 5): unknown key; did you mean \"hold-time\"?"
    );
    assert_eq!(
        one_error(&peer_with("  peerAddress: 10.0.0.2\n")),
        "peers[0].peerAddress (line 5): unknown key; did you mean \"peer-address\"?"
    );
}

#[test]
fn misspelled_nested_keys() {
    let text = pool_with("  bgp-advertisements:\n  - aggregation-lenght: 32\n    comunities: []\n");
    assert_eq!(
        errors(&text),
        vec![
            "address-pools[0].bgp-advertisements[0].aggregation-lenght (line 6): unknown key; \
             did you mean \"aggregation-length\"?",
            "address-pools[0].bgp-advertisements[0].comunities (line 7): unknown key; did you \
             mean \"communities\"?",
        ]
    );
    let text = peer_with("  node-selectors:\n  - match-label: {a: b}\n");
    assert_eq!(
        one_error(&text),
        "peers[0].node-selectors[0].match-label (line 6): unknown key; did you mean \"match-labels\"?"
    );
}

#[test]
fn duplicate_key() {
    assert_eq!(
        one_error(&peer_with("  my-asn: 64514\n")),
        "peers[0].my-asn (line 5): key is given more than once"
    );
}

#[test]
fn wrong_types() {
    assert_eq!(
        one_error("peers:\n- peer-address: 10.0.0.1\n  peer-asn: \"64512\"\n  my-asn: 1\n"),
        "peers[0].peer-asn (line 3): expected a whole number, found the string \"64512\""
    );
    assert_eq!(
        one_error(&pool_with("  auto-assign: \"false\"\n")),
        "address-pools[0].auto-assign (line 5): expected true or false, found the string \"false\""
    );
    assert_eq!(
        one_error("address-pools:\n- name: a\n  protocol: bgp\n  addresses: 10.0.0.0/24\n"),
        "address-pools[0].addresses (line 4): expected a list, found the string \"10.0.0.0/24\""
    );
    assert_eq!(
        one_error("peers:\n  peer-address: 10.0.0.1\n"),
        "peers (line 2): expected a list, found a mapping"
    );
    assert_eq!(
        one_error("peers:\n- 10.0.0.1\n"),
        "peers[0] (line 2): expected a mapping, found the string \"10.0.0.1\""
    );
    assert_eq!(
        one_error(&peer_with("  ebgp-multihop: 1\n")),
        "peers[0].ebgp-multihop (line 5): expected true or false, found the number 1"
    );
    assert_eq!(
        one_error(&peer_with("  password: [a]\n")),
        "peers[0].password (line 5): expected a string, found a list"
    );
    assert_eq!(
        one_error("- a\n- b\n"),
        "<document> (line 1): expected a mapping with keys peers, bgp-communities, \
         address-pools, bfd-profiles, found a list"
    );
}

#[test]
fn yaml_syntax_error() {
    assert_eq!(
        one_error("peers:\n- peer-address: [10.0.0.1\n  peer-asn: 1\n"),
        "<document> (line 3): invalid YAML: illegal placement of ':' indicator"
    );
}

#[test]
fn more_than_one_document() {
    assert_eq!(
        one_error("peers: []\n---\naddress-pools: []\n"),
        "<document> (line 3): the config must be a single YAML document"
    );
}

// --- peers --------------------------------------------------------------------------------

#[test]
fn missing_required_peer_keys() {
    assert_eq!(
        errors("peers:\n- peer-asn: 1\n  peer-address:\n"),
        vec![
            "peers[0] (line 2): missing required key \"my-asn\"",
            "peers[0].peer-address (line 3): required value is empty",
        ]
    );
}

#[test]
fn zero_and_out_of_range_asns() {
    assert_eq!(
        errors("peers:\n- peer-address: 10.0.0.1\n  peer-asn: 0\n  my-asn: 4294967296\n"),
        vec![
            "peers[0].peer-asn (line 3): must not be 0 (an AS number is 1 to 4294967295)",
            "peers[0].my-asn (line 4): 4294967296 is out of range: an AS number is 1 to 4294967295",
        ]
    );
}

#[test]
fn bad_addresses_in_peer() {
    assert_eq!(
        errors(
            "peers:\n- peer-address: 10.0.0.300\n  peer-asn: 1\n  my-asn: 2\n  router-id: \
             2001:db8::1\n- peer-address: 2001:db8::1\n  peer-asn: 1\n  my-asn: 2\n  \
             source-address: 10.0.0.2\n"
        ),
        vec![
            "peers[0].peer-address (line 2): \"10.0.0.300\" is not an IP address",
            "peers[0].router-id (line 5): \"2001:db8::1\" is not an IPv4 address (a BGP router \
             ID is 32 bits)",
            "peers[1].source-address (line 9): 10.0.0.2 and peer-address 2001:db8::1 are of \
             different address families",
        ]
    );
}

#[test]
fn leading_zero_numbers_are_ambiguous() {
    assert_eq!(
        one_error("peers:\n- peer-address: 10.0.0.1\n  peer-asn: 064512\n  my-asn: 1\n"),
        "peers[0].peer-asn (line 3): 064512 has a leading zero, which MetalLB's YAML parser \
         reads as octal; write the number without it"
    );
}

#[test]
fn huge_and_non_finite_numbers() {
    assert_eq!(
        errors(
            "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 99999999999999999999999999999999999999999\n  \
             my-asn: .inf\n"
        ),
        vec![
            "peers[0].peer-asn (line 3): 99999999999999999999999999999999999999999 is out of \
             range: an AS number is 1 to 4294967295",
            "peers[0].my-asn (line 4): expected a whole number, found the number .inf",
        ]
    );
}

#[test]
fn bad_port() {
    assert_eq!(
        one_error(&peer_with("  peer-port: 65536\n")),
        "peers[0].peer-port (line 5): 65536 is out of range: a TCP port is 1 to 65535"
    );
}

#[test]
fn hold_time_one_or_two_seconds() {
    assert_eq!(
        one_error(&peer_with("  hold-time: 1s\n")),
        "peers[0].hold-time (line 5): 1s is not allowed: must be 0 or at least 3s"
    );
    assert_eq!(
        one_error(&peer_with("  hold-time: 2s\n")),
        "peers[0].hold-time (line 5): 2s is not allowed: must be 0 or at least 3s"
    );
}

#[test]
fn hold_time_format_rules() {
    assert_eq!(
        one_error(&peer_with("  hold-time: 1500ms\n")),
        "peers[0].hold-time (line 5): \"1500ms\" is not a whole number of seconds"
    );
    assert_eq!(
        one_error(&peer_with("  hold-time: 90\n")),
        "peers[0].hold-time (line 5): missing unit in duration \"90\" (e.g. \"90s\")"
    );
    assert_eq!(
        one_error(&peer_with("  hold-time: -90s\n")),
        "peers[0].hold-time (line 5): \"-90s\" is negative"
    );
    assert_eq!(
        one_error(&peer_with("  hold-time: 90 seconds\n")),
        "peers[0].hold-time (line 5): unknown unit \" seconds\" in duration \"90 seconds\""
    );
    assert_eq!(
        one_error(&peer_with("  hold-time: 19h\n")),
        "peers[0].hold-time (line 5): 68400s is more than 65535s, the largest BGP hold time"
    );
}

#[test]
fn keepalive_longer_than_hold_time() {
    assert_eq!(
        one_error(&peer_with("  hold-time: 30s\n  keepalive-time: 31s\n")),
        "peers[0].keepalive-time (line 6): 31s is longer than the hold time (30s)"
    );
    assert_eq!(
        one_error(&peer_with("  hold-time: 0s\n  keepalive-time: 10s\n")),
        "peers[0].keepalive-time (line 6): 10s is longer than the hold time (0s)"
    );
    // Default hold time 90s.
    assert_eq!(
        one_error(&peer_with("  keepalive-time: 2m\n")),
        "peers[0].keepalive-time (line 5): 120s is longer than the hold time (90s)"
    );
}

#[test]
fn ebgp_multihop_on_ibgp_peer() {
    assert_eq!(
        one_error(
            "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64512\n  my-asn: 64512\n  \
             ebgp-multihop: true\n"
        ),
        "peers[0].ebgp-multihop (line 5): ebgp-multihop is set on an iBGP peer (peer-asn \
         64512 equals my-asn 64512)"
    );
}

#[test]
fn identical_duplicate_peers() {
    let text = "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n\
                - my-asn: 2\n  peer-asn: 1\n  peer-address: 10.0.0.1\n  hold-time: 90s\n";
    assert_eq!(
        one_error(text),
        "peers[1] (line 5): identical to peers[0]; a peer may be listed only once"
    );
}

#[test]
fn same_peer_address_on_two_ports() {
    // MetalLB's native speaker runs both sessions; ferrolb's BGP speaker keys sessions by
    // peer address, so it would silently run only the first: refuse, naming both entries.
    let text = "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n\
                - peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n  peer-port: 1179\n";
    assert_eq!(
        one_error(text),
        "peers[1] (line 5): peer 10.0.0.1 is also peers[0], on port 179; ferrolb runs one BGP \
         session per peer address, so one address on two ports (179 and 1179) is refused"
    );
}

#[test]
fn identical_advertisements_in_one_pool() {
    // As MetalLB 0.12 (validateDuplicateAdvertisements): equal as written.
    assert_eq!(
        one_error(&pool_with(
            "  bgp-advertisements:\n  - localpref: 100\n    communities: [\"1:1\"]\n  - \
             communities: [\"1:1\"]\n    localpref: 100\n"
        )),
        "address-pools[0].bgp-advertisements[1] (line 8): identical to \
         address-pools[0].bgp-advertisements[0]; an advertisement may be listed only once \
         (MetalLB rejects this too)"
    );
    // Two bare items are two default advertisements, equal too.
    assert_eq!(
        one_error(&pool_with("  bgp-advertisements:\n  -\n  -\n")),
        "address-pools[0].bgp-advertisements[1] (line 7): identical to \
         address-pools[0].bgp-advertisements[0]; an advertisement may be listed only once \
         (MetalLB rejects this too)"
    );
}

#[test]
fn undefined_bfd_profile() {
    assert_eq!(
        one_error(&peer_with("  bfd-profile: fast\n")),
        "peers[0].bfd-profile (line 5): BFD profile \"fast\" is not defined in bfd-profiles (no \
         bfd-profiles are defined)"
    );
    let text = format!(
        "{}bfd-profiles:\n- name: slow\n",
        peer_with("  bfd-profile: fast\n")
    );
    assert_eq!(
        one_error(&text),
        "peers[0].bfd-profile (line 5): BFD profile \"fast\" is not defined in bfd-profiles \
         (defined: \"slow\")"
    );
}

#[test]
fn both_bfd_profile_spellings() {
    let text = format!(
        "{}bfd-profiles:\n- name: a\n",
        peer_with("  bfd-profile: a\n  bfdProfile: a\n")
    );
    assert_eq!(
        one_error(&text),
        "peers[0].bfdProfile (line 6): both bfd-profile and its misspelling bfdProfile are \
         given; keep bfd-profile"
    );
}

#[test]
fn password_rules() {
    let long = "x".repeat(81);
    assert_eq!(
        one_error(&peer_with(&format!("  password: {long}\n"))),
        "peers[0].password (line 5): is 81 bytes long; a TCP MD5 key is at most 80 bytes"
    );
    assert_eq!(
        one_error(&peer_with("  password: \"a\\nb\"\n")),
        "peers[0].password (line 5): must not contain line breaks"
    );
}

// --- node selectors ------------------------------------------------------------------------

#[test]
fn invalid_selector_operator() {
    let text = peer_with(
        "  node-selectors:\n  - match-expressions:\n    - key: rack\n      operator: in\n      \
         values: [a]\n",
    );
    assert_eq!(
        one_error(&text),
        "peers[0].node-selectors[0].match-expressions[0].operator (line 8): \"in\" is not a \
         valid operator (In, NotIn, Exists, DoesNotExist); did you mean \"In\"?"
    );
}

#[test]
fn in_without_values_and_exists_with_values() {
    let text = peer_with(
        "  node-selectors:\n  - match-expressions:\n    - key: rack\n      operator: In\n    \
         - key: zone\n      operator: NotIn\n      values: []\n    - key: gpu\n      \
         operator: Exists\n      values: [yes]\n",
    );
    assert_eq!(
        errors(&text),
        vec![
            "peers[0].node-selectors[0].match-expressions[0].values (line 7): operator In needs \
             at least one value",
            "peers[0].node-selectors[0].match-expressions[1].values (line 11): operator NotIn \
             needs at least one value",
            "peers[0].node-selectors[0].match-expressions[2].values (line 14): operator Exists \
             takes no values",
        ]
    );
}

#[test]
fn invalid_label_keys_and_values() {
    let text = peer_with(
        "  node-selectors:\n  - match-labels:\n      Example.com/rack: a\n      zone: \"not \
         valid\"\n    match-expressions:\n    - operator: Exists\n",
    );
    assert_eq!(
        errors(&text),
        vec![
            "peers[0].node-selectors[0].match-labels.Example.com/rack (line 7): \
             \"Example.com/rack\" is not a valid label key: the prefix must be a lowercase DNS \
             subdomain",
            "peers[0].node-selectors[0].match-labels.zone (line 8): \"not valid\" is not a \
             valid label value: at most 63 characters of letters, digits, '-', '_', '.', \
             starting and ending with a letter or digit",
            "peers[0].node-selectors[0].match-expressions[0] (line 10): missing required key \
             \"key\"",
        ]
    );
}

// --- communities ---------------------------------------------------------------------------

#[test]
fn invalid_community_alias_value() {
    assert_eq!(
        one_error("bgp-communities:\n  no-export: 65535:65536\n"),
        "bgp-communities.no-export (line 2): \"65535:65536\" is not a valid community: second \
         part \"65536\" is not a number from 0 to 65535"
    );
}

#[test]
fn undefined_community_alias() {
    let text = format!(
        "bgp-communities:\n  no-export: 65535:65281\n{}",
        pool_with("  bgp-advertisements:\n  - communities: [no-exprt]\n")
    );
    assert_eq!(
        one_error(&text),
        "address-pools[0].bgp-advertisements[0].communities[0] (line 8): \"no-exprt\" is not a \
         defined community alias (bgp-communities defines \"no-export\")"
    );
}

#[test]
fn invalid_community_literal() {
    assert_eq!(
        one_error(&pool_with(
            "  bgp-advertisements:\n  - communities: [\"64512:x\"]\n"
        )),
        "address-pools[0].bgp-advertisements[0].communities[0] (line 6): \"64512:x\" is not a \
         valid community: second part \"x\" is not a number from 0 to 65535"
    );
}

#[test]
fn duplicate_communities_in_one_advertisement() {
    let text = format!(
        "bgp-communities:\n  no-export: 65535:65281\n{}",
        pool_with(
            "  bgp-advertisements:\n  - communities:\n    - 65535:65281\n    - 1:1\n    - \
             no-export\n"
        )
    );
    assert_eq!(
        one_error(&text),
        "address-pools[0].bgp-advertisements[0].communities[2] (line 11): duplicate community \
         65535:65281 (also address-pools[0].bgp-advertisements[0].communities[0])"
    );
}

// --- pools ---------------------------------------------------------------------------------

#[test]
fn missing_pool_keys_and_unknown_protocol() {
    assert_eq!(
        errors("address-pools:\n- protocol: BGP\n  addresses: []\n"),
        vec![
            "address-pools[0] (line 2): missing required key \"name\"",
            "address-pools[0].protocol (line 2): unknown protocol \"BGP\" (bgp or layer2)",
            "address-pools[0].addresses (line 3): a pool needs at least one address range",
        ]
    );
}

#[test]
fn invalid_address_entries() {
    let text = "address-pools:\n- name: a\n  protocol: layer2\n  addresses:\n  - 10.0.0.0/33\n  \
                - 10.0.0.9 - 10.0.0.1\n  - 10.0.0.1\n  - 2001:db8::/129\n";
    assert_eq!(
        errors(text),
        vec![
            "address-pools[0].addresses[0] (line 5): \"10.0.0.0/33\" is not a valid CIDR or \
             range: prefix length 33 is more than 32",
            "address-pools[0].addresses[1] (line 6): \"10.0.0.9 - 10.0.0.1\" is not a valid CIDR \
             or range: start 10.0.0.9 is after end 10.0.0.1",
            "address-pools[0].addresses[2] (line 7): \"10.0.0.1\" is not a valid CIDR or range: a \
             single address needs a prefix length, e.g. 10.0.0.1/32",
            "address-pools[0].addresses[3] (line 8): \"2001:db8::/129\" is not a valid CIDR or \
             range: prefix length 129 is more than 128",
        ]
    );
}

#[test]
fn duplicate_pool_names() {
    let text = "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n\
                - name: a\n  protocol: layer2\n  addresses: [10.0.1.0/24]\n";
    assert_eq!(
        one_error(text),
        "address-pools[1].name (line 5): duplicate pool name \"a\" (also address-pools[0].name)"
    );
}

#[test]
fn overlap_within_one_pool() {
    let text = "address-pools:\n- name: a\n  protocol: layer2\n  addresses:\n  - 10.0.0.0/24\n  \
                - 10.0.0.200-10.0.1.10\n";
    assert_eq!(
        one_error(text),
        "address-pools[0].addresses[1] (line 6): \"10.0.0.200-10.0.1.10\" overlaps \
         \"10.0.0.0/24\" (address-pools[0].addresses[0], of the same pool)"
    );
}

#[test]
fn overlap_across_pools_v4_and_v6() {
    let text = "address-pools:\n- name: a\n  protocol: layer2\n  addresses:\n  - 10.0.0.0/24\n  \
                - 2001:db8::/64\n- name: b\n  protocol: bgp\n  addresses:\n  - 10.0.0.128/25\n  \
                - 2001:db8::ff-2001:db8::1:0\n  - 10.0.1.0/24\n  - 2001:db8:1::/64\n";
    assert_eq!(
        errors(text),
        vec![
            "address-pools[1].addresses[0] (line 10): \"10.0.0.128/25\" overlaps \"10.0.0.0/24\" \
             (address-pools[0].addresses[0], of pool \"a\")",
            "address-pools[1].addresses[1] (line 11): \"2001:db8::ff-2001:db8::1:0\" overlaps \
             \"2001:db8::/64\" (address-pools[0].addresses[1], of pool \"a\")",
        ]
    );
}

#[test]
fn adjacent_ranges_do_not_overlap() {
    let text = "address-pools:\n- name: a\n  protocol: layer2\n  addresses:\n  - 10.0.0.0/24\n  \
                - 10.0.1.0-10.0.1.9\n  - 10.0.1.10 -10.0.1.20\n";
    assert!(parse_config(text).is_ok());
}

#[test]
fn aggregation_length_shorter_than_prefix() {
    let text = "address-pools:\n- name: a\n  protocol: bgp\n  addresses:\n  - 10.0.0.0/24\n  \
                - 10.0.1.0/26\n  - 10.0.2.150-10.0.2.200\n  bgp-advertisements:\n  - \
                aggregation-length: 25\n";
    assert_eq!(
        errors(text),
        vec![
            "address-pools[0].bgp-advertisements[0].aggregation-length (line 9): 25 is shorter \
             than /26, the prefix of address-pools[0].addresses[1] (\"10.0.1.0/26\"); \
             announcing a /25 would cover addresses outside the pool",
            "address-pools[0].bgp-advertisements[0].aggregation-length (line 9): 25 is shorter \
             than /27, the widest CIDR block of address-pools[0].addresses[2] \
             (\"10.0.2.150-10.0.2.200\"); announcing a /25 would cover addresses outside the pool",
        ]
    );
}

#[test]
fn aggregation_length_v6_shorter_than_prefix() {
    let text = "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [2001:db8::/120]\n  \
                bgp-advertisements:\n  - aggregation-length-v6: 64\n";
    assert_eq!(
        one_error(text),
        "address-pools[0].bgp-advertisements[0].aggregation-length-v6 (line 6): 64 is shorter \
         than /120, the prefix of address-pools[0].addresses[0] (\"2001:db8::/120\"); \
         announcing a /64 would cover addresses outside the pool"
    );
}

#[test]
fn aggregation_length_out_of_range() {
    let text = pool_with(
        "  bgp-advertisements:\n  - aggregation-length: 33\n    aggregation-length-v6: 129\n  \
         - aggregation-length: -1\n",
    );
    assert_eq!(
        errors(&text),
        vec![
            "address-pools[0].bgp-advertisements[0].aggregation-length (line 6): 33 is out of \
             range: must be 0 to 32",
            "address-pools[0].bgp-advertisements[0].aggregation-length-v6 (line 7): 129 is out \
             of range: must be 0 to 128",
            "address-pools[0].bgp-advertisements[1].aggregation-length (line 8): -1 is out of \
             range: must be 0 to 32",
        ]
    );
}

#[test]
fn bgp_advertisements_on_layer2_pool() {
    let text = "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n  \
                bgp-advertisements:\n  - aggregation-length: 32\n";
    assert_eq!(
        one_error(text),
        "address-pools[0].bgp-advertisements (line 5): a layer2 pool cannot have \
         bgp-advertisements"
    );
}

#[test]
fn localpref_out_of_range() {
    assert_eq!(
        one_error(&pool_with(
            "  bgp-advertisements:\n  - localpref: 4294967296\n"
        )),
        "address-pools[0].bgp-advertisements[0].localpref (line 6): 4294967296 is out of range: \
         must be 0 to 4294967295"
    );
}

// --- BFD profiles --------------------------------------------------------------------------

#[test]
fn bfd_values_out_of_range() {
    let text = "bfd-profiles:\n- name: a\n  receive-interval: 9\n  transmit-interval: 60001\n  \
                detect-multiplier: 1\n  echo-interval: 5\n  minimum-ttl: 255\n- name: b\n  \
                detect-multiplier: 256\n  minimum-ttl: 0\n  echo-mode: maybe\n";
    assert_eq!(
        errors(text),
        vec![
            "bfd-profiles[0].receive-interval (line 3): 9 is out of range: must be 10 to 60000 \
             (milliseconds)",
            "bfd-profiles[0].transmit-interval (line 4): 60001 is out of range: must be 10 to \
             60000 (milliseconds)",
            "bfd-profiles[0].detect-multiplier (line 5): 1 is out of range: must be 2 to 255",
            "bfd-profiles[0].echo-interval (line 6): 5 is out of range: must be 10 to 60000 \
             (milliseconds)",
            "bfd-profiles[0].minimum-ttl (line 7): 255 is out of range: must be 1 to 254",
            "bfd-profiles[1].detect-multiplier (line 9): 256 is out of range: must be 2 to 255",
            "bfd-profiles[1].minimum-ttl (line 10): 0 is out of range: must be 1 to 254",
            "bfd-profiles[1].echo-mode (line 11): expected true or false, found the string \
             \"maybe\"",
        ]
    );
}

#[test]
fn duplicate_bfd_profile_names_and_missing_name() {
    assert_eq!(
        errors("bfd-profiles:\n- name: a\n- name: a\n- echo-mode: true\n"),
        vec![
            "bfd-profiles[1].name (line 3): duplicate BFD profile name \"a\" (also bfd-profiles[0])",
            "bfd-profiles[2] (line 4): missing required key \"name\"",
        ]
    );
}

// --- all at once ---------------------------------------------------------------------------

#[test]
fn every_error_is_reported_at_once_in_line_order() {
    let text = "\
address-pools:
- name: a
  protocol: layer2
  addresses: [10.0.0.0/33]
peers:
- peer-address: 10.0.0.1
  peer-asn: 0
  my-asn: 1
  hold-time: 2s
bfd-profiles:
- name: x
  minimum-ttl: 0
";
    let err: ConfigErrors = parse_config(text).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "address-pools[0].addresses[0] (line 4): \"10.0.0.0/33\" is not a valid CIDR or range: \
         prefix length 33 is more than 32\n\
         peers[0].peer-asn (line 7): must not be 0 (an AS number is 1 to 4294967295)\n\
         peers[0].hold-time (line 9): 2s is not allowed: must be 0 or at least 3s\n\
         bfd-profiles[0].minimum-ttl (line 12): 0 is out of range: must be 1 to 254"
    );
}

#[test]
fn invalid_definitions_are_reported_once_not_again_at_each_use() {
    let text = "\
bgp-communities:
  bad: 1:x
bfd-profiles:
- name: slow
  receive-interval: 5
- name: slow
peers:
- peer-address: 10.0.0.1
  peer-asn: 1
  my-asn: 2
  bfd-profile: slow
address-pools:
- name: a
  protocol: bgp
  addresses: [10.0.0.0/24]
  bgp-advertisements:
  - communities: [bad]
";
    assert_eq!(
        errors(text),
        vec![
            "bgp-communities.bad (line 2): \"1:x\" is not a valid community: second part \"x\" is \
             not a number from 0 to 65535",
            "bfd-profiles[0].receive-interval (line 5): 5 is out of range: must be 10 to 60000 \
             (milliseconds)",
            "bfd-profiles[1].name (line 6): duplicate BFD profile name \"slow\" (also \
             bfd-profiles[0])",
        ]
    );
}

#[test]
fn weight_by_endpoints_must_be_a_boolean() {
    assert_eq!(
        one_error(&pool_with(
            "  bgp-advertisements:\n  - ferrolb-weight-by-endpoints: \"yes\"\n"
        )),
        "address-pools[0].bgp-advertisements[0].ferrolb-weight-by-endpoints (line 6): \
         expected true or false, found the string \"yes\""
    );
}

#[test]
fn graceful_restart_time_out_of_range() {
    assert_eq!(
        one_error(&peer_with("  ferrolb-graceful-restart-time: 0s\n")),
        "peers[0].ferrolb-graceful-restart-time (line 5): 0s keeps nothing: turn graceful \
         restart off instead"
    );
    assert_eq!(
        one_error(&peer_with("  ferrolb-graceful-restart-time: 2h\n")),
        "peers[0].ferrolb-graceful-restart-time (line 5): 7200s is more than 4095s, the largest \
         restart time BGP can carry"
    );
    assert_eq!(
        one_error(&peer_with("  ferrolb-graceful-restart: 1\n")),
        "peers[0].ferrolb-graceful-restart (line 5): expected true or false, found the number 1"
    );
}
