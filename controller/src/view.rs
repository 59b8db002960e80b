//! A compact view of a Service: only the fields the controller decides on. Plain data,
//! built at the edge (`k8s/service.rs`), read by the pure reconcile code and its tests.
//!
//! Why not keep the `k8s_openapi` objects: at 10,000 Services the full objects (with
//! managedFields and everything else) would dominate memory; this view is a few hundred bytes.

use std::net::IpAddr;

use k8s_openapi::jiff::Timestamp;

use crate::allocator::Request;

/// The annotation the controller writes: the pool the IPs came from.
pub const ANN_ALLOCATED_FROM_POOL: &str = "metallb.universe.tf/ip-allocated-from-pool";
/// The same annotation under MetalLB's newer prefix (cleared together with ours).
pub const ANN_ALLOCATED_FROM_POOL_IO: &str = "metallb.io/ip-allocated-from-pool";

pub use ferrolb_config::service::key_of;

/// What the controller knows about one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvcView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid` (for Events).
    pub uid: Option<String>,
    /// `metadata.creationTimestamp`: older Services get addresses first.
    pub created: Option<Timestamp>,
    /// `spec.type == LoadBalancer`.
    pub is_load_balancer: bool,
    /// `spec.loadBalancerClass`.
    pub class: Option<String>,
    /// The allocator request, or why the Service's request is malformed.
    pub request: Result<Request, String>,
    /// `status.loadBalancer.ingress[].ip`, as written (unparsed).
    pub status_ips: Vec<String>,
    /// Current value of [`ANN_ALLOCATED_FROM_POOL`].
    pub pool_annotation: Option<String>,
    /// Whether [`ANN_ALLOCATED_FROM_POOL_IO`] is set.
    pub has_io_pool_annotation: bool,
}

impl SvcView {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        key_of(&self.namespace, &self.name)
    }

    /// Whether this controller is responsible for the Service at all.
    pub fn handled(&self, lb_class: Option<&str>) -> bool {
        ferrolb_config::service::handles(self.is_load_balancer, self.class.as_deref(), lb_class)
    }

    /// The status IPs parsed; `None` if any entry is not an IP.
    pub fn parsed_status_ips(&self) -> Option<Vec<IpAddr>> {
        self.status_ips
            .iter()
            .map(|s| s.trim().parse::<IpAddr>().ok())
            .collect()
    }

    /// Whether anything the controller manages is present (status IPs or our annotation).
    pub fn has_lb_state(&self) -> bool {
        !self.status_ips.is_empty() || self.pool_annotation.is_some() || self.has_io_pool_annotation
    }
}
