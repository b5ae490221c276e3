//! # lenet-io
//!
//! The one way the lenet workspace writes files, and its one PNG encoder.
//!
//! Every file is written **atomically**: the bytes go to a temporary file created exclusively in
//! the destination's directory (named `.<file name>.<random>.tmp`), which is flushed to disk and
//! then renamed over the destination; the directory is synced too, so the rename itself survives
//! a crash. A reader therefore sees either the old file or the complete new one, never half a
//! file, and a failure (a full disk, an encoding error, a dropped connection) leaves the old file
//! as it was and no temporary file behind.
//!
//! **One rule for directories**: missing parent directories of the destination are created (like
//! `mkdir -p`); a parent that cannot be created (a file in the way, no permission) is an error
//! naming the file that was to be written.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("reports/summary.json");
//! lenet_io::write_atomic(&path, b"{}\n")?;
//! assert_eq!(std::fs::read(&path)?, b"{}\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageBuffer, PixelWithColorType};
use tempfile::NamedTempFile;

/// A file could not be written; `path` is the destination (never the temporary file).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    /// The file that was to be written.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

impl WriteError {
    fn new(path: &Path, source: io::Error) -> Self {
        WriteError {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A file being written atomically: write into it, then [`commit`](AtomicFile::commit). Dropped
/// without a commit, it removes its temporary file and leaves the destination untouched.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: NamedTempFile,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts writing `dest`: creates its missing parent directories and an exclusive temporary
    /// file beside it.
    pub fn create(dest: &Path) -> Result<AtomicFile, WriteError> {
        let name = dest.file_name().ok_or_else(|| {
            WriteError::new(
                dest,
                io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
            )
        })?;
        let dir = parent(dest);
        fs::create_dir_all(&dir).map_err(|e| WriteError::new(dest, e))?;
        let prefix = format!(".{}.", name.to_string_lossy());
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        // A temporary file is private (0600) by default; the file it becomes is an ordinary one,
        // readable as the user's umask allows, like one made by `File::create`.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder
            .tempfile_in(&dir)
            .map_err(|e| WriteError::new(dest, e))?;
        Ok(AtomicFile {
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// Flushes the file to disk, renames it over the destination and syncs the directory.
    pub fn commit(mut self) -> Result<(), WriteError> {
        let dest = self.dest;
        self.tmp.flush().map_err(|e| WriteError::new(&dest, e))?;
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| WriteError::new(&dest, e))?;
        self.tmp
            .persist(&dest)
            .map_err(|e| WriteError::new(&dest, e.error))?;
        sync_dir(&parent(&dest));
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// The directory of `path` (`.` for a bare file name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes a rename in `dir` durable. Best effort: some file systems refuse to sync a directory,
/// and the file itself is already on disk.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Removes the temporary files that writes of `dest` left when their process was killed
/// (`.<file name>.<random>.tmp` beside it): they never hold a complete file. Best effort.
pub fn remove_stale_temporaries(dest: &Path) {
    let (Some(name), Ok(entries)) = (dest.file_name(), fs::read_dir(parent(dest))) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    for e in entries.flatten() {
        let found = e.file_name().to_string_lossy().into_owned();
        if found.starts_with(&prefix) && found.ends_with(".tmp") {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Writes `bytes` to `path` atomically (see the crate documentation).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Writes `path` atomically with what `fill` writes into a buffered writer; an error from `fill`
/// leaves nothing behind and is reported with `path`.
pub fn write_atomic_with<F>(path: &Path, fill: F) -> Result<(), WriteError>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let mut file = AtomicFile::create(path)?;
    {
        let mut w = BufWriter::new(&mut file);
        fill(&mut w)
            .and_then(|()| w.flush())
            .map_err(|e| WriteError::new(path, e))?;
    }
    file.commit()
}

/// Encodes `image` (grey-scale or colour) as PNG: the encoder's default compression, adaptive
/// filtering. The encoding is deterministic: the same picture always gives the same bytes.
/// `lenet train` redraws its curves after every epoch, on a thread beside the training's: the
/// best compression took 76 ms for their 960×720 picture (47.7 KB), the default 7.5 ms (51.9 KB;
/// measured 2026-12-01 on the 2-core machine).
pub fn png_bytes<P>(image: &ImageBuffer<P, Vec<P::Subpixel>>) -> Result<Vec<u8>, image::ImageError>
where
    P: PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
{
    let mut bytes = Vec::new();
    let encoder =
        PngEncoder::new_with_quality(&mut bytes, CompressionType::Default, FilterType::Adaptive);
    image.write_with_encoder(encoder)?;
    Ok(bytes)
}

/// Encodes `image` as PNG ([`png_bytes`]) and writes it atomically to `path`.
pub fn write_png<P>(path: &Path, image: &ImageBuffer<P, Vec<P::Subpixel>>) -> Result<(), WriteError>
where
    P: PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
{
    let bytes = png_bytes(image).map_err(|e| WriteError::new(path, io::Error::other(e)))?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(names(dir.path()), ["out.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_as_readable_as_one_from_file_create() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours");
        let plain = dir.path().join("plain");
        write_atomic(&ours, b"x").unwrap();
        fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ours), mode(&plain));
    }

    #[test]
    fn creates_missing_parent_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.txt");
        write_atomic(&path, b"x").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"x");
        assert_eq!(names(&dir.path().join("a/b")), ["c.txt"]);
    }

    #[test]
    fn a_parent_that_cannot_be_made_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("plain"), b"a file, not a directory").unwrap();
        let path = dir.path().join("plain/x.png");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot write {}:", path.display())),
            "{err}"
        );
        assert_eq!(names(dir.path()), ["plain"]);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("the source broke"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("the source broke"), "{err}");
        assert!(err.to_string().contains("data.bin"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["data.bin"]);
    }

    #[test]
    fn stale_temporaries_of_a_file_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        // What a killed write leaves: the temporary file, never renamed.
        std::mem::forget(AtomicFile::create(&path).unwrap());
        fs::write(dir.path().join(".other.bin.x.tmp"), b"").unwrap();
        fs::write(dir.path().join("data.bin.tmp"), b"").unwrap();
        assert_eq!(names(dir.path()).len(), 3);
        remove_stale_temporaries(&path);
        assert_eq!(names(dir.path()), [".other.bin.x.tmp", "data.bin.tmp"]);
    }

    #[test]
    fn an_uncommitted_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bpk");
        {
            let mut f = AtomicFile::create(&path).unwrap();
            f.write_all(b"partial").unwrap();
            assert_eq!(f.path(), path);
        }
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn the_destination_being_a_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), b"x").unwrap();
        let err = write_atomic(&path, b"data").unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot write {}:", path.display())),
            "{err}"
        );
        assert_eq!(names(dir.path()), ["taken"]);
    }

    #[test]
    fn png_is_deterministic_and_round_trips_grey_and_colour() {
        let dir = tempfile::tempdir().unwrap();
        let rgb =
            image::RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 9]));
        assert_eq!(png_bytes(&rgb).unwrap(), png_bytes(&rgb).unwrap());
        let p = dir.path().join("c.png");
        write_png(&p, &rgb).unwrap();
        assert_eq!(image::open(&p).unwrap().to_rgb8(), rgb);

        let grey = image::GrayImage::from_raw(4, 3, (0..12).map(|i| i * 20).collect()).unwrap();
        let p = dir.path().join("g.png");
        write_png(&p, &grey).unwrap();
        let back = image::open(&p).unwrap();
        assert_eq!(back.color(), image::ColorType::L8);
        assert_eq!(back.into_luma8(), grey);
    }
}
