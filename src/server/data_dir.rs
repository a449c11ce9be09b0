//! The data directory of a single-node process: created private (0700, its database
//! files 0600), and held by one `gim serve` at a time, since a second one would keep
//! routes of its own and its devices would stop getting the first one's messages.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, Write},
    path::Path,
};

use super::{ServerError, io};

/// The lock file inside the data directory; it holds the holder's process id.
const LOCK_FILE: &str = "gim.lock";

/// Creates `dir` (and its parents) readable by its owner alone, if it is missing.
pub fn create(dir: &Path) -> Result<(), ServerError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io(format!("creating data_dir {}", dir.display())))
}

/// Creates an empty file readable by its owner alone, if it is missing. SQLite then
/// gives its -wal and -shm files the database file's permissions.
pub fn create_private_file(path: &Path) -> Result<(), ServerError> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop).map_err(io(format!("creating {}", path.display())))
}

/// An exclusive hold on a data directory, released when dropped (or when the process
/// ends, however it ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the directory, or fails at once, naming the process that holds it.
    pub fn take(dir: &Path) -> Result<Self, ServerError> {
        create(dir)?;
        let path = dir.join(LOCK_FILE);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(io(format!("opening {}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(ServerError::DataDirInUse { dir: dir.to_path_buf(), holder: holder.trim().to_owned() });
            }
            Err(std::fs::TryLockError::Error(err)) => return Err(io(format!("locking {}", path.display()))(err)),
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        written.map_err(io(format!("writing {}", path.display())))?;
        Ok(Self { _file: file })
    }
}
