//! Leader election: two replicas never both write; the standby takes over when the leader
//! dies; a graceful shutdown releases the Lease at once.

mod k8s_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrolb_controller::Running;
use ferrolb_controller::leader::Timing;
use ferrolb_kubeapi::TestApi;
use k8s_support::*;
use serde_json::json;

const LEASE: &str = "ferrolb-controller";

fn updates(r: &Running) -> f64 {
    metric(&r.metrics().encode(), "metallb_k8s_client_updates_total").unwrap_or(0.0)
}

/// Sample both replicas every 10 ms; flag if both ever claim leadership at once.
fn watch_for_split_brain(
    a: &Arc<Running>,
    b: &Arc<Running>,
) -> (
    Arc<AtomicBool>,
    Arc<AtomicBool>,
    tokio::task::JoinHandle<()>,
) {
    let both = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (a, b, both2, stop2) = (a.clone(), b.clone(), both.clone(), stop.clone());
    let task = tokio::spawn(async move {
        while !stop2.load(Ordering::Relaxed) {
            if a.is_leader() && b.is_leader() {
                both2.store(true, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    (both, stop, task)
}

async fn two_replicas_never_both_write_and_failover_works(api: TestApi) {
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("p", "10.80.0.0/24")])).await;
    let a = Arc::new(start_controller(&lab, "replica-a").await);
    let b = Arc::new(start_controller(&lab, "replica-b").await);
    let (split, stop, sampler) = watch_for_split_brain(&a, &b);

    let holder = wait_for(Duration::from_secs(10), || async {
        lab.lease_holder(LEASE).await
    })
    .await
    .expect("someone leads");
    let (leader, standby) = if holder == "replica-a" {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(leader.identity(), holder);

    for i in 0..20 {
        lab.create_service(lb_service(&format!("s{i}"), 80, json!({})))
            .await;
    }
    for i in 0..20 {
        lab.wait_ips(&format!("s{i}"), 1).await;
    }
    let counted = wait_for(Duration::from_secs(5), || async {
        (updates(&leader) > 0.0).then_some(())
    })
    .await;
    assert!(counted.is_some(), "the leader did not write");
    assert_eq!(updates(&standby), 0.0, "the standby wrote");
    assert!(standby.is_ready(), "a standby reports ready");

    // The leader crashes (no release): the standby takes over after the lease expires.
    // The sampler keeps running: the crashed replica's handle must also stop claiming
    // leadership (its last renewal ages out) before the standby takes over.
    let crashed_at = Instant::now();
    leader.abort();
    let took = wait_for(Duration::from_secs(15), || async {
        standby.is_leader().then_some(crashed_at.elapsed())
    })
    .await
    .expect("standby took over");
    // 3 s lease + at most a couple of 430 ms polls.
    assert!(
        took >= Duration::from_secs(2),
        "took over too early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(6),
        "took over too late: {took:?}"
    );
    assert_eq!(
        lab.lease_holder(LEASE).await.as_deref(),
        Some(standby.identity())
    );

    lab.create_service(lb_service("after", 80, json!({}))).await;
    lab.wait_ips("after", 1).await;
    // The counter moves when the controller has seen its write complete, a moment after
    // the server applied it.
    let counted = wait_for(Duration::from_secs(5), || async {
        (updates(&standby) > 0.0).then_some(())
    })
    .await;
    assert!(counted.is_some(), "the new leader did not write");
    // No IP moved in the handover.
    let all = all_ips(&lab).await;
    let mut seen = std::collections::BTreeSet::new();
    for ips in all.values() {
        assert_eq!(ips.len(), 1);
        assert!(seen.insert(ips[0].clone()), "duplicate {}", ips[0]);
    }
    stop.store(true, Ordering::Relaxed);
    sampler.await.expect("sampler");
    assert!(
        !split.load(Ordering::Relaxed),
        "both replicas were leader at once"
    );
    assert!(!leader.is_leader());
    drop(leader);
    let standby = Arc::try_unwrap(standby).unwrap_or_else(|_| panic!("still shared"));
    standby.shutdown().await;
}

async fn graceful_shutdown_releases_the_lease_for_a_fast_handover(api: TestApi) {
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("p", "10.81.0.0/24")])).await;
    let first = start_controller(&lab, "first").await;
    let held = wait_for(Duration::from_secs(10), || async {
        (lab.lease_holder(LEASE).await.as_deref() == Some("first")).then_some(())
    })
    .await;
    assert!(held.is_some());
    // A standby with a long lease: it can only take over quickly if the lease was released.
    let mut opts = options("second");
    opts.leader = Timing {
        lease_duration: Duration::from_secs(30),
        renew_deadline: Duration::from_secs(20),
        retry: Duration::from_millis(300),
    };
    let second = ferrolb_controller::start(opts, lab.config().await)
        .await
        .expect("start second");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!second.is_leader());

    let t = Instant::now();
    first.shutdown().await;
    let lease = lab
        .leases()
        .get(LEASE)
        .await
        .expect("lease")
        .spec
        .expect("spec");
    assert!(
        lease.holder_identity.as_deref().unwrap_or("").is_empty()
            || lease.holder_identity.as_deref() == Some("second"),
        "lease not released: {lease:?}"
    );
    let took = wait_for(Duration::from_secs(5), || async {
        second.is_leader().then_some(t.elapsed())
    })
    .await
    .expect("second took over");
    assert!(took < Duration::from_secs(3), "{took:?}");
    lab.create_service(lb_service("x", 80, json!({}))).await;
    lab.wait_ips("x", 1).await;
    second.shutdown().await;
}

/// With the production timing (15 s lease) a crashed leader is replaced in about 15 s.
async fn default_timing_takeover_within_about_15s(api: TestApi) {
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("p", "10.82.0.0/24")])).await;
    let mut oa = options("slow-a");
    oa.leader = Timing::default();
    let a = ferrolb_controller::start(oa, lab.config().await)
        .await
        .expect("a");
    let held = wait_for(Duration::from_secs(10), || async {
        (lab.lease_holder(LEASE).await.as_deref() == Some("slow-a")).then_some(())
    })
    .await;
    assert!(held.is_some());
    let mut ob = options("slow-b");
    ob.leader = Timing::default();
    let b = ferrolb_controller::start(ob, lab.config().await)
        .await
        .expect("b");
    // Let b observe the lease record for a while (as a long-running standby would).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!b.is_leader());
    let t = Instant::now();
    a.abort();
    let took = wait_for(Duration::from_secs(25), || async {
        b.is_leader().then_some(t.elapsed())
    })
    .await
    .expect("b took over");
    assert!(took <= Duration::from_secs(18), "takeover took {took:?}");
    b.shutdown().await;
}

ferrolb_kubeapi::on_both_servers!(
    two_replicas_never_both_write_and_failover_works,
    graceful_shutdown_releases_the_lease_for_a_fast_handover,
    default_timing_takeover_within_about_15s,
);
