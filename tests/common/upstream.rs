//! A one-file HTTP server on a loopback address, standing in for the internet.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A one-file HTTP server on `ip`: answers every request with `body` and keeps the request lines it saw.
pub struct Upstream {
    pub ip: String,
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stopped: Arc<AtomicBool>,
}

/// Reads a request's head and returns its first line.
fn request_line(s: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head);
    text.lines().next().unwrap_or("").to_string()
}

impl Upstream {
    pub fn start(ip: &str, body: Vec<u8>) -> Upstream {
        Upstream::start_stalling(ip, body, 0)
    }

    /// Like [`Upstream::start`], but the first `stalls` answers send half the body and then stall (until
    /// the client goes away): a download caught mid-way.
    pub fn start_stalling(ip: &str, body: Vec<u8>, stalls: usize) -> Upstream {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        std::thread::spawn(move || {
            let mut answered = 0usize;
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    // The listener goes with this thread: the port is closed.
                    return;
                }
                let Ok(mut s) = stream else { continue };
                log.lock().unwrap().push(request_line(&mut s));
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                answered += 1;
                if answered <= stalls {
                    let _ = s.write_all(&body[..body.len() / 2]);
                    let _ = s.flush();
                    // Held open, the rest never sent, until the client goes away.
                    std::thread::spawn(move || {
                        let mut b = [0u8; 1];
                        while s.read(&mut b).unwrap_or(0) > 0 {}
                    });
                    continue;
                }
                let _ = s.write_all(&body);
            }
        });
        Upstream {
            ip: ip.to_string(),
            port,
            seen,
            stopped,
        }
    }

    /// Closes the port: nothing answers there any more.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect((self.ip.as_str(), self.port));
        for _ in 0..100 {
            if std::net::TcpStream::connect((self.ip.as_str(), self.port)).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the upstream on {}:{} did not stop", self.ip, self.port);
    }

    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// A test CA and a certificate it issued for `ip`, as PEM (CA certificate, leaf certificate, leaf key).
pub fn test_ca(host: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509NameBuilder, X509};
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = || PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let name = |cn: &str| {
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
        n.build()
    };
    let (ca_key, leaf_key) = (key(), key());
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name("reprod test upstream CA"))
        .unwrap();
    b.set_issuer_name(&name("reprod test upstream CA")).unwrap();
    b.set_pubkey(&ca_key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let ca = b.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(2).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name(host)).unwrap();
    b.set_issuer_name(ca.subject_name()).unwrap();
    b.set_pubkey(&leaf_key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let mut san = SubjectAlternativeName::new();
    if host.parse::<std::net::IpAddr>().is_ok() {
        san.ip(host);
    } else {
        san.dns(host);
    }
    let san = san.build(&b.x509v3_context(Some(&ca), None)).unwrap();
    b.append_extension(san).unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    (
        ca.to_pem().unwrap(),
        b.build().to_pem().unwrap(),
        leaf_key.private_key_to_pem_pkcs8().unwrap(),
    )
}

/// An HTTPS server on `ip` with a certificate of its own test CA; answers every request with `body`.
pub struct TlsUpstream {
    pub port: u16,
    /// The test CA's certificate (PEM): what a client must trust to reach it.
    pub ca_pem: Vec<u8>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl TlsUpstream {
    pub fn start(ip: &str, body: Vec<u8>) -> TlsUpstream {
        use openssl::ssl::{SslAcceptor, SslMethod};
        let (ca_pem, cert, key) = test_ca(ip);
        let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        a.set_certificate(&openssl::x509::X509::from_pem(&cert).unwrap())
            .unwrap();
        a.set_private_key(&openssl::pkey::PKey::private_key_from_pem(&key).unwrap())
            .unwrap();
        let acceptor = Arc::new(a.build());
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (acceptor, log, body) = (acceptor.clone(), log.clone(), body.clone());
                std::thread::spawn(move || {
                    let Ok(mut s) = acceptor.accept(stream) else {
                        return;
                    };
                    log.lock().unwrap().push(request_line(&mut s));
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(&body);
                    let _ = s.shutdown();
                });
            }
        });
        TlsUpstream { port, ca_pem, seen }
    }

    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// A second registry (Debian's docker-registry) serving HTTPS on 127.0.0.1 with a certificate for `name`
/// from a CA of its own: an upstream a build reaches under a name, through the build network.
pub struct TlsRegistry {
    pub name: String,
    pub port: u16,
    pub ca_pem: Vec<u8>,
    _process: super::registry::RegistryProcess,
}

impl TlsRegistry {
    pub fn start(name: &str) -> TlsRegistry {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, cert, key) = test_ca(name);
        std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), &key).unwrap();
        let process = super::registry::RegistryProcess::start(dir, |d, port| {
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n\
                 http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {d}/cert.pem\n    key: {d}/key.pem\n"
            )
        });
        TlsRegistry {
            name: name.to_string(),
            port: process.port,
            ca_pem,
            _process: process,
        }
    }

    /// `name:port`, as builds name it.
    pub fn host(&self) -> String {
        format!("{}:{}", self.name, self.port)
    }
}
