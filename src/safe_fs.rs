//! Opening files a build or a client controls without being led elsewhere by them.
//!
//! A workspace, an OCI layout or an inbox is written by someone reprod does not trust: a symlink there can
//! point at `/etc`, a FIFO can block a reader forever, and a path checked at one moment can be swapped
//! before it is opened. Everything here opens once, without following any symbolic link, without blocking,
//! and checks the descriptor it got rather than the path.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// The one kind of file outputs and documents are read from.
fn require_regular(file: File, what: &str) -> io::Result<File> {
    let meta = file.metadata()?;
    if meta.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}: not a regular file"),
        ))
    }
}

/// Opens a directory itself without following a symlink at its last component.
pub fn open_dir(path: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Opens a regular file for reading: no symlink at the last component, no blocking on a FIFO or device,
/// and the opened descriptor (not the path) must be a regular file.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    require_regular(File::from(fd), &path.display().to_string())
}

/// `relative` must be a plain relative path: no root, no `..`, nothing empty.
fn plain_components(relative: &str) -> io::Result<Vec<&str>> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{relative}: names a path outside the directory"),
        )
    };
    let mut parts = Vec::new();
    for c in Path::new(relative).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or_else(bad)?),
            Component::CurDir => {}
            _ => return Err(bad()),
        }
    }
    if parts.is_empty() {
        return Err(bad());
    }
    Ok(parts)
}

/// Opens the regular file `relative` beneath the directory `dir`, refusing every symlink on the way
/// (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`; on kernels without it, a walk that opens each
/// component with `O_NOFOLLOW`). Never blocks on a FIFO.
pub fn open_beneath(dir: &File, relative: &str) -> io::Result<File> {
    let parts = plain_components(relative)?;
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(dir.as_fd(), parts.join("/"), flags, Mode::empty(), resolve) {
        Ok(fd) => return require_regular(File::from(fd), relative),
        Err(rustix::io::Errno::NOSYS) => {}
        Err(e) => return Err(link_error(e, relative)),
    }
    // Older kernels: one component at a time, each refusing a symlink.
    let (last, dirs) = parts
        .split_last()
        .ok_or_else(|| io::Error::other("empty path"))?;
    let mut current: Option<File> = None;
    for d in dirs {
        let base = current.as_ref().unwrap_or(dir);
        let fd = rustix::fs::openat(
            base.as_fd(),
            *d,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| link_error(e, relative))?;
        current = Some(File::from(fd));
    }
    let base = current.as_ref().unwrap_or(dir);
    let fd = rustix::fs::openat(base.as_fd(), *last, flags, Mode::empty())
        .map_err(|e| link_error(e, relative))?;
    require_regular(File::from(fd), relative)
}

/// `ELOOP` and `EXDEV` from these opens mean a symlink (or an escape) was refused: say so.
fn link_error(e: rustix::io::Errno, relative: &str) -> io::Error {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV | rustix::io::Errno::NOTDIR => {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{relative}: a component is a symbolic link (or not a directory); links are not followed"),
            )
        }
        other => io::Error::from(other),
    }
}

/// Creates a new file for writing with `mode`: fails if anything (a file, a symlink, a FIFO) is already
/// at `path`, so a build cannot redirect what reprod writes into its job directory.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_fifos_and_escapes_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        std::fs::write(root.join("blobs/sha256/ok"), b"bytes").unwrap();
        symlink("/etc", root.join("blobs/etc")).unwrap();
        symlink("/etc/passwd", root.join("blobs/sha256/passwd")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let dir = open_dir(root).unwrap();
        let mut s = String::new();
        open_beneath(&dir, "blobs/sha256/ok")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "bytes");
        for refused in [
            "blobs/etc/passwd",
            "blobs/sha256/passwd",
            "../x",
            "/etc/passwd",
            "fifo",
            "blobs",
            "",
        ] {
            assert!(open_beneath(&dir, refused).is_err(), "{refused} was opened");
        }
        // The whole directory given as a symlink is refused too.
        symlink(root.join("blobs"), root.join("linked")).unwrap();
        assert!(open_dir(&root.join("linked")).is_err());
        assert!(
            open_regular(&root.join("fifo")).is_err(),
            "a FIFO never blocks"
        );
        assert!(open_regular(&root.join("blobs/sha256/passwd")).is_err());
        assert!(create_new(&root.join("blobs/sha256/passwd"), 0o600).is_err());
        assert!(create_new(&root.join("blobs/sha256/ok"), 0o600).is_err());
        assert!(create_new(&root.join("new"), 0o600).is_ok());
    }
}
