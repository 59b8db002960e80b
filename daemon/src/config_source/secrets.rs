//! `BGPPeer.spec.passwordSecret`: the TCP MD5 password from a Secret, as MetalLB reads it
//! (type `kubernetes.io/basic-auth`, key `password`, in the configuration's namespace).
//! Pure: the caller passes the Secrets it watches.
//!
//! Every problem (Secret missing, wrong type, no `password` key, another namespace) is an
//! error on the BGPPeer, so the configuration is refused and the last good one stays: a
//! session must not come up without the password it was configured with.

use std::collections::BTreeMap;

use ferrolb_config::{Config, ConfigError, ObjectRef};
use k8s_openapi::api::core::v1::Secret;

/// The Secret type MetalLB requires.
pub const BASIC_AUTH: &str = "kubernetes.io/basic-auth";

/// Fills `password` of every peer with a `passwordSecret`; `absent` says why Secrets could
/// not be read at all, if so (named in the error).
pub fn resolve_passwords(
    config: &mut Config,
    namespace: &str,
    secrets: &BTreeMap<String, Secret>,
    absent: Option<&str>,
) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    for peer in &mut config.peers {
        let Some(r) = &peer.password_secret else {
            continue;
        };
        let object = ObjectRef {
            kind: "BGPPeer".into(),
            name: peer.name.clone().unwrap_or_default(),
        };
        let mut fail = |path: &str, message: String| {
            errors.push(ConfigError::on_object(object.clone(), path, message));
        };
        let ns = r.namespace.as_deref().unwrap_or(namespace);
        if ns != namespace {
            fail(
                "spec.passwordSecret.namespace",
                format!(
                    "the Secret must be in namespace {namespace} (the configuration's; ferrolb \
                     reads Secrets nowhere else), not {ns}"
                ),
            );
            continue;
        }
        let key = format!("{namespace}/{}", r.name);
        let Some(secret) = secrets.get(&r.name) else {
            let why = absent.map(|a| format!(" ({a})")).unwrap_or_default();
            fail(
                "spec.passwordSecret.name",
                format!("Secret {key} of type {BASIC_AUTH} not found{why}"),
            );
            continue;
        };
        let kind = secret.type_.as_deref().unwrap_or("Opaque");
        if kind != BASIC_AUTH {
            fail(
                "spec.passwordSecret.name",
                format!(
                    "Secret {key} has type {kind}; a BGP password Secret must have type {BASIC_AUTH}"
                ),
            );
            continue;
        }
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get("password"))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get("password"))
                    .map(|s| s.as_bytes().to_vec())
            });
        let Some(bytes) = value else {
            fail(
                "spec.passwordSecret.name",
                format!("Secret {key} has no key `password`"),
            );
            continue;
        };
        let Ok(text) = String::from_utf8(bytes) else {
            fail(
                "spec.passwordSecret.name",
                format!("Secret {key}: `password` is not UTF-8 text"),
            );
            continue;
        };
        match ferrolb_config::rules::password(&text) {
            Ok(p) => peer.password = p,
            Err(reason) => fail(
                "spec.passwordSecret.name",
                format!("Secret {key}: `password` {reason}"),
            ),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_config::SecretRef;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn config_with(r: SecretRef) -> Config {
        let text = "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64500\n  my-asn: 64501\naddress-pools: []\n";
        let mut c = ferrolb_config::parse_config(text).expect("valid").config;
        c.peers[0].name = Some("router".into());
        c.peers[0].password_secret = Some(r);
        c
    }

    fn secret(name: &str, kind: &str, password: Option<&str>) -> (String, Secret) {
        let data =
            password.map(|p| [("password".to_string(), ByteString(p.as_bytes().to_vec()))].into());
        (
            name.to_string(),
            Secret {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..Default::default()
                },
                type_: Some(kind.into()),
                data,
                ..Default::default()
            },
        )
    }

    fn secret_ref(name: &str, ns: Option<&str>) -> SecretRef {
        SecretRef {
            name: name.into(),
            namespace: ns.map(String::from),
        }
    }

    fn error_of(r: SecretRef, secrets: &[(String, Secret)], absent: Option<&str>) -> String {
        let mut c = config_with(r);
        let map: BTreeMap<String, Secret> = secrets.iter().cloned().collect();
        let e = resolve_passwords(&mut c, "metallb-system", &map, absent).expect_err("refused");
        assert_eq!(c.peers[0].password, None);
        e.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn the_password_comes_from_a_basic_auth_secret() {
        let mut c = config_with(secret_ref("bgp", None));
        let map: BTreeMap<String, Secret> = [secret("bgp", BASIC_AUTH, Some("s3cret"))]
            .into_iter()
            .collect();
        resolve_passwords(&mut c, "metallb-system", &map, None).expect("resolved");
        assert_eq!(c.peers[0].password.as_deref(), Some("s3cret"));
        // The namespace given explicitly, as MetalLB's docs do.
        let mut c = config_with(secret_ref("bgp", Some("metallb-system")));
        resolve_passwords(&mut c, "metallb-system", &map, None).expect("resolved");
        assert_eq!(c.peers[0].password.as_deref(), Some("s3cret"));
    }

    #[test]
    fn every_problem_is_an_error_on_the_peer() {
        let e = error_of(secret_ref("gone", None), &[], None);
        assert!(
            e.starts_with("BGPPeer/router spec.passwordSecret.name:")
                && e.contains(
                    "Secret metallb-system/gone of type kubernetes.io/basic-auth not found"
                ),
            "{e}"
        );
        let e = error_of(secret_ref("gone", None), &[], Some("forbidden by RBAC"));
        assert!(e.contains("(forbidden by RBAC)"), "{e}");
        let e = error_of(
            secret_ref("o", None),
            &[secret("o", "Opaque", Some("x"))],
            None,
        );
        assert!(e.contains("has type Opaque"), "{e}");
        let e = error_of(
            secret_ref("k", None),
            &[secret("k", BASIC_AUTH, None)],
            None,
        );
        assert!(e.contains("no key `password`"), "{e}");
        let e = error_of(secret_ref("n", Some("default")), &[], None);
        assert!(
            e.contains("spec.passwordSecret.namespace") && e.contains("not default"),
            "{e}"
        );
        let e = error_of(
            secret_ref("long", None),
            &[secret("long", BASIC_AUTH, Some(&"x".repeat(81)))],
            None,
        );
        assert!(e.contains("at most 80 bytes"), "{e}");
    }
}
