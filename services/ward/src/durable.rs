//! Making sled writes survive power loss (the last step of "recorded").
//!
//! sled 0.34's `Db::flush()` writes its buffers with `sync_file_range(2)`
//! (`SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER`, see
//! `pagecache/iobuf.rs`). That pushes the dirty pages to the device but does
//! not flush the device's write cache, nor the file's size and other
//! metadata: after a power cut the tail of the log may be gone even though
//! `flush()` returned. So after every flush we also call `fdatasync` (via
//! [`File::sync_data`]) on the files sled writes:
//!
//! - `<dir>/db` — the log-structured data file every insert goes to;
//! - `<dir>/conf` — written once at creation, synced with the rest because a
//!   database without it cannot be opened (the sync is free once clean).
//!
//! The handles are opened once, right after sled opened the directory, and
//! kept: `fdatasync` on any descriptor of a file flushes that file's data,
//! whichever descriptor wrote it. They hold no lock (sled's `flock` is on its
//! own descriptor), so they never stop sled from reopening the directory.
//!
//! The directory itself is fsynced once at open, so the entries of `db` and
//! `conf` (created by sled on first open) survive a power cut too.
//!
//! [`available_bytes`] reads the free space of the file system under the
//! log (`statvfs(3)`), for the reserve check before a write and for deciding
//! whether a log broken by a full disk can be reopened.
//!
//! Values stay inline in `db` because every event is at most
//! [`treem_proto::event::MAX_EVENT_BYTES`] encoded, far below the size at
//! which sled 0.34 moves a value to `<dir>/blobs/`.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Handles on the files sled writes, kept to fsync them after each flush.
#[derive(Debug)]
pub(crate) struct SledFiles {
    db: File,
    conf: File,
    dir: PathBuf,
}

impl SledFiles {
    /// Opens `<dir>/db` and `<dir>/conf` (which sled has just created) and
    /// fsyncs `dir` so their directory entries are durable.
    pub(crate) fn open(dir: &Path) -> io::Result<SledFiles> {
        let db = File::open(dir.join("db"))?;
        let conf = File::open(dir.join("conf"))?;
        sync_dir(dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(SledFiles { db, conf, dir: dir.to_path_buf() })
    }

    /// `db.flush()` then `fdatasync` of sled's files: when this returns `Ok`,
    /// every write that completed before the call is on stable storage.
    pub(crate) fn flush_durably(&self, db: &sled::Db) -> io::Result<()> {
        // Keep the kind of an I/O error (ENOSPC above all): the log tells a
        // full disk from other failures by it.
        db.flush().map_err(|e| {
            let kind = match &e {
                sled::Error::Io(io) => io.kind(),
                _ => io::ErrorKind::Other,
            };
            io::Error::new(kind, format!("sled flush of {}: {e}", self.dir.display()))
        })?;
        self.db.sync_data()?;
        self.conf.sync_data()?;
        Ok(())
    }
}

/// fsyncs a directory, making the names of files created in it durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `contents` to `path` atomically: a temporary file in the same
/// directory, fsynced, then renamed over `path`, then the directory fsynced.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })
}

/// Bytes an unprivileged process may still write on the file system holding
/// `path` (`statvfs(3)`: `f_bavail · f_frsize`).
#[allow(unsafe_code)]
pub(crate) fn available_bytes(path: &Path) -> io::Result<u64> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c_path =
        CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the
    // call, and `stat` points to writable memory the size of a `statvfs`,
    // which the call fills completely when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised the struct.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}
