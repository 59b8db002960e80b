//! ferrolb-crds: MetalLB's `metallb.io` custom resources.
pub mod manifests;
pub mod types;
pub use types::*;
