//! Certificates made at test time with rcgen: a test CA, server leaves for given DNS names, and
//! client leaves for mutual TLS. Nothing is committed; each test writes its own files.

use std::path::PathBuf;

use gatehouse_tests::Sandbox;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;

/// A certificate authority the test clients trust.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
    pub der: CertificateDer<'static>,
}

/// A certificate and its private key, in PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names`, with `cn` as its subject's common name.
    pub fn leaf(&self, cn: &str, names: &[&str]) -> Leaf {
        self.issue(cn, names, |_| {})
    }

    /// A leaf after `edit` has adjusted its parameters (dates, usages).
    pub fn issue(
        &self,
        cn: &str,
        names: &[&str],
        edit: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        edit(&mut params);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// Writes the CA certificate as `rel` in the sandbox.
    pub fn write(&self, sandbox: &Sandbox, rel: &str) -> PathBuf {
        sandbox.write(rel, &self.pem)
    }
}

impl Leaf {
    /// Writes `{stem}.pem` and `{stem}.key` in the sandbox.
    pub fn write(&self, sandbox: &Sandbox, stem: &str) {
        sandbox.write(&format!("{stem}.pem"), &self.cert_pem);
        sandbox.write(&format!("{stem}.key"), &self.key_pem);
    }

    /// Replaces `{stem}.pem` and `{stem}.key` the way certbot and most deploy tools do: write
    /// beside, then rename over (key first, so a reader sees the old pair, a mismatch, or the
    /// new pair; never a half-written file).
    pub fn replace(&self, sandbox: &Sandbox, stem: &str) {
        for (ext, text) in [("key", &self.key_pem), ("pem", &self.cert_pem)] {
            let tmp = sandbox.write(&format!("{stem}.{ext}.tmp"), text);
            std::fs::rename(tmp, sandbox.join(&format!("{stem}.{ext}"))).unwrap();
        }
    }
}

/// The same PEM text, ignoring line breaks and spacing.
pub fn same_pem(a: &str, b: &str) -> bool {
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    squeeze(a) == squeeze(b)
}
