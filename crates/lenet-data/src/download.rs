//! Downloading a file from a list of mirrors, verified by SHA-256, written atomically.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use lenet_io::{AtomicFile, WriteError};

use super::error::{DataError, MirrorFailure};

/// Largest response body accepted (1 GiB); a server that sends more is treated as failed.
pub const MAX_DOWNLOAD_BYTES: u64 = 1 << 30;

/// Downloads `dest` from the first of `urls` that serves a file whose SHA-256 is `sha256`.
///
/// The mirrors are tried in order. Each response is streamed to a temporary file in the
/// directory of `dest` (created if needed, like every file lenet writes: `lenet_io`) while being hashed; only a file with the right
/// checksum is renamed onto `dest`. Whatever fails, no partial file is left behind, and the error
/// lists every URL that was tried with the reason it failed (HTTP status, connection error or
/// timeout, checksum mismatch with expected and actual digests).
pub fn download_verified(urls: &[String], dest: &Path, sha256: &str) -> Result<(), DataError> {
    let expected = sha256.trim().to_ascii_lowercase();
    let mut attempts = Vec::new();
    for url in urls {
        match try_mirror(url, dest, &expected) {
            Ok(()) => return Ok(()),
            Err(Attempt::Mirror(reason)) => attempts.push(MirrorFailure {
                url: url.clone(),
                reason,
            }),
            // A local problem (cannot create or rename the file): no mirror will do better.
            Err(Attempt::Local(e)) => return Err(e),
        }
    }
    Err(DataError::Download {
        dest: dest.to_path_buf(),
        attempts,
    })
}

/// The SHA-256 of a file, as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, DataError> {
    let read_err = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            DataError::NotFound {
                path: path.to_path_buf(),
                hint: String::new(),
            }
        } else {
            DataError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path).map_err(read_err)?);
    let mut hasher = Sha256::new();
    io::copy(&mut reader, &mut hasher).map_err(read_err)?;
    Ok(hex(&hasher.finalize()))
}

/// Checks that the file at `path` has the SHA-256 `expected` (hex, any case).
pub fn verify_sha256(path: &Path, expected: &str) -> Result<(), DataError> {
    let actual = sha256_file(path)?;
    let expected = expected.trim().to_ascii_lowercase();
    if actual == expected {
        Ok(())
    } else {
        Err(DataError::ChecksumMismatch {
            path: path.to_path_buf(),
            expected,
            actual,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

enum Attempt {
    /// This mirror failed; try the next one.
    Mirror(String),
    /// Writing locally failed; stop.
    Local(DataError),
}

fn agent_for(url: &str) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_recv_body(Some(Duration::from_secs(30 * 60)))
        .timeout_per_call(Some(Duration::from_secs(60 * 60)))
        // The files are already compressed; ask for them byte for byte. (ureq is built without
        // its `gzip` feature, so even a `Content-Encoding: gzip` reply is passed through as is.)
        .accept_encoding("identity")
        .http_status_as_error(true);
    if is_loopback(url) {
        // A local mirror must never be sent through a proxy from the environment.
        config = config.proxy(None);
    }
    config.build().new_agent()
}

fn is_loopback(url: &str) -> bool {
    match url.parse::<ureq::http::Uri>() {
        Ok(uri) => matches!(
            uri.host(),
            Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
        ),
        Err(_) => false,
    }
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::StatusCode(code) => format!("HTTP status {code}"),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) => format!("connection error: {io}"),
        other => other.to_string(),
    }
}

fn try_mirror(url: &str, dest: &Path, expected: &str) -> Result<(), Attempt> {
    let response = agent_for(url)
        .get(url)
        .call()
        .map_err(|e| Attempt::Mirror(describe(&e)))?;
    let mut body = response
        .into_body()
        .into_with_config()
        .limit(MAX_DOWNLOAD_BYTES)
        .reader();

    // Dropped without a commit (any failure below), the temporary file is removed.
    let mut file = AtomicFile::create(dest).map_err(|e| Attempt::Local(e.into()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    {
        let mut out = BufWriter::new(&mut file);
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Attempt::Mirror(format!(
                        "connection error while receiving the body: {e}"
                    )))
                }
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|source| Attempt::Local(local(dest, source)))?;
        }
        out.flush()
            .map_err(|source| Attempt::Local(local(dest, source)))?;
    }
    let actual = hex(&hasher.finalize());
    if actual != expected {
        return Err(Attempt::Mirror(format!(
            "checksum mismatch: expected sha256 {expected}, got {actual}"
        )));
    }
    file.commit().map_err(|e| Attempt::Local(e.into()))
}

fn local(dest: &Path, source: io::Error) -> DataError {
    WriteError {
        path: dest.to_path_buf(),
        source,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn sha256_of_known_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        fs::write(&p, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&p).unwrap(), abc);
        verify_sha256(&p, &abc.to_ascii_uppercase()).unwrap();
        let err = verify_sha256(&p, &"0".repeat(64)).unwrap_err();
        assert!(matches!(err, DataError::ChecksumMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains("abc"), "{err}");
        let err = sha256_file(&dir.path().join("gone")).unwrap_err();
        assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:8000/x"));
        assert!(is_loopback("http://localhost/x"));
        assert!(!is_loopback("https://example.com/x"));
        assert!(!is_loopback("not a url"));
    }

    #[test]
    fn no_urls_is_an_error_that_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = download_verified(&[], &dir.path().join("f.gz"), "00").unwrap_err();
        assert!(matches!(err, DataError::Download { .. }), "{err:?}");
        assert!(err.to_string().contains("no mirror"), "{err}");
    }

    #[test]
    fn unreachable_mirror_is_reported() {
        // Port 1 on loopback: connection refused, no network needed.
        let dir = tempfile::tempdir().unwrap();
        let url = "http://127.0.0.1:1/f.gz".to_string();
        let err = download_verified(std::slice::from_ref(&url), &dir.path().join("f.gz"), "00")
            .unwrap_err();
        match &err {
            DataError::Download { attempts, .. } => {
                assert_eq!(attempts.len(), 1);
                assert_eq!(attempts[0].url, url);
            }
            other => panic!("wrong error {other:?}"),
        }
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
