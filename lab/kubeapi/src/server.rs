//! One real test cluster: etcd plus kube-apiserver as child processes of this process, on
//! free loopback ports (or a given address), torn down on drop and when the process ends.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Api;
use kube::api::PostParams;

use crate::args::{self, ISSUER, Layout};
use crate::assets::{self, Binaries};
use crate::audit::{self, AuditEvent};
use crate::kubeconfig::{self, Credentials};
use crate::pki::{Pki, PkiError};
use crate::process::Proc;

/// Why the cluster did not start or a request about it failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary is missing.
    #[error(transparent)]
    Missing(#[from] assets::Missing),
    /// Certificates.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// Files, processes, sockets.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A server exited or did not become ready; with its log tail.
    #[error("{what}\n--- log tail ---\n{log}")]
    NotReady {
        /// What happened.
        what: String,
        /// The last log lines.
        log: String,
    },
    /// The kube client failed.
    #[error("{what}: {message}")]
    Kube {
        /// What was being done.
        what: String,
        /// The error.
        message: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |e| Error::Kube {
        what,
        message: e.to_string(),
    }
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// The address kube-apiserver binds (loopback by default).
    pub address: IpAddr,
    /// Record every request in an audit log ([`KubeApiServer::audit`]).
    pub audit: bool,
    /// Keep etcd's data in memory (`/dev/shm`, fsync is free there): the default, since
    /// tests measure the API server and ferrolb, not this machine's disk.
    pub etcd_in_memory: bool,
    /// Longest wait for `/readyz`.
    pub ready_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            audit: true,
            etcd_in_memory: true,
            ready_timeout: Duration::from_secs(120),
        }
    }
}

/// Root of every cluster's work directory.
pub fn work_root() -> PathBuf {
    std::env::temp_dir().join("ferrolb-kubeapi")
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// `kapi-{pid}-{n}`: the pid lets [`cleanup_stale`] tell whether the owner still runs.
fn fresh_name() -> String {
    format!(
        "kapi-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn owner_alive(name: &str) -> bool {
    let Some(pid) = name.strip_prefix("kapi-").and_then(|r| r.split('-').next()) else {
        return true;
    };
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes work directories (and in-memory etcd data) of processes that are gone.
pub fn cleanup_stale() {
    for root in [work_root(), PathBuf::from("/dev/shm/ferrolb-kubeapi")] {
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("kapi-") && !owner_alive(&name) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A free TCP port on `ip` (bound and released; the server binds it right after).
pub fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// A running etcd + kube-apiserver.
pub struct KubeApiServer {
    layout: Layout,
    binaries: Binaries,
    pki: Pki,
    ready_timeout: Duration,
    etcd: Mutex<Option<Proc>>,
    apiserver: Mutex<Option<Proc>>,
    dirs: Vec<PathBuf>,
}

impl std::fmt::Debug for KubeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApiServer")
            .field("url", &self.layout.url())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl KubeApiServer {
    /// Starts etcd and kube-apiserver and waits until `/readyz` answers 200 and the
    /// `default` namespace exists. Blocking (seconds); call it off async worker threads
    /// (e.g. with `spawn_blocking`).
    pub fn start(opts: Options) -> Result<KubeApiServer, Error> {
        let binaries = assets::binaries()?;
        cleanup_stale();
        let name = fresh_name();
        let dir = work_root().join(&name);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut dirs = vec![dir.clone()];
        let etcd_data = if opts.etcd_in_memory && Path::new("/dev/shm").is_dir() {
            let d = PathBuf::from("/dev/shm/ferrolb-kubeapi").join(&name);
            dirs.push(d.clone());
            d
        } else {
            dir.join("etcd")
        };
        let pki = Pki::generate(&[opts.address, IpAddr::V4(Ipv4Addr::LOCALHOST)])?;
        let files = pki.write_to(&dir)?;
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let port = |ip| free_port(ip).map_err(io("picking a free port"));
        let layout = Layout {
            etcd_data,
            etcd_client: SocketAddr::new(lo, port(lo)?),
            etcd_peer: SocketAddr::new(lo, port(lo)?),
            apiserver: SocketAddr::new(opts.address, port(opts.address)?),
            pki: files,
            audit_log: opts.audit.then(|| dir.join("audit.log")),
            dir,
        };
        args::write_audit_policy(&layout).map_err(io("writing the audit policy"))?;
        let server = KubeApiServer {
            layout,
            binaries,
            pki,
            ready_timeout: opts.ready_timeout,
            etcd: Mutex::new(None),
            apiserver: Mutex::new(None),
            dirs,
        };
        server.start_etcd()?;
        server.start_apiserver()?;
        Ok(server)
    }

    fn start_etcd(&self) -> Result<(), Error> {
        let mut cmd = Command::new(&self.binaries.etcd);
        cmd.args(args::etcd_args(&self.layout));
        let mut p = Proc::start("etcd", cmd, self.layout.dir.join("etcd.log"))
            .map_err(io(format!("starting {}", self.binaries.etcd.display())))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = p.exited() {
                return Err(Error::NotReady {
                    what: format!("etcd exited ({st})"),
                    log: p.log_tail(20),
                });
            }
            if etcd_healthy(self.layout.etcd_client) {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady {
                    what: "etcd did not become healthy in 30 s".into(),
                    log: p.log_tail(20),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        *lock(&self.etcd) = Some(p);
        Ok(())
    }

    /// Starts kube-apiserver (again, after [`Self::stop_apiserver`]) on the same address,
    /// with the same certificates and data, and waits until it is ready.
    pub fn start_apiserver(&self) -> Result<(), Error> {
        let mut cmd = Command::new(&self.binaries.kube_apiserver);
        cmd.args(args::apiserver_args(&self.layout));
        let started = Instant::now();
        let mut p = Proc::start(
            "kube-apiserver",
            cmd,
            self.layout.dir.join("kube-apiserver.log"),
        )
        .map_err(io(format!(
            "starting {}",
            self.binaries.kube_apiserver.display()
        )))?;
        let yaml = self.admin_kubeconfig();
        let timeout = self.ready_timeout;
        // The wait uses a kube client, so it runs on a thread with its own runtime: callers
        // may be inside another runtime.
        let waiter = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let cfg = kubeconfig::config_from_yaml(&yaml)
                    .await
                    .map_err(|e| e.to_string())?;
                let client = kube::Client::try_from(cfg).map_err(|e| e.to_string())?;
                wait_ready(&client, timeout).await
            })
        });
        // Meanwhile watch the process: a crash is reported at once, not after the timeout.
        while !waiter.is_finished() {
            if let Some(st) = p.exited() {
                return Err(Error::NotReady {
                    what: format!("kube-apiserver exited ({st})"),
                    log: p.log_tail(30),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        match waiter.join() {
            Ok(Ok(())) => {
                tracing::info!(url = %self.layout.url(), pid = p.pid(), elapsed_ms = started.elapsed().as_millis() as u64, "kube-apiserver ready");
                *lock(&self.apiserver) = Some(p);
                Ok(())
            }
            Ok(Err(e)) => Err(Error::NotReady {
                what: format!("kube-apiserver not ready: {e}"),
                log: p.log_tail(30),
            }),
            Err(_) => Err(Error::NotReady {
                what: "the readiness check panicked".into(),
                log: p.log_tail(30),
            }),
        }
    }

    /// Stops kube-apiserver (SIGTERM, SIGKILL after 5 s); etcd and the data stay, so
    /// [`Self::start_apiserver`] brings the same cluster back: an API outage.
    pub fn stop_apiserver(&self) {
        if let Some(mut p) = lock(&self.apiserver).take() {
            p.stop(Duration::from_secs(5));
        }
    }

    /// Kills kube-apiserver at once (a crash).
    pub fn kill_apiserver(&self) {
        if let Some(mut p) = lock(&self.apiserver).take() {
            p.kill();
        }
    }

    /// Compacts etcd's history up to its current revision, so that every watch resuming
    /// from an older resourceVersion gets 410 Gone once kube-apiserver restarts (its watch
    /// cache starts at the current revision). Returns the revision.
    pub fn compact_etcd(&self) -> Result<u64, Error> {
        let rev = etcd_revision(self.layout.etcd_client)?;
        let body = format!("{{\"revision\":\"{rev}\",\"physical\":true}}");
        etcd_post(self.layout.etcd_client, "/v3/kv/compaction", &body)?;
        Ok(rev)
    }

    /// Restarts kube-apiserver after compacting etcd: every watcher must relist (what a busy
    /// cluster's clients see after an API server restart).
    pub fn force_relist(&self) -> Result<(), Error> {
        self.stop_apiserver();
        self.compact_etcd()?;
        self.start_apiserver()
    }

    /// The layout (ports, files).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `https://ADDR:PORT`.
    pub fn url(&self) -> String {
        self.layout.url()
    }

    /// The certificates.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// kube-apiserver's pid while it runs.
    pub fn apiserver_pid(&self) -> Option<u32> {
        lock(&self.apiserver).as_ref().map(Proc::pid)
    }

    /// The admin's kubeconfig (client certificate in `system:masters`).
    pub fn admin_kubeconfig(&self) -> String {
        self.pki.admin_kubeconfig(&self.layout.url())
    }

    /// A kube client as the admin (built in the caller's runtime).
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let cfg = kubeconfig::config_from_yaml(&self.admin_kubeconfig())
            .await
            .map_err(|e| Error::Kube {
                what: "admin kubeconfig".into(),
                message: e.to_string(),
            })?;
        kube::Client::try_from(cfg).map_err(kube_err("admin client"))
    }

    /// A kubeconfig that authenticates as ServiceAccount `namespace/name` with a token from
    /// the TokenRequest API (what `kubectl create token` does), valid for a day. The
    /// namespace and the ServiceAccount are created if missing; RBAC applies in full.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, Error> {
        let client = self.client().await?;
        service_account_kubeconfig(
            &client,
            &self.layout.url(),
            &self.pki.ca.cert_pem,
            namespace,
            name,
        )
        .await
    }

    /// Every request recorded in the audit log so far (empty without auditing).
    pub fn audit(&self) -> Vec<AuditEvent> {
        self.layout
            .audit_log
            .as_deref()
            .map(audit::read_log)
            .unwrap_or_default()
    }

    /// The last `n` lines of kube-apiserver's log.
    pub fn log_tail(&self, n: usize) -> String {
        crate::process::log_tail(&self.layout.dir.join("kube-apiserver.log"), n)
    }

    /// Kills both servers and removes the files (also what the process-exit hook does).
    pub fn teardown(&self) {
        if let Some(mut p) = lock(&self.apiserver).take() {
            p.kill();
        }
        if let Some(mut p) = lock(&self.etcd).take() {
            p.kill();
        }
        if std::env::var_os("FERROLB_KUBEAPI_KEEP").is_none() {
            for d in &self.dirs {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn ignore_exists<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// A kubeconfig for ServiceAccount `namespace/name` of the server at `url` (trusting
/// `ca_pem`), with a day-long token from the TokenRequest API, asked for by `admin`. The
/// namespace and the ServiceAccount are created if missing.
pub async fn service_account_kubeconfig(
    admin: &kube::Client,
    url: &str,
    ca_pem: &str,
    namespace: &str,
    name: &str,
) -> Result<String, Error> {
    let json_err = |what: &str| {
        let what = what.to_string();
        move |e: serde_json::Error| Error::Kube {
            what,
            message: e.to_string(),
        }
    };
    let ns: Api<Namespace> = Api::all(admin.clone());
    if ns
        .get_opt(namespace)
        .await
        .map_err(kube_err("get namespace"))?
        .is_none()
    {
        let obj: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))
                .map_err(json_err("namespace"))?;
        ignore_exists(ns.create(&PostParams::default(), &obj).await)
            .map_err(kube_err(format!("create namespace {namespace}")))?;
    }
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    if sas
        .get_opt(name)
        .await
        .map_err(kube_err("get serviceaccount"))?
        .is_none()
    {
        let obj: ServiceAccount =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
                .map_err(json_err("serviceaccount"))?;
        ignore_exists(sas.create(&PostParams::default(), &obj).await).map_err(kube_err(
            format!("create serviceaccount {namespace}/{name}"),
        ))?;
    }
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![ISSUER.to_string()],
            expiration_seconds: Some(86_400),
            ..Default::default()
        },
        ..Default::default()
    };
    let tr = sas
        .create_token_request(name, &PostParams::default(), &req)
        .await
        .map_err(kube_err(format!("TokenRequest for {namespace}/{name}")))?;
    let token = tr.status.map(|s| s.token).unwrap_or_default();
    Ok(kubeconfig::kubeconfig(
        url,
        ca_pem,
        &format!("system:serviceaccount:{namespace}:{name}"),
        &Credentials::Token(&token),
        namespace,
    ))
}

/// Waits until `/readyz` answers 200 and the `default` namespace exists (created by the
/// API server's bootstrap controller just after start).
pub async fn wait_ready(client: &kube::Client, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last: String;
    loop {
        let req = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        match client.request_text(req).await {
            Ok(body) if body.trim() == "ok" => {
                let ns: Api<Namespace> = Api::all(client.clone());
                match ns.get_opt("default").await {
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) => last = "namespace default not created yet".into(),
                    Err(e) => last = e.to_string(),
                }
            }
            Ok(body) => last = body,
            Err(e) => last = e.to_string(),
        }
        if Instant::now() > deadline {
            return Err(format!("not ready after {timeout:?}: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One plain HTTP/1.0 request to etcd's JSON gateway; returns the body.
fn etcd_http(addr: SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(std::io::Error::other(format!(
            "etcd {method} {path}: {}",
            head.lines().next().unwrap_or_default()
        )));
    }
    Ok(body.to_string())
}

/// Whether etcd at `addr` answers `/health` with `"health":"true"`.
pub fn etcd_healthy(addr: SocketAddr) -> bool {
    etcd_http(addr, "GET", "/health", "").is_ok_and(|b| b.contains("\"true\""))
}

fn etcd_post(addr: SocketAddr, path: &str, body: &str) -> Result<String, Error> {
    etcd_http(addr, "POST", path, body).map_err(io(format!("etcd {path}")))
}

fn etcd_revision(addr: SocketAddr) -> Result<u64, Error> {
    // A range over the empty key returns the store's header with the current revision.
    let body = etcd_post(addr, "/v3/kv/range", "{\"key\":\"AA==\"}")?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| Error::Io {
        what: "etcd range answer".into(),
        source: std::io::Error::other(e),
    })?;
    v["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| Error::Io {
            what: "etcd revision".into(),
            source: std::io::Error::other(format!("no header.revision in {body}")),
        })
}
