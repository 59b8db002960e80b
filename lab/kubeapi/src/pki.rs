//! The certificates a test cluster needs, generated in Rust (rcgen): a CA, the API server's
//! serving certificate, the admin's client certificate (`O=system:masters`) and the
//! ServiceAccount token signing key. ECDSA P-256 throughout: kube-apiserver accepts it for
//! all four, and rustls (the kube client) for the client side.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};

/// What went wrong making or writing a certificate.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or failed to sign.
    #[error("generating {what}: {source}")]
    Generate {
        /// Which certificate or key.
        what: &'static str,
        /// Cause.
        source: rcgen::Error,
    },
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

fn r<T>(what: &'static str, v: Result<T, rcgen::Error>) -> Result<T, PkiError> {
    v.map_err(|source| PkiError::Generate { what, source })
}

/// A certificate with its private key, both PEM.
#[derive(Debug, Clone)]
pub struct CertKey {
    /// `-----BEGIN CERTIFICATE-----`.
    pub cert_pem: String,
    /// PKCS#8 `-----BEGIN PRIVATE KEY-----`.
    pub key_pem: String,
}

/// Every certificate and key of one test cluster.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA every client trusts and that signs client certificates.
    pub ca: CertKey,
    /// kube-apiserver's serving certificate.
    pub serving: CertKey,
    /// The admin's client certificate (`CN=ferrolb-admin, O=system:masters`).
    pub admin: CertKey,
    /// ServiceAccount token signing key (private, PKCS#8 PEM).
    pub sa_key_pem: String,
    /// Its public half (SPKI PEM), for `--service-account-key-file`.
    pub sa_pub_pem: String,
}

/// The file names [`Pki::write_to`] uses.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// CA certificate.
    pub ca_cert: PathBuf,
    /// Serving certificate.
    pub serving_cert: PathBuf,
    /// Serving key.
    pub serving_key: PathBuf,
    /// SA signing key.
    pub sa_key: PathBuf,
    /// SA public key.
    pub sa_pub: PathBuf,
}

const CA_NAME: &str = "ferrolb-kubeapi-ca";

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, CA_NAME);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut p);
    p
}

fn validity(p: &mut CertificateParams) {
    p.not_before = date_time_ymd(2020, 1, 1);
    p.not_after = date_time_ymd(2100, 1, 1);
}

impl Pki {
    /// A new CA and certificates. The serving certificate is valid for `localhost`,
    /// `kubernetes.default.svc` (and its shorter forms) and every address in `ips`.
    pub fn generate(ips: &[IpAddr]) -> Result<Pki, PkiError> {
        let ca_key = r("CA key", KeyPair::generate())?;
        let ca_cert = r("CA certificate", ca_params().self_signed(&ca_key))?;
        let ca = CertKey {
            cert_pem: ca_cert.pem(),
            key_pem: ca_key.serialize_pem(),
        };

        let mut sp = CertificateParams::default();
        sp.distinguished_name = DistinguishedName::new();
        sp.distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        for dns in [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            sp.subject_alt_names
                .push(SanType::DnsName(r("DNS name", dns.try_into())?));
        }
        for ip in ips {
            sp.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        sp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut sp);
        let serving = Self::sign_with(&ca, "serving certificate", sp)?;
        let admin = Self::client_cert_signed_by(&ca, "ferrolb-admin", &["system:masters"])?;
        let sa = r("ServiceAccount signing key", KeyPair::generate())?;
        Ok(Pki {
            ca,
            serving,
            admin,
            sa_key_pem: sa.serialize_pem(),
            sa_pub_pem: sa.public_key_pem(),
        })
    }

    fn sign_with(
        ca: &CertKey,
        what: &'static str,
        params: CertificateParams,
    ) -> Result<CertKey, PkiError> {
        let ca_key = r("CA key", KeyPair::from_pem(&ca.key_pem))?;
        let issuer = Issuer::new(ca_params(), ca_key);
        let key = r(what, KeyPair::generate())?;
        let cert = r(what, params.signed_by(&key, &issuer))?;
        Ok(CertKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn client_cert_signed_by(
        ca: &CertKey,
        user: &str,
        groups: &[&str],
    ) -> Result<CertKey, PkiError> {
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, user);
        for g in groups {
            p.distinguished_name
                .push(DnType::OrganizationName, g.to_string());
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut p);
        Self::sign_with(ca, "client certificate", p)
    }

    /// A client certificate for user `user` in `groups` (what kube-apiserver's x509
    /// authenticator reads: CN = user, O = groups).
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> Result<CertKey, PkiError> {
        Self::client_cert_signed_by(&self.ca, user, groups)
    }

    /// The admin's kubeconfig for the server at `url` (client certificate in
    /// `system:masters`, trusting this CA).
    pub fn admin_kubeconfig(&self, url: &str) -> String {
        crate::kubeconfig::kubeconfig(
            url,
            &self.ca.cert_pem,
            "ferrolb-admin",
            &crate::kubeconfig::Credentials::Certificate {
                cert_pem: &self.admin.cert_pem,
                key_pem: &self.admin.key_pem,
            },
            "default",
        )
    }

    /// Writes what kube-apiserver reads into `dir`.
    pub fn write_to(&self, dir: &Path) -> Result<PkiFiles, PkiError> {
        let files = PkiFiles {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
        };
        for (path, text) in [
            (&files.ca_cert, &self.ca.cert_pem),
            (&files.serving_cert, &self.serving.cert_pem),
            (&files.serving_key, &self.serving.key_pem),
            (&files.sa_key, &self.sa_key_pem),
            (&files.sa_pub, &self.sa_pub_pem),
        ] {
            std::fs::write(path, text).map_err(|source| PkiError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_pem_certificates_and_keys() {
        let pki = Pki::generate(&["127.0.0.1".parse().unwrap()]).expect("pki");
        for c in [&pki.ca, &pki.serving, &pki.admin] {
            assert!(c.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
            assert!(c.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        }
        assert!(pki.sa_pub_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let other = pki.client_cert("someone", &["g1", "g2"]).expect("client");
        assert_ne!(other.cert_pem, pki.admin.cert_pem);
    }
}
