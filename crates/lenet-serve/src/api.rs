//! The HTTP routes: pages, the JSON API and the live metrics stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use lenet_train::RunDir;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ServeError;
use crate::evaluation::Evaluations;
use crate::predictor::{png_url, Predictor};
use crate::runs::{detail, metrics_json, Runs};
use crate::{assets, MAX_BODY};

/// What every handler shares.
pub struct AppState {
    /// The runs shown.
    pub runs: Runs,
    /// The prediction worker.
    pub predictor: Predictor,
    /// The runs' test-set evaluations, computed on demand and cached.
    pub evaluations: Evaluations,
}

type Shared = State<Arc<AppState>>;

/// Every route.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(assets::RUNS_HTML) }))
        .route("/runs/{id}", get(|| async { Html(assets::RUN_HTML) }))
        .route(
            "/playground",
            get(|| async { Html(assets::PLAYGROUND_HTML) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript", assets::APP_JS) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css", assets::STYLE_CSS) }),
        )
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{id}", get(run_detail))
        .route("/api/runs/{id}/events", get(run_events))
        .route("/api/runs/{id}/filters", get(run_filters))
        .route("/api/runs/{id}/evaluation", get(run_evaluation))
        .route("/api/predict", post(predict))
        .fallback(|| async { ServeError::NotFound("no such page or endpoint".into()) })
        .layer(middleware::from_fn(refuse_announced_oversize))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Refuses a body whose announced length (`Content-Length`) is over [`MAX_BODY`] before any
/// of it is read, so a client learns at once rather than after uploading it; a body sent
/// without a length is cut off at the limit by `DefaultBodyLimit` (the predict handler).
async fn refuse_announced_oversize(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large().into_response();
    }
    next.run(request).await
}

/// The answer to a body over [`MAX_BODY`].
fn too_large() -> ServeError {
    ServeError::TooLarge(format!("the body is larger than {} MB", MAX_BODY >> 20))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn list_runs(State(s): Shared) -> Json<Value> {
    let runs = tokio::task::spawn_blocking(move || s.runs.list())
        .await
        .unwrap_or_default();
    Json(json!({ "runs": runs }))
}

async fn run_detail(State(s): Shared, Path(id): Path<String>) -> Result<Json<Value>, ServeError> {
    let dir = s.runs.dir(&id)?;
    tokio::task::spawn_blocking(move || detail(&id, &dir))
        .await
        .map_err(|e| ServeError::Internal(e.to_string()))?
        .map(Json)
}

/// Server-sent events: the run's metrics now, and again whenever `metrics.csv`, `summary.json`
/// or `model.bpk` changes (checked twice a second), so that a page follows a run while
/// `lenet train` writes it, to its end.
async fn run_events(
    State(s): Shared,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ServeError> {
    let dir = s.runs.dir(&id)?;
    type Stamp = Vec<Option<(Option<SystemTime>, u64)>>;
    let stamp = |dir: &std::path::Path| -> Stamp {
        ["metrics.csv", "summary.json", "model.bpk"]
            .iter()
            .map(|f| {
                std::fs::metadata(dir.join(f))
                    .ok()
                    .map(|m| (m.modified().ok(), m.len()))
            })
            .collect()
    };
    let events = stream::unfold((None::<Stamp>, dir), move |(last, dir)| async move {
        loop {
            let now = stamp(&dir);
            if last.as_ref() != Some(&now) {
                let rows = RunDir::open(&dir)
                    .ok()
                    .and_then(|r| r.read_metrics().ok())
                    .unwrap_or_default();
                let event = Event::default()
                    .event("metrics")
                    .data(metrics_json(&rows).to_string());
                return Some((Ok(event), (Some(now), dir)));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

async fn run_filters(State(s): Shared, Path(id): Path<String>) -> Result<Json<Value>, ServeError> {
    let dir = s.runs.dir(&id)?;
    tokio::task::spawn_blocking(move || -> Result<Value, ServeError> {
        let model = lenet_train::TrainedModel::load(&dir, Some(lenet_train::BackendKind::Flex))
            .map_err(|e| ServeError::Conflict(format!("run {id:?} has no weights to show: {e}")))?;
        let grids = lenet_train::pictures::filters(&model.net)
            .map_err(|e| ServeError::Internal(e.to_string()))?;
        let layers = grids
            .iter()
            .map(|(layer, grid)| Ok(json!({"layer": layer, "png": png_url(grid)?})))
            .collect::<Result<Vec<_>, ServeError>>()?;
        Ok(json!({ "filters": layers }))
    })
    .await
    .map_err(|e| ServeError::Internal(e.to_string()))?
    .map(Json)
}

/// The run's test-set evaluation: accuracy, per-class metrics, the confusion matrix and the
/// first misclassified images (computed on the first request, then cached).
async fn run_evaluation(
    State(s): Shared,
    Path(id): Path<String>,
) -> Result<Json<Value>, ServeError> {
    let dir = s.runs.dir(&id)?;
    tokio::task::spawn_blocking(move || s.evaluations.get(&id, &dir))
        .await
        .map_err(|e| ServeError::Internal(e.to_string()))?
        .map(Json)
}

/// `POST /api/predict` query.
#[derive(Debug, Deserialize)]
struct PredictQuery {
    /// The run (default: `--checkpoint`, else the newest run with weights).
    run: Option<String>,
    /// How many classes to return.
    top: Option<usize>,
    /// Also the input and every layer's feature maps, as PNG data URLs.
    #[serde(default)]
    features: bool,
}

/// `POST /api/predict` JSON body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pixels {
    /// Grey values 0-255, row-major, of a square picture: 784 values are taken as an
    /// MNIST-style 28×28 digit (white on black) as is; other sizes go through `predict`'s
    /// preprocessing.
    pixels: Vec<f64>,
}

async fn predict(
    State(s): Shared,
    query: Result<Query<PredictQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ServeError> {
    let Query(q) = query.map_err(|e| ServeError::BadRequest(e.body_text()))?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        _ => ServeError::BadRequest(e.body_text()),
    })?;
    let run = match q.run {
        Some(r) => r,
        None => s
            .runs
            .default_run()
            .ok_or_else(|| ServeError::NotFound("no run with weights to predict with".into()))?,
    };
    let dir = s.runs.dir(&run)?;
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let picture = tokio::task::spawn_blocking(move || decode(&kind, &body))
        .await
        .map_err(|e| ServeError::Internal(e.to_string()))??;
    let prediction = s
        .predictor
        .predict(run, dir, picture, q.top.unwrap_or(3), q.features)
        .await?;
    Ok(Json(json!(prediction)))
}

/// The 28×28 MNIST-style picture in a request body.
fn decode(kind: &str, body: &[u8]) -> Result<Vec<u8>, ServeError> {
    if body.is_empty() {
        return Err(ServeError::BadRequest(
            "empty body: send a PNG or JPEG picture, or JSON {\"pixels\": [...]}".into(),
        ));
    }
    if kind.starts_with("application/json") {
        let p: Pixels = serde_json::from_slice(body)
            .map_err(|e| ServeError::BadRequest(format!("JSON body: {e}")))?;
        let n = p.pixels.len();
        let side = (n as f64).sqrt().round() as usize;
        if side * side != n || n == 0 || side > 1024 {
            return Err(ServeError::BadRequest(format!(
                "pixels: {n} values are not a square picture of at most 1024×1024"
            )));
        }
        if let Some(v) = p.pixels.iter().find(|v| !(0.0..=255.0).contains(*v)) {
            return Err(ServeError::BadRequest(format!(
                "pixels: {v} is outside 0-255"
            )));
        }
        let bytes: Vec<u8> = p.pixels.iter().map(|v| v.round() as u8).collect();
        if n == 28 * 28 {
            return Ok(bytes);
        }
        let img = image::GrayImage::from_raw(side as u32, side as u32, bytes)
            .ok_or_else(|| ServeError::Internal("pixels".into()))?;
        return lenet_train::predict::mnist_style(&img).ok_or_else(|| {
            ServeError::Unprocessable("the picture is blank (no strokes found)".into())
        });
    }
    lenet_train::predict::picture_from_bytes(body, "the request body").map_err(|e| match e {
        lenet_train::predict::PredictError::Blank(_) => {
            ServeError::Unprocessable("the picture is blank (no strokes found)".into())
        }
        other => ServeError::BadRequest(other.to_string()),
    })
}
