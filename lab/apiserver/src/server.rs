//! HTTP routing and the REST verbs (get, list, watch, create, update, patch, delete).
//!
//! One fallback handler parses Kubernetes' URL layout itself
//! (`/api/v1[/namespaces/NS]/PLURAL[/NAME[/status]]`, `/apis/GROUP/VERSION/...`), so every
//! resource in [`crate::resources::RESOURCES`] is served by the same code.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use http::{Method, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::apply::{self, ApplyRequest};
use crate::audit::{AuditLog, AuditRecord};
use crate::defaults::{self, Allocators};
use crate::discovery;
use crate::fields;
use crate::patch;
use crate::resources::{NAMESPACES, NameRule, RESOURCES, ResourceType, lookup};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Store, View, Write};
use crate::table::{self, Include};
use crate::watch::{self, WatchRequest};

/// Tunables of a server instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// How many change events are kept for resuming watches (older ones are compacted).
    pub history: usize,
    /// How often idle watches with `allowWatchBookmarks=true` get a BOOKMARK.
    pub bookmark_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            history: 10_000,
            bookmark_interval: Duration::from_secs(1),
        }
    }
}

/// Shared server state.
pub struct App {
    /// The object store.
    pub store: Arc<Store>,
    /// Every request served, for checking clients' calls against RBAC rules.
    pub audit: AuditLog,
    alloc: Allocators,
    cfg: Config,
}

impl App {
    /// A server state with the standard namespaces pre-created.
    pub fn new(cfg: Config) -> Arc<Self> {
        let app = Arc::new(Self {
            store: Arc::new(Store::new(cfg.history)),
            audit: AuditLog::default(),
            alloc: Allocators::default(),
            cfg,
        });
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let ctx = WriteCtx {
                res: NAMESPACES,
                ns: String::new(),
                name: ns.to_string(),
                sub: "",
                manager: "kube-apiserver".into(),
                now: now(),
            };
            if let Err(e) = app.store.write(NAMESPACES, "", ns, |cur, view| {
                app.create_obj(&ctx, cur, view, body)
            }) {
                tracing::error!(error = %e, namespace = ns, "pre-creating namespace");
            }
        }
        app
    }
}

/// The router serving the whole API.
pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handle).with_state(app)
}

/// RFC 3339 timestamp with seconds precision, as Kubernetes writes them.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Largest accepted request body.
const BODY_LIMIT: usize = 64 << 20;

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("reading request body: {e}")).into_response();
        }
    };
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let mut rec = AuditRecord::classify(&method, &path, parts.uri.query());
    rec.user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let resp = dispatch(&app, &parts, body).unwrap_or_else(IntoResponse::into_response);
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    rec.status = resp.status().as_u16();
    app.audit.push(rec);
    resp
}

/// A parsed resource URL.
struct Target {
    res: usize,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

enum Route {
    Json(Value),
    Text(&'static str),
    Object(Target),
}

fn route(path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let nf = ApiError::unknown_path;
    match segs.as_slice() {
        ["version"] => Ok(Route::Json(discovery::version())),
        ["healthz" | "livez" | "readyz"] => Ok(Route::Text("ok")),
        ["api"] => Ok(Route::Json(discovery::api_versions())),
        ["api", "v1"] => discovery::resource_list("", "v1")
            .map(Route::Json)
            .ok_or_else(nf),
        ["api", "v1", rest @ ..] => target("", "v1", rest).map(Route::Object),
        ["apis"] => Ok(Route::Json(discovery::api_group_list())),
        ["apis", g] => discovery::api_group(g).map(Route::Json).ok_or_else(nf),
        ["apis", g, v] => discovery::resource_list(g, v)
            .map(Route::Json)
            .ok_or_else(nf),
        ["apis", g, v, rest @ ..] => target(g, v, rest).map(Route::Object),
        ["openapi", "v3"] => Ok(Route::Json(discovery::openapi_v3_root())),
        ["openapi", "v3", "api", v] => discovery::openapi_v3_doc("", v)
            .map(Route::Json)
            .ok_or_else(nf),
        ["openapi", "v3", "apis", g, v] => discovery::openapi_v3_doc(g, v)
            .map(Route::Json)
            .ok_or_else(nf),
        _ => Err(nf()),
    }
}

fn target(group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let (ns, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::unknown_path()),
    };
    let res = lookup(group, version, plural).ok_or_else(ApiError::unknown_path)?;
    let rt = &RESOURCES[res];
    if ns.is_some() && !rt.namespaced {
        return Err(ApiError::unknown_path());
    }
    if rt.namespaced && ns.is_none() && name.is_some() {
        return Err(ApiError::unknown_path());
    }
    if let Some(s) = &sub
        && !(s == "status" && rt.has_status)
    {
        return Err(ApiError::unknown_path());
    }
    Ok(Target { res, ns, name, sub })
}

/// Query parameters of one request.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(uri: &http::Uri) -> Result<Self, ApiError> {
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true" | "True"))
    }
    fn dry_run(&self) -> bool {
        self.0.iter().any(|(k, v)| k == "dryRun" && v == "All")
    }
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    let mut r = (code, serde_json::to_vec(body).unwrap_or_default()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn dispatch(
    app: &Arc<App>,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = Query::parse(&parts.uri)?;
    let t = match route(parts.uri.path())? {
        Route::Json(v) => {
            return if parts.method == Method::GET {
                Ok(json_response(StatusCode::OK, &v))
            } else {
                Err(ApiError::method_not_allowed(parts.method.as_str()))
            };
        }
        Route::Text(s) => return Ok(s.into_response()),
        Route::Object(t) => t,
    };
    let rt = &RESOURCES[t.res];
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let as_table = table::wanted(accept).then(|| Include::parse(q.get("includeObject")));
    let ctx = |name: &str| WriteCtx {
        res: t.res,
        ns: t.ns.clone().unwrap_or_default(),
        name: name.to_string(),
        sub: if t.sub.is_some() { "status" } else { "" },
        manager: manager_name(&q, &parts.headers),
        now: now(),
    };
    match (&parts.method, &t.name) {
        (&Method::GET, None) if q.flag("watch") => app.watch(&t, &q, None, as_table),
        (&Method::GET, Some(name)) if q.flag("watch") => app.watch(&t, &q, Some(name), as_table),
        (&Method::GET, None) => app.list(&t, &q, as_table),
        (&Method::GET, Some(name)) => {
            let ns = t.ns.as_deref().unwrap_or("");
            let obj = app
                .store
                .get(t.res, ns, name)
                .ok_or_else(|| ApiError::not_found(rt, name))?;
            match as_table {
                Some(inc) => {
                    let rv = rv_of(&obj).and_then(|r| r.parse().ok()).unwrap_or(0);
                    let t = table::table(rt, std::iter::once(&*obj), rv, inc);
                    Ok(json_response(StatusCode::OK, &t))
                }
                None => Ok(json_response(StatusCode::OK, &obj)),
            }
        }
        (&Method::POST, None) => {
            let obj = parse_body(rt, &parts.headers, &body)?;
            let name = create_name(rt, &obj)?;
            let ctx = ctx(&name);
            app.commit(
                &ctx,
                q.dry_run(),
                |app, cur, view| app.create_obj(&ctx, cur, view, obj),
                StatusCode::CREATED,
            )
        }
        (&Method::PUT, Some(name)) => {
            let obj = parse_body(rt, &parts.headers, &body)?;
            let ctx = ctx(name);
            app.commit(
                &ctx,
                q.dry_run(),
                |app, cur, view| app.update_obj(&ctx, cur, view, obj),
                StatusCode::OK,
            )
        }
        (&Method::PATCH, Some(name)) => {
            let ct = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let ctx = ctx(name);
            let p = PatchReq::parse(&ct, &body, &q)?;
            let created = std::cell::Cell::new(false);
            let resp = app.commit(
                &ctx,
                q.dry_run(),
                |app, cur, view| {
                    created.set(cur.is_none());
                    app.patch_obj(&ctx, cur, view, &p)
                },
                StatusCode::OK,
            )?;
            if created.get() {
                let (mut parts, body) = resp.into_parts();
                parts.status = StatusCode::CREATED;
                return Ok(Response::from_parts(parts, body));
            }
            Ok(resp)
        }
        (&Method::DELETE, Some(name)) => app.delete(&t, name, &body, q.dry_run()),
        (&Method::DELETE, None) => app.delete_collection(&t, &q),
        (m, _) => Err(ApiError::method_not_allowed(m.as_str())),
    }
}

/// The field manager for non-apply writes: `fieldManager`, else the User-Agent's product.
fn manager_name(q: &Query, headers: &http::HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

/// Parse a create/update body (JSON, or YAML when sent as `application/yaml`). Protobuf
/// and CBOR bodies are refused with 415 (this server speaks JSON only).
fn parse_body(
    rt: &ResourceType,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = ct.split(';').next().unwrap_or("").trim();
    match media {
        "application/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("request body is not UTF-8"))?;
            let v: Value = serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            check_type(rt, &v)?;
            Ok(v)
        }
        "application/vnd.kubernetes.protobuf" | "application/cbor" => {
            Err(ApiError::unsupported_media_type(media))
        }
        _ => parse_json(rt, body),
    }
}

/// Parse a JSON request body and check its apiVersion and kind against the URL's resource.
fn parse_json(rt: &ResourceType, body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e}",
            rt.kind
        ))
    })?;
    check_type(rt, &v)?;
    Ok(v)
}

fn check_type(rt: &ResourceType, v: &Value) -> Result<(), ApiError> {
    let Some(o) = v.as_object() else {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): not a JSON object",
            rt.kind
        )));
    };
    let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
    let av = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{v}'"
        )));
    }
    if av.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'apiVersion' is missing in '{v}'"
        )));
    }
    if kind != rt.kind || av != rt.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({}) or the kind ({kind}) is not {}",
            rt.api_version(),
            rt.kind
        )));
    }
    Ok(())
}

/// The name a create will use: `metadata.name`, or `generateName` plus a random suffix.
fn create_name(rt: &ResourceType, obj: &Value) -> Result<String, ApiError> {
    let meta = obj.get("metadata");
    if let Some(n) = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Ok(n.to_string());
    }
    if let Some(g) = meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let id = uuid::Uuid::new_v4();
        let suffix: String = id.as_bytes()[..5]
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect();
        return Ok(format!("{g}{suffix}"));
    }
    Err(ApiError::invalid(
        rt,
        "",
        "metadata.name",
        "FieldValueRequired",
        "Required value: name or generateName is required",
    ))
}

/// Validate a new object's name with the resource's rule; the messages are upstream's.
fn validate_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| lower_alnum(c) || c == '-')
            && l.starts_with(lower_alnum)
            && l.ends_with(lower_alnum)
    };
    let problem = match rt.name_rule {
        NameRule::Subdomain => (name.len() > 253 || !name.split('.').all(label)).then_some(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
        NameRule::Label1123 => (!label(name)).then_some(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
        NameRule::Label1035 => (!label(name) || !name.starts_with(|c: char| c.is_ascii_lowercase())).then_some(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ),
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                Some("may not be '.' or '..'")
            } else if name.contains('/') || name.contains('%') {
                Some("may not contain '/' or '%'")
            } else {
                None
            }
        }
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(ApiError::invalid(
            rt,
            name,
            "metadata.name",
            "FieldValueInvalid",
            &format!("Invalid value: \"{name}\": {why}"),
        )),
    }
}

/// Everything a write needs to know about its request.
struct WriteCtx {
    res: usize,
    ns: String,
    name: String,
    sub: &'static str,
    manager: String,
    now: String,
}

impl WriteCtx {
    fn rt(&self) -> &'static ResourceType {
        &RESOURCES[self.res]
    }
}

/// A parsed PATCH request.
enum PatchReq {
    Merge(Value),
    Json(Value),
    Strategic(Value),
    Apply {
        obj: Value,
        manager: String,
        force: bool,
    },
}

impl PatchReq {
    fn parse(ct: &str, body: &[u8], q: &Query) -> Result<Self, ApiError> {
        let json = || -> Result<Value, ApiError> {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
        };
        match ct {
            "application/merge-patch+json" => Ok(Self::Merge(json()?)),
            "application/json-patch+json" => Ok(Self::Json(json()?)),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic(json()?)),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                let manager = q.get("fieldManager").unwrap_or("").to_string();
                if manager.is_empty() {
                    let mut e = ApiError::bad_request(
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    );
                    e.code = 422;
                    e.reason = "Invalid";
                    return Err(e);
                }
                // JSON is valid YAML; try the fast path first.
                let obj = match serde_json::from_slice::<Value>(body) {
                    Ok(v) => v,
                    Err(_) => {
                        let text = std::str::from_utf8(body)
                            .map_err(|_| ApiError::bad_request("apply body is not UTF-8"))?;
                        serde_saphyr::from_str::<Value>(text).map_err(|e| {
                            ApiError::bad_request(format!("error decoding YAML: {e}"))
                        })?
                    }
                };
                Ok(Self::Apply {
                    obj,
                    manager,
                    force: q.flag("force"),
                })
            }
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

fn rv_of(v: &Value) -> Option<&str> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn meta_mut(v: &mut Value) -> Option<&mut Map<String, Value>> {
    let o = v.as_object_mut()?;
    let m = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut()
}

/// The parts of an object that count as its spec for `metadata.generation`.
fn spec_part(rt: &ResourceType, v: &Value) -> Value {
    let mut m = v.as_object().cloned().unwrap_or_default();
    m.remove("metadata");
    m.remove("apiVersion");
    m.remove("kind");
    if rt.has_status {
        m.remove("status");
    }
    Value::Object(m)
}

impl App {
    /// Run a write (or a dry run) and render the stored object.
    fn commit<F>(
        &self,
        ctx: &WriteCtx,
        dry_run: bool,
        f: F,
        code: StatusCode,
    ) -> Result<Response, ApiError>
    where
        F: FnOnce(&App, Option<&Value>, &View<'_>) -> Result<Write, ApiError>,
    {
        if dry_run {
            let cur = self.store.get(ctx.res, &ctx.ns, &ctx.name);
            let result = self.store.read(|view| f(self, cur.as_deref(), view))?;
            return match result {
                Write::Put(v) => Ok(json_response(code, &v)),
                Write::Delete => match cur {
                    Some(c) => Ok(json_response(code, &c)),
                    None => Err(ApiError::not_found(ctx.rt(), &ctx.name)),
                },
            };
        }
        let (obj, _) = self
            .store
            .write(ctx.res, &ctx.ns, &ctx.name, |cur, view| f(self, cur, view))?;
        Ok(json_response(code, &obj))
    }

    /// Stamp server-owned metadata, apply status rules and defaults to `new`.
    fn finish(
        &self,
        ctx: &WriteCtx,
        old: Option<&Value>,
        mut new: Value,
        apply: bool,
    ) -> Result<Value, ApiError> {
        let rt = ctx.rt();
        check_type(rt, &new)?;
        if let Some(old) = old {
            if ctx.sub == "status" {
                // Status changes through the status subresource; so do labels and
                // annotations of Services and Nodes (their status strategies reset only
                // `spec`, as upstream's do).
                let status = new.get("status").cloned();
                let mut merged = old.clone();
                if matches!(rt.plural, "services" | "nodes")
                    && let Some(m) = meta_mut(&mut merged)
                {
                    for field in ["labels", "annotations"] {
                        match new.pointer(&format!("/metadata/{field}")).cloned() {
                            Some(v) if !v.is_null() => m.insert(field.into(), v),
                            _ => m.remove(field),
                        };
                    }
                }
                if let Some(o) = merged.as_object_mut() {
                    match status {
                        Some(s) => o.insert("status".into(), s),
                        None => o.remove("status"),
                    };
                    if apply
                        && let Some(mf) = new.pointer("/metadata/managedFields").cloned()
                        && let Some(m) = meta_mut(&mut merged)
                    {
                        m.insert("managedFields".into(), mf);
                    }
                }
                new = merged;
            } else if rt.has_status {
                let status = old.get("status").cloned();
                if let Some(o) = new.as_object_mut() {
                    match status {
                        Some(s) => o.insert("status".into(), s),
                        None => o.remove("status"),
                    };
                }
            }
        } else if rt.plural == "services" {
            // A new Service starts with an empty status (the real create strategy clears it).
            if let Some(o) = new.as_object_mut() {
                o.insert("status".into(), json!({"loadBalancer": {}}));
            }
        }
        if rt.plural == "services" && ctx.sub.is_empty() {
            defaults::service_update(&mut new, old).map_err(|(field, cause, detail)| {
                ApiError::invalid(rt, &ctx.name, field, cause, &detail)
            })?;
        }
        match rt.plural {
            "services" if ctx.sub.is_empty() => defaults::service(&self.alloc, &mut new, old),
            "namespaces" => defaults::namespace(&mut new),
            _ => {}
        }
        let generation = match old {
            None => 1,
            Some(o) => {
                let g = o
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                if ctx.sub.is_empty() && spec_part(rt, o) != spec_part(rt, &new) {
                    g + 1
                } else {
                    g
                }
            }
        };
        let old_meta = old
            .and_then(|o| o.get("metadata"))
            .cloned()
            .unwrap_or_default();
        let managed = if apply {
            new.pointer("/metadata/managedFields").cloned()
        } else {
            old_meta.get("managedFields").cloned()
        };
        let Some(m) = meta_mut(&mut new) else {
            return Err(ApiError::bad_request("the object is not a JSON object"));
        };
        m.insert("name".into(), json!(ctx.name));
        if rt.namespaced {
            m.insert("namespace".into(), json!(ctx.ns));
        } else {
            m.remove("namespace");
        }
        let uid = old_meta
            .get("uid")
            .cloned()
            .unwrap_or_else(|| json!(uuid::Uuid::new_v4().to_string()));
        m.insert("uid".into(), uid);
        let created = old_meta
            .get("creationTimestamp")
            .cloned()
            .unwrap_or_else(|| json!(ctx.now));
        m.insert("creationTimestamp".into(), created);
        m.insert("generation".into(), json!(generation));
        m.remove("deletionTimestamp");
        m.remove("selfLink");
        if old.is_some() {
            m.remove("generateName");
            if let Some(g) = old_meta.get("generateName") {
                m.insert("generateName".into(), g.clone());
            }
        }
        match managed {
            Some(mf) => m.insert("managedFields".into(), mf),
            None => m.remove("managedFields"),
        };
        if !apply {
            fields::record_update(rt, old, &mut new, &ctx.manager, ctx.sub, &ctx.now);
        }
        Ok(new)
    }

    fn create_obj(
        &self,
        ctx: &WriteCtx,
        cur: Option<&Value>,
        view: &View<'_>,
        obj: Value,
    ) -> Result<Write, ApiError> {
        let rt = ctx.rt();
        if cur.is_some() {
            return Err(ApiError::already_exists(rt, &ctx.name));
        }
        if let Some(ns) = obj.pointer("/metadata/namespace").and_then(Value::as_str)
            && rt.namespaced
            && !ns.is_empty()
            && ns != ctx.ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        validate_name(rt, &ctx.name)?;
        if rt.namespaced && !view.namespace_exists(&ctx.ns) {
            return Err(ApiError::namespace_not_found(&ctx.ns));
        }
        let mut obj = obj;
        if let Some(m) = meta_mut(&mut obj) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        Ok(Write::Put(self.finish(ctx, None, obj, false)?))
    }

    fn check_preconditions(ctx: &WriteCtx, cur: &Value, new: &Value) -> Result<(), ApiError> {
        if let Some(rv) = rv_of(new)
            && Some(rv) != rv_of(cur)
        {
            return Err(ApiError::conflict(ctx.rt(), &ctx.name));
        }
        let uid = |v: &Value| {
            v.pointer("/metadata/uid")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if let (Some(want), Some(have)) = (uid(new).filter(|u| !u.is_empty()), uid(cur))
            && want != have
        {
            return Err(ApiError::uid_conflict(ctx.rt(), &ctx.name, &want, &have));
        }
        Ok(())
    }

    fn check_name(ctx: &WriteCtx, obj: &Value) -> Result<(), ApiError> {
        if let Some(n) = obj.pointer("/metadata/name").and_then(Value::as_str)
            && !n.is_empty()
            && n != ctx.name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                ctx.name
            )));
        }
        if let Some(ns) = obj.pointer("/metadata/namespace").and_then(Value::as_str)
            && ctx.rt().namespaced
            && !ns.is_empty()
            && ns != ctx.ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Ok(())
    }

    fn update_obj(
        &self,
        ctx: &WriteCtx,
        cur: Option<&Value>,
        view: &View<'_>,
        obj: Value,
    ) -> Result<Write, ApiError> {
        let rt = ctx.rt();
        Self::check_name(ctx, &obj)?;
        let Some(cur) = cur else {
            // Events and Endpoints allow create-on-update, like the real registry.
            if ctx.sub.is_empty()
                && (rt.kind == "Event" && rt.group.is_empty() || rt.plural == "endpoints")
            {
                return self.create_obj(ctx, None, view, obj);
            }
            return Err(ApiError::not_found(rt, &ctx.name));
        };
        Self::check_preconditions(ctx, cur, &obj)?;
        Ok(Write::Put(self.finish(ctx, Some(cur), obj, false)?))
    }

    fn patch_obj(
        &self,
        ctx: &WriteCtx,
        cur: Option<&Value>,
        view: &View<'_>,
        p: &PatchReq,
    ) -> Result<Write, ApiError> {
        let rt = ctx.rt();
        if let PatchReq::Apply {
            obj,
            manager,
            force,
        } = p
        {
            check_type(rt, obj)?;
            Self::check_name(ctx, obj)?;
            let base = match cur {
                Some(c) => {
                    Self::check_preconditions(ctx, c, obj)?;
                    c.clone()
                }
                None => {
                    if ctx.sub == "status" {
                        return Err(ApiError::not_found(rt, &ctx.name));
                    }
                    validate_name(rt, &ctx.name)?;
                    if rt.namespaced && !view.namespace_exists(&ctx.ns) {
                        return Err(ApiError::namespace_not_found(&ctx.ns));
                    }
                    json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": ctx.name}})
                }
            };
            let mut applied = obj.clone();
            if let Some(m) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
                m.remove("managedFields");
            }
            let req = ApplyRequest {
                manager,
                force: *force,
                subresource: ctx.sub,
                name: &ctx.name,
                now: &ctx.now,
            };
            let new = apply::apply(rt, base, &applied, &req)?;
            return Ok(Write::Put(self.finish(ctx, cur, new, true)?));
        }
        let Some(cur) = cur else {
            return Err(ApiError::not_found(rt, &ctx.name));
        };
        let mut new = cur.clone();
        match p {
            PatchReq::Merge(v) => patch::merge_patch(&mut new, v),
            PatchReq::Json(v) => patch::json_patch(&mut new, v)?,
            PatchReq::Strategic(v) => patch::strategic_merge(rt, &mut new, v)?,
            PatchReq::Apply { .. } => {}
        }
        if !new.is_object() {
            return Err(ApiError::bad_request("the patch did not produce an object"));
        }
        Self::check_name(ctx, &new)?;
        Self::check_preconditions(ctx, cur, &new)?;
        Ok(Write::Put(self.finish(ctx, Some(cur), new, false)?))
    }

    fn list(&self, t: &Target, q: &Query, as_table: Option<Include>) -> Result<Response, ApiError> {
        let rt = &RESOURCES[t.res];
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), rt)?;
        if let Some(rv) = q
            .get("resourceVersion")
            .filter(|r| !r.is_empty() && *r != "0")
        {
            let r: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
            if q.get("resourceVersionMatch") == Some("Exact") {
                self.store.check_list_rv(r)?;
            }
        }
        let (items, rv) = self.store.list(t.res, t.ns.as_deref());
        if let Some(inc) = as_table {
            let rows = items
                .iter()
                .map(|o| &**o)
                .filter(|o| labels.matches(o) && fields.matches(o));
            return Ok(json_response(
                StatusCode::OK,
                &table::table(rt, rows, rv, inc),
            ));
        }
        let mut buf = BytesMut::with_capacity(64 + items.len() * 512);
        buf.put_slice(
            format!(
                "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"}},\"items\":[",
                rt.kind,
                rt.api_version()
            )
            .as_bytes(),
        );
        let mut first = true;
        for o in items
            .iter()
            .filter(|o| labels.matches(o) && fields.matches(o))
        {
            if !first {
                buf.put_u8(b',');
            }
            first = false;
            let mut w = (&mut buf).writer();
            serde_json::to_writer(&mut w, &**o).map_err(|e| ApiError::internal(e.to_string()))?;
        }
        buf.put_slice(b"]}");
        Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(buf.freeze()))
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    fn watch(
        &self,
        t: &Target,
        q: &Query,
        name: Option<&String>,
        as_table: Option<Include>,
    ) -> Result<Response, ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
        let mut fsel = q.get("fieldSelector").unwrap_or("").to_string();
        if let Some(n) = name {
            if !fsel.is_empty() {
                fsel.push(',');
            }
            fsel.push_str(&format!("metadata.name={n}"));
        }
        let fields = FieldSelector::parse(&fsel, &RESOURCES[t.res])?;
        let from =
            match q.get("resourceVersion") {
                None | Some("") | Some("0") => None,
                Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {rv}"))
                })?),
            };
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(1800);
        Ok(watch::respond(
            self.store.clone(),
            WatchRequest {
                res: t.res,
                ns: t.ns.clone(),
                labels,
                fields,
                from,
                bookmarks: q.flag("allowWatchBookmarks"),
                send_initial: q.flag("sendInitialEvents"),
                timeout: Duration::from_secs(timeout),
                bookmark_interval: self.cfg.bookmark_interval,
                table: as_table,
            },
        ))
    }

    fn delete(
        &self,
        t: &Target,
        name: &str,
        body: &[u8],
        dry_run: bool,
    ) -> Result<Response, ApiError> {
        let rt = &RESOURCES[t.res];
        if t.sub.is_some() {
            return Err(ApiError::method_not_allowed("DELETE"));
        }
        let opts: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        let pre_rv = opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let pre_uid = opts
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let dry_run = dry_run
            || opts
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        let ns = t.ns.as_deref().unwrap_or("");
        let check = |cur: Option<&Value>| -> Result<(), ApiError> {
            let cur = cur.ok_or_else(|| ApiError::not_found(rt, name))?;
            if let Some(rv) = &pre_rv
                && rv_of(cur) != Some(rv.as_str())
            {
                return Err(ApiError::conflict(rt, name));
            }
            if let Some(uid) = &pre_uid
                && cur.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid.as_str())
            {
                let have = cur
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                return Err(ApiError::uid_conflict(rt, name, uid, have));
            }
            Ok(())
        };
        if dry_run {
            let cur = self.store.get(t.res, ns, name);
            check(cur.as_deref())?;
            return cur
                .map(|c| json_response(StatusCode::OK, &c))
                .ok_or_else(|| ApiError::not_found(rt, name));
        }
        let (obj, _) = self.store.write(t.res, ns, name, |cur, _| {
            check(cur)?;
            Ok(Write::Delete)
        })?;
        Ok(json_response(StatusCode::OK, &obj))
    }

    fn delete_collection(&self, t: &Target, q: &Query) -> Result<Response, ApiError> {
        let rt = &RESOURCES[t.res];
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), rt)?;
        let (items, _) = self.store.list(t.res, t.ns.as_deref());
        let mut deleted = Vec::new();
        for o in items
            .iter()
            .filter(|o| labels.matches(o) && fields.matches(o))
        {
            let ns = o
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let name = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Ok((d, _)) = self.store.write(t.res, ns, name, |cur, _| {
                if cur.is_some() {
                    Ok(Write::Delete)
                } else {
                    Err(ApiError::not_found(rt, name))
                }
            }) {
                deleted.push((*d).clone());
            }
        }
        let rv = self.store.current_rv();
        Ok(json_response(
            StatusCode::OK,
            &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                "metadata": {"resourceVersion": rv.to_string()}, "items": deleted}),
        ))
    }
}
