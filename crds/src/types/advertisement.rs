//! `BGPAdvertisement` (metallb.io/v1beta1).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// BGPAdvertisementSpec defines the desired state of BGPAdvertisement.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    namespaced,
    status = "BGPAdvertisementStatus",
    derive = "PartialEq",
    doc = "BGPAdvertisement allows to advertise the IPs coming\nfrom the selected IPAddressPools via BGP, setting the parameters of the\nBGP Advertisement.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 10
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// The aggregation-length advertisement option lets you “roll up” the /32s into a larger prefix. Defaults to 32. Works for IPv4 addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), default = "default_length_v4")]
    pub aggregation_length: Option<i32>,

    /// The aggregation-length advertisement option lets you “roll up” the /128s into a larger prefix. Defaults to 128. Works for IPv6 addresses.
    #[serde(
        default,
        rename = "aggregationLengthV6",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(default = "default_length_v6")]
    pub aggregation_length_v6: Option<i32>,

    /// The BGP LOCAL_PREF attribute which is used by BGP best path algorithm,
    /// Path with higher localpref is preferred over one with lower localpref.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,

    /// The BGP communities to be associated with the announcement. Each item can be a standard community of the
    /// form 1234:1234, a large community of the form large:1234:1234:1234 or the name of an alias defined in the
    /// Community CRD.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,

    /// `ipAddressPools`, `ipAddressPoolSelectors`, `nodeSelectors`.
    #[serde(flatten)]
    pub selection: super::Selection,

    /// Peers limits the bgppeer to advertise the ips of the selected pools to.
    /// When empty, the loadbalancer IP is announced to all the BGPPeers configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

fn default_length_v4() -> Option<i32> {
    Some(32)
}

fn default_length_v6() -> Option<i32> {
    Some(128)
}

/// BGPAdvertisementStatus defines the observed state of BGPAdvertisement.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BGPAdvertisementStatus {}
