//! Writing files atomically: write a temporary file next to the destination, then rename it into
//! place, so a reader never sees a half-written file and a failure leaves nothing behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::DataError;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary file in the directory of `dest`, named `.<name>.part-<pid>-<n>`.
///
/// The parent directory is created if needed. The caller owns the returned path and must remove
/// it or rename it.
pub(crate) fn create_temp_for(dest: &Path) -> Result<(File, PathBuf), DataError> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|source| DataError::Write {
        path: dest.to_path_buf(),
        source,
    })?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.part-{}-{n}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(DataError::Write { path: tmp, source }),
        }
    }
}

/// Flushes `file` to disk and renames `tmp` onto `dest`; removes `tmp` if that fails.
pub(crate) fn commit(file: File, tmp: &Path, dest: &Path) -> Result<(), DataError> {
    let result = file.sync_all().and_then(|()| {
        drop(file);
        fs::rename(tmp, dest)
    });
    result.map_err(|source| {
        let _ = fs::remove_file(tmp);
        DataError::Write {
            path: dest.to_path_buf(),
            source,
        }
    })
}

/// Writes `dest` atomically with the bytes that `fill` produces.
pub(crate) fn write_atomic<F>(dest: &Path, fill: F) -> Result<(), DataError>
where
    F: FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
{
    let (file, tmp) = create_temp_for(dest)?;
    let written = {
        let mut w = BufWriter::new(&file);
        fill(&mut w).and_then(|()| w.flush())
    };
    if let Err(source) = written {
        drop(file);
        let _ = fs::remove_file(&tmp);
        return Err(DataError::Write {
            path: dest.to_path_buf(),
            source,
        });
    }
    commit(file, &tmp, dest)
}
