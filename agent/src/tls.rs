//! TLS for the MQTT uplink (`mqtts://`): a rustls client configuration built from the PEM
//! files named in `[mqtt]`, always with rustls' `ring` crypto provider (no aws-lc, no OpenSSL).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// CA bundle used when `mqtt.ca_file` is not set: Debian's `ca-certificates` package.
///
/// The system bundle (rather than roots compiled into the binary) is updated by the OS's
/// package manager and costs nothing in binary size.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why a TLS client configuration cannot be built; every variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// Which file ("CA file", "client certificate", "client key").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A file is not well-formed PEM.
    #[error("{what} {} is not valid PEM: {detail}", path.display())]
    Pem {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        detail: String,
    },
    /// A file that must hold certificates holds none.
    #[error("{what} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A CA certificate cannot be used as a trust anchor.
    #[error("CA file {}: certificate #{index} is not usable: {source}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// 1-based position of the certificate in the file.
        index: usize,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The key file is readable by others (refused, like ssh does).
    #[error("client key {0}")]
    KeyExposed(String),
    /// The key file holds no private key rustls can use.
    #[error(
        "client key {} holds no unencrypted private key (PEM PKCS#8, PKCS#1 RSA or SEC1 EC expected)",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// Only one of client certificate and key is given.
    #[error("a client certificate needs a client key and a key needs a certificate")]
    HalfClientAuth,
    /// The client certificate and key are not usable together (e.g. they do not match).
    #[error("client certificate {} with key {}: {source}", cert.display(), key.display())]
    ClientAuth {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// rustls refused the protocol setup (not expected with the ring provider).
    #[error("TLS setup: {0}")]
    Setup(rustls::Error),
}

/// Builds the client configuration for `mqtts://`.
///
/// The broker is verified against the certificates in `ca_file` (PEM, one or more), or against
/// [`SYSTEM_CA_BUNDLE`] without one. `cert_file` and `key_file` (PEM; the key in PKCS#8,
/// PKCS#1 RSA or SEC1 EC form) add a client certificate for mutual TLS; give both or neither.
pub fn client_config(
    ca_file: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<ClientConfig, TlsError> {
    let roots = match ca_file {
        Some(path) => roots_from(path, "CA file", true)?,
        None => roots_from(Path::new(SYSTEM_CA_BUNDLE), "system CA bundle", false)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_root_certificates(roots);
    match (cert_file, key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = certs_from(cert, "client certificate")?;
            let private = key_from(key)?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|source| TlsError::ClientAuth {
                    cert: cert.to_owned(),
                    key: key.to_owned(),
                    source,
                })
        }
        _ => Err(TlsError::HalfClientAuth),
    }
}

/// The rumqttc transport for a client configuration.
pub fn transport(cfg: Arc<ClientConfig>) -> rumqttc::Transport {
    rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(cfg))
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn pem_error(path: &Path, what: &'static str, e: pem::Error) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

fn certs_from(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, what, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Trust anchors from a PEM file. A configured CA file must be clean; the system bundle is
/// taken leniently (a certificate rustls cannot parse is skipped), as long as one is usable.
fn roots_from(path: &Path, what: &'static str, strict: bool) -> Result<RootCertStore, TlsError> {
    let certs = certs_from(path, what)?;
    let mut roots = RootCertStore::empty();
    if strict {
        for (i, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|source| TlsError::BadCa {
                path: path.to_owned(),
                index: i + 1,
                source,
            })?;
        }
    } else {
        roots.add_parsable_certificates(certs);
        if roots.is_empty() {
            return Err(TlsError::NoCertificate {
                what,
                path: path.to_owned(),
            });
        }
    }
    Ok(roots)
}

fn key_from(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = "client key";
    if let Some(why) = crate::private::key_exposure(path) {
        return Err(TlsError::KeyExposed(why));
    }
    let bytes = read(path, what)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoKey {
            path: path.to_owned(),
        }),
        Err(e) => Err(pem_error(path, what, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A self-signed EC P-256 certificate and its key (SEC1 and PKCS#8 forms), made with
    // `openssl ecparam -genkey -name prime256v1`, `openssl pkcs8 -topk8 -nocrypt` and
    // `openssl req -x509`; test data only.
    const CERT: &str = "\
-----BEGIN CERTIFICATE-----
MIIBgjCCASegAwIBAgIUd+5zIEBhFHMdlld7tnewjl/sasswCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKZ3NtZ3cgdGVzdDAgFw0yNjExMjYyMzIwMjZaGA8yMTI2MTEw
MjIzMjAyNlowFTETMBEGA1UEAwwKZ3NtZ3cgdGVzdDBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABPhNiSaAPnsUWwGs1By61Mv9DdIX+kS/yqcp8F1tOyN/EtFaYyvh
ENTUFiWlnqx1WEhlt2B+G/3S+2WxC60HKmOjUzBRMB0GA1UdDgQWBBRiIJ6J+Kwr
eoxJvNHIZ7gzggWyDTAfBgNVHSMEGDAWgBRiIJ6J+KwreoxJvNHIZ7gzggWyDTAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQDT3nrY38BR8y+vrd8w
IXKynylmfpD7+HNucrWuF31WjgIhAMr+ClpHA7L14QqUpTC2XN06u/4DJQXETdfe
0xIzrZu8
-----END CERTIFICATE-----
";
    const KEY_SEC1: &str = "\
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEINioKfaKLR4jW7RTfFa1xdJRZFv93GiRSdFIcdPUDMZBoAoGCCqGSM49
AwEHoUQDQgAE+E2JJoA+exRbAazUHLrUy/0N0hf6RL/KpynwXW07I38S0VpjK+EQ
1NQWJaWerHVYSGW3YH4b/dL7ZbELrQcqYw==
-----END EC PRIVATE KEY-----
";
    const KEY_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2Kgp9ootHiNbtFN8
VrXF0lFkW/3caJFJ0Uhx09QMxkGhRANCAAT4TYkmgD57FFsBrNQcutTL/Q3SF/pE
v8qnKfBdbTsjfxLRWmMr4RDU1BYlpZ6sdVhIZbdgfhv90vtlsQutBypj
-----END PRIVATE KEY-----
";
    const OTHER_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcfkkLevcFfH7KCr4
i4qmSfQt3gr3kDZ+svN+KY42JsehRANCAARE6zisfMbUlr9EAo1PAwxmxLrD5u6B
phtxzgX2B9ik3e9CRMmuquulmDvpHga5DIkv+sHUGay6c6rUc2Ku2VxO
-----END PRIVATE KEY-----
";

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        // Keys must be private (a 0644 key is refused); certificates may be too.
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        p
    }

    #[test]
    fn ca_only_and_mutual_tls() {
        let d = tempfile::tempdir().unwrap();
        let ca = file(&d, "ca.pem", &format!("{CERT}\n{CERT}"));
        let cfg = client_config(Some(&ca), None, None).unwrap();
        assert!(!cfg.client_auth_cert_resolver.has_certs());
        for (name, key) in [("sec1.pem", KEY_SEC1), ("pkcs8.pem", KEY_PKCS8)] {
            let key = file(&d, name, key);
            let cfg = client_config(Some(&ca), Some(&ca), Some(&key)).unwrap();
            assert!(cfg.client_auth_cert_resolver.has_certs());
        }
    }

    #[test]
    fn errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let ca = file(&d, "ca.pem", CERT);
        let missing = d.path().join("missing.pem");
        let e = client_config(Some(&missing), None, None).unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");

        let junk = file(&d, "junk.pem", "not a certificate\n");
        let e = client_config(Some(&junk), None, None).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");

        let broken = file(
            &d,
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let e = client_config(Some(&broken), None, None).unwrap_err();
        assert!(matches!(e, TlsError::Pem { .. }), "{e}");

        let garbage_der = file(
            &d,
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let e = client_config(Some(&garbage_der), None, None).unwrap_err();
        assert!(matches!(e, TlsError::BadCa { index: 1, .. }), "{e}");

        // A certificate where the key should be.
        let e = client_config(Some(&ca), Some(&ca), Some(&ca)).unwrap_err();
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");

        let other = file(&d, "other.pem", OTHER_KEY);
        let e = client_config(Some(&ca), Some(&ca), Some(&other)).unwrap_err();
        assert!(matches!(e, TlsError::ClientAuth { .. }), "{e}");

        let e = client_config(Some(&ca), Some(&ca), None).unwrap_err();
        assert!(matches!(e, TlsError::HalfClientAuth), "{e}");
    }

    #[test]
    fn transport_is_tls() {
        let d = tempfile::tempdir().unwrap();
        let ca = file(&d, "ca.pem", CERT);
        let cfg = client_config(Some(&ca), None, None).unwrap();
        assert!(matches!(
            transport(Arc::new(cfg)),
            rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(_))
        ));
    }
}
