//! TLS for the registry client: which certificates to trust for a host,
//! and the verifier that trusts none when the user turned checks off.

use super::Options;
use crate::error::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;

pub(super) fn is_loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
}

/// Certificates for `host` from the certs.d directories docker and podman
/// use, then the CA file.
fn extra_certs(
    host: &str,
    ca_file: Option<&PathBuf>,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    let mut files: Vec<PathBuf> = ca_file.into_iter().cloned().collect();
    for base in [
        "/etc/capsa/certs.d",
        "/etc/containers/certs.d",
        "/etc/docker/certs.d",
    ] {
        if let Ok(rd) = std::fs::read_dir(PathBuf::from(base).join(host)) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "crt") {
                    files.push(e.path());
                }
            }
        }
    }
    let mut out = Vec::new();
    for f in files {
        for c in
            rustls_pki_types::CertificateDer::pem_file_iter(&f).map_err(|e| Error::Invalid {
                what: f.display().to_string(),
                reason: format!("not a PEM certificate file: {e}"),
            })?
        {
            out.push(c.map_err(|e| Error::Invalid {
                what: f.display().to_string(),
                reason: format!("bad PEM certificate: {e}"),
            })?);
        }
    }
    Ok(out)
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS configuration for `host`: the system roots plus `opts`' CA
/// file and the certs.d directory, or no verification at all when
/// `--tls-verify=false` says so.
pub(super) fn config(host: &str, opts: &Options) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Unsupported(format!("TLS: {e}")))?;
    let tls = if opts.tls_verify == Some(false) {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        for c in extra_certs(host, opts.ca_file.as_ref())? {
            roots.add(c).map_err(|e| Error::Invalid {
                what: "CA certificate".into(),
                reason: e.to_string(),
            })?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(tls)
}
