//! ConfigMap manifests: choosing the ConfigMap, file-relative lines, and the check report.

use ferrolb_config::{Line, check_config_file, check_config_text, parse_configmap_manifest};

const OTHER_DOCS: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: metallb-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: unrelated
data:
  config: |
    not: metallb
---
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: a
      protocol: layer2
      addresses: [10.0.0.0/33]
";

#[test]
fn picks_the_configmap_named_config_and_reports_file_lines() {
    let errs = parse_configmap_manifest(OTHER_DOCS).expect_err("invalid pool");
    assert_eq!(
        errs.lines(),
        vec![
            "address-pools[0].addresses[0] (line 24): \"10.0.0.0/33\" is not a valid CIDR or \
             range: prefix length 33 is more than 32"
        ]
    );
    assert_eq!(errs.errors[0].line, Line::At(24));
}

#[test]
fn falls_back_to_the_first_configmap() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: metallb-config\ndata:\n  \
                config: |\n    peers: []\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  \
                name: second\ndata:\n  config: |\n    bogus: 1\n";
    let parsed = parse_configmap_manifest(text).expect("first ConfigMap is valid");
    assert!(parsed.config.peers.is_empty());
}

#[test]
fn finds_configmaps_inside_a_list() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  \
                metadata: {name: config}\n  data:\n    config: |\n      address-pools:\n      \
                - name: a\n        protocol: layer2\n        addresses: [10.1.0.0/16]\n";
    let parsed = parse_configmap_manifest(text).expect("valid");
    assert_eq!(parsed.config.pools[0].name, "a");
}

#[test]
fn block_indicators_with_chomping_keep_file_lines() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: |-  \
                # comment\n\n    peers:\n    - peer-address: 10.0.0.1\n      peer-asn: 0\n      \
                my-asn: 1\n";
    let errs = parse_configmap_manifest(text).expect_err("asn 0");
    assert_eq!(
        errs.lines(),
        vec!["peers[0].peer-asn (line 9): must not be 0 (an AS number is 1 to 4294967295)"]
    );
}

#[test]
fn quoted_config_reports_lines_of_data_config() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: \
                \"peers:\\n- peer-address: 10.0.0.1\\n  peer-asn: 0\\n  my-asn: 1\\n\"\n";
    let errs = parse_configmap_manifest(text).expect_err("asn 0");
    assert_eq!(errs.errors[0].line, Line::InDataConfig(3));
    assert_eq!(
        errs.lines(),
        vec![
            "peers[0].peer-asn (line 3 of data.config): must not be 0 (an AS number is 1 to \
             4294967295)"
        ]
    );
}

#[test]
fn yaml_error_inside_the_block_is_located_in_the_file() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: |\n    \
                peers:\n    - peer-address: [10.0.0.1\n      peer-asn: 1\n";
    let errs = parse_configmap_manifest(text).expect_err("bad yaml");
    assert_eq!(
        errs.lines(),
        vec!["<document> (line 8): invalid YAML: illegal placement of ':' indicator"]
    );
}

#[test]
fn manifest_level_problems() {
    let errs = parse_configmap_manifest("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n")
        .expect_err("no ConfigMap");
    assert_eq!(
        errs.lines(),
        vec![
            "<document> (line 1): no ConfigMap found (expected a document with kind: ConfigMap \
             and data.config)"
        ]
    );
    let errs = parse_configmap_manifest(
        "apiVersion: v2\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config:\n    \
         peers: []\n",
    )
    .expect_err("bad apiVersion and config not a string");
    assert_eq!(
        errs.lines(),
        vec![
            "apiVersion (line 1): a ConfigMap has apiVersion v1, found the string \"v2\"",
            "data.config (line 6): expected the configuration as a string (write `config: |` \
             and indent the document under it), found a mapping",
        ]
    );
}

#[test]
fn configmap_without_config_is_an_empty_config_with_a_warning() {
    let parsed = parse_configmap_manifest(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  other: x\n",
    )
    .expect("valid, empty");
    assert!(parsed.config.pools.is_empty());
    assert_eq!(
        parsed
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "data.config (line 5): the ConfigMap has no data.config (data has: other); MetalLB \
             treats that as an empty configuration (no peers, no pools)"
        ]
    );
}

#[test]
fn check_report_for_bare_config_and_manifest() {
    let (report, ok) = check_config_text(
        "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n  peer-port: 0\n\
         address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/30]\n\
         - name: b\n  protocol: layer2\n  addresses: ['2001:db8::/126', 10.0.1.0-10.0.1.9]\n",
    );
    assert!(ok);
    assert_eq!(
        report,
        "OK: 1 peers, 2 pools (a: bgp, 4 addresses; b: layer2, 14 addresses)\n\
         warning: peers[0].peer-port (line 5): 0 means the default port, 179 (as in MetalLB)\n"
    );
    let (report, ok) = check_config_text(OTHER_DOCS);
    assert!(!ok);
    assert_eq!(
        report,
        "error: address-pools[0].addresses[0] (line 24): \"10.0.0.0/33\" is not a valid CIDR or \
         range: prefix length 33 is more than 32\n"
    );
    let (report, ok) = check_config_text("");
    assert!(ok);
    assert_eq!(report, "OK: 0 peers, 0 pools\n");
}

#[test]
fn check_report_for_unreadable_file() {
    let (report, ok) = check_config_file("/nonexistent/ferrolb-config.yaml");
    assert!(!ok);
    assert!(
        report.starts_with("error: cannot read /nonexistent/ferrolb-config.yaml: "),
        "{report}"
    );
    assert_eq!(report.lines().count(), 1);
}
