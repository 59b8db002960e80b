//! Parsing arbitrary input never panics; it returns a config or located errors.

use ferrolb_config::{check_config_text, parse_config, parse_configmap_manifest};
use proptest::prelude::*;

/// YAML-ish fragments, so generated inputs reach deep into the schema and not only the
/// YAML parser's error paths.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("peers:\n".to_string()),
        Just("address-pools:\n".to_string()),
        Just("bgp-communities:\n".to_string()),
        Just("bfd-profiles:\n".to_string()),
        Just("- ".to_string()),
        Just("  ".to_string()),
        Just("\n".to_string()),
        Just("peer-address: ".to_string()),
        Just("peer-asn: ".to_string()),
        Just("my-asn: ".to_string()),
        Just("hold-time: ".to_string()),
        Just("keepalive-time: ".to_string()),
        Just("name: ".to_string()),
        Just("protocol: ".to_string()),
        Just("addresses: ".to_string()),
        Just("bgp-advertisements:\n".to_string()),
        Just("aggregation-length: ".to_string()),
        Just("communities: ".to_string()),
        Just("node-selectors:\n".to_string()),
        Just("match-expressions:\n".to_string()),
        Just("operator: ".to_string()),
        Just("values: ".to_string()),
        Just("config: |\n".to_string()),
        Just("kind: ConfigMap\n".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: ".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(", ".to_string()),
        Just("\"".to_string()),
        "[0-9]{1,12}".prop_map(|s| s),
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,3})?".prop_map(|s| s),
        "[0-9a-f:]{2,20}(/[0-9]{1,3})?".prop_map(|s| s),
        "-?[0-9]{1,6}(\\.[0-9]{1,3})?(ns|us|ms|s|m|h|x)?".prop_map(|s| s),
        "[a-zA-Z:_\\-]{1,12}".prop_map(|s| s),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn yamlish_input_never_panics(parts in prop::collection::vec(fragment(), 0..60)) {
        let text: String = parts.concat();
        let config = parse_config(&text);
        let _ = parse_configmap_manifest(&text);
        let (report, ok) = check_config_text(&text);
        prop_assert!(report.ends_with('\n'));
        if let Err(errs) = config {
            prop_assert!(!errs.errors.is_empty());
        }
        let _ = ok;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = parse_config(&text);
        let _ = parse_configmap_manifest(&text);
        let (report, _) = check_config_text(&text);
        prop_assert!(report.ends_with('\n'));
    }

    #[test]
    fn addresses_are_accepted_or_rejected_cleanly(entry in "[ 0-9a-f.:/\\-]{0,40}") {
        let text = format!("address-pools:\n- name: a\n  protocol: bgp\n  addresses: [\"{entry}\"]\n");
        match parse_config(&text) {
            Ok(p) => {
                let r = p.config.pools[0].addresses[0];
                prop_assert!(r.start <= r.end);
                prop_assert_eq!(r.start.is_ipv4(), r.end.is_ipv4());
            }
            Err(e) => prop_assert!(e.errors[0].to_string().starts_with("address-pools[0].addresses")),
        }
    }
}
