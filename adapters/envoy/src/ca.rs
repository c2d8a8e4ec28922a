//! The built-in CA: a self-signed ECDSA P-256 root (key persisted in a file locally) issuing
//! short-lived workload certificates whose only name is the SPIFFE URI
//! `spiffe://<td>/ns/<ns>/sa/<sa>`, and a server certificate for the xDS endpoint.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Why the CA could not be loaded or could not issue a certificate.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },
    #[error("certificate lifetime {0:?} is out of range")]
    Lifetime(Duration),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// DNS name in the xDS server's certificate (the sidecars' bootstrap checks it).
pub const XDS_SERVER_NAME: &str = "xds.meshbridge.local";

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// PEM of the root certificate (the trust bundle).
    pub cert_pem: String,
}

/// A certificate with its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: SystemTime,
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "meshbridge");
    dn.push(DnType::CommonName, "meshbridge root CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

impl Ca {
    /// A new CA valid for ten years.
    pub fn generate() -> Result<Ca, CaError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(ca_params(), key),
        })
    }

    /// The CA kept in `dir` (`ca.key`, `ca.pem`), created there when missing. The key file
    /// is written with mode 0600.
    pub fn load_or_create(dir: &Path) -> Result<Ca, CaError> {
        let kp = dir.join("ca.key");
        let cp = dir.join("ca.pem");
        if let (Ok(key), Ok(cert_pem)) =
            (std::fs::read_to_string(&kp), std::fs::read_to_string(&cp))
        {
            let key = KeyPair::from_pem(&key).map_err(|source| CaError::Key {
                path: kp.clone(),
                source,
            })?;
            return Ok(Ca {
                cert_pem,
                issuer: Issuer::new(ca_params(), key),
            });
        }
        let ca = Ca::generate()?;
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        write_private(&kp, &ca.issuer.key().serialize_pem())?;
        std::fs::write(&cp, &ca.cert_pem).map_err(io_error(&cp))?;
        Ok(ca)
    }

    fn issue(&self, sans: Vec<SanType>, ttl: Duration) -> Result<Issued, CaError> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.subject_alt_names = sans;
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::minutes(5);
        let ttl_t = time::Duration::try_from(ttl).map_err(|_| CaError::Lifetime(ttl))?;
        p.not_after = now + ttl_t;
        let cert = p.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after: SystemTime::now() + ttl,
        })
    }

    /// A workload certificate whose only SAN is the SPIFFE URI.
    pub fn issue_workload(&self, spiffe: &str, ttl: Duration) -> Result<Issued, CaError> {
        let uri = spiffe.to_string().try_into()?;
        self.issue(vec![SanType::URI(uri)], ttl)
    }

    /// The xDS server's certificate (`XDS_SERVER_NAME`, 127.0.0.1).
    pub fn issue_server(&self, ttl: Duration) -> Result<Issued, CaError> {
        let dns = XDS_SERVER_NAME.to_string().try_into()?;
        self.issue(
            vec![
                SanType::DnsName(dns),
                SanType::IpAddress(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            ],
            ttl,
        )
    }
}

/// Writes a secret file readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> Result<(), CaError> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(io_error(path))?;
    f.write_all(text.as_bytes()).map_err(io_error(path))
}

/// One DER TLV: (tag, content, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&l0, mut b) = b.split_first()?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &x in &b[..n] {
            len = (len << 8) | x as usize;
        }
        b = &b[n..];
        len
    };
    if b.len() < len {
        return None;
    }
    Some((tag, &b[..len], &b[len..]))
}

/// The URI SANs of a DER certificate (empty when there are none or the DER is malformed).
pub fn uri_sans(der: &[u8]) -> Vec<String> {
    uri_sans_opt(der).unwrap_or_default()
}

fn uri_sans_opt(der: &[u8]) -> Option<Vec<String>> {
    const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];
    let (_, cert, _) = tlv(der)?;
    let (_, mut tbs, _) = tlv(cert)?;
    while !tbs.is_empty() {
        let (tag, content, rest) = tlv(tbs)?;
        tbs = rest;
        if tag != 0xa3 {
            continue;
        }
        let (_, mut exts, _) = tlv(content)?;
        while !exts.is_empty() {
            let (_, ext, rest) = tlv(exts)?;
            exts = rest;
            let (t, oid, mut ext) = tlv(ext)?;
            if t != 0x06 || oid != SAN_OID {
                continue;
            }
            let (mut t, mut v, r) = tlv(ext)?;
            if t == 0x01 {
                ext = r;
                (t, v, _) = tlv(ext)?;
            }
            if t != 0x04 {
                return None;
            }
            let (_, mut names, _) = tlv(v)?;
            let mut out = vec![];
            while !names.is_empty() {
                let (t, n, rest) = tlv(names)?;
                names = rest;
                if t == 0x86 {
                    out.push(String::from_utf8_lossy(n).into_owned());
                }
            }
            return Some(out);
        }
    }
    Some(vec![])
}

/// The first certificate of a PEM bundle, as DER.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    b64(&body)
}

fn b64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\r' | b'\n' | b' ' => continue,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_cert_carries_spiffe_uri_and_ca_persists() {
        let dir = std::env::temp_dir().join(format!("mb-ca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ca = Ca::load_or_create(&dir).unwrap();
        let c = ca
            .issue_workload("spiffe://cluster.local/ns/a/sa/b", Duration::from_secs(60))
            .unwrap();
        let der = pem_to_der(&c.cert_pem).unwrap();
        assert_eq!(uri_sans(&der), vec!["spiffe://cluster.local/ns/a/sa/b"]);
        let again = Ca::load_or_create(&dir).unwrap();
        assert_eq!(again.cert_pem, ca.cert_pem);
        let s = again.issue_server(Duration::from_secs(60)).unwrap();
        assert!(uri_sans(&pem_to_der(&s.cert_pem).unwrap()).is_empty());
        assert!(uri_sans(b"\x30\x03garbage").is_empty());
        assert!(uri_sans(&[]).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
