//! Reading and writing IDX files (the MNIST file format), raw or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number `00 00 <type> <ndims>`, then `ndims` big-endian `u32`
//! sizes, then the payload. Only unsigned-byte data (`type = 0x08`) is supported: image files
//! have 3 dimensions (count, rows, cols, magic 2051) and label files 1 (count, magic 2049).
//!
//! Compression is detected from the content (gzip starts with `1f 8b`), whatever the file name.
//! Every header is checked against what the file can really hold before anything is allocated,
//! and any malformed input gives a [`DataError`] naming the file; the reader never panics.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use flate2::bufread::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::error::DataError;

/// Magic number of an IDX image file: unsigned bytes, 3 dimensions.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX label file: unsigned bytes, 1 dimension.
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// The largest payload the reader accepts (4 GiB); larger headers are rejected unread.
pub const MAX_PAYLOAD_BYTES: u64 = 1 << 32;

/// Deflate cannot expand data by more than about 1032:1, which bounds what a gzip file can hold.
const MAX_DEFLATE_RATIO: u64 = 1032;
/// Memory reserved up front for a gzip payload; beyond this the buffer grows only as data
/// actually arrives, so a lying header cannot make the reader allocate memory for nothing.
const MAX_INITIAL_RESERVE: u64 = 256 << 20;
/// How much trailing decompressed data is counted before giving up counting.
const MAX_TRAILING_COUNT: u64 = 16 << 20;

/// A set of equally sized 8-bit grayscale images, stored contiguously.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows (height) of each image.
    pub rows: usize,
    /// Columns (width) of each image.
    pub cols: usize,
    /// All pixels, row-major, image after image: image `i` is
    /// `pixels[i * rows * cols..(i + 1) * rows * cols]`.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Number of pixels in one image (`rows * cols`).
    pub fn image_size(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `i`.
    ///
    /// # Panics
    /// If `i >= count` (like slice indexing); see [`IdxImages::get`] for a checked version.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_size();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The pixels of image `i`, or `None` if there is no such image.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let n = self.image_size();
        let start = i.checked_mul(n)?;
        self.pixels.get(start..start.checked_add(n)?)
    }

    /// Asks the processor to start loading image `i` into its cache, without waiting for it (a
    /// hint; nothing if there is no such image or no such instruction). A batch reads images
    /// scattered over tens of megabytes: read one after another, each of an image's cache lines
    /// is a miss the reader waits for, one at a time. Asked for a few images ahead, they arrive
    /// while the reader works (the batcher: docs/performance.md, "Runs of 2026-12-03,
    /// 07:07-08:02 UTC").
    pub fn prefetch(&self, i: usize) {
        if let Some(image) = self.get(i) {
            prefetch_lines(image);
        }
    }
}

/// Reads an IDX image file (magic 2051), raw or gzip-compressed.
pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    let (dims, pixels) = read_idx(path, Kind::Images)?;
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Reads an IDX label file (magic 2049), raw or gzip-compressed.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    read_idx(path, Kind::Labels).map(|(_, labels)| labels)
}

/// Writes `images` as an IDX image file (gzip-compressed if `gzip`), atomically.
pub fn write_images(path: &Path, images: &IdxImages, gzip: bool) -> Result<(), DataError> {
    let expected = images
        .count
        .checked_mul(images.rows)
        .and_then(|n| n.checked_mul(images.cols));
    if expected != Some(images.pixels.len()) {
        return Err(DataError::InvalidInput {
            path: path.to_path_buf(),
            detail: format!(
                "{} images of {}x{} need {} pixels, but {} were given",
                images.count,
                images.rows,
                images.cols,
                expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                images.pixels.len()
            ),
        });
    }
    let dims = [
        dim_u32(path, images.count)?,
        dim_u32(path, images.rows)?,
        dim_u32(path, images.cols)?,
    ];
    write_idx(path, IMAGES_MAGIC, &dims, &images.pixels, gzip)
}

/// Writes `labels` as an IDX label file (gzip-compressed if `gzip`), atomically.
pub fn write_labels(path: &Path, labels: &[u8], gzip: bool) -> Result<(), DataError> {
    let dims = [dim_u32(path, labels.len())?];
    write_idx(path, LABELS_MAGIC, &dims, labels, gzip)
}

fn dim_u32(path: &Path, n: usize) -> Result<u32, DataError> {
    u32::try_from(n).map_err(|_| DataError::InvalidInput {
        path: path.to_path_buf(),
        detail: format!(
            "size {n} does not fit in an IDX header (at most {})",
            u32::MAX
        ),
    })
}

fn write_idx(
    path: &Path,
    magic: u32,
    dims: &[u32],
    payload: &[u8],
    gzip: bool,
) -> Result<(), DataError> {
    let body = |w: &mut dyn Write| -> io::Result<()> {
        w.write_all(&magic.to_be_bytes())?;
        for d in dims {
            w.write_all(&d.to_be_bytes())?;
        }
        w.write_all(payload)
    };
    lenet_io::write_atomic_with(path, |w| {
        if gzip {
            let mut enc = GzEncoder::new(w, Compression::default());
            body(&mut enc)?;
            enc.finish().map(|_| ())
        } else {
            body(w)
        }
    })
    .map_err(DataError::from)
}

/// What kind of IDX file a reader expects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn magic(self) -> u32 {
        match self {
            Kind::Images => IMAGES_MAGIC,
            Kind::Labels => LABELS_MAGIC,
        }
    }

    fn ndims(self) -> u8 {
        match self {
            Kind::Images => 3,
            Kind::Labels => 1,
        }
    }

    fn dims_meaning(self) -> &'static str {
        match self {
            Kind::Images => "count, rows, cols",
            Kind::Labels => "count",
        }
    }

    fn other(self) -> Kind {
        match self {
            Kind::Images => Kind::Labels,
            Kind::Labels => Kind::Images,
        }
    }

    fn file_noun(self) -> &'static str {
        match self {
            Kind::Images => "an IDX image file",
            Kind::Labels => "an IDX label file",
        }
    }

    /// "60000 images of 28x28 (47040000 bytes)" and the like.
    fn describe(self, dims: &[usize], bytes: u64) -> String {
        match self {
            Kind::Images => format!(
                "{} images of {}x{} ({bytes} bytes)",
                dims[0], dims[1], dims[2]
            ),
            Kind::Labels => format!("{} labels ({bytes} bytes)", dims[0]),
        }
    }

    fn item_noun(self) -> &'static str {
        match self {
            Kind::Images => "images",
            Kind::Labels => "labels",
        }
    }
}

/// Opens `path`, sniffs for gzip, and reads a whole IDX file of the given kind.
fn read_idx(path: &Path, kind: Kind) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let read_err = |source| DataError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            DataError::NotFound {
                path: path.to_path_buf(),
                hint: String::new(),
            }
        } else {
            read_err(source)
        }
    })?;
    let file_len = file.metadata().map_err(read_err)?.len();
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let head = reader.fill_buf().map_err(read_err)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        read_gzip(path, kind, reader, file_len)
    } else {
        read_raw(path, kind, reader, file_len)
    }
}

fn read_raw(
    path: &Path,
    kind: Kind,
    mut reader: BufReader<File>,
    file_len: u64,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let read_err = |source| DataError::Read {
        path: path.to_path_buf(),
        source,
    };
    let dims = read_header(path, kind, &mut reader, false, read_err)?;
    let claimed = payload_size(path, kind, &dims)?;
    let header_len = 4 + 4 * dims.len() as u64;
    let available = file_len.saturating_sub(header_len);
    let desc = kind.describe(&dims, claimed);
    if claimed > available {
        return Err(truncated(path, kind, &dims, &desc, available, "file"));
    }
    if claimed < available {
        return Err(DataError::TrailingData {
            path: path.to_path_buf(),
            detail: format!(
                "{} bytes after the {desc} that the header describes",
                available - claimed
            ),
        });
    }
    let mut payload = alloc(path, claimed, claimed)?;
    // `alloc` succeeded, so `claimed` fits in usize.
    payload.resize(claimed as usize, 0);
    reader.read_exact(&mut payload).map_err(|source| {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            DataError::Truncated {
                path: path.to_path_buf(),
                detail: format!("the file got shorter while being read ({desc} expected)"),
            }
        } else {
            read_err(source)
        }
    })?;
    Ok((dims, payload))
}

fn read_gzip(
    path: &Path,
    kind: Kind,
    reader: BufReader<File>,
    file_len: u64,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let gz_err = |source: io::Error| match source.kind() {
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
            DataError::CorruptGzip {
                path: path.to_path_buf(),
                source,
            }
        }
        _ => DataError::Read {
            path: path.to_path_buf(),
            source,
        },
    };
    let mut dec = GzDecoder::new(reader);
    let dims = read_header(path, kind, &mut dec, true, gz_err)?;
    let claimed = payload_size(path, kind, &dims)?;
    let desc = kind.describe(&dims, claimed);
    let bound = file_len
        .saturating_mul(MAX_DEFLATE_RATIO)
        .saturating_add(1024);
    if claimed > bound {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            detail: format!(
                "the header claims {desc}, but a gzip file of {file_len} bytes cannot expand \
                 to more than about {bound} bytes"
            ),
        });
    }
    let mut payload = alloc(path, claimed, claimed.min(MAX_INITIAL_RESERVE))?;
    (&mut dec)
        .take(claimed)
        .read_to_end(&mut payload)
        .map_err(gz_err)?;
    let got = payload.len() as u64;
    if got < claimed {
        return Err(truncated(
            path,
            kind,
            &dims,
            &desc,
            got,
            "decompressed data",
        ));
    }

    // Anything left in the decompressed stream is garbage; draining it also makes the decoder
    // check the gzip CRC and length trailer.
    let mut extra = 0u64;
    let mut probe = [0u8; 8192];
    while extra <= MAX_TRAILING_COUNT {
        match dec.read(&mut probe) {
            Ok(0) => break,
            Ok(n) => extra += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(gz_err(e)),
        }
    }
    if extra > 0 {
        let amount = if extra > MAX_TRAILING_COUNT {
            format!("more than {MAX_TRAILING_COUNT}")
        } else {
            extra.to_string()
        };
        return Err(DataError::TrailingData {
            path: path.to_path_buf(),
            detail: format!(
                "{amount} bytes of decompressed data after the {desc} that the header describes"
            ),
        });
    }

    // Bytes after the end of the gzip member itself.
    let mut rest = dec.into_inner();
    let second_member = rest
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    let after = io::copy(&mut rest, &mut io::sink()).map_err(|source| DataError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if after > 0 {
        let note = if second_member {
            " (a second gzip member, which is not supported)"
        } else {
            ""
        };
        return Err(DataError::TrailingData {
            path: path.to_path_buf(),
            detail: format!("{after} bytes after the end of the gzip stream{note}"),
        });
    }
    Ok((dims, payload))
}

/// Reserves memory for a payload, turning an allocation failure into an error.
fn alloc(path: &Path, claimed: u64, reserve: u64) -> Result<Vec<u8>, DataError> {
    let too_large = || DataError::TooLarge {
        path: path.to_path_buf(),
        detail: format!("cannot allocate {claimed} bytes"),
    };
    let reserve = usize::try_from(reserve).map_err(|_| too_large())?;
    let mut v = Vec::new();
    v.try_reserve_exact(reserve).map_err(|_| too_large())?;
    Ok(v)
}

fn truncated(
    path: &Path,
    kind: Kind,
    dims: &[usize],
    desc: &str,
    available: u64,
    what: &str,
) -> DataError {
    let item = match kind {
        Kind::Images => (dims[1] as u64).saturating_mul(dims[2] as u64).max(1),
        Kind::Labels => 1,
    };
    DataError::Truncated {
        path: path.to_path_buf(),
        detail: format!(
            "the header says {desc}, but the {what} holds only {available} bytes \
             ({} complete {})",
            available / item,
            kind.item_noun()
        ),
    }
}

/// Reads as many bytes as fit in `buf` (fewer only at end of stream).
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads and checks the magic number and the dimension sizes.
fn read_header(
    path: &Path,
    kind: Kind,
    r: &mut impl Read,
    gzip: bool,
    stream_err: impl Fn(io::Error) -> DataError,
) -> Result<Vec<usize>, DataError> {
    let mut magic = [0u8; 4];
    let n = read_up_to(r, &mut magic).map_err(&stream_err)?;
    if n < 4 {
        let holder = if gzip { "decompressed data" } else { "file" };
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail: format!("the {holder} is only {n} bytes long, too short for an IDX header"),
        });
    }
    check_magic(path, kind, magic, gzip)?;
    let ndims = usize::from(kind.ndims());
    let mut raw = [0u8; 12];
    let n = read_up_to(r, &mut raw[..4 * ndims]).map_err(&stream_err)?;
    if n < 4 * ndims {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "the IDX header needs {} bytes of sizes ({}), only {n} are there",
                4 * ndims,
                kind.dims_meaning()
            ),
        });
    }
    raw[..4 * ndims]
        .chunks_exact(4)
        .map(|c| {
            let d = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            usize::try_from(d).map_err(|_| DataError::TooLarge {
                path: path.to_path_buf(),
                detail: format!("size {d} does not fit in memory on this machine"),
            })
        })
        .collect()
}

fn check_magic(path: &Path, kind: Kind, magic: [u8; 4], gzip: bool) -> Result<(), DataError> {
    let found = u32::from_be_bytes(magic);
    if found == kind.magic() {
        return Ok(());
    }
    let bad_magic = |hint: String| DataError::BadMagic {
        path: path.to_path_buf(),
        found: format!(
            "{:02x} {:02x} {:02x} {:02x}",
            magic[0], magic[1], magic[2], magic[3]
        ),
        expected: format!("0x{:08x} ({})", kind.magic(), kind.magic()),
        hint,
    };
    if magic[0] == 0 && magic[1] == 0 {
        if magic[2] == 0x08 {
            if magic[3] == kind.other().ndims() {
                return Err(bad_magic(format!(
                    "; this is {}, not {}",
                    kind.other().file_noun(),
                    kind.file_noun()
                )));
            }
            return Err(DataError::BadDimensions {
                path: path.to_path_buf(),
                detail: format!(
                    "expected {} dimension(s) ({}), the header says {}",
                    kind.ndims(),
                    kind.dims_meaning(),
                    magic[3]
                ),
            });
        }
        let type_name = match magic[2] {
            0x09 => Some("signed byte"),
            0x0b => Some("16-bit integer"),
            0x0c => Some("32-bit integer"),
            0x0d => Some("32-bit float"),
            0x0e => Some("64-bit float"),
            _ => None,
        };
        if let Some(t) = type_name {
            return Err(bad_magic(format!(
                "; IDX data type 0x{:02x} ({t}) is not supported, only unsigned bytes (0x08)",
                magic[2]
            )));
        }
    }
    let name_is_gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let hint = if gzip && magic.starts_with(&[0x1f, 0x8b]) {
        "; the content is gzip-compressed twice".to_string()
    } else if !gzip && name_is_gz {
        "; the name ends in .gz but the file is not gzip-compressed, and not IDX either".to_string()
    } else if magic[0] == b'<' {
        "; it looks like an HTML or XML page (an error page saved by a failed download?)"
            .to_string()
    } else if gzip {
        "; the file is gzip-compressed, but what it holds is not IDX".to_string()
    } else {
        String::new()
    };
    Err(bad_magic(hint))
}

/// Total payload bytes that `dims` describe, rejecting overflow and absurd sizes.
fn payload_size(path: &Path, kind: Kind, dims: &[usize]) -> Result<u64, DataError> {
    if kind == Kind::Images && (dims[1] == 0 || dims[2] == 0) {
        return Err(DataError::BadDimensions {
            path: path.to_path_buf(),
            detail: format!("the image size {}x{} is empty", dims[1], dims[2]),
        });
    }
    let total = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    let shown = dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" x ");
    match total {
        Some(t) if t <= MAX_PAYLOAD_BYTES => Ok(t),
        Some(t) => Err(DataError::TooLarge {
            path: path.to_path_buf(),
            detail: format!("{shown} = {t} bytes, over the limit of {MAX_PAYLOAD_BYTES} bytes"),
        }),
        None => Err(DataError::TooLarge {
            path: path.to_path_buf(),
            detail: format!("{shown} bytes overflows 64 bits"),
        }),
    }
}

/// The cache-line prefetch hint for every 64 bytes of `bytes`.
#[cfg(target_arch = "x86_64")]
fn prefetch_lines(bytes: &[u8]) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    for line in bytes.chunks(64) {
        // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 processor has; it is a hint that
        // reads nothing the program sees and cannot fault, and `line` is in bounds anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
}

/// No hint where there is no prefetch instruction we use.
#[cfg(not(target_arch = "x86_64"))]
fn prefetch_lines(_bytes: &[u8]) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn sample_images() -> IdxImages {
        let (count, rows, cols) = (3, 4, 5);
        let pixels = (0..count * rows * cols)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        IdxImages {
            count,
            rows,
            cols,
            pixels,
        }
    }

    fn raw_header(magic: u32, dims: &[u32]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Asserts that `err` names the file `name`.
    fn names(err: &DataError, name: &str) {
        let msg = err.to_string();
        assert!(msg.contains(name), "message {msg:?} does not name {name}");
    }

    fn valid_image_bytes() -> Vec<u8> {
        let img = sample_images();
        let mut v = raw_header(IMAGES_MAGIC, &[3, 4, 5]);
        v.extend_from_slice(&img.pixels);
        v
    }

    #[test]
    fn round_trip_raw_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let img = sample_images();
        let labels = vec![0u8, 9, 3];
        for gzip in [false, true] {
            let ip = dir.path().join(format!("img-{gzip}"));
            let lp = dir.path().join(format!("lbl-{gzip}"));
            write_images(&ip, &img, gzip).unwrap();
            write_labels(&lp, &labels, gzip).unwrap();
            let head = std::fs::read(&ip).unwrap();
            assert_eq!(head.starts_with(&[0x1f, 0x8b]), gzip);
            assert_eq!(read_images(&ip).unwrap(), img);
            assert_eq!(read_labels(&lp).unwrap(), labels);
        }
        // Only the two files per mode are left: no temporary files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }

    #[test]
    fn image_accessors() {
        let img = sample_images();
        assert_eq!(img.image_size(), 20);
        assert_eq!(img.image(1), &img.pixels[20..40]);
        assert_eq!(img.get(2), Some(&img.pixels[40..60]));
        assert_eq!(img.get(3), None);
        assert_eq!(img.get(usize::MAX), None);
    }

    #[test]
    fn empty_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty-labels");
        write_labels(&p, &[], true).unwrap();
        assert_eq!(read_labels(&p).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn gzip_is_detected_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let raw_named = put(dir.path(), "train-idx3-ubyte", &gz(&valid_image_bytes()));
        assert_eq!(read_images(&raw_named).unwrap(), sample_images());
        let gz_named = put(dir.path(), "train-idx3-ubyte.gz", &valid_image_bytes());
        assert_eq!(read_images(&gz_named).unwrap(), sample_images());
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope-idx1-ubyte");
        let err = read_labels(&p).unwrap_err();
        assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
        names(&err, "nope-idx1-ubyte");
    }

    #[test]
    fn unreadable_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a-directory");
        std::fs::create_dir(&p).unwrap();
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::Read { .. }), "{err:?}");
        names(&err, "a-directory");
    }

    #[test]
    fn bad_magic() {
        let dir = tempfile::tempdir().unwrap();
        let p = put(dir.path(), "junk.bin", b"hello world, not idx at all");
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
        names(&err, "junk.bin");
        assert!(err.to_string().contains("68 65 6c 6c"), "{err}");
    }

    #[test]
    fn bad_magic_hints() {
        let dir = tempfile::tempdir().unwrap();
        let html = put(dir.path(), "page", b"<!DOCTYPE html><html>404</html>");
        let err = read_images(&html).unwrap_err();
        assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
        assert!(err.to_string().contains("HTML"), "{err}");

        let not_gz = put(dir.path(), "fake.gz", b"this is plain text, honest");
        let err = read_labels(&not_gz).unwrap_err();
        assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
        names(&err, "fake.gz");
        assert!(err.to_string().contains("not gzip-compressed"), "{err}");

        let twice = put(dir.path(), "twice.gz", &gz(&gz(&valid_image_bytes())));
        let err = read_images(&twice).unwrap_err();
        assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
        names(&err, "twice.gz");
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn labels_and_images_swapped() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("labels-idx1-ubyte.gz");
        write_labels(&labels, &[1, 2, 3], true).unwrap();
        let err = read_images(&labels).unwrap_err();
        assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
        names(&err, "labels-idx1-ubyte.gz");
        assert!(err.to_string().contains("label file"), "{err}");

        let images = put(dir.path(), "images-idx3-ubyte", &valid_image_bytes());
        let err = read_labels(&images).unwrap_err();
        assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
        assert!(err.to_string().contains("image file"), "{err}");
    }

    #[test]
    fn unsupported_data_type() {
        let dir = tempfile::tempdir().unwrap();
        let p = put(dir.path(), "floats", &raw_header(0x0000_0d03, &[1, 1, 1]));
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
        names(&err, "floats");
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn wrong_dimension_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = put(dir.path(), "two-dims", &raw_header(0x0000_0802, &[2, 784]));
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::BadDimensions { .. }), "{err:?}");
        names(&err, "two-dims");
        let p = put(
            dir.path(),
            "gz-four-dims",
            &gz(&raw_header(0x0000_0804, &[1; 4])),
        );
        let err = read_labels(&p).unwrap_err();
        assert!(matches!(err, DataError::BadDimensions { .. }), "{err:?}");
        names(&err, "gz-four-dims");
    }

    #[test]
    fn empty_image_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = put(
            dir.path(),
            "zero-rows",
            &raw_header(IMAGES_MAGIC, &[5, 0, 28]),
        );
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::BadDimensions { .. }), "{err:?}");
        names(&err, "zero-rows");
    }

    #[test]
    fn truncated_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = put(dir.path(), "tiny", &[0, 0]);
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        names(&err, "tiny");
        let p = put(
            dir.path(),
            "half-header.gz",
            &gz(&raw_header(IMAGES_MAGIC, &[3, 4])),
        );
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        names(&err, "half-header.gz");
    }

    #[test]
    fn truncated_payload() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = valid_image_bytes();
        bytes.truncate(bytes.len() - 25); // one and a bit images short
        let p = put(dir.path(), "short-idx3-ubyte", &bytes);
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        names(&err, "short-idx3-ubyte");
        let msg = err.to_string();
        assert!(
            msg.contains("3 images of 4x5") && msg.contains("1 complete images"),
            "{msg}"
        );

        let p = put(dir.path(), "short-idx3-ubyte.gz", &gz(&bytes));
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        names(&err, "short-idx3-ubyte.gz");

        let mut labels = raw_header(LABELS_MAGIC, &[10]);
        labels.extend_from_slice(&[1; 9]);
        let p = put(dir.path(), "short-labels", &labels);
        let err = read_labels(&p).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        names(&err, "short-labels");
    }

    #[test]
    fn trailing_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = valid_image_bytes();
        bytes.extend_from_slice(b"xyz");
        let p = put(dir.path(), "long-idx3-ubyte", &bytes);
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::TrailingData { .. }), "{err:?}");
        names(&err, "long-idx3-ubyte");
        assert!(err.to_string().contains("3 bytes"), "{err}");

        let p = put(dir.path(), "long-idx3-ubyte.gz", &gz(&bytes));
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::TrailingData { .. }), "{err:?}");
        names(&err, "long-idx3-ubyte.gz");

        // Garbage after the end of the gzip stream itself.
        let mut after = gz(&valid_image_bytes());
        after.extend_from_slice(b"JUNK!");
        let p = put(dir.path(), "after-gzip.gz", &after);
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::TrailingData { .. }), "{err:?}");
        names(&err, "after-gzip.gz");
        assert!(
            err.to_string()
                .contains("5 bytes after the end of the gzip"),
            "{err}"
        );
    }

    #[test]
    fn absurd_sizes_are_rejected_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let p = put(
            dir.path(),
            "overflow",
            &raw_header(IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX]),
        );
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::TooLarge { .. }), "{err:?}");
        names(&err, "overflow");

        let p = put(
            dir.path(),
            "huge",
            &raw_header(IMAGES_MAGIC, &[u32::MAX, 28, 28]),
        );
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::TooLarge { .. }), "{err:?}");

        // A small gzip file whose header claims ~3 GB: impossible for deflate.
        let p = put(
            dir.path(),
            "liar.gz",
            &gz(&raw_header(IMAGES_MAGIC, &[4_000_000, 28, 28])),
        );
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::TooLarge { .. }), "{err:?}");
        names(&err, "liar.gz");

        let p = put(
            dir.path(),
            "liar-labels",
            &raw_header(LABELS_MAGIC, &[u32::MAX]),
        );
        let err = read_labels(&p).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
    }

    #[test]
    fn corrupt_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = gz(&valid_image_bytes());
        let n = bytes.len();
        bytes[n - 6] ^= 0xff; // damage the CRC/length trailer
        let p = put(dir.path(), "bad-crc.gz", &bytes);
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::CorruptGzip { .. }), "{err:?}");
        names(&err, "bad-crc.gz");

        let whole = gz(&valid_image_bytes());
        let p = put(dir.path(), "cut.gz", &whole[..whole.len() / 2]);
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::CorruptGzip { .. }), "{err:?}");
        names(&err, "cut.gz");

        let p = put(
            dir.path(),
            "bad-header.gz",
            &[0x1f, 0x8b, 0x99, 0xff, 1, 2, 3],
        );
        let err = read_labels(&p).unwrap_err();
        assert!(matches!(err, DataError::CorruptGzip { .. }), "{err:?}");
        names(&err, "bad-header.gz");
    }

    #[test]
    fn writer_rejects_inconsistent_images() {
        let dir = tempfile::tempdir().unwrap();
        let mut img = sample_images();
        img.pixels.pop();
        let p = dir.path().join("bad-out");
        let err = write_images(&p, &img, false).unwrap_err();
        assert!(matches!(err, DataError::InvalidInput { .. }), "{err:?}");
        names(&err, "bad-out");
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// Every prefix and many single-byte corruptions of valid files give an error or a correct
    /// result, never a panic.
    #[test]
    fn mangled_files_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let raw = valid_image_bytes();
        let zipped = gz(&raw);
        let p = dir.path().join("mangled");
        for source in [&raw, &zipped] {
            for cut in 0..source.len() {
                std::fs::write(&p, &source[..cut]).unwrap();
                assert!(read_images(&p).is_err(), "prefix {cut} accepted");
                let _ = read_labels(&p);
            }
            for pos in 0..source.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut m = source.clone();
                    m[pos] ^= flip;
                    std::fs::write(&p, &m).unwrap();
                    if let Ok(img) = read_images(&p) {
                        assert_eq!(img.pixels.len(), img.count * img.rows * img.cols);
                    }
                    let _ = read_labels(&p);
                }
            }
        }
    }
}
