//! Malformed requests get the same Status errors a real API server sends.

mod common;

use kube::core::Status;

async fn raw(client: &kube::Client, req: http::Request<Vec<u8>>) -> Box<Status> {
    common::status_of(client.request_text(req).await)
}

#[tokio::test]
async fn malformed_requests_are_status_errors() -> anyhow::Result<()> {
    let (_server, client) = common::start().await?;
    let cms = "/api/v1/namespaces/default/configmaps";
    let post = |path: &str, ct: &str, body: &str| {
        http::Request::post(path.to_string())
            .header("content-type", ct)
            .body(body.as_bytes().to_vec())
    };

    // Malformed JSON.
    let s = raw(&client, post(cms, "application/json", "{\"apiVersion\": ")?).await;
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));
    assert!(s.message.contains("json parse error"), "{}", s.message);
    assert_eq!(s.status, Some(kube::core::response::StatusSummary::Failure));

    // Wrong kind for the URL.
    let s = raw(
        &client,
        post(
            cms,
            "application/json",
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"}}"#,
        )?,
    )
    .await;
    assert_eq!(s.code, 400);

    // Missing name and generateName: 422 Invalid with a cause.
    let s = raw(
        &client,
        post(
            cms,
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#,
        )?,
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    let cause = s
        .details
        .as_ref()
        .and_then(|d| d.causes.first())
        .map(|c| c.field.clone());
    assert_eq!(cause.as_deref(), Some("metadata.name"));

    // Invalid name.
    let s = raw(
        &client,
        post(
            cms,
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#,
        )?,
    )
    .await;
    assert_eq!(s.code, 422);

    // Name in body differs from the URL.
    let put = http::Request::put(format!("{cms}/a"))
        .header("content-type", "application/json")
        .body(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}"#.to_vec())?;
    let s = raw(&client, put).await;
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        s.message,
        "the name of the object (b) does not match the name on the URL (a)"
    );

    // Protobuf is refused explicitly.
    let s = raw(
        &client,
        post(cms, "application/vnd.kubernetes.protobuf", "k8s\0")?,
    )
    .await;
    assert_eq!(s.code, 415);

    // Bad selectors.
    for q in [
        "labelSelector=app%20in%20(a",
        "labelSelector=a%3D%3D%3Db",
        "fieldSelector=spec.foo%3D1",
        "fieldSelector=nonsense",
    ] {
        let s = raw(
            &client,
            http::Request::get(format!("{cms}?{q}")).body(Vec::new())?,
        )
        .await;
        assert_eq!(
            (s.code, s.reason.as_str()),
            (400, "BadRequest"),
            "{q}: {}",
            s.message
        );
    }

    // Unknown resources and paths.
    for path in [
        "/api/v1/namespaces/default/widgets",
        "/apis/nope.example.com/v1/things",
        "/api/v2/pods",
        "/api/v1/namespaces/default/configmaps/a/status",
    ] {
        let s = raw(&client, http::Request::get(path).body(Vec::new())?).await;
        assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"), "{path}");
        assert_eq!(
            s.message,
            "the server could not find the requested resource"
        );
    }

    // Unsupported PATCH content type.
    let p = http::Request::patch(format!("{cms}/a"))
        .header("content-type", "text/plain")
        .body(b"x".to_vec())?;
    let s = raw(&client, p).await;
    assert_eq!(s.code, 415);

    // Discovery documents kubectl reads.
    let v: serde_json::Value = serde_json::from_str(
        &client
            .request_text(http::Request::get("/api/v1").body(Vec::new())?)
            .await?,
    )?;
    let svc = v["resources"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "services"))
        .cloned();
    assert_eq!(
        svc.as_ref().map(|s| s["shortNames"].clone()),
        Some(serde_json::json!(["svc"]))
    );
    let version = client.apiserver_version().await?;
    assert_eq!(version.major, "1");
    Ok(())
}
