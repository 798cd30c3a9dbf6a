//! HTTPS: a certificate and key from files, or a self-signed one for a LAN (made once and
//! kept when paths are given, so a browser's exception survives restarts). The SHA-256
//! fingerprint is logged so a viewer can check what their browser shows.

use crate::config::TlsSettings;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

pub struct Certificate {
    pub config: Arc<ServerConfig>,
    /// `AB:CD:…` of the leaf certificate.
    pub fingerprint: String,
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Names a self-signed certificate covers: this host, its mDNS name, and every address.
fn subject_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
            names.push(format!("{host}.local"));
        }
    }
    for iface in if_addrs::get_if_addrs().unwrap_or_default() {
        names.push(iface.ip().to_string());
    }
    names.dedup();
    names
}

fn generate() -> Result<(String, String), String> {
    let made = rcgen::generate_simple_self_signed(subject_names())
        .map_err(|e| format!("cannot make a self-signed certificate: {e}"))?;
    Ok((made.cert.pem(), made.signing_key.serialize_pem()))
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Certificate and key as PEM text, from the files or freshly made.
fn pem_pair(settings: &TlsSettings) -> Result<(String, String), String> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    match (&settings.cert, &settings.key) {
        (Some(cert), Some(key)) if cert.exists() && key.exists() => Ok((read(cert)?, read(key)?)),
        (Some(cert), Some(key)) if settings.self_signed => {
            let (cert_pem, key_pem) = generate()?;
            write_private(key, &key_pem)?;
            write_private(cert, &cert_pem)?;
            tracing::info!("made a self-signed certificate at {}", cert.display());
            Ok((cert_pem, key_pem))
        }
        (None, None) if settings.self_signed => generate(),
        (Some(cert), Some(_)) => Err(format!(
            "tls.cert {} or tls.key does not exist",
            cert.display()
        )),
        _ => Err("HTTPS needs tls.cert and tls.key, or tls.self_signed = true".to_owned()),
    }
}

pub fn load(settings: &TlsSettings) -> Result<Certificate, String> {
    let (cert_pem, key_pem) = pem_pair(settings)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate is not PEM: {e}"))?;
    let leaf = chain
        .first()
        .ok_or("the certificate file holds no certificate")?;
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("the key is not a PEM private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not fit together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Certificate {
        config: Arc::new(config),
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("fieldcast-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let settings = TlsSettings {
            listen: None,
            cert: Some(dir.join("cert.pem")),
            key: Some(dir.join("key.pem")),
            self_signed: true,
            redirect_http: false,
        };
        let first = load(&settings).unwrap();
        let second = load(&settings).unwrap();
        assert_eq!(
            first.fingerprint, second.fingerprint,
            "kept across restarts"
        );
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is private");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_files_without_self_signed_is_an_error() {
        let settings = TlsSettings {
            cert: Some("/nonexistent/cert.pem".into()),
            key: Some("/nonexistent/key.pem".into()),
            ..TlsSettings::default()
        };
        assert!(load(&settings).err().unwrap().contains("does not exist"));
    }
}
