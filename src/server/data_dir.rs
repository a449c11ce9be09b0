//! The data directory of a single-node process: created private (0700, its database
//! files 0600), and held, with its database, by one `gim serve` at a time, since a second
//! one would keep routes of its own and its devices would stop getting the first one's
//! messages.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, Write},
    path::Path,
};

use super::{ServerError, io};
use crate::{
    config::Config,
    store::{SingleNodeLock, SqlStore, StoreError},
};

/// The lock file inside the data directory; it holds the holder's process id.
const LOCK_FILE: &str = "gim.lock";

/// Creates `dir` (and its parents) readable by its owner alone, if it is missing. A
/// directory that exists is the operator's: gim only warns if others may read it.
pub fn create(dir: &Path) -> Result<(), ServerError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io(format!("creating data_dir {}", dir.display())))?;
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(dir)
        && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0
    {
        tracing::warn!(dir = %dir.display(), "data_dir is open to other users of this machine; chmod 700 it");
    }
    Ok(())
}

/// Creates an empty file readable by its owner alone, or takes an existing one (gim's
/// own, such as its database) back to that. SQLite gives its -wal and -shm files the
/// database file's permissions.
pub fn create_private_file(path: &Path) -> Result<(), ServerError> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(io(format!("creating {}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(io(format!("reading {}", path.display())))?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io(format!("making {} private", path.display())))?;
        }
    }
    drop(file);
    Ok(())
}

/// What `gim serve` holds while it runs: its data directory and its SQLite file (by lock
/// files, released when dropped or when the process ends, however it ends), or its MySQL
/// database (by a named lock).
#[derive(Debug)]
pub struct SingleNodeHold {
    _files: Vec<File>,
    database: Option<SingleNodeLock>,
}

impl SingleNodeHold {
    /// Takes the data directory and the SQLite file, wherever the file lives (another
    /// `gim serve` may name it through `store.url` from a data directory of its own);
    /// fails at once, naming the process that holds either.
    pub fn take(config: &Config) -> Result<Self, ServerError> {
        create(&config.data_dir)?;
        let mut files = vec![lock_file(&config.data_dir.join(LOCK_FILE), &config.data_dir, "a data_dir of its own")?];
        if let Some(db) = config.sqlite_path() {
            // By its real path, so that every way of naming the file takes the same lock.
            let mut path = real_path(&db).into_os_string();
            path.push(".lock");
            files.push(lock_file(Path::new(&path), &db, "a database of its own")?);
        }
        Ok(Self { _files: files, database: None })
    }

    /// Lets everything go.
    pub async fn release(self) {
        if let Some(database) = self.database {
            database.release().await;
        }
    }

    /// Holds the MySQL database as well (SQLite's is held already).
    pub async fn take_database(&mut self, store: &SqlStore) -> Result<(), ServerError> {
        self.database = match store.hold_single_node_lock().await {
            Ok(held) => held,
            Err(StoreError::Conflict) => return Err(ServerError::DatabaseInUse),
            Err(err) => return Err(err.into()),
        };
        Ok(())
    }
}

/// `path` with its links and `..` resolved, the file itself perhaps not made yet.
fn real_path(path: &Path) -> std::path::PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    match (path.parent().map(Path::canonicalize), path.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// Locks `path` (creating it 0600), writing this process's id into it; refuses if another
/// process holds it, naming `what` and that process.
fn lock_file(path: &Path, what: &Path, what_else: &'static str) -> Result<File, ServerError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(ServerError::InUse {
                what: what.display().to_string(),
                holder: holder.trim().to_owned(),
                what_else,
            });
        }
        Err(std::fs::TryLockError::Error(err)) => return Err(io(format!("locking {}", path.display()))(err)),
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()))
        .and_then(|()| file.flush());
    written.map_err(io(format!("writing {}", path.display())))?;
    Ok(file)
}
