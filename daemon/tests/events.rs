//! The one Event writer of both daemons against both API servers: repeats become one
//! Event with a count (also while queued), similar messages are combined after ten, a full
//! queue drops and counts, and the User-Agent/field manager name the component.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferrolb_daemon::Identity;
use ferrolb_daemon::events::{self, EventSink, EventSpec, Options, Regarding, Severity, Source};
use ferrolb_kubeapi::TestApi;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use tokio_util::sync::CancellationToken;

const ID: Identity = Identity {
    component: "ferrolb-test",
    instance: String::new(),
};

fn source() -> Source {
    Source {
        component: "metallb-controller",
        host: None,
        instance: "test-1".into(),
    }
}

fn spec(name: &str, reason: &'static str, message: &str) -> EventSpec {
    EventSpec {
        regarding: Regarding {
            kind: "Service",
            namespace: "default".into(),
            name: name.into(),
            uid: None,
        },
        severity: Severity::Normal,
        reason,
        message: message.into(),
    }
}

async fn writer(
    api: &TestApi,
    gate: Option<Arc<AtomicUsize>>,
    max_pending: usize,
) -> (EventSink, kube::Client, CancellationToken) {
    let client = ferrolb_daemon::client::client(api.admin_config().await, &ID).expect("client");
    let mut opts = Options::new(source(), ID.field_manager());
    opts.gate = gate;
    opts.max_pending = max_pending;
    let cancel = CancellationToken::new();
    let (sink, _task) = events::spawn(client.clone(), opts, cancel.clone());
    (sink, client, cancel)
}

/// Events about `name`, as (message, count), sorted.
async fn events_of(client: &kube::Client, name: &str) -> Vec<(String, i32)> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let mut v: Vec<(String, i32)> = api
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.message.unwrap_or_default(), e.count.unwrap_or(0)))
        .collect();
    v.sort();
    v
}

async fn wait_for_events(client: &kube::Client, name: &str, want: &[(String, i32)]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = events_of(client, name).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "events of {name}: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn repeats_are_counted_in_one_event(api: TestApi) {
    let (sink, client, _c) = writer(&api, None, 100).await;
    sink.publish(spec("web", "IPAllocated", "Assigned IP [\"10.0.0.1\"]"));
    wait_for_events(&client, "web", &[("Assigned IP [\"10.0.0.1\"]".into(), 1)]).await;
    // Written: the next ones patch its count.
    sink.publish(spec("web", "IPAllocated", "Assigned IP [\"10.0.0.1\"]"));
    sink.publish(spec("web", "IPAllocated", "Assigned IP [\"10.0.0.1\"]"));
    wait_for_events(&client, "web", &[("Assigned IP [\"10.0.0.1\"]".into(), 3)]).await;
    let api_ev: Api<Event> = Api::namespaced(client.clone(), "default");
    let e = api_ev
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|e| e.involved_object.name.as_deref() == Some("web"))
        .unwrap();
    assert_eq!(
        e.source.and_then(|s| s.component).as_deref(),
        Some("metallb-controller")
    );
    assert_eq!(e.reporting_instance.as_deref(), Some("test-1"));
    assert!(e.last_timestamp.unwrap().0 >= e.first_timestamp.unwrap().0);
    if api.is_real() {
        // The real server records the field manager of both writes (create and patch).
        let managers: Vec<String> = e
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect();
        assert!(
            !managers.is_empty() && managers.iter().all(|m| m == "ferrolb-test"),
            "{managers:?}"
        );
        let agents: Vec<String> = api
            .real_server()
            .unwrap()
            .audit()
            .into_iter()
            .filter(|a| {
                a.object_ref
                    .as_ref()
                    .is_some_and(|o| o.resource == "events")
            })
            .filter(|a| a.verb == "create" || a.verb == "patch")
            .map(|a| a.user_agent)
            .collect();
        assert!(
            agents.iter().all(|a| a.starts_with("ferrolb-test/")),
            "{agents:?}"
        );
    }

    // Queued repeats coalesce: with the gate closed, five occurrences become one write.
    let gate = Arc::new(AtomicUsize::new(1));
    let (sink, client, _c2) = writer(&api, Some(gate.clone()), 100).await;
    for _ in 0..5 {
        sink.publish(spec("db", "IPAllocated", "Assigned IP [\"10.0.0.2\"]"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        events_of(&client, "db").await.is_empty(),
        "written while gated"
    );
    gate.store(0, Ordering::Relaxed);
    wait_for_events(&client, "db", &[("Assigned IP [\"10.0.0.2\"]".into(), 5)]).await;
    assert_eq!(sink.stats().snapshot(), (5, 1, 4, 0, 0));
}

async fn similar_messages_are_combined_after_ten(api: TestApi) {
    let (sink, client, _c) = writer(&api, None, 100).await;
    for i in 0..15 {
        sink.publish(spec(
            "flappy",
            "AllocationFailed",
            &format!("no IP, attempt {i:02}"),
        ));
        // One at a time, so the combined Event is created once and then patched.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut want: Vec<(String, i32)> = (0..9)
        .map(|i| (format!("no IP, attempt {i:02}"), 1))
        .collect();
    want.push((
        "(combined from similar events): no IP, attempt 14".into(),
        6,
    ));
    want.sort();
    wait_for_events(&client, "flappy", &want).await;
}

async fn a_full_queue_drops_and_counts(api: TestApi) {
    let gate = Arc::new(AtomicUsize::new(1));
    let (sink, client, _c) = writer(&api, Some(gate.clone()), 20).await;
    for i in 0..30 {
        sink.publish(spec(&format!("svc-{i:02}"), "IPAllocated", "Assigned"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.stats().snapshot(), (30, 0, 0, 10, 0));
    gate.store(0, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(15);
    while sink.stats().snapshot() != (30, 20, 0, 10, 0) {
        assert!(Instant::now() < deadline, "{:?}", sink.stats().snapshot());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api_ev: Api<Event> = Api::namespaced(client, "default");
    let n = api_ev
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("svc-"))
        })
        .count();
    assert_eq!(n, 20);
}

ferrolb_kubeapi::on_both_servers!(
    repeats_are_counted_in_one_event,
    similar_messages_are_combined_after_ten,
    a_full_queue_drops_and_counts
);
