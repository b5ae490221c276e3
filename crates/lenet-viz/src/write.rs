//! Atomic file writes and PNG encoding.
//!
//! A picture is first written to a temporary file next to its destination (named
//! `.<file name>.tmp-<pid>-<n>`), flushed to disk, then renamed over the destination. A reader
//! therefore sees either the old file or the complete new one, never a half-written picture,
//! and an interrupted run leaves at most a hidden temporary file behind.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::RgbImage;

use crate::VizError;

/// Encodes `image` as PNG (best compression, adaptive filtering) and returns the file bytes.
///
/// The encoding is deterministic: the same picture always gives the same bytes.
pub fn png_bytes(image: &RgbImage) -> Result<Vec<u8>, VizError> {
    let mut bytes = Vec::new();
    let encoder =
        PngEncoder::new_with_quality(&mut bytes, CompressionType::Best, FilterType::Adaptive);
    image.write_with_encoder(encoder)?;
    Ok(bytes)
}

/// Encodes `image` as PNG and writes it atomically to `path` (see [`write_atomic`]).
pub fn write_png(image: &RgbImage, path: &Path) -> Result<(), VizError> {
    write_atomic(path, &png_bytes(image)?)
}

/// Writes `bytes` to `path` atomically: to a temporary file in the same directory, then renamed.
///
/// Refuses with [`VizError::MissingDirectory`] when the parent directory does not exist (it is
/// not created). IO failures are reported as [`VizError::Io`] naming `path`; the temporary file
/// is removed on failure and, being renamed, never left behind on success.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), VizError> {
    let file_name = path
        .file_name()
        .ok_or_else(|| VizError::invalid(format!("{} is not a file path", path.display())))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(VizError::MissingDirectory {
            path: path.to_path_buf(),
            dir,
        });
    }
    let tmp = dir.join(temp_name(file_name));
    let io_error = |source| VizError::Io {
        path: path.to_path_buf(),
        source,
    };
    let written = write_and_sync(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(source) = written {
        // Best effort: the original error is the one worth reporting.
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(source));
    }
    Ok(())
}

/// `.<name>.tmp-<pid>-<n>`: unique per process and per call, hidden from plain listings.
fn temp_name(file_name: &std::ffi::OsStr) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        ".{}.tmp-{}-{n}",
        file_name.to_string_lossy(),
        std::process::id()
    )
}

fn write_and_sync(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_refuses_missing_parent_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("curves.png");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(matches!(err, VizError::MissingDirectory { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
        assert!(!path.exists());
    }

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["out.bin".to_string()]);
    }

    #[test]
    fn write_atomic_reports_io_errors_with_the_destination_path() {
        let dir = tempfile::tempdir().unwrap();
        // The destination is an existing directory: the rename fails.
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("keep"), b"x").unwrap();
        let err = write_atomic(&path, b"data").unwrap_err();
        assert!(matches!(err, VizError::Io { .. }), "{err:?}");
        assert!(err
            .to_string()
            .starts_with(&format!("cannot write {}:", path.display())));
        // The temporary file was cleaned up.
        let count = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(count, 1);
    }

    #[test]
    fn png_bytes_is_deterministic_and_decodes() {
        let image = RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 9]));
        let a = png_bytes(&image).unwrap();
        let b = png_bytes(&image).unwrap();
        assert_eq!(a, b);
        let decoded = image::load_from_memory(&a).unwrap().to_rgb8();
        assert_eq!(decoded, image);
    }
}
