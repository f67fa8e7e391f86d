//! How a step that has only loopback reaches the proxy: reprod opens a listening socket on `127.0.0.1`
//! inside the job's own network namespace and serves the proxy on it from its own process. The step gets
//! no interface, no route and no address of the host: only that one port, which only its job has, and the
//! proxy listens nowhere else. (The socket is made by a short-lived thread that enters the namespace; a
//! socket stays in the namespace it was made in, and the thread's end takes nothing back. The connections
//! the proxy makes upstream are made by runtime threads, in reprod's own namespace.)

use std::os::fd::AsFd;

use tokio::net::TcpListener;

/// A listening socket on `127.0.0.1:port` in the network namespace of process `pid` (port 0: any free
/// one). Needs the right to enter it (root on the host has it for every container's).
pub async fn listener_in(pid: u32, port: u16) -> std::io::Result<TcpListener> {
    let made = tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || -> std::io::Result<std::net::TcpListener> {
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .join()
        .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
    })
    .await
    .map_err(std::io::Error::other)??;
    TcpListener::from_std(made)
}
