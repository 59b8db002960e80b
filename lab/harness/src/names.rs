//! Unique, parseable names for namespaces, interfaces and work directories.
//!
//! Format: `{prefix}-{pid in base 36}-{4 base-36 chars}`, e.g. `flb-2k1x-0q9a`, at most 15
//! bytes so it is a valid interface name. The pid lets [`crate::cleanup_stale`] tell whether
//! the owner is still alive; the suffix comes from a per-process counter that starts at a
//! random value, so a recycled pid is unlikely to collide with an earlier run's leftovers.
//! Namespaces may carry an extra `-{role}` for readability (`ip netns list`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// The default prefix of everything the harness creates.
pub const DEFAULT_PREFIX: &str = "flb";

/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

const SUFFIX_SPACE: u32 = 36 * 36 * 36 * 36;

fn counter() -> &'static AtomicU32 {
    static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
    COUNTER.get_or_init(|| AtomicU32::new(rand::random::<u32>() % SUFFIX_SPACE))
}

pub(crate) fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".to_string();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

fn suffix() -> String {
    let n = counter().fetch_add(1, Ordering::Relaxed) % SUFFIX_SPACE;
    format!("{:0>4}", base36(u64::from(n)))
}

/// Checks a prefix: 1 to 4 lowercase ASCII letters or digits (keeps names <= 15 bytes and
/// unambiguous to parse).
pub fn validate_prefix(prefix: &str) -> Result<()> {
    let ok = (1..=4).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: prefix.to_string(),
            reason: "prefix must be 1-4 characters of [a-z0-9]".to_string(),
        })
    }
}

/// A fresh unique name owned by this process, valid as an interface name.
pub fn unique_name(prefix: &str) -> Result<String> {
    validate_prefix(prefix)?;
    let name = format!(
        "{prefix}-{}-{}",
        base36(u64::from(std::process::id())),
        suffix()
    );
    debug_assert!(name.len() <= IFNAME_MAX);
    Ok(name)
}

/// Sanitises a human role ("router", "node 1") into `[a-z0-9]`, at most 16 chars.
pub(crate) fn sanitize_role(role: &str) -> String {
    role.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(16)
        .collect()
}

/// If `name` was made by [`unique_name`] with `prefix` (optionally followed by `-role`),
/// returns the pid of the process that made it.
pub fn owner_pid(prefix: &str, name: &str) -> Option<u32> {
    let mut parts = name.split('-');
    if parts.next()? != prefix {
        return None;
    }
    let pid = parts.next()?;
    let sfx = parts.next()?;
    let role_ok = match parts.next() {
        None => true,
        Some(role) => {
            !role.is_empty()
                && role.bytes().all(|b| b.is_ascii_alphanumeric())
                && parts.next().is_none()
        }
    };
    let base36_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !role_ok || !base36_ok(pid) || sfx.len() != 4 || !base36_ok(sfx) || pid.len() > 7 {
        return None;
    }
    u32::from_str_radix(pid, 36).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_short_and_parse_back() {
        let a = unique_name("flb").expect("valid prefix");
        let b = unique_name("flb").expect("valid prefix");
        assert_ne!(a, b);
        assert!(a.len() <= IFNAME_MAX, "{a}");
        assert_eq!(owner_pid("flb", &a), Some(std::process::id()));
        let long = unique_name("abcd").expect("valid prefix");
        assert!(long.len() <= IFNAME_MAX, "{long}");
        assert_eq!(
            owner_pid("flb", &format!("{a}-router")),
            Some(std::process::id())
        );
    }

    #[test]
    fn owner_pid_rejects_foreign_names() {
        assert_eq!(owner_pid("flb", "eth0"), None);
        assert_eq!(owner_pid("flb", "flbx-1-abcd"), None);
        assert_eq!(owner_pid("flb", "flb-1-abc"), None);
        assert_eq!(owner_pid("flb", "flb-1-abcd-x-y"), None);
        assert_eq!(owner_pid("flb", "flb-Z-abcd"), None);
        assert_eq!(owner_pid("flb", "flb-z-abcd"), Some(35));
    }

    #[test]
    fn prefix_rules() {
        assert!(validate_prefix("flb").is_ok());
        assert!(validate_prefix("").is_err());
        assert!(validate_prefix("toolong").is_err());
        assert!(validate_prefix("a-b").is_err());
        assert!(validate_prefix("ABC").is_err());
    }

    #[test]
    fn role_is_sanitized() {
        assert_eq!(sanitize_role("Node 1!"), "node1");
        assert_eq!(
            sanitize_role("a-very-long-role-name-indeed"),
            "averylongrolenam"
        );
    }
}
