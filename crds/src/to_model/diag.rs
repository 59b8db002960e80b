//! Collects the errors and warnings of one conversion, each on its object and field.

use ferrolb_config::{ConfigError, ObjectRef, Warning};

/// Every problem found so far.
#[derive(Debug, Default)]
pub(crate) struct Diag {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<Warning>,
}

impl Diag {
    pub fn error(&mut self, o: &ObjectRef, path: &str, message: impl Into<String>) {
        self.errors
            .push(ConfigError::on_object(o.clone(), path, message));
    }

    pub fn warn(&mut self, o: &ObjectRef, path: &str, message: impl Into<String>) {
        self.warnings
            .push(Warning::on_object(o.clone(), path, message));
    }

    /// A rule's verdict on the value at `path`: the value, or its reason recorded there.
    pub fn check<T>(&mut self, o: &ObjectRef, path: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(t) => Some(t),
            Err(reason) => {
                self.error(o, path, reason);
                None
            }
        }
    }
}

/// `KIND/NAME` of an object.
pub(crate) fn object(kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        kind: kind.to_string(),
        name: name.to_string(),
    }
}

/// Path of a list item.
pub(crate) fn item(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// The reason for a list entry written twice (MetalLB's `validateDuplicate` refuses these).
pub(crate) fn duplicate(what: &str, value: &str, first: &str) -> String {
    format!("duplicate {what} {value:?} (also {first})")
}
