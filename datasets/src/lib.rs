//! ECG data in and out: WFDB records and annotations, MIT-BIH and PTB-XL adapters.
//!
//! - [`wfdb`]: WFDB headers, streaming signal reading (formats 8, 16, 24, 32, 61,
//!   80, 212, 310) with checksum verification, and a writer (16, 61, 80, 212).
//! - [`annotations`]: MIT-format annotation files, read and write.
//! - [`mitdb`]: MIT-BIH record sets, lead selection by name, beat label maps.
//! - [`ptbxl`]: PTB-XL database table, diagnostic superclasses, 12-lead signals.
//!
//! Nothing here panics on bad input: malformed or truncated files give errors that
//! name the file, record, signal or field at fault. An error that states its cause in its
//! message (`{path}: {error}`) does not also return it from `source()`, so that a chain
//! printed with `{:#}` says it once.

#![warn(missing_docs)]

pub mod annotations;
pub mod csv;
pub mod fetch;
pub mod mitdb;
pub mod ptbxl;
pub mod wfdb;

/// The data directory: `$ECGFLOW_DATA` if set, else `fallback` (callers pass the
/// workspace's `../shared/data`).
pub fn data_dir(fallback: &std::path::Path) -> std::path::PathBuf {
    std::env::var_os("ECGFLOW_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| fallback.to_path_buf())
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::path::{Path, PathBuf};

    /// A temporary directory removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "ecgflow-datasets-{}-{}-{}",
                std::process::id(),
                tag,
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
