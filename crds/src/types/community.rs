//! `Community` (metallb.io/v1beta1): named aliases for BGP communities.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CommunitySpec defines the desired state of Community.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "Community",
    namespaced,
    status = "CommunityStatus",
    derive = "PartialEq",
    doc = "Community is a collection of aliases for communities.\nUsers can define named aliases to be used in the BGPPeer CRD."
)]
#[serde(rename_all = "camelCase")]
pub struct CommunitySpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<CommunityAlias>,
}

/// One alias.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct CommunityAlias {
    /// The name of the alias for the community.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The BGP community value corresponding to the given name. Can be a standard community of the form 1234:1234
    /// or a large community of the form large:1234:1234:1234.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// CommunityStatus defines the observed state of Community.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct CommunityStatus {}
