//! The table of served resources.
//!
//! Objects are stored as plain JSON, so adding a resource is one entry here: the store,
//! discovery, routing and patching are all generic over this table.

/// How a list field is merged by strategic-merge-patch and server-side apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// A list of objects identified by these key fields (SMP uses the first, SSA all).
    Map(&'static [&'static str]),
    /// A list of scalars merged as a set.
    Set,
}

/// Which name syntax a resource requires (upstream's per-type name validation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most resources).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label1123,
    /// RFC 1035 label (services).
    Label1035,
    /// Any path segment (RBAC objects, e.g. `system:controller`).
    PathSegment,
}

/// One list-merge rule: the dotted path of the list field (list items are not named in the
/// path) and how it is merged. Paths not listed are atomic lists.
#[derive(Debug, Clone, Copy)]
pub struct ListRule {
    /// Dotted field path, e.g. `spec.ports`.
    pub path: &'static str,
    /// Merge behaviour.
    pub kind: ListKind,
}

/// Rules shared by every object (from `ObjectMeta`).
const META_RULES: &[ListRule] = &[
    ListRule {
        path: "metadata.finalizers",
        kind: ListKind::Set,
    },
    ListRule {
        path: "metadata.ownerReferences",
        kind: ListKind::Map(&["uid"]),
    },
];

/// A served resource type.
#[derive(Debug)]
pub struct ResourceType {
    /// API group, "" for core.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Plural resource name used in URLs.
    pub plural: &'static str,
    /// Singular name (discovery).
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Whether a `status` subresource exists (main-resource writes then ignore `status`).
    pub has_status: bool,
    /// Type-specific list merge rules (in addition to the `ObjectMeta` ones).
    pub list_rules: &'static [ListRule],
    /// Name syntax.
    pub name_rule: NameRule,
}

impl ResourceType {
    /// `apiVersion` of objects of this type.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `services` or `leases.coordination.k8s.io`, as used in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Field-selector labels this type supports beyond `metadata.name` and
    /// `metadata.namespace`, as (label, dotted field path) — upstream's per-type lists.
    pub fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        match (self.group, self.kind) {
            ("", "Event") => &[
                ("involvedObject.kind", "involvedObject.kind"),
                ("involvedObject.namespace", "involvedObject.namespace"),
                ("involvedObject.name", "involvedObject.name"),
                ("involvedObject.uid", "involvedObject.uid"),
                ("involvedObject.apiVersion", "involvedObject.apiVersion"),
                (
                    "involvedObject.resourceVersion",
                    "involvedObject.resourceVersion",
                ),
                ("involvedObject.fieldPath", "involvedObject.fieldPath"),
                ("reason", "reason"),
                ("reportingComponent", "reportingComponent"),
                ("source", "source.component"),
                ("type", "type"),
            ],
            ("events.k8s.io", "Event") => &[
                ("regarding.kind", "regarding.kind"),
                ("regarding.namespace", "regarding.namespace"),
                ("regarding.name", "regarding.name"),
                ("regarding.uid", "regarding.uid"),
                ("regarding.apiVersion", "regarding.apiVersion"),
                ("regarding.resourceVersion", "regarding.resourceVersion"),
                ("regarding.fieldPath", "regarding.fieldPath"),
                ("reason", "reason"),
                ("reportingController", "reportingController"),
                ("type", "type"),
            ],
            ("", "Service") => &[
                ("spec.clusterIP", "spec.clusterIP"),
                ("spec.type", "spec.type"),
            ],
            ("", "Node") => &[("spec.unschedulable", "spec.unschedulable")],
            ("", "Namespace") => &[("status.phase", "status.phase")],
            _ => &[],
        }
    }

    /// The merge rule for the list at dotted `path`, if it is not atomic.
    pub fn list_rule(&self, path: &str) -> Option<ListKind> {
        META_RULES
            .iter()
            .chain(self.list_rules.iter())
            .find(|r| r.path == path)
            .map(|r| r.kind)
    }
}

/// Pod-template list keys (Deployment, DaemonSet), from upstream `patchMergeKey`s.
const POD_TEMPLATE_RULES: &[ListRule] = &[
    ListRule {
        path: "spec.template.spec.containers",
        kind: ListKind::Map(&["name"]),
    },
    ListRule {
        path: "spec.template.spec.initContainers",
        kind: ListKind::Map(&["name"]),
    },
    ListRule {
        path: "spec.template.spec.containers.env",
        kind: ListKind::Map(&["name"]),
    },
    ListRule {
        path: "spec.template.spec.initContainers.env",
        kind: ListKind::Map(&["name"]),
    },
    ListRule {
        path: "spec.template.spec.containers.ports",
        kind: ListKind::Map(&["containerPort", "protocol"]),
    },
    ListRule {
        path: "spec.template.spec.containers.volumeMounts",
        kind: ListKind::Map(&["mountPath"]),
    },
    ListRule {
        path: "spec.template.spec.initContainers.volumeMounts",
        kind: ListKind::Map(&["mountPath"]),
    },
    ListRule {
        path: "spec.template.spec.volumes",
        kind: ListKind::Map(&["name"]),
    },
    ListRule {
        path: "status.conditions",
        kind: ListKind::Map(&["type"]),
    },
];

/// Every served resource. Indices into this slice identify a resource in the store.
pub static RESOURCES: &[ResourceType] = &[
    ResourceType {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        has_status: false,
        list_rules: &[],
        name_rule: NameRule::Label1123,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        has_status: true,
        list_rules: &[
            // ServiceSpec.ports: patchMergeKey=port; listMapKeys port+protocol.
            ListRule {
                path: "spec.ports",
                kind: ListKind::Map(&["port", "protocol"]),
            },
            ListRule {
                path: "status.conditions",
                kind: ListKind::Map(&["type"]),
            },
            // status.loadBalancer.ingress, clusterIPs, externalIPs, ipFamilies: atomic.
        ],
        name_rule: NameRule::Label1035,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        has_status: true,
        list_rules: &[
            ListRule {
                path: "spec.podCIDRs",
                kind: ListKind::Set,
            },
            ListRule {
                path: "status.conditions",
                kind: ListKind::Map(&["type"]),
            },
            ListRule {
                path: "status.addresses",
                kind: ListKind::Map(&["type"]),
            },
            // spec.taints: atomic.
        ],
        name_rule: NameRule::Subdomain,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        has_status: false,
        list_rules: &[],
        name_rule: NameRule::Subdomain,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        has_status: false,
        list_rules: &[],
        name_rule: NameRule::Subdomain,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        has_status: false,
        list_rules: &[],
        name_rule: NameRule::Subdomain,
    },
    ResourceType {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        namespaced: true,
        short_names: &[],
        has_status: false,
        // endpoints and ports are atomic lists.
        list_rules: &[],
        name_rule: NameRule::Subdomain,
    },
    ResourceType {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        has_status: false,
        list_rules: &[],
        name_rule: NameRule::Subdomain,
    },
    ResourceType {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        has_status: false,
        list_rules: &[],
        name_rule: NameRule::Subdomain,
    },
    // Not used by ferrolb itself; served so its manifests can be applied to the lab.
    ResourceType {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        has_status: false,
        list_rules: &[],
        name_rule: NameRule::Subdomain,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        has_status: true,
        list_rules: POD_TEMPLATE_RULES,
        name_rule: NameRule::Subdomain,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        namespaced: true,
        short_names: &["ds"],
        has_status: true,
        list_rules: POD_TEMPLATE_RULES,
        name_rule: NameRule::Subdomain,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        singular: "role",
        kind: "Role",
        namespaced: true,
        short_names: &[],
        has_status: false,
        list_rules: &[],
        name_rule: NameRule::PathSegment,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        singular: "rolebinding",
        kind: "RoleBinding",
        namespaced: true,
        short_names: &[],
        has_status: false,
        list_rules: &[],
        name_rule: NameRule::PathSegment,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        singular: "clusterrole",
        kind: "ClusterRole",
        namespaced: false,
        short_names: &[],
        has_status: false,
        list_rules: &[],
        name_rule: NameRule::PathSegment,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        kind: "ClusterRoleBinding",
        namespaced: false,
        short_names: &[],
        has_status: false,
        list_rules: &[],
        name_rule: NameRule::PathSegment,
    },
];

/// Index of the `namespaces` resource in [`RESOURCES`].
pub const NAMESPACES: usize = 0;

/// Find a resource by group, version and plural name.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<usize> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The (group, version) pairs served, in discovery order, core first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}
