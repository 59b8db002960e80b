//! The Kubernetes side: Service views, the watch/reconcile/write loop.

pub mod config;
pub(crate) mod driver;
pub mod namespaces;
pub(crate) mod pool_status;
pub mod service;
pub mod slim;
pub mod writer;
