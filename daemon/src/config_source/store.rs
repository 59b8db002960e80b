//! What the configuration watches saw, per source, and the rule that picks one: pure.
//!
//! Each kind (the ConfigMap, the six `metallb.io` kinds, basic-auth Secrets) is kept as its
//! own list, replaced whole at the end of a (re)list so a half-finished relist is never
//! evaluated. Objects are stored reduced to what the conversion reads (name, uid, labels,
//! annotations, spec or data): a status write (the controller's pool counts) or any other
//! metadata churn compares equal and costs nothing.
//!
//! Nothing is evaluated before every kind has been listed once (or found not served):
//! a speaker that saw the pools but not yet the advertisements would withdraw them all.

use std::collections::BTreeMap;

use ferrolb_config::{ConfigErrors, ObjectRef, Parsed, Warning};
use ferrolb_crds::to_model::{Resources, to_config};
use ferrolb_crds::types::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::slim::SlimNode;

use super::secrets::resolve_passwords;

/// One change of one kind's list, as a watch reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    /// A (re)list starts: the objects that follow replace the list at [`Change::Listed`].
    Relist,
    /// One object of the (re)list.
    Item(T),
    /// The (re)list is complete.
    Listed,
    /// Created or changed after the list.
    Upsert(T),
    /// Deleted.
    Delete(T),
    /// The kind is not served (its CRD is not installed) or not readable (RBAC): an empty
    /// list, with the reason for the status page.
    Absent(String),
}

/// A change of some kind.
// Unboxed on purpose: inputs live briefly in a 256-entry queue (at most ~190 KB).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    ConfigMap(Change<ConfigMap>),
    Pool(Change<IPAddressPool>),
    Peer(Change<BGPPeer>),
    BgpAdvertisement(Change<BGPAdvertisement>),
    L2Advertisement(Change<L2Advertisement>),
    BfdProfile(Change<BFDProfile>),
    Community(Change<Community>),
    Secret(Change<Secret>),
    Node(Change<SlimNode>),
}

/// Where a configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The MetalLB 0.12 ConfigMap.
    ConfigMap,
    /// The `metallb.io` custom resources (MetalLB 0.13+).
    Resources,
}

impl Origin {
    /// For logs and the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::ConfigMap => "configmap",
            Origin::Resources => "custom resources",
        }
    }
}

/// The newest input, decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    /// A valid configuration (with its warnings).
    Valid(Origin, Parsed),
    /// An invalid one: every problem.
    Invalid(Origin, ConfigErrors),
    /// Neither source holds anything.
    Missing(String),
}

/// An object reduced to what the conversion reads (see the module doc).
trait Reduce: Clone + PartialEq {
    fn meta(&self) -> &ObjectMeta;
    fn reduce(self) -> Self;
}

fn reduced_meta(m: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        labels: m.labels,
        annotations: m.annotations,
        ..Default::default()
    }
}

macro_rules! reduce_cr {
    ($($t:ty),*) => {$(
        impl Reduce for $t {
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn reduce(mut self) -> Self {
                self.metadata = reduced_meta(self.metadata);
                self.status = None;
                self
            }
        }
    )*};
}
reduce_cr!(
    IPAddressPool,
    BGPPeer,
    BGPAdvertisement,
    L2Advertisement,
    BFDProfile,
    Community
);

impl Reduce for ConfigMap {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn reduce(self) -> Self {
        ConfigMap {
            metadata: reduced_meta(self.metadata),
            data: self.data,
            ..Default::default()
        }
    }
}

impl Reduce for SlimNode {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn reduce(self) -> Self {
        SlimNode {
            metadata: ObjectMeta {
                name: self.metadata.name,
                labels: self.metadata.labels,
                ..Default::default()
            },
        }
    }
}

impl Reduce for Secret {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn reduce(self) -> Self {
        Secret {
            metadata: reduced_meta(self.metadata),
            data: self.data,
            string_data: self.string_data,
            type_: self.type_,
            ..Default::default()
        }
    }
}

/// Whether a kind's list is known.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listing {
    /// Not listed yet.
    Pending,
    /// Listed; changes follow.
    Listed,
    /// Not served or not readable: empty.
    Absent(String),
}

/// One kind's objects by name.
#[derive(Debug, Clone)]
struct List<T> {
    listing: Listing,
    objects: BTreeMap<String, T>,
    relist: Option<BTreeMap<String, T>>,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List {
            listing: Listing::Pending,
            objects: BTreeMap::new(),
            relist: None,
        }
    }
}

fn name_of<T: Reduce>(o: &T) -> String {
    o.meta().name.clone().unwrap_or_default()
}

impl<T: Reduce> List<T> {
    /// Applies `c`; returns whether what the conversion reads changed.
    fn apply(&mut self, c: Change<T>) -> bool {
        match c {
            Change::Relist => {
                self.relist = Some(BTreeMap::new());
                false
            }
            Change::Item(o) => {
                let o = o.reduce();
                self.relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name_of(&o), o);
                false
            }
            Change::Listed => {
                let fresh = self.relist.take().unwrap_or_default();
                let changed = self.listing != Listing::Listed || fresh != self.objects;
                self.objects = fresh;
                self.listing = Listing::Listed;
                changed
            }
            Change::Upsert(o) => {
                let o = o.reduce();
                let name = name_of(&o);
                if self.objects.get(&name) == Some(&o) {
                    return false;
                }
                self.objects.insert(name, o);
                true
            }
            Change::Delete(o) => self.objects.remove(&name_of(&o)).is_some(),
            Change::Absent(why) => {
                let changed = !self.objects.is_empty() || self.listing == Listing::Pending;
                self.objects.clear();
                self.relist = None;
                self.listing = Listing::Absent(why);
                changed
            }
        }
    }

    fn known(&self) -> bool {
        self.listing != Listing::Pending
    }

    fn values(&self) -> Vec<T> {
        self.objects.values().cloned().collect()
    }
}

/// Everything the configuration watches saw.
#[derive(Debug, Clone)]
pub struct Sources {
    namespace: String,
    configmap_name: String,
    configmap: List<ConfigMap>,
    pools: List<IPAddressPool>,
    peers: List<BGPPeer>,
    bgp_advertisements: List<BGPAdvertisement>,
    l2_advertisements: List<L2Advertisement>,
    bfd_profiles: List<BFDProfile>,
    communities: List<Community>,
    /// `None`: Secrets are not read (the controller needs no passwords).
    secrets: Option<List<Secret>>,
    /// `None`: Nodes are not read (then the node-dependent rules are skipped).
    nodes: Option<List<SlimNode>>,
}

impl Sources {
    /// For the ConfigMap `configmap_name` and the CRs of `namespace`; `read_secrets`: resolve
    /// `passwordSecret` (the speaker), else leave it unresolved (the controller).
    pub fn new(namespace: &str, configmap_name: &str, read_secrets: bool) -> Self {
        Sources {
            namespace: namespace.to_string(),
            configmap_name: configmap_name.to_string(),
            configmap: List::default(),
            pools: List::default(),
            peers: List::default(),
            bgp_advertisements: List::default(),
            l2_advertisements: List::default(),
            bfd_profiles: List::default(),
            communities: List::default(),
            secrets: read_secrets.then(List::default),
            nodes: None,
        }
    }

    /// Also read the Nodes' names and labels, so the conversion applies the rules that
    /// depend on them: MetalLB's LOCAL_PREF conflict (two advertisements of one pool with
    /// different LOCAL_PREFs for the same routes) and the "selects no node" warnings.
    pub fn with_nodes(mut self) -> Self {
        self.nodes = Some(List::default());
        self
    }

    /// Applies one change; returns whether the evaluation may differ.
    pub fn apply(&mut self, input: Input) -> bool {
        match input {
            Input::ConfigMap(c) => self.configmap.apply(c),
            Input::Pool(c) => self.pools.apply(c),
            Input::Peer(c) => self.peers.apply(c),
            Input::BgpAdvertisement(c) => self.bgp_advertisements.apply(c),
            Input::L2Advertisement(c) => self.l2_advertisements.apply(c),
            Input::BfdProfile(c) => self.bfd_profiles.apply(c),
            Input::Community(c) => self.communities.apply(c),
            Input::Secret(c) => self.secrets.as_mut().is_some_and(|s| s.apply(c)),
            Input::Node(c) => self.nodes.as_mut().is_some_and(|n| n.apply(c)),
        }
    }

    /// Every kind listed once (or known absent).
    pub fn synced(&self) -> bool {
        self.configmap.known()
            && self.pools.known()
            && self.peers.known()
            && self.bgp_advertisements.known()
            && self.l2_advertisements.known()
            && self.bfd_profiles.known()
            && self.communities.known()
            && self.secrets.as_ref().is_none_or(List::known)
            && self.nodes.as_ref().is_none_or(List::known)
    }

    /// The kinds not served or not readable, with the reason (for the status page and logs).
    pub fn absent(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut note = |kind: &'static str, l: &Listing| {
            if let Listing::Absent(why) = l {
                out.push((kind, why.clone()));
            }
        };
        note("IPAddressPool", &self.pools.listing);
        note("BGPPeer", &self.peers.listing);
        note("BGPAdvertisement", &self.bgp_advertisements.listing);
        note("L2Advertisement", &self.l2_advertisements.listing);
        note("BFDProfile", &self.bfd_profiles.listing);
        note("Community", &self.communities.listing);
        if let Some(n) = &self.nodes {
            note("Node", &n.listing);
        }
        if let Some(s) = &self.secrets {
            note("Secret", &s.listing);
        }
        out
    }

    /// The `metallb.io` objects now.
    pub fn resources(&self) -> Resources {
        Resources {
            pools: self.pools.values(),
            peers: self.peers.values(),
            bgp_advertisements: self.bgp_advertisements.values(),
            l2_advertisements: self.l2_advertisements.values(),
            bfd_profiles: self.bfd_profiles.values(),
            communities: self.communities.values(),
            // Not readable (RBAC that predates the Node watch): the node-dependent rules are
            // skipped rather than every selector reported as matching nothing.
            nodes: self
                .nodes
                .as_ref()
                .filter(|l| l.listing == Listing::Listed)
                .map(|l| {
                    l.objects
                        .iter()
                        .map(|(name, n)| {
                            (name.clone(), n.metadata.labels.clone().unwrap_or_default())
                        })
                        .collect()
                }),
        }
    }

    /// `metadata.uid` of every object, by kind and name (Events name their object by uid).
    pub fn uids(&self) -> BTreeMap<ObjectRef, String> {
        let mut out = BTreeMap::new();
        fn add<T: Reduce>(out: &mut BTreeMap<ObjectRef, String>, kind: &str, l: &List<T>) {
            for (name, o) in &l.objects {
                if let Some(uid) = &o.meta().uid {
                    out.insert(
                        ObjectRef {
                            kind: kind.to_string(),
                            name: name.clone(),
                        },
                        uid.clone(),
                    );
                }
            }
        }
        add(&mut out, "ConfigMap", &self.configmap);
        add(&mut out, "IPAddressPool", &self.pools);
        add(&mut out, "BGPPeer", &self.peers);
        add(&mut out, "BGPAdvertisement", &self.bgp_advertisements);
        add(&mut out, "L2Advertisement", &self.l2_advertisements);
        add(&mut out, "BFDProfile", &self.bfd_profiles);
        add(&mut out, "Community", &self.communities);
        out
    }

    /// The ConfigMap's `config` text, if the ConfigMap exists and has one.
    fn configmap_text(&self) -> Option<&str> {
        self.configmap
            .objects
            .get(&self.configmap_name)
            .and_then(|cm| cm.data.as_ref())
            .and_then(|d| d.get("config"))
            .map(String::as_str)
    }

    /// `namespace/name` of the ConfigMap.
    pub fn configmap_key(&self) -> String {
        format!("{}/{}", self.namespace, self.configmap_name)
    }

    /// The configuration the sources give now (`None` before [`Self::synced`]).
    ///
    /// The rule, MetalLB's since 0.13: if any `metallb.io` object exists in the namespace
    /// the CRs are the configuration and a ConfigMap beside them is ignored (with a
    /// warning naming it); otherwise the ConfigMap is.
    pub fn evaluate(&self) -> Option<Evaluation> {
        if !self.synced() {
            return None;
        }
        let resources = self.resources();
        if !resources.is_empty() {
            let mut result = to_config(&resources);
            if let Some(secrets) = &self.secrets
                && let Ok(parsed) = &mut result
            {
                let absent = match &secrets.listing {
                    Listing::Absent(why) => Some(why.as_str()),
                    _ => None,
                };
                if let Err(errors) = resolve_passwords(
                    &mut parsed.config,
                    &self.namespace,
                    &secrets.objects,
                    absent,
                ) {
                    result = Err(ConfigErrors {
                        errors,
                        warnings: parsed.warnings.clone(),
                    });
                }
            }
            if self.configmap_text().is_some() {
                let w = Warning::on_object(
                    ObjectRef {
                        kind: "ConfigMap".into(),
                        name: self.configmap_name.clone(),
                    },
                    "data.config",
                    format!(
                        "ignored: metallb.io resources exist in namespace {}, and they win over \
                         the ConfigMap (as in MetalLB 0.13+); delete ConfigMap {} once the \
                         migration is done",
                        self.namespace,
                        self.configmap_key()
                    ),
                );
                match &mut result {
                    Ok(p) => p.warnings.insert(0, w),
                    Err(e) => e.warnings.insert(0, w),
                }
            }
            return Some(match result {
                Ok(p) => Evaluation::Valid(Origin::Resources, p),
                Err(e) => Evaluation::Invalid(Origin::Resources, e),
            });
        }
        let Some(text) = self.configmap_text() else {
            return Some(Evaluation::Missing(format!(
                "no configuration: neither metallb.io resources in namespace {} nor ConfigMap {} \
                 (key `config`)",
                self.namespace,
                self.configmap_key()
            )));
        };
        Some(match ferrolb_config::parse_config(text) {
            Ok(p) => Evaluation::Valid(Origin::ConfigMap, p),
            Err(e) => Evaluation::Invalid(Origin::ConfigMap, e),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ferrolb_crds::types::{BGPAdvertisementSpec, IPAddressPoolSpec, IPAddressPoolStatus};

    pub(crate) fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("metallb-system".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    pub(crate) fn pool(name: &str, cidr: &str) -> IPAddressPool {
        IPAddressPool {
            metadata: meta(name),
            spec: IPAddressPoolSpec {
                addresses: vec![cidr.into()],
                ..Default::default()
            },
            status: None,
        }
    }

    fn advertisement(name: &str) -> BGPAdvertisement {
        BGPAdvertisement {
            metadata: meta(name),
            spec: BGPAdvertisementSpec::default(),
            status: None,
        }
    }

    fn configmap(text: &str) -> ConfigMap {
        ConfigMap {
            metadata: meta("config"),
            data: Some([("config".to_string(), text.to_string())].into()),
            ..Default::default()
        }
    }

    const CM: &str = "address-pools:\n- name: cm\n  protocol: bgp\n  addresses: [10.9.0.0/24]\n";

    /// Every kind listed with nothing in it, Secrets not read.
    pub(crate) fn empty_synced() -> Sources {
        let mut s = Sources::new("metallb-system", "config", false);
        for i in [
            Input::ConfigMap(Change::Listed),
            Input::Pool(Change::Listed),
            Input::Peer(Change::Listed),
            Input::BgpAdvertisement(Change::Listed),
            Input::L2Advertisement(Change::Listed),
            Input::BfdProfile(Change::Listed),
            Input::Community(Change::Listed),
        ] {
            s.apply(i);
        }
        s
    }

    fn pool_names(e: &Evaluation) -> Vec<String> {
        match e {
            Evaluation::Valid(_, p) => p.config.pools.iter().map(|p| p.name.clone()).collect(),
            other => panic!("not valid: {other:?}"),
        }
    }

    #[test]
    fn nothing_is_evaluated_before_every_kind_is_listed() {
        let mut s = Sources::new("metallb-system", "config", false);
        s.apply(Input::ConfigMap(Change::Item(configmap(CM))));
        s.apply(Input::ConfigMap(Change::Listed));
        s.apply(Input::Pool(Change::Item(pool("a", "10.0.0.0/24"))));
        s.apply(Input::Pool(Change::Listed));
        assert_eq!(s.evaluate(), None, "advertisements not listed yet");
        for i in [
            Input::Peer(Change::Listed),
            Input::BgpAdvertisement(Change::Listed),
            Input::L2Advertisement(Change::Listed),
            Input::BfdProfile(Change::Absent("not served".into())),
        ] {
            s.apply(i);
            assert_eq!(s.evaluate(), None);
        }
        s.apply(Input::Community(Change::Listed));
        assert!(s.synced());
        assert_eq!(pool_names(&s.evaluate().unwrap()), ["a"]);
        assert_eq!(s.absent(), vec![("BFDProfile", "not served".to_string())]);
    }

    #[test]
    fn the_configmap_is_the_configuration_when_no_cr_exists() {
        let mut s = empty_synced();
        assert!(
            matches!(s.evaluate(), Some(Evaluation::Missing(m)) if m.contains("metallb-system/config"))
        );
        assert!(s.apply(Input::ConfigMap(Change::Upsert(configmap(CM)))));
        let e = s.evaluate().unwrap();
        assert!(matches!(e, Evaluation::Valid(Origin::ConfigMap, _)));
        assert_eq!(pool_names(&e), ["cm"]);
    }

    #[test]
    fn crs_win_over_the_configmap_with_a_warning_naming_it() {
        let mut s = empty_synced();
        s.apply(Input::ConfigMap(Change::Upsert(configmap(CM))));
        s.apply(Input::Pool(Change::Upsert(pool("crpool", "10.1.0.0/24"))));
        s.apply(Input::BgpAdvertisement(Change::Upsert(advertisement(
            "all",
        ))));
        let e = s.evaluate().unwrap();
        let Evaluation::Valid(Origin::Resources, p) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(pool_names(&e), ["crpool"]);
        let w = p.warnings[0].to_string();
        assert!(w.contains("ConfigMap/config") && w.contains("win"), "{w}");
        // The last CR deleted: the ConfigMap is the configuration again.
        s.apply(Input::Pool(Change::Delete(pool("crpool", "10.1.0.0/24"))));
        s.apply(Input::BgpAdvertisement(Change::Delete(advertisement(
            "all",
        ))));
        assert_eq!(pool_names(&s.evaluate().unwrap()), ["cm"]);
    }

    #[test]
    fn a_bad_cr_is_an_error_on_that_object() {
        let mut s = empty_synced();
        s.apply(Input::Pool(Change::Upsert(pool("bad", "10.0.0.0/33"))));
        let Some(Evaluation::Invalid(Origin::Resources, e)) = s.evaluate() else {
            panic!("not invalid")
        };
        let line = e.lines().join("; ");
        assert!(
            line.starts_with("IPAddressPool/bad spec.addresses[0]"),
            "{line}"
        );
    }

    #[test]
    fn status_and_metadata_churn_is_not_a_change() {
        let mut s = empty_synced();
        assert!(s.apply(Input::Pool(Change::Upsert(pool("a", "10.0.0.0/24")))));
        let mut again = pool("a", "10.0.0.0/24");
        again.metadata.resource_version = Some("42".into());
        again.status = Some(IPAddressPoolStatus {
            assigned_ipv4: 3,
            ..Default::default()
        });
        assert!(!s.apply(Input::Pool(Change::Upsert(again))));
        let mut labelled = pool("a", "10.0.0.0/24");
        labelled.metadata.labels = Some([("tier".to_string(), "x".to_string())].into());
        assert!(
            s.apply(Input::Pool(Change::Upsert(labelled))),
            "labels are read"
        );
    }

    #[test]
    fn a_relist_replaces_the_list_whole_at_its_end() {
        let mut s = empty_synced();
        s.apply(Input::Pool(Change::Upsert(pool("old", "10.0.0.0/24"))));
        s.apply(Input::BgpAdvertisement(Change::Upsert(advertisement(
            "all",
        ))));
        assert!(!s.apply(Input::Pool(Change::Relist)));
        assert!(!s.apply(Input::Pool(Change::Item(pool("new", "10.2.0.0/24")))));
        // Mid-relist the old list is still the one evaluated.
        assert_eq!(pool_names(&s.evaluate().unwrap()), ["old"]);
        assert!(s.apply(Input::Pool(Change::Listed)));
        assert_eq!(pool_names(&s.evaluate().unwrap()), ["new"]);
        // The same relist again changes nothing.
        s.apply(Input::Pool(Change::Relist));
        s.apply(Input::Pool(Change::Item(pool("new", "10.2.0.0/24"))));
        assert!(!s.apply(Input::Pool(Change::Listed)));
    }

    #[test]
    fn a_kind_found_absent_is_empty() {
        let mut s = empty_synced();
        s.apply(Input::Pool(Change::Upsert(pool("a", "10.0.0.0/24"))));
        assert!(s.apply(Input::Pool(Change::Absent("CRD deleted".into()))));
        assert!(matches!(s.evaluate(), Some(Evaluation::Missing(_))));
    }

    #[test]
    fn with_nodes_the_local_pref_conflict_rule_applies() {
        let mut s = Sources::new("metallb-system", "config", false).with_nodes();
        for i in [
            Input::ConfigMap(Change::Listed),
            Input::Pool(Change::Listed),
            Input::Peer(Change::Listed),
            Input::BgpAdvertisement(Change::Listed),
            Input::L2Advertisement(Change::Listed),
            Input::BfdProfile(Change::Listed),
            Input::Community(Change::Listed),
        ] {
            s.apply(i);
        }
        assert_eq!(s.evaluate(), None, "Nodes not listed yet");
        s.apply(Input::Node(Change::Listed));
        s.apply(Input::Pool(Change::Upsert(pool("a", "10.0.0.0/24"))));
        for (name, pref) in [("one", 100), ("two", 200)] {
            let mut ad = advertisement(name);
            ad.spec.local_pref = Some(pref);
            s.apply(Input::BgpAdvertisement(Change::Upsert(ad)));
        }
        // No node: nothing would be announced, nothing conflicts (as in MetalLB).
        assert!(matches!(s.evaluate(), Some(Evaluation::Valid(..))));
        let node = SlimNode {
            metadata: ObjectMeta {
                name: Some("node-1".into()),
                resource_version: Some("1".into()),
                ..Default::default()
            },
        };
        assert!(s.apply(Input::Node(Change::Upsert(node.clone()))));
        let Some(Evaluation::Invalid(_, e)) = s.evaluate() else {
            panic!("the conflict is an error once a node announces both")
        };
        assert!(e.lines().join(" ").contains("LOCAL_PREF"), "{e:?}");
        // A heartbeat (new resourceVersion, same labels) is not a change.
        let mut beat = node;
        beat.metadata.resource_version = Some("2".into());
        assert!(!s.apply(Input::Node(Change::Upsert(beat))));
        // Nodes not readable (RBAC without the Node rule): the rule is skipped, not the
        // configuration.
        assert!(s.apply(Input::Node(Change::Absent("forbidden".into()))));
        assert!(matches!(s.evaluate(), Some(Evaluation::Valid(..))));
        assert_eq!(s.resources().nodes, None);
    }

    #[test]
    fn uids_are_kept_for_events() {
        let mut s = empty_synced();
        s.apply(Input::Pool(Change::Upsert(pool("a", "10.0.0.0/24"))));
        let uids = s.uids();
        let key = ObjectRef {
            kind: "IPAddressPool".into(),
            name: "a".into(),
        };
        assert_eq!(uids.get(&key).map(String::as_str), Some("uid-a"));
    }
}
