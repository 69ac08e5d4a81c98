//! Choosing a listener's certificate by the client's SNI name: an exact DNS name of some
//! certificate first, then a wildcard (`*.example.com` covers `a.example.com`, not
//! `a.b.example.com` nor `example.com`, as RFC 6125 says), else the first certificate. Among
//! certificates naming the same host, the earlier in the config wins.
//!
//! The set lives behind an `ArcSwap`: a handshake reads it without a lock, and rotation replaces
//! it whole.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_config::model;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate as loaded, and the rustls key built from it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub certificate: model::Certificate,
    pub key: Arc<CertifiedKey>,
}

#[derive(Debug)]
pub(crate) struct Resolver {
    current: ArcSwap<Certificates>,
}

/// The certificates with their names indexed.
#[derive(Debug)]
struct Certificates {
    /// Config order; the first is the default. Never empty (validation requires one).
    entries: Arc<[Entry]>,
    /// Lower-case DNS name → index of the first certificate naming it.
    exact: HashMap<String, usize>,
    /// `example.com` for `*.example.com` → index.
    wildcard: HashMap<String, usize>,
}

impl Resolver {
    pub fn new(entries: Vec<Entry>) -> Resolver {
        Resolver {
            current: ArcSwap::from_pointee(Certificates::new(entries)),
        }
    }

    /// The certificates served now.
    pub fn entries(&self) -> Arc<[Entry]> {
        Arc::clone(&self.current.load().entries)
    }

    /// Serves `entries` from the next handshake on.
    pub fn replace(&self, entries: Vec<Entry>) {
        self.current.store(Arc::new(Certificates::new(entries)));
    }

    /// The index of the certificate for `server_name` (`None`: no SNI).
    fn choose(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certificates = self.current.load();
        let index = server_name
            .and_then(|name| certificates.find(name))
            .unwrap_or(0);
        certificates
            .entries
            .get(index)
            .map(|entry| Arc::clone(&entry.key))
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}

impl Certificates {
    fn new(entries: Vec<Entry>) -> Certificates {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            for name in &entry.certificate.names {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()).or_insert(index),
                    None => exact.entry(name.clone()).or_insert(index),
                };
            }
        }
        Certificates {
            entries: entries.into(),
            exact,
            wildcard,
        }
    }

    fn find(&self, server_name: &str) -> Option<usize> {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(index) = self.exact.get(&name) {
            return Some(*index);
        }
        let (label, parent) = name.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        self.wildcard.get(parent).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::SystemTime;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    /// An entry for `names` whose key is told apart by its first certificate's bytes.
    fn entry(id: u8, names: &[&str]) -> Entry {
        let key = rcgen::KeyPair::generate().unwrap();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
        let chain = vec![CertificateDer::from(vec![id])];
        Entry {
            certificate: model::Certificate {
                cert_path: format!("/c/{id}.pem").into(),
                key_path: format!("/c/{id}.key").into(),
                chain: chain.clone(),
                key: model::PrivateKey(der),
                names: names.iter().map(|n| n.to_string()).collect(),
                not_before: SystemTime::UNIX_EPOCH,
                not_after: SystemTime::UNIX_EPOCH,
            },
            key: Arc::new(CertifiedKey::new(chain, signer)),
        }
    }

    fn chosen(resolver: &Resolver, sni: Option<&str>) -> u8 {
        resolver.choose(sni).unwrap().cert[0].as_ref()[0]
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let resolver = Resolver::new(vec![
            entry(0, &["default.test"]),
            entry(1, &["*.example.com"]),
            entry(2, &["api.example.com", "example.com"]),
            entry(3, &["api.example.com", "*.other.test"]),
        ]);
        assert_eq!(chosen(&resolver, Some("api.example.com")), 2);
        assert_eq!(chosen(&resolver, Some("API.Example.COM.")), 2);
        assert_eq!(chosen(&resolver, Some("example.com")), 2);
        assert_eq!(chosen(&resolver, Some("www.example.com")), 1);
        // One label only, as RFC 6125 wildcards go.
        assert_eq!(chosen(&resolver, Some("a.b.example.com")), 0);
        assert_eq!(chosen(&resolver, Some("x.other.test")), 3);
        assert_eq!(chosen(&resolver, Some("other.test")), 0);
        assert_eq!(chosen(&resolver, Some("unknown.test")), 0);
        assert_eq!(chosen(&resolver, None), 0);
    }

    #[test]
    fn replace_serves_the_new_set() {
        let resolver = Resolver::new(vec![entry(0, &["a.test"])]);
        assert_eq!(chosen(&resolver, Some("a.test")), 0);
        resolver.replace(vec![entry(9, &["a.test"])]);
        assert_eq!(chosen(&resolver, Some("a.test")), 9);
        assert_eq!(resolver.entries().len(), 1);
    }
}
