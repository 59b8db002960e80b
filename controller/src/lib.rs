//! ferrolb-controller: assigns external IPs from pools to LoadBalancer Services.
//!
//! - [`allocator`]: the pure IP allocator (no Kubernetes, no tokio).

pub mod allocator;
