//! Optimistic concurrency under real contention.

mod common;

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use tokio::sync::Barrier;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replace_exactly_one_wins() -> anyhow::Result<()> {
    let (_server, client) = common::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut c = ConfigMap::default();
    c.metadata.name = Some("race".into());
    api.create(&PostParams::default(), &c).await?;

    for round in 0..5 {
        const N: usize = 16;
        // Every task reads the same version first, then all replace at once.
        let base = api.get("race").await?;
        let barrier = Arc::new(Barrier::new(N));
        let mut tasks = Vec::new();
        for i in 0..N {
            let api = api.clone();
            let mut mine = base.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                mine.data = Some([("writer".to_string(), format!("{round}-{i}"))].into());
                barrier.wait().await;
                (i, api.replace("race", &PostParams::default(), &mine).await)
            }));
        }
        let mut winners = Vec::new();
        let mut conflicts = 0;
        for t in tasks {
            match t.await? {
                (i, Ok(_)) => winners.push(i),
                (_, Err(kube::Error::Api(s))) if s.code == 409 && s.reason == "Conflict" => {
                    conflicts += 1
                }
                (_, Err(e)) => anyhow::bail!("unexpected error {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one writer wins");
        assert_eq!(conflicts, N - 1);
        let now = api.get("race").await?;
        let expected = format!("{round}-{}", winners[0]);
        assert_eq!(
            now.data.as_ref().and_then(|d| d.get("writer")),
            Some(&expected)
        );
    }
    Ok(())
}
