//! `BGPPeer` (metallb.io/v1beta2).

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// BGPPeerSpec defines the desired state of Peer.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta2",
    kind = "BGPPeer",
    namespaced,
    status = "BGPPeerStatus",
    derive = "PartialEq",
    doc = "BGPPeer is the Schema for the peers API.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "ASN", type_ = "string", json_path = ".spec.peerASN"),
    printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(
        name = "Multi Hops",
        type_ = "string",
        json_path = ".spec.ebgpMultiHop"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// AS number to use for the local end of the session.
    #[serde(rename = "myASN")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub my_asn: u32,

    /// AS number to expect from the remote end of the session.
    /// ASN and DynamicASN are mutually exclusive and one of them must be specified.
    #[serde(default, rename = "peerASN", skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub peer_asn: u32,

    /// DynamicASN detects the AS number to use for the remote end of the session
    /// without explicitly setting it via the ASN field. Limited to:
    /// internal - if the neighbor's ASN is different than MyASN connection is denied.
    /// external - if the neighbor's ASN is the same as MyASN the connection is denied.
    /// ASN and DynamicASN are mutually exclusive and one of them must be specified.
    #[serde(
        default,
        rename = "dynamicASN",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("enum" = ["internal", "external"]))]
    pub dynamic_asn: Option<String>,

    /// Address to dial when establishing the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,

    /// Interface is the node interface over which the unnumbered BGP peering will
    /// be established. No API validation takes place as that string value
    /// represents an interface name on the host and if user provides an invalid
    /// value, only the actual BGP session will not be established.
    /// Address and Interface are mutually exclusive and one of them must be specified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,

    /// Source address to use when establishing the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,

    /// Port to dial when establishing the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16384), default = "default_port")]
    pub peer_port: Option<u16>,

    /// Requested BGP hold time, per RFC4271.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,

    /// Requested BGP keepalive time, per RFC4271.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,

    /// Requested BGP connect time, controls how long BGP waits between connection attempts to a neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "message": "connect time should be between 1 seconds to 65535",
            "rule": "duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535"
        },
        {
            "message": "connect time should contain a whole number of seconds",
            "rule": "duration(self).getMilliseconds() % 1000 == 0"
        }
    ]))]
    pub connect_time: Option<String>,

    /// BGP router ID to advertise to the peer
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,

    /// Only connect to this peer on nodes that match one of these
    /// selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// Authentication password for routers enforcing TCP MD5 authenticated sessions
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,

    /// passwordSecret is name of the authentication secret for BGP Peer.
    /// the secret must be of type "kubernetes.io/basic-auth", and created in the
    /// same namespace as the MetalLB deployment. The password is stored in the
    /// secret as the key "password".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretReference>,

    /// The name of the BFD Profile to be used for the BFD session associated to the BGP session. If not set, the BFD session won't be set up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,

    /// EnableGracefulRestart allows BGP peer to continue to forward data packets
    /// along known routes while the routing protocol information is being
    /// restored. This field is immutable because it requires restart of the BGP
    /// session. Supported for FRR mode only.
    #[serde(default, skip_serializing_if = "super::is_false")]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "message": "EnableGracefulRestart cannot be changed after creation",
            "rule": "self == oldSelf"
        }
    ]))]
    pub enable_graceful_restart: bool,

    /// To set if the BGPPeer is multi-hops away. Needed for FRR mode only.
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub ebgp_multi_hop: bool,

    /// To set if we want to peer with the BGPPeer using an interface belonging to
    /// a host vrf
    #[serde(default, rename = "vrf", skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,

    /// To set if we want to disable MP BGP that will separate IPv4 and IPv6 route exchanges into distinct BGP sessions.
    /// Deprecated: DisableMP is deprecated in favor of dualStackAddressFamily.
    #[serde(default, rename = "disableMP", skip_serializing_if = "super::is_false")]
    #[schemars(extend("default" = false))]
    pub disable_mp: bool,

    /// To set if we want to enable the neighbor not only for the ipfamily related to its session,
    /// but also the other one. This allows to advertise/receive IPv4 prefixes over IPv6 sessions and vice versa.
    #[serde(default, skip_serializing_if = "super::is_false")]
    #[schemars(extend("default" = false))]
    pub dual_stack_address_family: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn default_port() -> Option<u16> {
    Some(179)
}

/// BGPPeerStatus defines the observed state of Peer.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BGPPeerStatus {}
