//! The announce-side benchmark (`bgp/bench/run.py`) still runs and still measures: one
//! small run of ferrolb, gobgpd and BIRD into a receiving gobgpd, checked for a complete
//! table whose numbers are consistent. The published numbers (bgp/README.md) come from
//! this script, so a change that breaks it must fail CI rather than surface at the next
//! benchmark. Needs root, gobgpd, BIRD and Debian's python3-grpcio (scripts/test-all.sh
//! installs them).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";
const N: u32 = 200;

/// One row of the script's result table.
#[derive(Debug)]
struct Row {
    sender: String,
    n: u32,
    announce: f64,
    announce_wire: f64,
    withdraw: f64,
    withdraw_wire: f64,
    rss_mib: f64,
}

fn parse_rows(out: &str) -> Vec<Row> {
    out.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| sender"))
        .filter_map(|l| {
            let c: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let f = |i: usize| c.get(i)?.parse::<f64>().ok();
            Some(Row {
                sender: c.first()?.to_string(),
                n: c.get(1)?.parse().ok()?,
                announce: f(2)?,
                announce_wire: f(5)?,
                withdraw: f(6)?,
                withdraw_wire: f(9)?,
                rss_mib: f(10)?,
            })
        })
        .collect()
}

fn usable() -> Result<(), String> {
    ferrolb_netns::require_root().map_err(|skip| skip.0)?;
    for tool in ["gobgpd", "gobgp", "bird", "birdc"] {
        ferrolb_netns::check_binary(tool)
            .map_err(|e| format!("{e} (apt-get install gobgpd bird2)"))?;
    }
    let grpc = Command::new(PYTHON)
        .args(["-c", "import grpc"])
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("{PYTHON}: {e}"))?;
    if !grpc.success() {
        return Err("python3-grpcio not installed (apt-get install python3-grpcio)".into());
    }
    Ok(())
}

#[test]
fn benchmark_script_measures_all_three_senders() {
    if let Err(why) = usable() {
        eprintln!("SKIP benchmark_script_measures_all_three_senders: {why}");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/run.py");
    let mut child = Command::new(PYTHON)
        .arg(&script)
        .args(["--binary", env!("CARGO_BIN_EXE_ferrolb-bgp-bench")])
        .args(["--sizes", &N.to_string(), "--runs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start run.py");
    // run.py names its namespaces after its own pid: flbb-<pid>-rx/tx.
    let namespaces = format!("flbb-{}-", child.id());
    // run.py removes its namespaces on SIGTERM; only a stuck script gets SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(240);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            std::thread::sleep(Duration::from_secs(10));
            let _ = child.kill();
            panic!("run.py did not finish within 240 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run.py failed:\n{stdout}\n{stderr}");
    assert!(
        !stdout.contains("receiver ahead of the wire"),
        "the two observers disagree:\n{stdout}"
    );

    let rows = parse_rows(&stdout);
    let mut senders: Vec<&str> = rows.iter().map(|r| r.sender.as_str()).collect();
    senders.sort_unstable();
    assert_eq!(senders, ["bird", "ferrolb", "gobgpd"], "table:\n{stdout}");
    for r in &rows {
        assert_eq!(r.n, N, "{r:?}");
        // The receiver cannot hold routes before they reached it, and every phase takes
        // some time (BIRD holds its table back for about 3 s).
        assert!(
            r.announce > 0.0 && r.announce_wire <= r.announce,
            "{r:?}\n{stdout}"
        );
        assert!(
            r.withdraw > 0.0 && r.withdraw_wire <= r.withdraw,
            "{r:?}\n{stdout}"
        );
        assert!(r.rss_mib > 0.5, "peak RSS read from /proc: {r:?}");
    }
    let bird = rows.iter().find(|r| r.sender == "bird").expect("bird row");
    assert!(
        bird.announce_wire > 1.0,
        "BIRD's settle timer is visible on the wire: {bird:?}"
    );
    let ns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns");
    let left = String::from_utf8_lossy(&ns.stdout);
    assert!(
        !left.contains(&namespaces),
        "run.py left namespaces behind: {left}"
    );
}
