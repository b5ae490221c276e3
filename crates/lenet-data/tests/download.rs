//! The downloader against a tiny HTTP/1.1 server on 127.0.0.1 started by each test. Nothing
//! here reaches the internet: every URL points at that server (or at a closed local port).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use lenet_data::{
    download_verified, file_urls, read_labels, sha256_file, DataError, Dataset, DatasetKind,
    FileRole, Split,
};

/// What the server answers to one request.
enum Reply {
    /// 200 with this body.
    Body(Vec<u8>),
    /// 404.
    NotFound,
    /// 200 announcing the whole body, but the connection is closed after this many bytes.
    Cut(Vec<u8>, usize),
    /// 200 with `Content-Encoding: gzip` (a misconfigured mirror serving a `.gz` file).
    Encoded(Vec<u8>),
}

/// A server that handles at most `max_connections` connections, one request each, and stops by
/// itself after that or after 30 s. Returns its base URL and a handle that yields the number of
/// requests served.
fn serve<F>(max_connections: usize, route: F) -> (String, JoinHandle<Vec<String>>)
where
    F: Fn(&str, &str) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let route = Arc::new(route);
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut paths = Vec::new();
        while paths.len() < max_connections && Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => {
                    if let Some(p) = handle_connection(stream, route.as_ref()) {
                        paths.push(p);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
        paths
    });
    (base, handle)
}

fn handle_connection(mut stream: TcpStream, route: &dyn Fn(&str, &str) -> Reply) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split_whitespace().nth(1)?.to_string();
    let head = |status: &str, len: usize| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
        )
    };
    let _ = match route(&path, &text) {
        Reply::Body(body) => stream
            .write_all(head("200 OK", body.len()).as_bytes())
            .and_then(|()| stream.write_all(&body)),
        Reply::NotFound => stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        ),
        Reply::Encoded(body) => stream
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .and_then(|()| stream.write_all(&body)),
        Reply::Cut(body, keep) => stream
            .write_all(head("200 OK", body.len()).as_bytes())
            .and_then(|()| stream.write_all(&body[..keep])),
    };
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Some(path)
}

fn data_root() -> PathBuf {
    lenet_data::testing::real_data_root()
}

/// The real MNIST test files, or `None` (after a notice; a failure when `CI` is set).
fn real_mnist_test_files() -> Option<Vec<(&'static str, Vec<u8>)>> {
    let dir = DatasetKind::Mnist.dir(&data_root());
    let names = [
        DatasetKind::Mnist.file(Split::Test, FileRole::Images).name,
        DatasetKind::Mnist.file(Split::Test, FileRole::Labels).name,
    ];
    let mut out = Vec::new();
    for n in names {
        match std::fs::read(dir.join(n)) {
            Ok(b) => out.push((n, b)),
            Err(e) => {
                lenet_data::testing::unavailable(&format!(
                    "real data missing: {}: {e}",
                    dir.join(n).display()
                ));
                return None;
            }
        }
    }
    Some(out)
}

/// A synthetic payload and its SHA-256 (so the failure tests run without the real data).
fn synthetic() -> (Vec<u8>, String) {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    std::fs::write(&p, &body).unwrap();
    let sha = sha256_file(&p).unwrap();
    (body, sha)
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn attempts(err: &DataError) -> Vec<(String, String)> {
    match err {
        DataError::Download { attempts, .. } => attempts
            .iter()
            .map(|a| (a.url.clone(), a.reason.clone()))
            .collect(),
        other => panic!("expected a download error, got {other:?}"),
    }
}

#[test]
fn downloads_real_mnist_files_and_loads_them() {
    let Some(files) = real_mnist_test_files() else {
        return;
    };
    let served = files.clone();
    let (base, server) = serve(2, move |path, _| {
        served
            .iter()
            .find(|(n, _)| path == format!("/mnist/{n}"))
            .map_or(Reply::NotFound, |(_, b)| Reply::Body(b.clone()))
    });
    let root = tempfile::tempdir().unwrap();
    let kind = DatasetKind::Mnist;
    for role in [FileRole::Images, FileRole::Labels] {
        let f = kind.file(Split::Test, role);
        // Only the local mirror: the official ones must never be reached from a test.
        let urls = file_urls(kind, f, &[format!("{base}/mnist/")]);
        download_verified(&urls[..1], &kind.dir(root.path()).join(f.name), f.sha256).unwrap();
    }
    let ds = Dataset::load(kind, root.path(), Split::Test).unwrap();
    assert_eq!(ds.len(), 10_000);
    assert_eq!(ds.labels[0], 7);
    for (n, bytes) in &files {
        assert_eq!(
            &std::fs::read(kind.dir(root.path()).join(n)).unwrap(),
            bytes
        );
    }
    let mut left = entries(&kind.dir(root.path()));
    left.sort();
    assert_eq!(
        left,
        ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    );
    assert_eq!(server.join().unwrap().len(), 2);
}

#[test]
fn corrupted_file_is_rejected_and_nothing_is_left() {
    let (mut body, sha) = synthetic();
    body[1234] ^= 0x40;
    let (base, server) = serve(1, move |_, _| Reply::Body(body.clone()));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("sub").join("file.gz");
    let url = format!("{base}/file.gz");
    let err = download_verified(std::slice::from_ref(&url), &dest, &sha).unwrap_err();
    let a = attempts(&err);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].0, url);
    assert!(a[0].1.contains("checksum mismatch"), "{}", a[0].1);
    assert!(
        a[0].1.contains(&sha),
        "expected digest not shown: {}",
        a[0].1
    );
    let msg = err.to_string();
    assert!(msg.contains("file.gz") && msg.contains(&url), "{msg}");
    assert!(!dest.exists());
    assert!(
        entries(&dir.path().join("sub")).is_empty(),
        "left behind: {:?}",
        entries(dir.path())
    );
    assert_eq!(server.join().unwrap(), ["/file.gz"]);
}

#[test]
fn not_found_falls_through_to_the_next_mirror() {
    let (body, sha) = synthetic();
    let good = body.clone();
    let (base, server) = serve(2, move |path, _| {
        if path.starts_with("/good/") {
            Reply::Body(good.clone())
        } else {
            Reply::NotFound
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.gz");
    let urls = [format!("{base}/gone/f.gz"), format!("{base}/good/f.gz")];
    download_verified(&urls, &dest, &sha).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(entries(dir.path()), ["f.gz"]);
    assert_eq!(server.join().unwrap(), ["/gone/f.gz", "/good/f.gz"]);
}

#[test]
fn every_failed_mirror_is_listed() {
    let (_, sha) = synthetic();
    let (base, server) = serve(2, |_, _| Reply::NotFound);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.gz");
    let urls = [
        format!("{base}/a/f.gz"),
        format!("{base}/b/f.gz"),
        "http://127.0.0.1:1/c/f.gz".to_string(),
    ];
    let err = download_verified(&urls, &dest, &sha).unwrap_err();
    let a = attempts(&err);
    assert_eq!(a.len(), 3);
    assert!(a[0].1.contains("404") && a[1].1.contains("404"), "{a:?}");
    assert!(
        a[2].1.contains("connection") || a[2].1.contains("refused"),
        "{a:?}"
    );
    let msg = err.to_string();
    for u in &urls {
        assert!(msg.contains(u.as_str()), "{msg}");
    }
    assert!(entries(dir.path()).is_empty());
    assert_eq!(server.join().unwrap().len(), 2);
}

#[test]
fn connection_cut_mid_body_leaves_nothing() {
    let (body, sha) = synthetic();
    let half = body.len() / 2;
    let (base, server) = serve(1, move |_, _| Reply::Cut(body.clone(), half));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.gz");
    let url = format!("{base}/f.gz");
    let err = download_verified(std::slice::from_ref(&url), &dest, &sha).unwrap_err();
    let a = attempts(&err);
    assert_eq!(a.len(), 1);
    assert!(a[0].1.contains("connection"), "{a:?}");
    assert!(
        !a[0].1.contains("checksum"),
        "the cut must be detected as such: {a:?}"
    );
    assert!(!dest.exists());
    assert!(
        entries(dir.path()).is_empty(),
        "left behind: {:?}",
        entries(dir.path())
    );
    server.join().unwrap();
}

#[test]
fn cut_then_good_mirror_succeeds() {
    let (body, sha) = synthetic();
    let served = body.clone();
    let (base, server) = serve(2, move |path, _| {
        if path.starts_with("/cut/") {
            Reply::Cut(served.clone(), 1000)
        } else {
            Reply::Body(served.clone())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.gz");
    let urls = [format!("{base}/cut/f.gz"), format!("{base}/ok/f.gz")];
    download_verified(&urls, &dest, &sha).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(entries(dir.path()), ["f.gz"]);
    server.join().unwrap();
}

#[test]
fn a_good_download_replaces_an_existing_file_atomically() {
    let (body, sha) = synthetic();
    let served = body.clone();
    let (base, server) = serve(1, move |_, _| Reply::Body(served.clone()));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.gz");
    std::fs::write(&dest, b"stale").unwrap();
    download_verified(&[format!("{base}/f.gz")], &dest, &sha).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(entries(dir.path()), ["f.gz"]);
    server.join().unwrap();
}

#[test]
fn labels_served_locally_parse() {
    // The downloaded label file is a valid IDX file (gzip detected by content).
    let Some(files) = real_mnist_test_files() else {
        return;
    };
    let labels = files[1].1.clone();
    let (base, server) = serve(1, move |_, _| Reply::Body(labels.clone()));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("labels");
    let f = DatasetKind::Mnist.file(Split::Test, FileRole::Labels);
    download_verified(&[format!("{base}/x")], &dest, f.sha256).unwrap();
    assert_eq!(read_labels(&dest).unwrap().len(), 10_000);
    server.join().unwrap();
}

/// A mirror that labels the `.gz` file `Content-Encoding: gzip` (as some static hosts do) must
/// not have it decompressed in transit: the bytes are kept and their checksum matches.
#[test]
fn content_encoding_gzip_is_passed_through() {
    use sha2::{Digest, Sha256};
    let (body, _) = synthetic();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&body).unwrap();
    let gz = enc.finish().unwrap();
    let gz_sha: String = Sha256::digest(&gz)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let served = gz.clone();
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    let (base, server) = serve(1, move |_, head| {
        seen.lock().unwrap().push(head.to_ascii_lowercase());
        Reply::Encoded(served.clone())
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.gz");
    download_verified(&[format!("{base}/f.gz")], &dest, &gz_sha).unwrap();
    server.join().unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), gz);
    let heads = heads.lock().unwrap();
    assert!(heads[0].contains("accept-encoding: identity"), "{heads:?}");
}
