//! Kubernetes-facing pieces of the speaker.

pub mod views;
