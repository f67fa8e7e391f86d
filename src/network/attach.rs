//! How a step that has only loopback reaches the proxy: reprod opens a listener on `127.0.0.1` inside
//! the job's own network namespace and carries each connection to the proxy in its own namespace. The
//! step gets no interface, no route and no address of the host: only that one port, which only its job
//! has. (The socket is made by a short-lived thread that enters the namespace; a socket stays in the
//! namespace it was made in, and the thread's return takes nothing back.)

use std::net::SocketAddr;
use std::os::fd::AsFd;

use tokio::net::{TcpListener, TcpStream};

/// A listener inside another network namespace, forwarding to the proxy until dropped.
pub struct Attached {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Attached {
    /// The port the build reaches the proxy on (`http://127.0.0.1:<port>` in its namespace).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listening socket on `127.0.0.1:port` in the network namespace of process `pid` (port 0: any free
/// one). Needs the right to enter it (root on the host has it for every container's).
fn listener_in(pid: u32, port: u16) -> std::io::Result<std::net::TcpListener> {
    let entered = std::thread::spawn(move || -> std::io::Result<std::net::TcpListener> {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    });
    entered
        .join()
        .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
}

/// Opens the build's way to `proxy` inside the network namespace of `pid`.
pub async fn attach(pid: u32, port: u16, proxy: SocketAddr) -> std::io::Result<Attached> {
    let std_listener = tokio::task::spawn_blocking(move || listener_in(pid, port))
        .await
        .map_err(std::io::Error::other)??;
    let port = std_listener.local_addr()?.port();
    let listener = TcpListener::from_std(std_listener)?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut build, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            tokio::spawn(async move {
                // Made by a runtime thread: in this process's namespace, where the proxy listens.
                if let Ok(mut to_proxy) = TcpStream::connect(proxy).await {
                    let _ = tokio::io::copy_bidirectional(&mut build, &mut to_proxy).await;
                }
            });
        }
    });
    Ok(Attached { port, task })
}
