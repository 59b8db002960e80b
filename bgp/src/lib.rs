//! ferrolb-bgp: a BGP-4 speaker library with no Kubernetes in it.
//!
//! - [`wire`]: our message types and their conversion to and from `netgauze-bgp-pkt`,
//!   with capability-aware encoding and an UPDATE builder that respects 4096 bytes.
//! - [`fsm`]: the RFC 4271 session state machine, pure (events in, actions out).
//! - [`rib`]: per-peer Adj-RIB-Out (desired routes -> minimal UPDATEs) and Adj-RIB-In.
//! - [`session`]: the tokio driver and the public [`session::Speaker`] API.
//! - [`bfd`]: BFD (RFC 5880/5881/5883), same split: codec, pure session FSM, UDP engine,
//!   and the RFC 5882 link that takes a BGP session down when its BFD session fails.

pub mod bfd;
pub mod fsm;
pub mod intern;
pub mod prefix_map;
pub mod rib;
pub mod session;
pub mod wire;
