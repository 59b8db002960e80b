//! Root check, so tests that need namespaces can skip cleanly elsewhere.

/// Why a test was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("skipping: {0}")]
pub struct Skip(pub String);

/// True when running with effective uid 0.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `Ok(())` as root, else a [`Skip`] saying so. Use as
/// `if let Err(skip) = require_root() { eprintln!("{skip}"); return; }`.
pub fn require_root() -> Result<(), Skip> {
    if is_root() {
        Ok(())
    } else {
        Err(Skip(format!(
            "needs root (network namespaces); euid is {}",
            nix::unistd::geteuid()
        )))
    }
}
