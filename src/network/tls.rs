//! TLS interception: the proxy ends a build's TLS with a certificate from a CA made for the job, so an
//! HTTPS exchange is seen (URL, status, bytes, the body's sha256) and checked against URL-prefix entries as
//! a plain one is; it then speaks TLS to the upstream itself, verifying its certificate against this
//! host's roots plus the configured ones. The CA lives only as long as its job: its key never leaves this
//! process, and a certificate it issued is worth nothing once the job ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509NameBuilder, X509};

/// Why interception could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("making the job's CA: {0}")]
    Ca(#[from] openssl::error::ErrorStack),
    #[error("reading the upstream roots {path}: {why}")]
    Roots { path: String, why: String },
}

/// A job's CA and the leaf certificates it issued, one per host.
pub struct JobCa {
    cert: X509,
    key: PKey<Private>,
    leaves: Mutex<HashMap<String, Arc<SslAcceptor>>>,
}

fn ec_key() -> Result<PKey<Private>, openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

/// A certificate for the common name `cn` (at most 64 characters kept) and `key`, valid for two days
/// from now with a random serial, to be extended, issued by `issuer` (its own subject when `None`) and
/// signed.
fn certificate(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<&openssl::x509::X509NameRef>,
) -> Result<openssl::x509::X509Builder, openssl::error::ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    let cn: String = cn.chars().take(64).collect();
    name.append_entry_by_nid(Nid::COMMONNAME, &cn)?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    b.set_serial_number(&*serial.to_asn1_integer()?)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(issuer.unwrap_or(&name))?;
    b.set_pubkey(key)?;
    b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    b.set_not_after(&*Asn1Time::days_from_now(2)?)?;
    Ok(b)
}

impl JobCa {
    /// A fresh CA for job `job`, valid for two days.
    pub fn new(job: &str) -> Result<JobCa, TlsError> {
        let key = ec_key()?;
        let mut b = certificate(&format!("reprod job CA {job}"), &key, None)?;
        b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(JobCa {
            cert: b.build(),
            key,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate, PEM: what the build is given to trust.
    pub fn pem(&self) -> Result<Vec<u8>, TlsError> {
        Ok(self.cert.to_pem()?)
    }

    /// `sha256:<hex>` of the CA certificate's DER, for the record.
    pub fn fingerprint(&self) -> Result<String, TlsError> {
        Ok(format!(
            "sha256:{}",
            hex::encode(self.cert.digest(MessageDigest::sha256())?)
        ))
    }

    /// The TLS server side for `host` (a name or an address), with a leaf certificate this CA issued.
    pub(super) fn acceptor(&self, host: &str) -> Result<Arc<SslAcceptor>, TlsError> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let mut leaves = self
            .leaves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(a) = leaves.get(&host) {
            return Ok(a.clone());
        }
        let key = ec_key()?;
        let mut b = certificate(&host, &key, Some(self.cert.subject_name()))?;
        let mut san = SubjectAlternativeName::new();
        if host.parse::<std::net::IpAddr>().is_ok() {
            san.ip(&host);
        } else {
            san.dns(&host);
        }
        let san = san.build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(san)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        b.sign(&self.key, MessageDigest::sha256())?;
        let leaf = b.build();
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
        acceptor.set_private_key(&key)?;
        acceptor.set_certificate(&leaf)?;
        acceptor.add_extra_chain_cert(self.cert.clone())?;
        acceptor.check_private_key()?;
        // HTTP/1.1 only: what the proxy speaks to the build.
        acceptor.set_alpn_select_callback(|_, offered| {
            openssl::ssl::select_next_proto(b"\x08http/1.1", offered)
                .ok_or(openssl::ssl::AlpnError::NOACK)
        });
        let acceptor = Arc::new(acceptor.build());
        leaves.insert(host, acceptor.clone());
        Ok(acceptor)
    }
}

/// The TLS client side towards upstreams: this host's roots plus `extra_roots` (PEM files), certificate
/// and name always verified.
pub fn upstream_connector(extra_roots: &[PathBuf]) -> Result<SslConnector, TlsError> {
    let mut b = SslConnector::builder(SslMethod::tls_client())?;
    b.set_verify(SslVerifyMode::PEER);
    b.set_alpn_protos(b"\x08http/1.1")?;
    for path in extra_roots {
        let roots = |why: String| TlsError::Roots {
            path: path.display().to_string(),
            why,
        };
        let pem = std::fs::read(path).map_err(|e| roots(e.to_string()))?;
        let certs = X509::stack_from_pem(&pem).map_err(|e| roots(e.to_string()))?;
        if certs.is_empty() {
            return Err(roots("no PEM certificate in it".into()));
        }
        for cert in certs {
            b.cert_store_mut()
                .add_cert(cert)
                .map_err(|e| roots(e.to_string()))?;
        }
    }
    Ok(b.build())
}

/// What a job's proxy intercepts and how it reaches upstreams.
pub struct Interception {
    pub ca: JobCa,
    pub upstream: SslConnector,
    /// Hosts (`host` or `*.domain`) whose CONNECT passes through as bytes, recorded by host, port and bytes.
    pub tunnel_only: Vec<String>,
}

impl Interception {
    /// Whether CONNECT to `host` is a tunnel rather than intercepted.
    pub(super) fn tunnels(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.tunnel_only.iter().any(|t| {
            let t = t.to_ascii_lowercase();
            match t.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == t,
            }
        })
    }
}
