//! A real Kubernetes API server for ferrolb's tests and lab (a test fixture, not a product
//! component): upstream kube-apiserver v1.28.7 with Debian's etcd, as controller-runtime's
//! envtest does for Go operators.
//!
//! - [`assets`]: the binaries (kube-apiserver unpacked once from `../shared/k8s/` and
//!   cached under `target/kubeapi/`, or `FERROLB_KUBE_APISERVER`; etcd from
//!   `/usr/bin/etcd` or `FERROLB_ETCD`), and what a test does when they are missing.
//! - [`pki`]: a CA, serving, admin and ServiceAccount-signing keys, made with rcgen.
//! - [`args`]: the two command lines (TLS, RBAC, TokenRequest, audit log), shared with the
//!   netns lab, which runs the same servers in its master namespace.
//! - [`KubeApiServer`]: etcd + kube-apiserver as children of this process on free ports;
//!   admin client and kubeconfig, ServiceAccount-token kubeconfigs, outages (stop/start),
//!   forced relists (etcd compaction), the audit log. Dropping it, a panic, or the end of
//!   the process (the children carry `PR_SET_PDEATHSIG`) stops both.
//! - [`apply`]: server-side apply of manifests (strict validation), and ferrolb's RBAC
//!   manifests a real cluster needs.
//! - [`shared`]: one server per test binary, one test at a time, cleaned between tests.
//! - [`TestApi`] and [`on_both_servers!`]: a test written once runs against the lab API
//!   server and the real one.

pub mod apply;
pub mod args;
pub mod assets;
pub mod audit;
pub mod kubeconfig;
pub mod pki;
pub mod process;
pub mod server;
pub mod shared;
mod test_api;

pub use assets::{Binaries, Missing};
pub use audit::AuditEvent;
pub use server::{Error, KubeApiServer, Options};
pub use test_api::{Kind, TestApi};
