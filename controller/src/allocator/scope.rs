//! Which Services may take addresses from a pool: MetalLB's `serviceAllocation` (v0.13+).
//!
//! MetalLB's rules (`internal/allocator/allocator.go`, `isPoolCompatibleWithService`,
//! `pinnedPoolsForService`, `sortPools`; `internal/config/config.go`):
//!
//! - A pool **without** `serviceAllocation` serves every Service. It is a *fallback*: a Service
//!   without a requested pool or IP tries it only after every auto-assign pool with a
//!   `serviceAllocation` that selects it has failed.
//! - A pool **with** `serviceAllocation` serves only the Services it selects:
//!   - `namespaces` and `namespaceSelectors` together name the allowed namespaces (a namespace
//!     listed by name *or* whose labels match any of the selectors); with neither, every
//!     namespace is allowed;
//!   - `serviceSelectors`: the Service's labels must match at least one; with none, every
//!     Service of an allowed namespace is selected.
//!
//!   Both must hold. A `serviceAllocation` with only a `priority` selects every Service (but
//!   still comes before the fallback pools).
//! - **Order**: the selecting auto-assign pools are tried first, by `priority` (a lower value
//!   first; a pool without one, or with 0, after every pool that has one), then the fallback
//!   pools. Ties keep config order (MetalLB's order among equal priorities is random; for CRs
//!   ferrolb's config order is the pools' name order).
//! - A pool named by the `address-pool` annotation, or holding a requested IP, must select the
//!   Service too, else the request is refused (MetalLB: "pool X not compatible for ip
//!   assignment"). Auto-assign does not matter for those, as before.
//! - An IP already held stays only while its pool still selects the Service (a Service label,
//!   a namespace label or the pool's `serviceAllocation` changed): MetalLB's `Assign` on the
//!   current IPs fails and the Service is re-allocated.
//!
//! One deliberate difference: MetalLB resolves `namespaceSelectors` to namespace names when it
//! reads the config and skips the namespace check when that set is empty, so a selector that
//! matches no namespace (yet) opens the pool to every namespace for requested pools/IPs, and
//! with `serviceSelectors` also for automatic assignment. Here the restriction stays: no
//! namespace matches, so no Service is selected.
//!
//! Cost: evaluated per request over the pools that have a `serviceAllocation` (a config-sized
//! number), never over addresses.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use thiserror::Error;

use super::types::Request;

/// A label predicate with its text: how the allocator sees a Kubernetes label selector.
///
/// Why a predicate: the allocator takes no config crate, and the config crate already has the
/// one implementation of label-selector matching; the controller wraps it here. The text is
/// what messages show and what equality compares.
#[derive(Clone)]
pub struct LabelMatcher {
    text: Arc<str>,
    test: Arc<LabelTest>,
}

/// The predicate inside a [`LabelMatcher`].
type LabelTest = dyn Fn(&BTreeMap<String, String>) -> bool + Send + Sync;

impl LabelMatcher {
    /// A matcher named `text` (for example `team=a,tier in (web)`) testing labels with `test`.
    pub fn new(
        text: impl Into<Arc<str>>,
        test: impl Fn(&BTreeMap<String, String>) -> bool + Send + Sync + 'static,
    ) -> LabelMatcher {
        LabelMatcher {
            text: text.into(),
            test: Arc::new(test),
        }
    }

    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        (self.test)(labels)
    }

    /// The selector as written for messages.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl PartialEq for LabelMatcher {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for LabelMatcher {}

impl fmt::Debug for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LabelMatcher({:?})", self.text)
    }
}

/// A pool's `serviceAllocation`: which Services it serves and in which order it is tried.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceAllocation {
    /// Lower values are tried first; `None` (and 0, as in MetalLB) after every pool with one.
    pub priority: Option<i32>,
    /// Allowed namespaces by name.
    pub namespaces: Vec<String>,
    /// Allowed namespaces by label (any one matching is enough).
    pub namespace_selectors: Vec<LabelMatcher>,
    /// Selected Services by label (any one matching is enough); empty = every Service.
    pub service_selectors: Vec<LabelMatcher>,
}

/// Why a pool with a `serviceAllocation` does not serve a Service.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScopeReason {
    #[error("its serviceAllocation does not select namespace {namespace:?}")]
    Namespace { namespace: String },
    #[error("the service's labels match none of its serviceAllocation.serviceSelectors")]
    ServiceLabels,
}

impl ServiceAllocation {
    /// The sort key of the pool among the pools with a `serviceAllocation`: set priorities
    /// ascending, then the rest.
    pub(crate) fn order_key(&self) -> (bool, i32) {
        match self.priority {
            Some(p) if p != 0 => (false, p),
            _ => (true, 0),
        }
    }

    /// Whether this pool may give `request` addresses.
    pub(crate) fn admits(&self, request: &Request) -> Result<(), ScopeReason> {
        if !self.namespaces.is_empty() || !self.namespace_selectors.is_empty() {
            let namespace = request.namespace();
            let by_name = self.namespaces.iter().any(|n| n == namespace);
            let labels = request.namespace_labels.map();
            if !by_name && !self.namespace_selectors.iter().any(|s| s.matches(labels)) {
                return Err(ScopeReason::Namespace {
                    namespace: namespace.to_string(),
                });
            }
        }
        let labels = request.labels.map();
        if !self.service_selectors.is_empty()
            && !self.service_selectors.iter().any(|s| s.matches(labels))
        {
            return Err(ScopeReason::ServiceLabels);
        }
        Ok(())
    }
}

/// Labels of a Service or of its namespace, shared (one map per namespace, and one per Service
/// between the controller's view and the allocator's copy of the request); empty costs nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels(Option<Arc<BTreeMap<String, String>>>);

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl Labels {
    /// `map` as shared labels.
    pub fn new(map: BTreeMap<String, String>) -> Labels {
        if map.is_empty() {
            Labels(None)
        } else {
            Labels(Some(Arc::new(map)))
        }
    }

    /// The labels as a map.
    pub fn map(&self) -> &BTreeMap<String, String> {
        self.0.as_deref().unwrap_or(&NO_LABELS)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Labels {
        Labels::new(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}
