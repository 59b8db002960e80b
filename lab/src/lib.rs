//! ferrolb-lab: the netns lab of the seed topology and the `ferrolb-lab` command.
//!
//! A lab and test fixture, not a product component. The network-namespace harness lives in
//! `ferrolb-netns` (lab/harness) and the lab Kubernetes API server in `ferrolb-apiserver`
//! (lab/apiserver); this crate puts them together.
//!
//! - [`fib`]: programs the lab router's kernel from gobgpd's RIB (ECMP, `proto bgp`).

pub mod fib;
