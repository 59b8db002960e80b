//! Helpers for the end-to-end tests (`tests/tests/e2e_*.rs`): the real binaries and a lab
//! spec with names unique to the run.
//!
//! Binaries: `$FERROLB_BIN_DIR` if set, else the test executable's profile directory
//! (`target/debug/deps/e2e_x` -> `target/debug`). Cargo only builds the binaries of the
//! package under test, so the first call runs `cargo build -p ferrolb-lab -p
//! ferrolb-controller -p ferrolb-speaker` (same profile) once per test process; cargo makes
//! that a no-op when they are fresh. Set `FERROLB_E2E_NO_BUILD=1` to skip it (CI builds them
//! in an earlier step).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};

use crate::netlab::{Bins, LabSpec};

static BIN_DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();

fn locate_and_build() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("FERROLB_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| anyhow!("test executable has no directory"))?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    if std::env::var_os("FERROLB_E2E_NO_BUILD").is_none() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut c = Command::new(cargo);
        c.args([
            "build",
            "-q",
            "-p",
            "ferrolb-lab",
            "-p",
            "ferrolb-controller",
            "-p",
            "ferrolb-speaker",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            c.arg("--release");
        }
        if let Some(target) = dir.parent() {
            c.env("CARGO_TARGET_DIR", target);
        }
        let st = c
            .status()
            .context("running cargo build for the lab binaries")?;
        if !st.success() {
            bail!("cargo build of ferrolb-lab/controller/speaker failed ({st})");
        }
    }
    Bins::in_dir(&dir).check()?;
    Ok(dir)
}

/// The directory with the three binaries (built on first use, see the module docs).
pub fn bin_dir() -> Result<PathBuf> {
    BIN_DIR
        .get_or_init(|| locate_and_build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// A seed-lab spec with a unique prefix (`flb-{pid}-{sfx}`, so `cleanup_stale("flb")`
/// removes it if this process dies) and state in the temp directory. Removes stale labs of
/// dead test processes first.
pub fn spec() -> Result<LabSpec> {
    let _ = ferrolb_netns::cleanup_stale("flb");
    let root = std::env::temp_dir().join("ferrolb-e2e");
    remove_stale_state(&root);
    let prefix = ferrolb_netns::unique_name("flb")?;
    let state = root.join(&prefix);
    Ok(LabSpec::seed(&prefix, state, Bins::in_dir(&bin_dir()?)))
}

/// A seed-lab spec with `router`, or `None` after saying why the test is skipped: not
/// root, or the router's binaries missing.
pub fn spec_with_router(router: crate::router::RouterKind) -> Option<LabSpec> {
    if let Err(skip) = ferrolb_netns::require_root() {
        eprintln!("{skip}");
        return None;
    }
    let missing = router.missing();
    if !missing.is_empty() {
        eprintln!("skipping {router:?}: {missing:?} not installed");
        return None;
    }
    let mut spec = spec().expect("lab spec (binaries)");
    spec.router = router;
    Some(spec)
}

/// `ip/32`.
pub fn host(ip: std::net::Ipv4Addr) -> ipnet::IpNet {
    ipnet::IpNet::V4(ipnet::Ipv4Net::from(ip))
}

/// The IPv4 addresses of nodes `ns` (the next hops the router should have).
pub fn node_ips(ns: &[u8]) -> Vec<std::net::IpAddr> {
    ns.iter()
        .map(|n| std::net::IpAddr::V4(crate::topology::addr::node(*n)))
        .collect()
}

/// Waits until the seed lab is serving: the three nodes' sessions, the demo Service's
/// EXTERNAL-IP, and its /32 with the three nodes as ECMP next hops (RIB and FIB).
/// Returns the IP; panics with what is missing.
pub fn seed_ready(lab: &crate::netlab::NetLab) -> std::net::Ipv4Addr {
    use std::time::Duration;
    lab.wait_sessions(3, Duration::from_secs(30))
        .expect("3 BGP sessions");
    let ip = lab
        .wait_service_ip(Duration::from_secs(20))
        .expect("EXTERNAL-IP");
    let hops = lab
        .wait_paths(host(ip), 3, Duration::from_secs(20))
        .expect("three ECMP paths");
    assert_eq!(hops, node_ips(&[1, 2, 3]));
    ip
}

/// The seed ConfigMap's configuration with a short hold time (for the silent-node test).
pub fn config_with_hold_time(secs: u32) -> String {
    format!(
        "peers:\n- peer-address: 172.17.0.1\n  peer-asn: 64512\n  my-asn: 64522\n  hold-time: {secs}s\n\
         address-pools:\n- name: default\n  protocol: bgp\n  avoid-buggy-ips: true\n  addresses:\n  - 172.17.254.0/24\n"
    )
}

/// Removes state directories of test labs whose owning process is gone (a killed run).
fn remove_stale_state(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if ferrolb_netns::owner_pid("flb", &name).is_some_and(|p| !crate::procs::pid_alive(p)) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
