//! Watches: raw watch events, selectors, bookmarks, timeouts, 410 Expired, and
//! `kube::runtime::watcher` surviving a forced compaction.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_apiserver::{ApiServer, Config};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::json;
use tokio::time::timeout;

fn cm(name: &str, app: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.metadata.labels = Some([("app".to_string(), app.to_string())].into());
    c
}

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn raw_watch_events_and_selector_transitions() -> anyhow::Result<()> {
    let (_server, client) = common::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api.create(&PostParams::default(), &cm("a", "web")).await?;
    let rv0 = first.resource_version().unwrap_or_default();

    let mut all = api
        .watch(&WatchParams::default().disable_bookmarks(), &rv0)
        .await?
        .boxed();
    let mut web = api
        .watch(
            &WatchParams::default().disable_bookmarks().labels("app=web"),
            &rv0,
        )
        .await?
        .boxed();

    api.create(&PostParams::default(), &cm("b", "db")).await?;
    let p = json!({"metadata": {"labels": {"app": "db"}}});
    api.patch("a", &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    let deleted = api.delete("b", &DeleteParams::default()).await?;
    let del_rv = deleted
        .left()
        .and_then(|o| o.resource_version())
        .unwrap_or_default();

    let mut seen = Vec::new();
    for _ in 0..3 {
        match timeout(T, all.try_next()).await?? {
            Some(WatchEvent::Added(o)) => seen.push(("ADDED", o.name_any(), o.resource_version())),
            Some(WatchEvent::Modified(o)) => {
                seen.push(("MODIFIED", o.name_any(), o.resource_version()))
            }
            Some(WatchEvent::Deleted(o)) => {
                seen.push(("DELETED", o.name_any(), o.resource_version()))
            }
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    let kinds: Vec<(&str, &str)> = seen.iter().map(|(k, n, _)| (*k, n.as_str())).collect();
    assert_eq!(kinds, [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]);
    // The DELETED event carries the deletion's own (newest) resourceVersion.
    assert_eq!(seen[2].2.as_deref(), Some(del_rv.as_str()));
    let rvs: Vec<u64> = seen
        .iter()
        .filter_map(|(_, _, rv)| rv.as_deref()?.parse().ok())
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");

    // Filtered watch: `a` stopped matching app=web, so it sees a DELETED for it.
    match timeout(T, web.try_next()).await?? {
        Some(WatchEvent::Deleted(o)) => assert_eq!(o.name_any(), "a"),
        other => anyhow::bail!("unexpected {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn field_selector_transitions_in_watch() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Service;
    let (_server, client) = common::start().await?;
    let api: Api<Service> = Api::namespaced(client, "default");
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}),
    )?;
    let s = api.create(&PostParams::default(), &svc).await?;
    let rv = s.resource_version().unwrap_or_default();
    let wp = WatchParams::default()
        .disable_bookmarks()
        .fields("spec.type=LoadBalancer");
    let mut w = api.watch(&wp, &rv).await?.boxed();
    for ty in ["LoadBalancer", "ClusterIP"] {
        let p = json!({"spec": {"type": ty}});
        api.patch("s", &PatchParams::default(), &Patch::Merge(&p))
            .await?;
    }
    match timeout(T, w.try_next()).await?? {
        Some(WatchEvent::Added(o)) => assert_eq!(
            o.spec.and_then(|s| s.type_).as_deref(),
            Some("LoadBalancer")
        ),
        other => anyhow::bail!("unexpected {other:?}"),
    }
    match timeout(T, w.try_next()).await?? {
        Some(WatchEvent::Deleted(o)) => {
            assert_eq!(o.spec.and_then(|s| s.type_).as_deref(), Some("ClusterIP"))
        }
        other => anyhow::bail!("unexpected {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn watch_without_version_starts_with_current_objects() -> anyhow::Result<()> {
    let (_server, client) = common::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("x", "web")).await?;
    let mut s = api
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await?
        .boxed();
    match timeout(T, s.try_next()).await?? {
        Some(WatchEvent::Added(o)) => assert_eq!(o.name_any(), "x"),
        other => anyhow::bail!("unexpected {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn bookmarks_and_timeout() -> anyhow::Result<()> {
    let (_server, client) = common::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let wp = WatchParams::default().timeout(2);
    let started = std::time::Instant::now();
    let mut s = api.watch(&wp, &rv).await?.boxed();
    match timeout(T, s.try_next()).await?? {
        Some(WatchEvent::Bookmark(b)) => assert_eq!(b.metadata.resource_version, rv),
        other => anyhow::bail!("unexpected {other:?}"),
    }
    // The stream ends by itself after timeoutSeconds.
    while let Some(ev) = timeout(T, s.try_next()).await?? {
        assert!(matches!(ev, WatchEvent::Bookmark(_)), "{ev:?}");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    Ok(())
}

#[tokio::test]
async fn too_old_resource_version_is_410_expired() -> anyhow::Result<()> {
    // A tiny history: compaction happens naturally after a few writes.
    let server = ApiServer::start_with(Config {
        history: 3,
        ..Config::default()
    })
    .await?;
    let client = common::client_for(&server).await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api.create(&PostParams::default(), &cm("c0", "web")).await?;
    let old_rv = first.resource_version().unwrap_or_default();
    for i in 1..6 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), "web"))
            .await?;
    }
    let mut s = api.watch(&WatchParams::default(), &old_rv).await?.boxed();
    match timeout(T, s.try_next()).await?? {
        Some(WatchEvent::Error(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
            assert!(
                e.message
                    .starts_with(&format!("too old resource version: {old_rv} (")),
                "{}",
                e.message
            );
        }
        other => anyhow::bail!("unexpected {other:?}"),
    }
    // A list at exactly that version is 410 Gone as well.
    let lp = ListParams::default()
        .at(&old_rv)
        .matching(kube::api::VersionMatch::Exact);
    let st = common::status_of(api.list(&lp).await);
    assert_eq!((st.code, st.reason.as_str()), (410, "Expired"));
    // compact_to makes a recent version too old too.
    let recent = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    api.create(&PostParams::default(), &cm("late", "web"))
        .await?;
    server.compact_to(server.resource_version());
    let mut s = api.watch(&WatchParams::default(), &recent).await?.boxed();
    assert!(
        matches!(timeout(T, s.try_next()).await??, Some(WatchEvent::Error(e)) if e.code == 410)
    );
    Ok(())
}

/// Apply watcher events like a reflector store would.
#[derive(Default)]
struct Mirror {
    state: BTreeMap<String, String>,
    buffer: BTreeMap<String, String>,
    inits: usize,
    gone: usize,
}

impl Mirror {
    fn apply(&mut self, ev: Result<watcher::Event<ConfigMap>, watcher::Error>) {
        match ev {
            Ok(watcher::Event::Init) => {
                self.inits += 1;
                self.buffer.clear();
            }
            Ok(watcher::Event::InitApply(o)) => {
                self.buffer
                    .insert(o.name_any(), o.resource_version().unwrap_or_default());
            }
            Ok(watcher::Event::InitDone) => self.state = std::mem::take(&mut self.buffer),
            Ok(watcher::Event::Apply(o)) => {
                self.state
                    .insert(o.name_any(), o.resource_version().unwrap_or_default());
            }
            Ok(watcher::Event::Delete(o)) => {
                self.state.remove(&o.name_any());
            }
            Err(watcher::Error::WatchError(e)) if e.code == 410 => self.gone += 1,
            Err(_) => {}
        }
    }
}

async fn store_state(api: &Api<ConfigMap>) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|o| (o.name_any(), o.resource_version().unwrap_or_default()))
        .collect())
}

/// Drive the watcher until `mirror` satisfies `done` (or time out).
async fn pump<S>(
    stream: &mut S,
    mirror: &mut Mirror,
    done: impl Fn(&Mirror) -> bool,
) -> anyhow::Result<()>
where
    S: futures::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + T;
    while !done(mirror) {
        let ev = tokio::time::timeout_at(deadline, stream.next()).await?;
        match ev {
            Some(ev) => mirror.apply(ev),
            None => anyhow::bail!("watcher stream ended"),
        }
    }
    Ok(())
}

async fn watcher_survives_compaction(cfg: watcher::Config) -> anyhow::Result<()> {
    let (server, client) = common::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("pre{i}"), "web"))
            .await?;
    }
    let mut stream = watcher(api.clone(), cfg).boxed();
    let mut m = Mirror::default();
    pump(&mut stream, &mut m, |m| m.state.len() == 3).await?;
    assert_eq!(m.inits, 1);

    api.create(&PostParams::default(), &cm("new", "web"))
        .await?;
    let p = json!({"data": {"k": "v"}});
    api.patch("pre0", &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    api.delete("pre1", &DeleteParams::default()).await?;
    let want = store_state(&api).await?;
    pump(&mut stream, &mut m, |m| m.state == want).await?;

    // Force 410: all watches are closed and their resourceVersions are compacted away.
    server.compact();
    api.create(&PostParams::default(), &cm("after", "web"))
        .await?;
    api.delete("pre2", &DeleteParams::default()).await?;
    let want = store_state(&api).await?;
    pump(&mut stream, &mut m, |m| m.state == want && m.inits >= 2).await?;
    assert_eq!(m.gone, 1, "the watcher saw exactly one 410");
    assert_eq!(m.inits, 2, "and relisted once");

    // And keeps receiving afterwards.
    api.create(&PostParams::default(), &cm("later", "web"))
        .await?;
    let want = store_state(&api).await?;
    pump(&mut stream, &mut m, |m| m.state == want).await?;
    assert!(m.state.contains_key("later") && !m.state.contains_key("pre2"));
    Ok(())
}

#[tokio::test]
async fn runtime_watcher_relists_after_410() -> anyhow::Result<()> {
    watcher_survives_compaction(watcher::Config::default()).await
}

#[tokio::test]
async fn runtime_watcher_with_bookmarks_and_streaming_list() -> anyhow::Result<()> {
    watcher_survives_compaction(watcher::Config::default().streaming_lists()).await
}

#[tokio::test]
async fn watcher_on_all_namespaces_with_labels() -> anyhow::Result<()> {
    let (_server, client) = common::start().await?;
    let all: Api<ConfigMap> = Api::all(client.clone());
    let def: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let sys: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    let mut stream = watcher(all, watcher::Config::default().labels("app=web")).boxed();
    let mut m = Mirror::default();
    pump(&mut stream, &mut m, |m| m.inits == 1 && m.buffer.is_empty()).await?;
    def.create(&PostParams::default(), &cm("w1", "web")).await?;
    sys.create(&PostParams::default(), &cm("w2", "web")).await?;
    sys.create(&PostParams::default(), &cm("d1", "db")).await?;
    pump(&mut stream, &mut m, |m| m.state.len() == 2).await?;
    assert!(!m.state.contains_key("d1"));
    Ok(())
}
