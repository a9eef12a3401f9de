//! Local-filesystem storage: documents under one directory (mode 0700), files mode 0600, written
//! atomically (staging file → fsync → rename → directory fsync).
//!
//! The directory fsync that makes a rename durable is shared: while one fsync runs, later renames wait
//! for the next one, so concurrent uploads pay for one directory sync between them instead of one each.

use super::{DocumentReader, DocumentStore, StorageError, validate_key};
use async_trait::async_trait;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The local store.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    staging: PathBuf,
    dir_sync: Arc<DirSync>,
}

#[derive(Debug)]
struct DirSync {
    dir: PathBuf,
    /// Renames completed so far.
    renamed: AtomicU64,
    /// Renames known durable (covered by a finished directory fsync).
    synced: tokio::sync::Mutex<u64>,
}

impl DirSync {
    async fn after_rename(&self) -> std::io::Result<()> {
        let mine = self.renamed.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().await;
        if *synced >= mine {
            return Ok(());
        }
        let target = self.renamed.load(Ordering::SeqCst);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
            .await
            .map_err(std::io::Error::other)??;
        *synced = target;
        Ok(())
    }
}

/// Makes a finished staging file durable and private, then renames it to `target` (atomic on one
/// filesystem). The caller still syncs the directory so that the rename itself is durable.
fn sync_and_persist(file: &std::fs::File, staged: tempfile::TempPath, target: &Path) -> Result<(), StorageError> {
    file.sync_all()?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
    staged.persist(target).map_err(|e| StorageError::Io(e.error))?;
    Ok(())
}

impl LocalStore {
    /// Opens (creating if needed) the store at `root` and clears staging files left by a crash.
    pub fn open(root: &Path) -> Result<LocalStore, StorageError> {
        let staging = root.join(".staging");
        std::fs::create_dir_all(&staging)?;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))?;
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700))?;
        let mut cleared = 0;
        for entry in std::fs::read_dir(&staging)? {
            let entry = entry?;
            if entry.file_type()?.is_file() && std::fs::remove_file(entry.path()).is_ok() {
                cleared += 1;
            }
        }
        if cleared > 0 {
            tracing::info!(cleared, "removed staging files left by an interrupted upload");
        }
        Ok(LocalStore {
            root: root.to_path_buf(),
            staging,
            dir_sync: Arc::new(DirSync {
                dir: root.to_path_buf(),
                renamed: AtomicU64::new(0),
                synced: tokio::sync::Mutex::new(0),
            }),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

#[async_trait]
impl DocumentStore for LocalStore {
    fn id(&self) -> &'static str {
        faxbot_contract::plugins::LOCAL_STORAGE
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    async fn put_file(&self, key: &str, staged: tempfile::TempPath) -> Result<(), StorageError> {
        let target = self.path(key)?;
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            let file = std::fs::OpenOptions::new().write(true).open(&staged)?;
            sync_and_persist(&file, staged, &target)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.dir_sync.after_rename().await?;
        Ok(())
    }

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let target = self.path(key)?;
        let staging = self.staging.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            let mut staged = tempfile::NamedTempFile::new_in(staging)?;
            std::io::Write::write_all(&mut staged, &bytes)?;
            let (file, path) = staged.into_parts();
            sync_and_persist(&file, path, &target)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.dir_sync.after_rename().await?;
        Ok(())
    }

    async fn open(&self, key: &str) -> Result<DocumentReader, StorageError> {
        match tokio::fs::File::open(self.path(key)?).await {
            Ok(f) => Ok(Box::pin(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn list_older_than(&self, age: std::time::Duration) -> Result<Vec<String>, StorageError> {
        let root = self.root.clone();
        let keys = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
            let cutoff = std::time::SystemTime::now().checked_sub(age).unwrap_or(std::time::UNIX_EPOCH);
            let mut keys = Vec::new();
            for entry in std::fs::read_dir(&root)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if meta.is_file() && validate_key(&name).is_ok() && meta.modified()? < cutoff {
                    keys.push(name);
                }
            }
            Ok(keys)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(keys)
    }

    async fn check(&self) -> Result<(), StorageError> {
        let staging = self.staging.clone();
        tokio::task::spawn_blocking(move || tempfile::NamedTempFile::new_in(staging).map(|_| ()))
            .await
            .map_err(std::io::Error::other)??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn put_is_atomic_private_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(&dir.path().join("docs")).unwrap();
        let mut staged = tempfile::NamedTempFile::new_in(store.staging_dir()).unwrap();
        staged.write_all(b"%PDF-1.4 test").unwrap();
        store.put_file("abc.pdf", staged.into_temp_path()).await.unwrap();
        let path = dir.path().join("docs/abc.pdf");
        assert_eq!(std::fs::read(&path).unwrap(), b"%PDF-1.4 test");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.path().join("docs")).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::read_dir(store.staging_dir()).unwrap().count(), 0);
        store.delete("abc.pdf").await.unwrap();
        store.delete("abc.pdf").await.unwrap();
        assert!(matches!(store.open("abc.pdf").await, Err(StorageError::NotFound)));
        assert!(matches!(store.open("../x").await, Err(StorageError::InvalidKey)));
    }

    #[test]
    fn leftover_staging_files_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".staging")).unwrap();
        std::fs::write(dir.path().join(".staging/tmp123"), b"partial").unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(store.staging_dir()).unwrap().count(), 0);
    }
}
