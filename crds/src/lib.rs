//! ferrolb-crds: MetalLB's `metallb.io` custom resources.
pub mod manifests;
pub mod migrate;
pub mod resources;
pub mod status;
pub mod to_model;
pub mod types;
pub use types::*;
