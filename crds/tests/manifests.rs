//! `manifests/crds/` is exactly what the types generate; fails when it is stale. Fix with
//! `cargo run -p ferrolb-crds --bin ferrolb-crd-manifests -- manifests/crds`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds")
}

#[test]
fn manifests_in_the_repo_are_the_generated_ones() {
    let want: BTreeMap<String, String> = ferrolb_crds::manifests::files().into_iter().collect();
    let mut have = BTreeMap::new();
    for e in std::fs::read_dir(dir()).expect("manifests/crds exists") {
        let e = e.expect("dir entry");
        let name = e.file_name().to_string_lossy().into_owned();
        have.insert(name, std::fs::read_to_string(e.path()).expect("readable"));
    }
    let stale: std::collections::BTreeSet<&String> = want
        .keys()
        .chain(have.keys())
        .filter(|n| want.get(*n) != have.get(*n))
        .collect();
    assert!(
        stale.is_empty(),
        "manifests/crds is stale ({stale:?}); regenerate with \
         `cargo run -p ferrolb-crds --bin ferrolb-crd-manifests -- manifests/crds`"
    );
}

/// What a reader of the manifests relies on, checked on the parsed YAML (so a change in the
/// renderer cannot hide a change in the schema).
#[test]
fn schemas_carry_metallbs_names_defaults_and_rules() {
    let read = |file: &str| -> Value {
        let text = std::fs::read_to_string(dir().join(file)).expect("file");
        serde_saphyr::from_str(&text).expect("YAML")
    };
    let pools = read("metallb.io_ipaddresspools.yaml");
    let v = &pools["spec"]["versions"][0];
    assert_eq!(v["name"], "v1beta1");
    assert_eq!(v["subresources"]["status"], serde_json::json!({}));
    let root = &v["schema"]["openAPIV3Schema"];
    assert_eq!(root["required"], serde_json::json!(["spec"]));
    let spec = &root["properties"]["spec"];
    assert_eq!(spec["required"], serde_json::json!(["addresses"]));
    assert_eq!(spec["properties"]["autoAssign"]["default"], true);
    assert_eq!(spec["properties"]["avoidBuggyIPs"]["default"], false);
    let alloc = &spec["properties"]["serviceAllocation"]["properties"];
    for key in [
        "priority",
        "namespaces",
        "namespaceSelectors",
        "serviceSelectors",
    ] {
        assert!(alloc.get(key).is_some(), "serviceAllocation.{key}");
    }
    let status = &root["properties"]["status"];
    assert_eq!(
        status["required"],
        serde_json::json!([
            "assignedIPv4",
            "assignedIPv6",
            "availableIPv4",
            "availableIPv6"
        ])
    );
    assert!(!serde_json::to_string(&pools).unwrap().contains("nullable"));

    let ads = read("metallb.io_bgpadvertisements.yaml");
    let root = &ads["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert!(
        root.get("required").is_none(),
        "MetalLB does not require a spec"
    );
    let p = &root["properties"]["spec"]["properties"];
    assert_eq!(p["aggregationLength"]["default"], 32);
    assert_eq!(p["aggregationLength"]["minimum"], 1);
    assert_eq!(p["aggregationLengthV6"]["default"], 128);
    for key in [
        "localPref",
        "communities",
        "ipAddressPools",
        "ipAddressPoolSelectors",
        "nodeSelectors",
        "peers",
    ] {
        assert!(p.get(key).is_some(), "BGPAdvertisement spec.{key}");
    }

    let peers = read("metallb.io_bgppeers.yaml");
    let v = &peers["spec"]["versions"][0];
    assert_eq!(v["name"], "v1beta2");
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["required"], serde_json::json!(["myASN"]));
    let p = &spec["properties"];
    assert_eq!(p["peerPort"]["default"], 179);
    assert_eq!(p["peerPort"]["minimum"], 1);
    assert_eq!(p["peerPort"]["maximum"], 16384);
    assert_eq!(p["myASN"]["maximum"], 4294967295u64);
    assert_eq!(
        p["dynamicASN"]["enum"],
        serde_json::json!(["internal", "external"])
    );
    assert_eq!(
        p["enableGracefulRestart"]["x-kubernetes-validations"][0]["rule"],
        "self == oldSelf"
    );
    assert_eq!(
        p["connectTime"]["x-kubernetes-validations"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    for key in [
        "peerASN",
        "peerAddress",
        "sourceAddress",
        "holdTime",
        "keepaliveTime",
        "routerID",
        "nodeSelectors",
        "password",
        "passwordSecret",
        "bfdProfile",
        "ebgpMultiHop",
        "vrf",
        "interface",
        "disableMP",
        "dualStackAddressFamily",
    ] {
        assert!(p.get(key).is_some(), "BGPPeer spec.{key}");
    }

    let bfd = read("metallb.io_bfdprofiles.yaml");
    let p = &bfd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(
        (
            p["detectMultiplier"]["minimum"].clone(),
            p["detectMultiplier"]["maximum"].clone()
        ),
        (2.into(), 255.into())
    );
    assert_eq!(p["minimumTtl"]["maximum"], 254);
}
