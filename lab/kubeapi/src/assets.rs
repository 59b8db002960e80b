//! Finding the two binaries: kube-apiserver (unpacked once from `../shared/k8s/` and cached
//! under `target/`) and etcd (Debian's `etcd-server`).
//!
//! As envtest takes its assets directory from `KUBEBUILDER_ASSETS`, this takes
//! `FERROLB_KUBE_APISERVER` (a kube-apiserver binary, or an `.xz` of one) and `FERROLB_ETCD`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A kube-apiserver binary or `.xz` file to use instead of the one in `../shared/k8s/`.
pub const APISERVER_ENV: &str = "FERROLB_KUBE_APISERVER";
/// An etcd binary to use instead of `/usr/bin/etcd`.
pub const ETCD_ENV: &str = "FERROLB_ETCD";

/// The upstream release this fixture is built around.
pub const VERSION: &str = "v1.28.7";
/// The compressed binary's name in `../shared/k8s/`.
pub const XZ_NAME: &str = "kube-apiserver-v1.28.7-linux-amd64.xz";
/// sha256 of the unpacked binary (from `../shared/k8s/README.md`).
pub const BINARY_SHA256: &str = "d320a97854c7d3469b0c933d963adf78574668bafb6cfa01151c6bc865076a30";

/// Where the two programs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// The kube-apiserver executable.
    pub kube_apiserver: PathBuf,
    /// The etcd executable.
    pub etcd: PathBuf,
}

/// Why the real API server is not available here, in one sentence with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Missing(pub String);

/// The binaries, located (and kube-apiserver unpacked) once per process.
pub fn binaries() -> Result<Binaries, Missing> {
    static FOUND: OnceLock<Result<Binaries, Missing>> = OnceLock::new();
    FOUND.get_or_init(locate).clone()
}

fn locate() -> Result<Binaries, Missing> {
    let etcd = find_etcd()?;
    let kube_apiserver = find_apiserver()?;
    Ok(Binaries {
        kube_apiserver,
        etcd,
    })
}

fn find_etcd() -> Result<PathBuf, Missing> {
    if let Some(p) = std::env::var_os(ETCD_ENV) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Missing(format!("{ETCD_ENV}={} is not a file", p.display())))
        };
    }
    for p in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        if Path::new(p).is_file() {
            return Ok(PathBuf::from(p));
        }
    }
    Err(Missing(
        "etcd is not installed (apt-get install -y etcd-server, or set FERROLB_ETCD)".into(),
    ))
}

/// The repository root (this crate is `lab/kubeapi`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Candidates for the compressed binary: next to the repository (`../shared/k8s/`, as the
/// project lays it out), and relative to the current directory (a copy of the repository
/// run from its root).
fn xz_candidates() -> Vec<PathBuf> {
    let mut v = vec![workspace_root().join("../shared/k8s").join(XZ_NAME)];
    if let Ok(cwd) = std::env::current_dir() {
        v.push(cwd.join("../shared/k8s").join(XZ_NAME));
    }
    v
}

fn find_apiserver() -> Result<PathBuf, Missing> {
    let (source, from_env) = match std::env::var_os(APISERVER_ENV) {
        Some(p) => (PathBuf::from(p), true),
        None => match xz_candidates().into_iter().find(|p| p.is_file()) {
            Some(p) => (p, false),
            None => {
                return Err(Missing(format!(
                    "{XZ_NAME} not found in ../shared/k8s/ (looked at {}); set {APISERVER_ENV}=/path/to/kube-apiserver",
                    xz_candidates()
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        },
    };
    if !source.is_file() {
        return Err(Missing(format!(
            "{APISERVER_ENV}={} is not a file",
            source.display()
        )));
    }
    if source.extension().is_some_and(|e| e == "xz") {
        // The known file is checked against its published hash; one given by the user is
        // taken as it is.
        let want = (!from_env).then_some(BINARY_SHA256);
        unpack_cached(&source, want)
    } else {
        Ok(source)
    }
}

/// The directory unpacked binaries are cached in: `target/kubeapi/` of the build that runs
/// (`$CARGO_TARGET_DIR`, else the `target` directory above the running executable), else
/// the repository's `target/`, else the temp directory.
pub fn cache_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("kubeapi");
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(t) = exe
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "target"))
    {
        return t.join("kubeapi");
    }
    let t = workspace_root().join("target");
    if t.is_dir() {
        return t.join("kubeapi");
    }
    std::env::temp_dir().join("ferrolb-kubeapi-cache")
}

fn unpack_cached(xz: &Path, want_sha: Option<&str>) -> Result<PathBuf, Missing> {
    let stem = xz
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kube-apiserver".into());
    let dir = cache_dir();
    let target = dir.join(&stem);
    if target.is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Missing(format!("cannot create {}: {e}", dir.display())))?;
    // Unpack next to the target and rename: concurrent test binaries never see half a file.
    let tmp = dir.join(format!(".{stem}.{}.tmp", std::process::id()));
    let out = std::fs::File::create(&tmp)
        .map_err(|e| Missing(format!("cannot create {}: {e}", tmp.display())))?;
    let status = Command::new("xz")
        .arg("-dc")
        .arg(xz)
        .stdout(out)
        .stderr(Stdio::piped())
        .status()
        .map_err(|e| {
            Missing(format!(
                "cannot run xz to unpack {} ({e}): apt-get install -y xz-utils",
                xz.display()
            ))
        })?;
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Missing(format!(
            "xz -dc {} failed ({status})",
            xz.display()
        )));
    }
    if let Some(want) = want_sha {
        let got =
            sha256_file(&tmp).map_err(|e| Missing(format!("reading {}: {e}", tmp.display())))?;
        if got != want {
            let _ = std::fs::remove_file(&tmp);
            return Err(Missing(format!(
                "{} unpacks to sha256 {got}, expected {want}",
                xz.display()
            )));
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .and_then(|()| std::fs::rename(&tmp, &target))
        .map_err(|e| Missing(format!("installing {}: {e}", target.display())))?;
    tracing::info!(binary = %target.display(), "unpacked kube-apiserver");
    Ok(target)
}

/// Hex sha256 of a file's contents.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// True when `CI=true` (or `1`): there, a missing real API server is an error, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The binaries, or `None` after printing that `test` ran against the lab API server only.
/// Under `CI=true` a missing binary panics instead: CI must run both servers.
pub fn require(test: &str) -> Option<Binaries> {
    match binaries() {
        Ok(b) => Some(b),
        Err(why) if in_ci() => {
            panic!("{test}: CI=true and the real kube-apiserver is not available: {why}")
        }
        Err(why) => {
            eprintln!(
                "{test}: ran against the lab API server only; the real kube-apiserver is not available: {why}"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_known_text() {
        let dir = std::env::temp_dir().join(format!("kubeapi-sha-{}", std::process::id()));
        std::fs::write(&dir, b"abc").unwrap();
        assert_eq!(
            sha256_file(&dir).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn the_cache_is_under_a_target_directory() {
        let d = cache_dir();
        assert!(
            d.ends_with("kubeapi") || d.ends_with("ferrolb-kubeapi-cache"),
            "{d:?}"
        );
    }
}
