//! Every endpoint over real HTTP on loopback, the bad requests, and a bounded load test.
//!
//! The runs are made here: LeNet-5 with the weights PyTorch trained for the import tests
//! (97.9 % on MNIST's test set), so a drawn "1" must come back as a 1.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{options, pytorch_run, start};
use lenet_serve::Options;
use lenet_train::data::Subset;
use lenet_train::run::metrics::MetricRow;
use serde_json::Value;

/// A run directory `root/id` holding the PyTorch-trained LeNet-5 and two epochs of metrics.
fn make_run(root: &Path, id: &str) -> PathBuf {
    let run = pytorch_run(root, id);
    let rows: Vec<MetricRow> = (1..=2)
        .flat_map(|epoch| {
            [Subset::Train, Subset::Valid].map(|split| MetricRow {
                epoch,
                split,
                values: [
                    ("accuracy".to_string(), 0.9 + 0.01 * epoch as f64),
                    ("loss".to_string(), 0.3),
                ]
                .into_iter()
                .collect(),
            })
        })
        .collect();
    run.write_metrics(&rows).unwrap();
    run.path().to_path_buf()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// `(status, body)` of a GET.
fn get(url: &str) -> (u16, String) {
    let mut r = agent().get(url).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

/// `(status, JSON body)` of a POST.
fn post(agent: &ureq::Agent, url: &str, kind: &str, body: &[u8]) -> (u16, Value) {
    // A server that refuses a body may close the connection before reading all of it.
    let mut r = match agent.post(url).header("Content-Type", kind).send(body) {
        Ok(r) => r,
        Err(e) => return (0, Value::String(format!("connection closed: {e}"))),
    };
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A hand-drawn "1": a slightly slanted thick stroke, dark on white, as a PNG.
fn drawn_one() -> Vec<u8> {
    let img = image::GrayImage::from_fn(280, 280, |x, y| {
        let centre = 150.0 - (y as f32 - 140.0) * 0.15;
        let on = (40..240).contains(&y) && (x as f32 - centre).abs() < 10.0;
        image::Luma([if on { 0 } else { 255 }])
    });
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    bytes
}

#[test]
fn every_endpoint_answers() {
    let root = tempfile::tempdir().unwrap();
    make_run(root.path(), "lenet5-a");
    let base = start(options(root.path(), 2));

    assert_eq!(
        get(&format!("{base}/healthz")),
        (200, r#"{"status":"ok"}"#.into())
    );
    for page in ["/", "/runs/lenet5-a", "/playground"] {
        let (status, body) = get(&format!("{base}{page}"));
        assert_eq!(status, 200, "{page}");
        assert!(body.starts_with("<!doctype html>"), "{page}");
    }
    for asset in ["/assets/app.js", "/assets/style.css"] {
        assert_eq!(get(&format!("{base}{asset}")).0, 200, "{asset}");
    }

    let (status, body) = get(&format!("{base}/api/runs"));
    assert_eq!(status, 200);
    let runs: Value = serde_json::from_str(&body).unwrap();
    let run = &runs["runs"][0];
    assert_eq!(run["id"], "lenet5-a");
    assert_eq!(run["model"], "lenet5");
    assert_eq!(run["parameters"], 61_706);
    assert_eq!(run["epochs"], 2);
    assert_eq!(run["has_model"], true);

    let (status, body) = get(&format!("{base}/api/runs/lenet5-a"));
    assert_eq!(status, 200);
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["metrics"].as_array().unwrap().len(), 4);
    assert!(detail["config"].as_str().unwrap().contains("lenet5"));

    let (status, body) = get(&format!("{base}/api/runs/lenet5-a/filters"));
    assert_eq!(status, 200);
    let filters: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(filters["filters"][0]["layer"], "features.0.conv");
    assert!(filters["filters"][0]["png"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));

    // A drawn 1, as the playground sends it.
    let a = agent();
    let (status, p) = post(
        &a,
        &format!("{base}/api/predict?top=3&features=true"),
        "image/png",
        &drawn_one(),
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["run"], "lenet5-a");
    assert_eq!(p["top"][0]["name"], "1", "{}", p["top"]);
    assert_eq!(p["top"].as_array().unwrap().len(), 3);
    assert!(p["input"].as_str().unwrap().starts_with("data:image/png"));
    let layers: Vec<&str> = p["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["layer"].as_str().unwrap())
        .collect();
    assert_eq!(layers[0], "features.0.conv");
    assert_eq!(layers.len(), 6);

    // The same digit as 784 MNIST-style pixels: white on black, a vertical bar.
    let pixels: Vec<u8> = (0..784)
        .map(|i| {
            if (4..24).contains(&(i / 28)) && (13..16).contains(&(i % 28)) {
                255
            } else {
                0
            }
        })
        .collect();
    let body = serde_json::json!({ "pixels": pixels }).to_string();
    let (status, p) = post(
        &a,
        &format!("{base}/api/predict?run=lenet5-a"),
        "application/json",
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["top"][0]["name"], "1");
    let total: f64 = (0..3)
        .map(|i| p["top"][i]["probability"].as_f64().unwrap())
        .sum();
    assert!(total > 0.9 && total <= 1.0 + 1e-6);

    // Server-sent events: the metrics at once.
    let mut r = agent()
        .get(&format!("{base}/api/runs/lenet5-a/events"))
        .call()
        .unwrap();
    let mut reader = r.body_mut().as_reader();
    let mut first = vec![0u8; 64];
    std::io::Read::read_exact(&mut reader, &mut first).unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("event: metrics"));
}

#[test]
fn bad_requests_get_4xx_json_and_the_server_keeps_serving() {
    let root = tempfile::tempdir().unwrap();
    make_run(root.path(), "good");
    // Outside the runs directory, reachable through a symlink inside it.
    let outside = tempfile::tempdir().unwrap();
    make_run(outside.path(), "secret");
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link")).unwrap();
    // A run whose weights are cut short, and a directory that is no run.
    let broken = make_run(root.path(), "broken");
    let bytes = std::fs::read(broken.join("model.bpk")).unwrap();
    std::fs::write(broken.join("model.bpk"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::create_dir(root.path().join("junk")).unwrap();
    std::fs::write(root.path().join("junk/config.toml"), "not toml [").unwrap();
    let base = start(options(root.path(), 2));
    let a = agent();

    for (path, status) in [
        ("/api/runs/..", 400),
        ("/api/runs/..%2F..%2Fetc", 400),
        ("/api/runs/%2Fetc", 400),
        ("/api/runs/link", 404),
        ("/api/runs/nope", 404),
        ("/api/runs/junk", 404),
        ("/api/runs/link/events", 404),
        ("/no/such/page", 404),
    ] {
        let (got, body) = get(&format!("{base}{path}"));
        assert_eq!(got, status, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}"));
        assert!(v["error"].is_string(), "{path}: {body}");
    }
    // The list shows the runs inside only.
    let (_, body) = get(&format!("{base}/api/runs"));
    assert!(
        !body.contains("secret") && !body.contains("\"link\"") && !body.contains("junk"),
        "{body}"
    );

    let png = drawn_one();
    let huge_header = {
        let img = image::GrayImage::new(5000, 1);
        let mut b = Vec::new();
        img.write_to(&mut Cursor::new(&mut b), image::ImageFormat::Png)
            .unwrap();
        b
    };
    let blank = {
        let img = image::GrayImage::from_pixel(50, 50, image::Luma([255]));
        let mut b = Vec::new();
        img.write_to(&mut Cursor::new(&mut b), image::ImageFormat::Png)
            .unwrap();
        b
    };
    let too_big = vec![0u8; 9 << 20];
    for (query, kind, body, status, needle) in [
        ("run=good", "image/png", &b""[..], 400, "empty body"),
        (
            "run=good",
            "image/png",
            &b"not a picture"[..],
            400,
            "cannot read",
        ),
        (
            "run=good",
            "image/png",
            &huge_header[..],
            400,
            "exceeds limit",
        ),
        ("run=good", "image/png", &blank[..], 422, "blank"),
        (
            "run=good",
            "image/png",
            &too_big[..],
            413,
            "larger than 8 mb",
        ),
        (
            "run=good",
            "application/json",
            &b"{\"pixels\": [1, 2]}"[..],
            400,
            "square",
        ),
        (
            "run=good",
            "application/json",
            &b"{\"pixels\": \"x\"}"[..],
            400,
            "json body",
        ),
        ("run=good&top=nine", "image/png", &png[..], 400, "top"),
        ("run=../good", "image/png", &png[..], 400, "invalid run id"),
        ("run=nope", "image/png", &png[..], 404, "no run"),
        ("run=link", "image/png", &png[..], 404, "no run"),
        ("run=broken", "image/png", &png[..], 409, "cannot predict"),
    ] {
        let (got, v) = post(&a, &format!("{base}/api/predict?{query}"), kind, body);
        if status == 413 && got == 0 {
            continue; // refused before the whole body was sent
        }
        assert_eq!(got, status, "{query} {kind}: {v}");
        let text = v.to_string();
        assert!(text.to_lowercase().contains(needle), "{query}: {text}");
    }
    // Still serving.
    let (status, p) = post(
        &a,
        &format!("{base}/api/predict?run=good"),
        "image/png",
        &png,
    );
    assert_eq!(status, 200, "{p}");
    // A run that disappears while served.
    std::fs::remove_dir_all(root.path().join("good")).unwrap();
    let (status, _) = post(
        &a,
        &format!("{base}/api/predict?run=good"),
        "image/png",
        &png,
    );
    assert_eq!(status, 404);
    assert_eq!(get(&format!("{base}/healthz")).0, 200);
}

/// A body announced over the limit is refused at once (413) with `Connection: close`, and
/// the server closes the connection: the unread body cannot be mistaken for a next request,
/// and a keep-alive client does not send its next request into a closed socket.
#[test]
fn an_oversized_body_is_refused_and_its_connection_closed() {
    use std::io::{Read, Write};
    let root = tempfile::tempdir().unwrap();
    make_run(root.path(), "good");
    let base = start(options(root.path(), 1));
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "POST /api/predict?run=good HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        9 << 20
    );
    // The headers only: the limit is checked against Content-Length before any body is read.
    stream.write_all(request.as_bytes()).unwrap();
    // Everything up to the server's end of the connection, or a 30-second timeout.
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break Ok(()),
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) => break Err(e),
        }
    };
    let reply = String::from_utf8_lossy(&reply).to_lowercase();
    assert!(reply.starts_with("http/1.1 413"), "{reply}");
    assert!(reply.contains("\r\nconnection: close\r\n"), "{reply}");
    assert!(reply.contains("larger than 8 mb"), "{reply}");
    assert!(closed.is_ok(), "the connection stays open: {closed:?}");
    // The server goes on serving new connections.
    assert_eq!(get(&format!("{base}/healthz")).0, 200);
}

/// The files under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The run page's test-set evaluation on real MNIST: the counts PyTorch found for the same
/// weights, the confusion matrix's rows are MNIST's test classes, computed once and then read
/// from the cache directory (the only thing written under the runs directory), again after the
/// weights change.
#[test]
fn evaluation_matches_pytorch_and_is_cached() {
    let data = lenet_data::testing::real_data_root();
    if !data.join("mnist").is_dir() {
        lenet_data::testing::unavailable(&format!("no MNIST under {}", data.display()));
        return;
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../lenet-cli/tests/fixtures/pytorch/expected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let pytorch_correct = expected["files"]["lenet5-sequential.pt"]["test_correct"]
        .as_u64()
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let run = make_run(root.path(), "evaluated");
    let before = files_under(root.path());
    let base = start(options(root.path(), 2));

    let (status, body) = get(&format!("{base}/api/runs/evaluated/evaluation"));
    assert_eq!(status, 200, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["cached"], false);
    assert_eq!(e["num_samples"], 10_000);
    assert_eq!(e["correct"].as_u64().unwrap(), pytorch_correct);
    let matrix: Vec<Vec<u64>> = serde_json::from_value(e["confusion_matrix"].clone()).unwrap();
    // MNIST's test set: images per digit (LeCun et al.'s published counts).
    let per_digit = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
    for (digit, row) in matrix.iter().enumerate() {
        assert_eq!(row.iter().sum::<u64>(), per_digit[digit], "digit {digit}");
    }
    let diagonal: u64 = (0..10).map(|c| matrix[c][c]).sum();
    assert_eq!(diagonal, pytorch_correct);
    assert_eq!(e["misclassified_total"], 10_000 - pytorch_correct);
    let shown = e["misclassified"].as_array().unwrap();
    assert_eq!(shown.len(), lenet_serve::evaluation::MISCLASSIFIED_SHOWN);
    for m in shown {
        assert_ne!(m["label"], m["predicted"], "{m}");
        let (t, p) = (
            m["label"].as_u64().unwrap(),
            m["predicted"].as_u64().unwrap(),
        );
        assert!(matrix[t as usize][p as usize] > 0);
        assert!(m["png"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,"));
    }

    // Again: from the cache, the same answer.
    let (_, body) = get(&format!("{base}/api/runs/evaluated/evaluation"));
    let again: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(again["cached"], true);
    assert_eq!(again["confusion_matrix"], e["confusion_matrix"]);
    let after = files_under(root.path());
    let new: Vec<&String> = after.iter().filter(|f| !before.contains(f)).collect();
    assert_eq!(
        new,
        [&format!(
            "{}/evaluated/evaluation-test.json",
            lenet_serve::DEFAULT_CACHE
        )]
    );

    // New weights (a run that went on training): evaluated afresh.
    let weights = run.join("model.bpk");
    let bytes = std::fs::read(&weights).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&weights, &bytes).unwrap();
    let (_, body) = get(&format!("{base}/api/runs/evaluated/evaluation"));
    let fresh: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(fresh["cached"], false);
    assert_eq!(fresh["correct"], e["correct"]);

    // A run without weights, and one whose dataset is not there: 409, and the reason.
    std::fs::remove_file(&weights).unwrap();
    let (status, body) = get(&format!("{base}/api/runs/evaluated/evaluation"));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no weights"), "{body}");
    let elsewhere = tempfile::tempdir().unwrap();
    make_run(root.path(), "nodata");
    let base = start(Options {
        data_dir: elsewhere.path().to_path_buf(),
        ..options(root.path(), 2)
    });
    let (status, body) = get(&format!("{base}/api/runs/nodata/evaluation"));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("--data-dir"), "{body}");
}

/// Resident memory of this process, in KiB (Linux), if known.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// 16 clients for at most 10 s (at most 150 requests each), with and without batching: every
/// request answered, requests/s and latency percentiles printed (figures, not assertions).
#[test]
fn load_on_loopback_is_served_without_errors() {
    let root = tempfile::tempdir().unwrap();
    make_run(root.path(), "load");
    let png = Arc::new(drawn_one());
    for window_ms in [2, 0] {
        let base = start(options(root.path(), window_ms));
        let url = format!("{base}/api/predict?run=load");
        // Warm up: the first request loads the network.
        assert_eq!(post(&agent(), &url, "image/png", &png).0, 200);
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let rss_before = rss_kib();
        let start_time = Instant::now();
        let clients: Vec<_> = (0..16)
            .map(|_| {
                let (url, png) = (url.clone(), png.clone());
                let (latencies, errors, batches) =
                    (latencies.clone(), errors.clone(), batches.clone());
                std::thread::spawn(move || {
                    let a = agent();
                    for _ in 0..150 {
                        if start_time.elapsed() > Duration::from_secs(10) {
                            break;
                        }
                        let t = Instant::now();
                        let (status, v) = post(&a, &url, "image/png", &png);
                        let took = t.elapsed();
                        if status == 200 && v["top"][0]["name"] == "1" {
                            latencies.lock().unwrap().push(took);
                            batches
                                .lock()
                                .unwrap()
                                .push(v["batch"].as_u64().unwrap_or(0));
                        } else {
                            errors.lock().unwrap().push(format!("{status} {v}"));
                        }
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        let wall = start_time.elapsed().as_secs_f64();
        let errors = errors.lock().unwrap();
        assert!(
            errors.is_empty(),
            "{} errors, first: {}",
            errors.len(),
            errors[0]
        );
        let mut l = latencies.lock().unwrap().clone();
        l.sort();
        let pick = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
        let b = batches.lock().unwrap();
        let mean_batch = b.iter().sum::<u64>() as f64 / b.len() as f64;
        let grown = rss_kib().zip(rss_before).map(|(a, b)| a as i64 - b as i64);
        println!(
            "batch window {window_ms} ms: {} requests by 16 clients in {wall:.2} s: {:.0} requests/s, \
             p50 {:.1} ms, p99 {:.1} ms, mean batch {mean_batch:.1}, resident memory {:+} KiB",
            l.len(),
            l.len() as f64 / wall,
            pick(0.5),
            pick(0.99),
            grown.unwrap_or(0)
        );
        if window_ms == 0 {
            assert!(
                b.iter().all(|&n| n == 1),
                "no batching asked, but batches of {b:?}"
            );
        }
        // Memory flat: a leak of the pictures would be ~1 KB per request at least.
        if let Some(g) = grown {
            assert!(g < 200 * 1024, "resident memory grew by {g} KiB");
        }
    }
}
