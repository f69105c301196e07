//! Files that appear under their final name only when complete.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// A file written under `<path>.tmp` and moved to `path` by [`AtomicFile::commit`];
/// dropped uncommitted, the temporary file is removed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl AtomicFile {
    pub fn create(path: &Path) -> anyhow::Result<(Self, File)> {
        Self::create_with_suffix(path, ".tmp")
    }

    /// Like [`AtomicFile::create`], with another temporary suffix (when two temporary
    /// versions of one file exist at once).
    pub fn create_with_suffix(path: &Path, suffix: &str) -> anyhow::Result<(Self, File)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(suffix);
        let tmp = PathBuf::from(tmp);
        let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok((
            AtomicFile {
                path: path.to_owned(),
                tmp,
                committed: false,
            },
            file,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the file is while it is written.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the complete file to its final name.
    pub fn commit(mut self) -> anyhow::Result<()> {
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("cannot rename {} to {}", self.tmp.display(), self.path.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` through a temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let (file, mut handle) = AtomicFile::create(path)?;
    handle
        .write_all(bytes)
        .and_then(|()| handle.sync_all())
        .with_context(|| format!("cannot write {}", file.tmp_path().display()))?;
    file.commit()
}
