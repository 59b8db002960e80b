//! ferrolb-config: the MetalLB 0.12 ConfigMap format, parsed strictly.
//!
//! The text is parsed by serde-saphyr into a small located tree (every node knows its line),
//! then decoded against the schema: defaults are filled in exactly as MetalLB 0.12 does, and
//! every rule is checked. All problems are collected, each with its path, line and reason
//! (`address-pools[2].addresses[0] (line 14): "10.0.0.0/33" is not a valid CIDR or range:
//! ...`), so an operator sees everything at once. The result is a typed [`Config`] with no
//! strings left to interpret.
//!
//! ```
//! use std::net::IpAddr;
//!
//! let text = "
//! peers:
//! - peer-address: 10.0.0.1
//!   peer-asn: 64512
//!   my-asn: 64522
//! address-pools:
//! - name: default
//!   protocol: bgp
//!   addresses: [198.51.100.0/24]
//! ";
//! let parsed = ferrolb_config::parse_config(text).expect("valid");
//! let ip: IpAddr = "198.51.100.7".parse().unwrap();
//! assert_eq!(parsed.config.pool_for_ip(ip).unwrap().name, "default");
//! assert_eq!(parsed.config.peers[0].hold_time.as_secs(), 90);
//!
//! let errs = ferrolb_config::parse_config("peers:\n- peer-address: 10.0.0.1\n  peer-asn: 0\n  my-asn: 1\n")
//!     .unwrap_err();
//! assert_eq!(
//!     errs.to_string(),
//!     "peers[0].peer-asn (line 3): must not be 0 (an AS number is 1 to 4294967295)"
//! );
//! ```
mod address;
mod community;
mod decode;
mod duration;
mod error;
mod fields;
mod manifest;
mod model;
pub mod rules;
mod selector;
pub mod service;
mod yaml;

pub use error::{ConfigError, ConfigErrors, Line, ObjectRef, Warning};
pub use manifest::{
    check_config_file, check_config_text, parse_config_text, parse_configmap_manifest,
};
pub use model::*;
pub use selector::{LabelRequirement, NodeSelector, SelectorOperator, any_matches};

/// How the document itself is named in error paths.
pub const ROOT_PATH: &str = "<document>";

/// A valid configuration and the warnings found on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub config: Config,
    pub warnings: Vec<Warning>,
}

impl Parsed {
    /// The outcome of a decode: the config and its warnings when nothing is wrong, else every
    /// error (and the warnings found on the way).
    pub fn or_errors(
        config: Config,
        errors: Vec<ConfigError>,
        warnings: Vec<Warning>,
    ) -> Result<Parsed, ConfigErrors> {
        if errors.is_empty() {
            Ok(Parsed { config, warnings })
        } else {
            Err(ConfigErrors { errors, warnings })
        }
    }
}

/// Parses the `config` value of MetalLB's ConfigMap (one YAML document; empty = no pools).
pub fn parse_config(text: &str) -> Result<Parsed, ConfigErrors> {
    let mut d = error::Diagnostics::default();
    let config = match yaml::parse_documents(text) {
        Err(e) => {
            d.error(ROOT_PATH, e.line, format!("invalid YAML: {}", e.message));
            Config::default()
        }
        Ok(docs) => {
            if let Some(extra) = docs.get(1) {
                d.error(
                    ROOT_PATH,
                    extra.line,
                    "the config must be a single YAML document",
                );
            }
            decode::decode_document(&mut d, docs.first())
        }
    };
    d.sort();
    Parsed::or_errors(config, d.errors, d.warnings)
}
