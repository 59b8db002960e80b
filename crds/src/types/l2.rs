//! `L2Advertisement` (metallb.io/v1beta1): read so that MetalLB manifests apply, reported as
//! unsupported (ferrolb announces over BGP only).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// L2AdvertisementSpec defines the desired state of L2Advertisement.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    namespaced,
    status = "L2AdvertisementStatus",
    derive = "PartialEq",
    doc = "L2Advertisement allows to advertise the LoadBalancer IPs provided\nby the selected pools via L2.",
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
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 10
    )
)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// `ipAddressPools`, `ipAddressPoolSelectors`, `nodeSelectors`.
    #[serde(flatten)]
    pub selection: super::Selection,
    /// A list of interfaces to announce from. The LB IP will be announced only from these interfaces.
    /// If the field is not set, we advertise from all the interfaces on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}

/// L2AdvertisementStatus defines the observed state of L2Advertisement.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct L2AdvertisementStatus {}
