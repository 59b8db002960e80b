//! ferrolb-lab: the netns lab of the seed topology and the `ferrolb-lab` command.
//!
//! A lab and test fixture, not a product component. The network-namespace harness lives in
//! `ferrolb-netns` (lab/harness) and the lab Kubernetes API server in `ferrolb-apiserver`
//! (lab/apiserver); this crate puts them together.
//!
//! - [`topology`]: namespaces, veths, bridges and addresses of the seed lab, by prefix;
//! - [`procs`]: detached processes with pid files and logs; teardown by prefix;
//! - [`router`]: the router `rt` (gobgpd + [`fib`], BIRD, or FRR) and its RIB/FIB as data;
//! - [`router_config`]: gobgpd's TOML and the IPv6 parts of the BIRD and FRR configurations;
//! - [`fib`]: programs the lab router's kernel from gobgpd's RIB (ECMP, `proto bgp`);
//! - [`dualstack`]: the dual-stack lab's IPv6 Kubernetes objects (Nodes, Service, slices);
//! - [`k8s`]: Nodes, ConfigMap, Service and EndpointSlices in the lab API server;
//! - [`kubeproxy`]: the per-node kube-proxy stand-in (Service IP -> pods);
//! - [`echo`]: the demo pods' HTTP server and the matching client;
//! - [`nsexec`]: run async code inside a namespace (API server, client, pods);
//! - [`netlab`]: the whole lab ([`netlab::NetLab`]), for the CLI and the end-to-end tests;
//! - [`demo`]: what `ferrolb-lab demo` checks and prints;
//! - [`testing`]: binaries and unique lab specs for the end-to-end tests.

pub mod demo;
pub mod dualstack;
pub mod echo;
pub mod fib;
pub mod k8s;
pub mod kubeproxy;
pub mod netlab;
pub mod nsexec;
pub mod procs;
pub mod router;
pub mod router_config;
pub mod testing;
pub mod topology;
pub mod traffic;
