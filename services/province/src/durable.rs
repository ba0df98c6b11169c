//! Making sled 0.34 writes survive power loss.
//!
//! Why this exists: `sled::Db::flush()` in 0.34 writes its log with `pwrite`
//! and then calls `sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER)` on the
//! written range (see `pagecache/iobuf.rs`). That pushes the pages to the
//! device but is not `fsync`: it neither commits file metadata (the file's
//! size after it grew) nor asks the drive to empty its volatile cache. sled
//! also writes `conf` and values too large for a log segment (`blobs/<lsn>`)
//! with plain writes and no sync at all. A flush that returned is therefore
//! not yet durable.
//!
//! So after every `flush()` the store calls [`SyncFiles::sync`], which
//! `fdatasync`s the `db` file (and any blob files and their directory), and
//! at open [`SyncFiles::open`] fsyncs `conf` and the store directory once, so
//! the files sled created exist after a crash. Only after that does the
//! province acknowledge a message to JetStream.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Handles on the files of one sled directory that `flush` leaves unsynced.
#[derive(Debug)]
pub struct SyncFiles {
    dir: PathBuf,
    db: File,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl SyncFiles {
    /// Opens `<dir>/db`, fsyncs `<dir>/conf` and the directory itself.
    /// Call after `sled::open(dir)` succeeded.
    pub fn open(dir: &Path) -> io::Result<SyncFiles> {
        let db = File::open(dir.join("db"))?;
        db.sync_all()?;
        let conf = dir.join("conf");
        if conf.exists() {
            File::open(&conf)?.sync_all()?;
        }
        sync_dir(dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(SyncFiles { dir: dir.to_path_buf(), db })
    }

    /// Makes everything sled has flushed durable. Call after `Db::flush()`.
    pub fn sync(&self) -> io::Result<()> {
        self.db.sync_data()?;
        // Blob files exist only for values larger than a quarter of a log
        // segment; normally this directory is empty and the walk costs one
        // readdir.
        let blobs = self.dir.join("blobs");
        match std::fs::read_dir(&blobs) {
            Ok(entries) => {
                let mut any = false;
                for entry in entries {
                    let entry = entry?;
                    // sled deletes the blob of an overwritten value in the
                    // background; one gone between readdir and open needs
                    // no sync (its value is no longer referenced).
                    let file = match entry.file_type() {
                        Ok(t) if t.is_file() => File::open(entry.path()),
                        Ok(_) => continue,
                        Err(e) => Err(e),
                    };
                    match file.and_then(|f| f.sync_data()) {
                        Ok(()) => any = true,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                if any {
                    sync_dir(&blobs)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}
