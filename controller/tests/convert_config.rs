//! `ferrolb-controller convert-config FILE`, the binary: a real MetalLB 0.12 ConfigMap in,
//! the custom resources out (read back to the ConfigMap's model), errors on stderr.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb-controller");

#[test]
fn converts_a_real_configmap_and_refuses_a_bad_one() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/tests/data/metallb-website-bgp-advertisements.yaml"
    );
    let out = Command::new(BIN)
        .args(["convert-config", file])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    let (resources, _) = ferrolb_crds::resources::parse_resources(&yaml).expect("CRs read back");
    let from_crs = ferrolb_crds::to_model::to_config(&resources)
        .expect("accepted")
        .config;
    let text = std::fs::read_to_string(file).expect("fixture");
    let direct = ferrolb_config::parse_config_text(&text)
        .expect("valid")
        .config;
    assert_eq!(from_crs.pools, direct.pools);
    assert_eq!(from_crs.communities, direct.communities);
    assert_eq!(resources.bgp_advertisements.len(), 2, "{yaml}");

    let bad = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/tests/data/metallb-tutorial-4.yaml"
    );
    let out = Command::new(BIN)
        .args(["convert-config", bad])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .all(|l| l.starts_with("error: ") || l.starts_with("warning: ")),
        "{err}"
    );
    assert!(err.contains("did you mean \"addresses\""), "{err}");
}
