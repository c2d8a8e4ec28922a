//! Throwaway certificates for TLS tests: a CA and client certificates it issues (rcgen).

/// A certificate authority: its PEM and what signs with it.
pub struct Ca {
    pub issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

/// A self-signed CA named `name` (CN).
pub fn ca(name: &str) -> Ca {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = p.self_signed(&key).expect("a self-signed CA");
    Ca {
        pem: cert.pem(),
        issuer: rcgen::Issuer::new(p, key),
    }
}

/// A client certificate (CN `front-proxy-client`, as the kube-apiserver's front proxy
/// presents) issued by `ca`: (cert PEM, key PEM).
pub fn client_cert(ca: &Ca) -> (String, String) {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("parameters");
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "front-proxy-client");
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = p.signed_by(&key, &ca.issuer).expect("a client certificate");
    (cert.pem(), key.serialize_pem())
}
