//! The DTLS certificate every viewer of a loop is answered with: made once, not per viewer
//! (making a key pair is most of what a join costs), and made anew before it expires.

use rtc::crypto::SignatureScheme;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use std::time::{Duration, SystemTime};

/// A certificate this close to expiring is replaced (on 32-bit ARM the stack's certificates
/// last two days).
const RENEW_BEFORE: Duration = Duration::from_secs(24 * 3600);

pub struct LoopCertificate {
    current: RTCCertificate,
}

impl LoopCertificate {
    pub fn new() -> Result<Self, String> {
        Ok(Self {
            current: generate()?,
        })
    }

    /// The certificate for a viewer joining at `now`, a new one if the last is about to
    /// expire. Should making one fail, the old one serves while it is still valid.
    pub fn at(&mut self, now: SystemTime) -> Result<&RTCCertificate, String> {
        let left = self.current.expires.duration_since(now).unwrap_or_default();
        if left < RENEW_BEFORE {
            match generate() {
                Ok(fresh) => self.current = fresh,
                Err(e) if left.is_zero() => return Err(e),
                Err(e) => tracing::warn!("could not renew the DTLS certificate: {e}"),
            }
        }
        Ok(&self.current)
    }
}

fn generate() -> Result<RTCCertificate, String> {
    let provider = rtc::crypto::default_provider().map_err(|e| e.to_string())?;
    let name = format!("fieldcast-{:016x}", rand::random::<u64>());
    let params = CertificateParams::new(vec![name]).map_err(|e| e.to_string())?;
    RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params)
        .map_err(|e| format!("cannot make a DTLS certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_certificate_serves_until_it_is_about_to_expire() {
        let mut certificate = LoopCertificate::new().unwrap();
        let now = SystemTime::now();
        let first = certificate.at(now).unwrap().clone();
        assert_eq!(certificate.at(now).unwrap(), &first, "the same one again");
        let nearly_expired = first.expires - Duration::from_secs(3600);
        let renewed = certificate.at(nearly_expired).unwrap().clone();
        assert_ne!(renewed, first, "a new one a day before it expires");
        assert!(renewed.expires > nearly_expired);
    }
}
