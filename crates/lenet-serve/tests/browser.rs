//! The pages in a real browser: Debian's `chromium`, headless, driven through `chromedriver`
//! (WebDriver) by the `fantoccini` crate. `.ci/run` installs both; elsewhere a machine without
//! them skips these tests and says so (`SKIPPED …`), and under `CI` they fail instead.
//!
//! - the playground: strokes drawn on the canvas with the pointer, the right digit predicted, the
//!   network's input and every layer's feature maps shown;
//! - a run trained here, while its page is open: the curve gains points as epochs finish, the
//!   page turns to "finished" and shows the test set's confusion matrix and misclassified images;
//!   the runs page lists the run and sorts;
//! - no JavaScript error or failed request in the browser's console on any page.
//!
//! With `LENET_SCREENSHOTS=DIR` the pages are also saved as PNG screenshots into DIR (the
//! pictures in `docs/serve.md`).

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{options, pytorch_run, start};
use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use lenet_train::{DataOptions, DisplayMode, RunConfig, TrainOptions};
use serde_json::{json, Value};

/// One browser at a time: the machine has two cores, and the live test times epochs.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// A program on `PATH` (or the path in `env`), if there is one.
fn program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// `chromedriver` running on a free loopback port; stopped when dropped.
struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
}

impl Drop for Driver {
    /// Stops chromedriver and the browsers it started (its process group), also when a test
    /// failed before closing its session.
    fn drop(&mut self) {
        // SAFETY: signalling the process group of our own child.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Starts chromedriver, or says why the test cannot run.
fn driver() -> Option<Driver> {
    let missing = "install Debian's chromium and chromium-driver (apt-get install chromium \
                   chromium-driver), or set LENET_CHROMEDRIVER and LENET_CHROMIUM";
    let Some(chromedriver) = program("LENET_CHROMEDRIVER", &["chromedriver"]) else {
        lenet_data::testing::unavailable(&format!("no chromedriver: {missing}"));
        return None;
    };
    let Some(chromium) = program(
        "LENET_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    ) else {
        lenet_data::testing::unavailable(&format!("no chromium: {missing}"));
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        chromium,
    };
    // Ready when its port answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(driver)
}

/// A headless browser session that keeps the console's messages.
async fn browser(driver: &Driver) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": driver.chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1100"],
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("cannot open a chromium session through chromedriver")
}

/// ChromeDriver's console log (`POST /session/{id}/se/log`): every message since the last call.
#[derive(Debug)]
struct ConsoleLog;

impl WebDriverCompatibleCommand for ConsoleLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// Fails on any error in the console: a JavaScript exception, `console.error`, a failed request.
async fn no_console_errors(client: &Client, page: &str) {
    let log = client.issue_cmd(ConsoleLog).await.unwrap();
    let errors: Vec<&Value> = log
        .as_array()
        .map(|entries| entries.iter().filter(|e| e["level"] == "SEVERE").collect())
        .unwrap_or_default();
    assert!(errors.is_empty(), "console errors on {page}: {errors:?}");
}

/// Evaluates `script` (a JavaScript expression's body, `return …`) until `ready` accepts its
/// value, for at most `seconds`.
async fn wait_for(
    client: &Client,
    script: &str,
    seconds: u64,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let v = client.execute(script, vec![]).await.unwrap();
        if ready(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Saves a screenshot when `LENET_SCREENSHOTS` names a directory.
async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("LENET_SCREENSHOTS") {
        let png = client.screenshot().await.unwrap();
        let path = Path::new(&dir).join(name);
        lenet_io::write_atomic(&path, &png).unwrap();
        println!("screenshot: {}", path.display());
    }
}

/// A stroke through `points` (pixels from the canvas's centre), drawn with the mouse.
fn stroke(id: &str, pad: &fantoccini::elements::Element, points: &[(f64, f64)]) -> MouseActions {
    let to = |&(x, y): &(f64, f64)| PointerAction::MoveToElement {
        element: pad.clone(),
        duration: Some(Duration::from_millis(15)),
        x,
        y,
    };
    let mut mouse =
        MouseActions::new(id.to_string())
            .then(to(&points[0]))
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            });
    for p in &points[1..] {
        mouse = mouse.then(to(p));
    }
    mouse.then(PointerAction::Up {
        button: MOUSE_BUTTON_LEFT,
    })
}

/// A pen stroke: points in pixels from the canvas's centre.
type Stroke = Vec<(f64, f64)>;

/// The digits drawn, as strokes on the 280×280 canvas.
fn digits() -> Vec<(&'static str, Vec<Stroke>)> {
    let line = |a: (f64, f64), b: (f64, f64), n: usize| -> Vec<(f64, f64)> {
        (0..=n)
            .map(|i| {
                let t = i as f64 / n as f64;
                (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
            })
            .collect()
    };
    let ellipse: Vec<(f64, f64)> = (0..=24)
        .map(|i| {
            let a = std::f64::consts::TAU * i as f64 / 24.0;
            (55.0 * a.sin(), -85.0 * a.cos())
        })
        .collect();
    vec![
        ("1", vec![line((8.0, -95.0), (-8.0, 95.0), 8)]),
        (
            "7",
            vec![[
                line((-60.0, -85.0), (60.0, -85.0), 6),
                line((60.0, -85.0), (0.0, 95.0), 8),
            ]
            .concat()],
        ),
        ("0", vec![ellipse]),
    ]
}

#[test]
fn playground_draws_a_digit_and_shows_the_prediction_and_feature_maps() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(driver) = driver() else { return };
    let runs = tempfile::tempdir().unwrap();
    pytorch_run(runs.path(), "lenet5-pytorch");
    let base = start(options(runs.path(), 2));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = browser(&driver).await;
        client
            .goto(&format!("{base}/playground?run=lenet5-pytorch"))
            .await
            .unwrap();
        wait_for(
            &client,
            "return document.getElementById('run').value",
            20,
            "the run list",
            |v| v == "lenet5-pytorch",
        )
        .await;
        let pad = client.find(Locator::Id("pad")).await.unwrap();
        for (digit, strokes) in digits() {
            client
                .find(Locator::Id("clear"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            for s in &strokes {
                client
                    .perform_actions(stroke("mouse", &pad, s))
                    .await
                    .unwrap();
            }
            let seen = wait_for(
                &client,
                "const a = document.getElementById('answer'); \
                 return a.dataset.class && a.textContent ? a.dataset.class : null",
                30,
                &format!("a prediction for the drawn {digit}"),
                |v| !v.is_null(),
            )
            .await;
            assert_eq!(seen, digit, "drew a {digit}");
            // Ten probability bars, the input the network saw, every stage's feature maps,
            // each picture decoded by the browser.
            let shown = wait_for(
                &client,
                "const maps = [...document.querySelectorAll('#maps img')]; \
                 const input = document.getElementById('input'); \
                 return {bars: document.querySelectorAll('#bars .bar').length, \
                   maps: maps.length, \
                   decoded: maps.every(i => i.complete && i.naturalWidth > 0), \
                   layers: maps.map(i => i.alt), \
                   input: input.complete ? input.naturalWidth : 0}",
                20,
                "the feature maps",
                |v| v["decoded"] == true && v["input"].as_u64().unwrap_or(0) > 0,
            )
            .await;
            assert_eq!(shown["bars"], 10, "{shown}");
            assert_eq!(
                shown["layers"],
                json!([
                    "features.0.conv",
                    "features.0.relu",
                    "features.0.pool",
                    "features.1.conv",
                    "features.1.relu",
                    "features.1.pool"
                ]),
                "{shown}"
            );
            if digit == "7" {
                screenshot(&client, "serve-playground.png").await;
            }
        }
        no_console_errors(&client, "the playground").await;
        client.close().await.unwrap();
    });
}

#[test]
fn run_page_follows_a_training_run_live_and_shows_its_evaluation() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let data = lenet_data::testing::real_data_root();
    if !data.join("mnist").is_dir() {
        lenet_data::testing::unavailable(&format!("no MNIST under {}", data.display()));
        return;
    }
    let Some(driver) = driver() else { return };
    let runs = tempfile::tempdir().unwrap();
    pytorch_run(runs.path(), "lenet5-pytorch");
    let base = start(options(runs.path(), 2));

    // A short real run: 3 epochs of 6,000 MNIST images, trained while the page is open.
    let epochs = 3;
    let config = RunConfig::parse(
        &format!(
            "[model]\npreset = \"lenet5\"\n[data]\ndataset = \"mnist\"\nvalidation = 1000\n\
             [data.limit]\ntrain = 6000\ntest = 2000\n[training]\nepochs = {epochs}\n\
             batch_size = 64\nseed = 7\n[training.optimizer]\nkind = \"adam\"\nlr = 2e-3\n"
        ),
        "live test",
        &[],
    )
    .unwrap();
    let run_dir = runs.path().join("live");
    let opts = TrainOptions {
        run_dir: run_dir.clone(),
        data: DataOptions {
            root: data.clone(),
            offline: true,
            report_downloads: false,
        },
        display: DisplayMode::Quiet,
        resume: false,
        interrupter: None,
    };
    let training = std::thread::spawn(move || {
        let device = lenet_train::select(&config.backend).unwrap();
        lenet_train::train(&config, &device, &opts)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while !run_dir.join("config.toml").is_file() {
        assert!(Instant::now() < deadline, "the run did not start");
        assert!(!training.is_finished(), "training stopped before it began");
        std::thread::sleep(Duration::from_millis(20));
    }

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = browser(&driver).await;
        client.goto(&format!("{base}/runs/live")).await.unwrap();
        let epochs_now = "const p = document.getElementById('points'); \
                          return p.dataset.epochs === undefined ? null : Number(p.dataset.epochs)";
        let first = wait_for(&client, epochs_now, 30, "the curves", |v| !v.is_null())
            .await
            .as_u64()
            .unwrap();
        assert!(
            first < epochs,
            "training finished ({first} epochs) before the page opened: nothing to watch"
        );
        // Epoch by epoch, on the open page (server-sent events, no reload).
        let mut seen = vec![first];
        while *seen.last().unwrap() < epochs {
            let last = *seen.last().unwrap();
            let now = wait_for(&client, epochs_now, 180, "another epoch", |v| {
                v.as_u64().is_some_and(|n| n > last)
            })
            .await;
            seen.push(now.as_u64().unwrap());
        }
        println!("validated epochs seen on the open page: {seen:?}");
        let summary = training.join().unwrap().expect("training failed");
        wait_for(
            &client,
            "const s = document.getElementById('status'); return s ? s.textContent : null",
            30,
            "the finished status",
            |v| v == "finished",
        )
        .await;
        assert_eq!(
            client
                .find(Locator::Id("live"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "(live)"
        );

        // The test set's evaluation: the matrix's cells add up to the images evaluated, and
        // the correct ones to the accuracy training reported.
        let e = wait_for(
            &client,
            "const t = document.getElementById('confusion'); \
             const cells = [...t.querySelectorAll('tr')].slice(1).map(r => \
               [...r.querySelectorAll('td')].map(c => Number(c.textContent))); \
             const imgs = [...document.querySelectorAll('#misclassified img')]; \
             return cells.length ? {cells, wrong: imgs.length, \
               decoded: imgs.every(i => i.complete && i.naturalWidth > 0), \
               title: document.getElementById('wrong-title').textContent} : null",
            120,
            "the confusion matrix",
            |v| !v.is_null() && v["decoded"] == true,
        )
        .await;
        let cells: Vec<Vec<u64>> = serde_json::from_value(e["cells"].clone()).unwrap();
        assert_eq!(cells.len(), 10);
        let total: u64 = cells.iter().flatten().sum();
        let correct: u64 = (0..10).map(|i| cells[i][i]).sum();
        assert_eq!(total, 2000);
        let accuracy = correct as f64 / total as f64;
        assert!(
            (accuracy - summary.test_accuracy).abs() < 1e-9,
            "page {accuracy}, summary {}",
            summary.test_accuracy
        );
        assert_eq!(e["wrong"].as_u64().unwrap(), (total - correct).min(48));
        let filters = client.find_all(Locator::Css("#filters img")).await.unwrap();
        assert_eq!(filters.len(), 2);
        screenshot(&client, "serve-run.png").await;
        no_console_errors(&client, "the run page").await;

        // The runs page lists both runs; a click on a column sorts by it.
        client.goto(&format!("{base}/")).await.unwrap();
        let ids = "return [...document.querySelectorAll('#runs tbody tr td:nth-child(2)')]\
                   .map(td => td.textContent)";
        wait_for(&client, ids, 20, "the runs list", |v| {
            v.as_array().is_some_and(|a| a.len() == 2)
        })
        .await;
        // A first click sorts descending, a second ascending.
        for expected in [
            json!(["live", "lenet5-pytorch"]),
            json!(["lenet5-pytorch", "live"]),
        ] {
            client
                .find(Locator::Css("th[data-key=id]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            assert_eq!(client.execute(ids, vec![]).await.unwrap(), expected);
        }
        let status = client
            .execute(
                "return [...document.querySelectorAll('#runs tbody tr')]\
                 .find(r => r.textContent.includes('live')).lastElementChild.textContent",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(status, "finished");
        // Ticked runs are drawn on the comparison chart.
        for tick in client
            .find_all(Locator::Css("#runs input[type=checkbox]"))
            .await
            .unwrap()
        {
            tick.click().await.unwrap();
        }
        wait_for(
            &client,
            "const c = document.getElementById('compare').getContext('2d'); \
             const d = c.getImageData(0, 0, 900, 320).data; let blue = 0; \
             for (let i = 0; i < d.length; i += 4) \
               if (d[i + 2] > 150 && d[i] < 120 && d[i + 1] < 160) blue++; \
             return blue",
            20,
            "the comparison chart's first series",
            |v| v.as_u64().unwrap_or(0) > 20,
        )
        .await;
        screenshot(&client, "serve-runs.png").await;
        no_console_errors(&client, "the runs page").await;
        client.close().await.unwrap();
    });
}
