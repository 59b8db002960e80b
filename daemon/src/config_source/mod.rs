//! The configuration of both daemons, from either source: MetalLB 0.12's ConfigMap or the
//! `metallb.io` custom resources of MetalLB 0.13+ (issue 14 phase B).
//!
//! [`spawn`] watches the ConfigMap, the six `metallb.io` kinds and (for the speaker) the
//! basic-auth Secrets of the namespace, and publishes a [`ConfigState`] on a
//! `tokio::sync::watch` channel: the latest value wins, so a burst of changes costs the
//! daemon one reload. The rule ([`store::Sources::evaluate`]): any `metallb.io` object in
//! the namespace makes the CRs the configuration (a ConfigMap beside them is ignored, with a
//! warning); otherwise the ConfigMap is. A bad input, or none at all, keeps the last good
//! configuration in force and marks it stale; the errors name their object
//! (`IPAddressPool/a spec.addresses[0]: ...`), and [`events_for`] turns them into Events on
//! those objects.
//!
//! A `metallb.io` kind whose CRD is not installed (or that RBAC does not let us read) counts
//! as empty, and is probed again every [`run::PROBE_PERIOD`], so ConfigMap users need not
//! install the CRDs and installing them later is noticed.

pub mod run;
pub mod secrets;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrolb_config::{Config, ConfigError, ObjectRef, Warning};

pub use run::{Options, spawn};
pub use store::{Change, Evaluation, Input, Origin, Sources};

use crate::events::{EventSpec, Regarding, Severity};

/// What the daemons read: the configuration in force and what the newest input said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigState {
    /// Every source listed once (or found not served). Until then nothing is decided.
    pub synced: bool,
    /// The configuration in force: the last good one.
    pub config: Option<Arc<Config>>,
    /// Where [`Self::config`] came from.
    pub origin: Option<Origin>,
    /// Bumped whenever [`Self::config`] changes (a daemon reloads on a new generation).
    pub generation: u64,
    /// Why the newest input is not in force (`None`: it is).
    pub stale: Option<String>,
    /// The newest input's errors (each naming its object, for a CR source).
    pub errors: Vec<ConfigError>,
    /// The newest input's warnings.
    pub warnings: Vec<Warning>,
    /// UIDs of the objects, for Events.
    pub uids: BTreeMap<ObjectRef, String>,
    /// Kinds not served or not readable, with why.
    pub absent: Vec<(&'static str, String)>,
    /// Bumped on every evaluation that differs from the one before, and on every rejected
    /// input (each is reported: two edits with the same mistake are an Event with count 2,
    /// client-go's aggregation, as with the ConfigMap before).
    pub input: u64,
}

impl ConfigState {
    /// Takes the evaluation of a changed input of `sources`; returns whether readers should
    /// look (the state differs, or the input was rejected).
    pub fn take(&mut self, e: Evaluation, sources: &Sources) -> bool {
        let before = self.clone();
        let rejected = matches!(e, Evaluation::Invalid(..));
        self.synced = true;
        self.uids = sources.uids();
        self.absent = sources.absent();
        match e {
            Evaluation::Valid(origin, parsed) => {
                if self.config.as_deref() != Some(&parsed.config) || self.origin != Some(origin) {
                    self.config = Some(Arc::new(parsed.config));
                    self.origin = Some(origin);
                    self.generation += 1;
                }
                self.stale = None;
                self.errors.clear();
                self.warnings = parsed.warnings;
            }
            Evaluation::Invalid(origin, errors) => {
                let what = match origin {
                    Origin::ConfigMap => format!("ConfigMap {}", sources.configmap_key()),
                    Origin::Resources => "the metallb.io resources".to_string(),
                };
                self.stale = Some(format!("{what} rejected: {}", errors.lines().join("; ")));
                self.errors = errors.errors;
                self.warnings = errors.warnings;
            }
            Evaluation::Missing(reason) => {
                self.stale = Some(reason);
                self.errors.clear();
                self.warnings.clear();
            }
        }
        let changed = {
            let mut b = before.clone();
            b.input = self.input;
            b != *self || rejected
        };
        if changed {
            self.input += 1;
        }
        changed
    }

    /// The errors as one line (`; `-separated), for logs.
    pub fn error_lines(&self) -> String {
        self.errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The `&'static` kind names Events can be about (anything else is not ours).
fn static_kind(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "ConfigMap" => "ConfigMap",
        "IPAddressPool" => "IPAddressPool",
        "BGPPeer" => "BGPPeer",
        "BGPAdvertisement" => "BGPAdvertisement",
        "L2Advertisement" => "L2Advertisement",
        "BFDProfile" => "BFDProfile",
        "Community" => "Community",
        _ => return None,
    })
}

/// The Events the newest input deserves: a Warning `InvalidConfig` per object with errors
/// (its messages joined; a ConfigMap error is on the ConfigMap), and a Warning
/// `ConfigWarning` per object with warnings. `configmap_name`: the ConfigMap's name.
pub fn events_for(state: &ConfigState, namespace: &str, configmap_name: &str) -> Vec<EventSpec> {
    let mut by_object: BTreeMap<(ObjectRef, &'static str), Vec<String>> = BTreeMap::new();
    let configmap = ObjectRef {
        kind: "ConfigMap".into(),
        name: configmap_name.into(),
    };
    for e in &state.errors {
        let o = e.object.clone().unwrap_or_else(|| configmap.clone());
        by_object
            .entry((o, "InvalidConfig"))
            .or_default()
            .push(e.to_string());
    }
    for w in &state.warnings {
        // ConfigMap warnings stay in the log, as before; CR warnings go on their object.
        if let Some(o) = &w.object {
            by_object
                .entry((o.clone(), "ConfigWarning"))
                .or_default()
                .push(w.to_string());
        }
    }
    by_object
        .into_iter()
        .filter_map(|((o, reason), lines)| {
            let kind = static_kind(&o.kind)?;
            let message = if reason == "InvalidConfig" {
                format!(
                    "invalid config, keeping the last good one: {}",
                    lines.join("; ")
                )
            } else {
                lines.join("; ")
            };
            Some(EventSpec {
                regarding: Regarding {
                    kind,
                    namespace: namespace.to_string(),
                    uid: state.uids.get(&o).cloned(),
                    name: o.name,
                },
                severity: Severity::Warning,
                reason,
                message,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::tests::{empty_synced, pool};

    #[test]
    fn a_bad_input_keeps_the_last_good_configuration() {
        let mut s = empty_synced();
        let mut st = ConfigState::default();
        s.apply(Input::Pool(Change::Upsert(pool("a", "10.0.0.0/24"))));
        assert!(st.take(s.evaluate().unwrap(), &s));
        assert_eq!(st.generation, 1);
        assert_eq!(st.origin, Some(Origin::Resources));
        let good = st.config.clone().unwrap();
        s.apply(Input::Pool(Change::Upsert(pool("a", "10.0.0.0/33"))));
        assert!(st.take(s.evaluate().unwrap(), &s));
        assert_eq!(st.generation, 1, "still the good one");
        assert_eq!(st.config.as_deref(), Some(&*good));
        assert!(
            st.stale
                .as_deref()
                .unwrap()
                .starts_with("the metallb.io resources rejected: IPAddressPool/a")
        );
        // Another edit with the same mistake: reported again (the Event's count goes up).
        let input = st.input;
        assert!(st.take(s.evaluate().unwrap(), &s));
        assert_eq!(st.input, input + 1);
        // A valid input evaluated twice (a relist that changed nothing is not even taken):
        // nothing new.
        let mut ok = empty_synced();
        ok.apply(Input::Pool(Change::Upsert(pool("b", "10.3.0.0/24"))));
        let mut st2 = ConfigState::default();
        assert!(st2.take(ok.evaluate().unwrap(), &ok));
        assert!(!st2.take(ok.evaluate().unwrap(), &ok));
        // Events: one on the pool, with its uid.
        let ev = events_for(&st, "metallb-system", "config");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].regarding.kind, "IPAddressPool");
        assert_eq!(ev[0].regarding.uid.as_deref(), Some("uid-a"));
        assert_eq!(ev[0].reason, "InvalidConfig");
        assert!(
            ev[0].message.contains("spec.addresses[0]"),
            "{}",
            ev[0].message
        );
        // Fixed: in force again.
        s.apply(Input::Pool(Change::Upsert(pool("a", "10.0.1.0/24"))));
        assert!(st.take(s.evaluate().unwrap(), &s));
        assert_eq!((st.generation, st.stale.clone()), (2, None));
        let ev = events_for(&st, "metallb-system", "config");
        assert!(ev.iter().all(|e| e.reason == "ConfigWarning"), "{ev:?}");
    }

    #[test]
    fn nothing_at_all_is_stale_without_a_configuration() {
        let s = empty_synced();
        let mut st = ConfigState::default();
        st.take(s.evaluate().unwrap(), &s);
        assert!(st.synced);
        assert_eq!(st.config, None);
        assert!(st.stale.as_deref().unwrap().contains("no configuration"));
    }
}
