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

impl Upstream {
    pub fn start(ip: &str, body: Vec<u8>) -> Upstream {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    // The listener goes with this thread: the port is closed.
                    return;
                }
                let Ok(mut s) = stream else { continue };
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                    head.push(b[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                log.lock()
                    .unwrap()
                    .push(text.lines().next().unwrap_or("").to_string());
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
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
