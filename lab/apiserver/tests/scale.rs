//! 10,000 Services created and status-patched with several watchers running.
//!
//! Prints timings: `cargo test --release -p ferrolb-apiserver --test scale -- --nocapture`.
//! `FERROLB_SCALE_WATCHERS` sets the number of watchers (default 3).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

/// Number of Services: `FERROLB_SCALE_N`, default 10,000 in release builds and 1,000 in
/// debug builds (where the unoptimized typed kube client dominates the time).
fn n() -> usize {
    let default = if cfg!(debug_assertions) {
        1_000
    } else {
        10_000
    };
    std::env::var("FERROLB_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
const WRITERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_services_with_watchers() -> anyhow::Result<()> {
    #[allow(non_snake_case)]
    let N = n();
    #[allow(non_snake_case)]
    let WATCHERS: usize = std::env::var("FERROLB_SCALE_WATCHERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (_server, client) = common::start().await?;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");

    // Watchers mirror name -> has-ingress, like the controller/speaker caches would.
    let mut mirrors = Vec::new();
    for _ in 0..WATCHERS {
        let all: Api<Service> = Api::all(client.clone());
        let (tx, rx) = tokio::sync::watch::channel((0usize, 0usize));
        tokio::spawn(async move {
            let mut state: BTreeMap<String, bool> = BTreeMap::new();
            let mut s = watcher(all, watcher::Config::default()).boxed();
            while let Some(ev) = s.next().await {
                match ev {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        let has = o
                            .status
                            .as_ref()
                            .and_then(|s| s.load_balancer.as_ref())
                            .and_then(|l| l.ingress.as_ref())
                            .is_some_and(|i| !i.is_empty());
                        state.insert(o.name_any(), has);
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        state.remove(&o.name_any());
                    }
                    _ => {}
                }
                let _ = tx.send((state.len(), state.values().filter(|v| **v).count()));
            }
        });
        mirrors.push(rx);
    }

    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..N).step_by(WRITERS) {
                let s: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{i}"), "labels": {"app": format!("a{}", i % 10)}},
                    "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
                }))?;
                api.create(&PostParams::default(), &s).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let created = t0.elapsed();

    let t1 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..N).step_by(WRITERS) {
                let p = json!({"status": {"loadBalancer": {"ingress": [{"ip": format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)}]}}});
                api.patch_status(&format!("svc-{i}"), &PatchParams::default(), &Patch::Merge(&p)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let patched = t1.elapsed();

    // Server side only: the raw JSON list, not deserialized into typed objects.
    let t2 = Instant::now();
    let raw = client
        .request_text(http::Request::get("/api/v1/namespaces/default/services").body(Vec::new())?)
        .await?;
    let listed = t2.elapsed();
    let raw_mb = raw.len() as f64 / 1e6;
    let t5 = Instant::now();
    let list = api.list(&ListParams::default()).await?;
    let listed_typed = t5.elapsed();
    assert_eq!(list.items.len(), N);
    let t3 = Instant::now();
    let sel = api.list(&ListParams::default().labels("app=a3")).await?;
    let listed_sel = t3.elapsed();
    assert_eq!(sel.items.len(), N / 10);

    let t4 = Instant::now();
    for rx in &mut mirrors {
        tokio::time::timeout(
            Duration::from_secs(120),
            rx.wait_for(|(n, with)| *n == N && *with == N),
        )
        .await??;
    }
    let caught_up = t4.elapsed();
    println!(
        "create {N}: {created:?} ({:.0}/s), patch_status {N}: {patched:?} ({:.0}/s), raw list {N} ({raw_mb:.1} MB): {listed:?}, \
         typed list: {listed_typed:?}, list with selector: {listed_sel:?}, {WATCHERS} watchers caught up {caught_up:?} after the last write",
        N as f64 / created.as_secs_f64(),
        N as f64 / patched.as_secs_f64()
    );
    // Release: 10,000 Services well under a second on a shared 2-core box; debug builds
    // get a generous per-object budget.
    let per_object = if cfg!(debug_assertions) {
        Duration::from_millis(3)
    } else {
        Duration::from_micros(100)
    };
    let budget = per_object * u32::try_from(N)?;
    assert!(
        listed < budget,
        "listing {N} took {listed:?} (budget {budget:?})"
    );
    Ok(())
}
