// lenet serve: the runs page, a run's page and the playground. Plain JavaScript, no build.
"use strict";

async function getJSON(url, options) {
  const r = await fetch(url, options);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  return body;
}

const el = (id) => document.getElementById(id);
const pct = (v) => (v == null ? "" : (100 * v).toFixed(2) + " %");
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#db2777"];

// A line chart of several series [{name, points: [[x, y]]}] on a canvas.
function drawChart(canvas, series, title) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 50, R = 10, T = 24, B = 30;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#222";
  ctx.fillText(title, L, 15);
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0) { ctx.fillText("no epochs yet", L, H / 2); return; }
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const Y = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  ctx.strokeStyle = "#d1d5db";
  ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, H - B); ctx.lineTo(W - R, H - B); ctx.stroke();
  ctx.fillStyle = "#555";
  for (let i = 0; i <= 4; i++) {
    const y = y0 + ((y1 - y0) * i) / 4;
    ctx.fillText(y.toPrecision(3), 2, Y(y) + 4);
  }
  ctx.fillText(`epoch ${x0}`, L, H - 10);
  ctx.fillText(`${x1}`, W - R - 20, H - 10);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    ctx.strokeStyle = c; ctx.fillStyle = c;
    ctx.beginPath();
    s.points.forEach(([x, y], j) => (j ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
    ctx.stroke();
    s.points.forEach(([x, y]) => ctx.fillRect(X(x) - 2, Y(y) - 2, 4, 4));
    ctx.fillText(s.name, W - R - 160, T + 14 * (i + 1));
  });
}

// Points of one metric on one split.
const curve = (rows, split, key) =>
  rows.filter((r) => r.split === split && r.values[key] != null).map((r) => [r.epoch, r.values[key]]);

// ---- runs page ----
async function runsPage() {
  let runs = [];
  let sortKey = "modified", asc = false;
  const ticked = new Set();
  const render = () => {
    const rows = [...runs].sort((a, b) => {
      const [x, y] = [a[sortKey], b[sortKey]];
      const c = x == null ? -1 : y == null ? 1 : x < y ? -1 : x > y ? 1 : 0;
      return asc ? c : -c;
    });
    el("runs").querySelector("tbody").innerHTML = rows.map((r) => `<tr>
      <td><input type="checkbox" data-id="${r.id}" ${ticked.has(r.id) ? "checked" : ""}></td>
      <td><a href="/runs/${encodeURIComponent(r.id)}">${r.id}</a></td><td>${r.model}</td><td>${r.dataset}</td>
      <td>${r.parameters.toLocaleString("en")}</td><td>${r.epochs} / ${r.epochs_planned}</td>
      <td>${pct(r.best_valid_accuracy)}</td><td>${pct(r.test_accuracy)}</td><td>${r.backend}</td>
      <td>${r.seconds == null ? "" : r.seconds.toFixed(1) + " s"}</td>
      <td class="status-${r.status}">${r.status}</td></tr>`).join("");
    document.querySelectorAll("th[data-key]").forEach((th) => {
      th.classList.toggle("sorted", th.dataset.key === sortKey);
      th.classList.toggle("asc", th.dataset.key === sortKey && asc);
    });
    el("message").textContent = runs.length ? "" : "No runs yet: train one with lenet train.";
  };
  const compare = async () => {
    const series = [];
    for (const id of ticked) {
      const d = await getJSON(`/api/runs/${encodeURIComponent(id)}`);
      series.push({ name: id, points: curve(d.metrics, "valid", "accuracy") });
    }
    drawChart(el("compare"), series, "validation accuracy");
  };
  document.querySelectorAll("th[data-key]").forEach((th) =>
    th.addEventListener("click", () => {
      asc = sortKey === th.dataset.key ? !asc : false;
      sortKey = th.dataset.key;
      render();
    }));
  el("runs").addEventListener("change", (e) => {
    const id = e.target.dataset.id;
    if (!id) return;
    e.target.checked ? ticked.add(id) : ticked.delete(id);
    compare().catch((err) => (el("message").textContent = err.message));
  });
  const refresh = async () => {
    try { runs = (await getJSON("/api/runs")).runs; render(); }
    catch (err) { el("message").textContent = err.message; }
  };
  await refresh();
  drawChart(el("compare"), [], "validation accuracy");
  setInterval(refresh, 5000);
}

// ---- a run's page ----
async function runPage() {
  const id = decodeURIComponent(location.pathname.split("/").pop());
  el("play").href = `/playground?run=${encodeURIComponent(id)}`;
  // The weights' pictures and evaluation, once the run has weights (again when it finishes).
  let weightsShown = null;
  const show = (d) => {
    const r = d.run;
    el("title").textContent = `${r.id}: ${r.model} on ${r.dataset}`;
    el("summary").innerHTML = `${r.parameters.toLocaleString("en")} parameters, epoch ${r.epochs} of ${r.epochs_planned},
      best validation ${pct(r.best_valid_accuracy)}, test ${pct(r.test_accuracy)}, ${r.backend},
      <span class="status-${r.status}" id="status">${r.status}</span>`;
    el("config").textContent = d.config;
    if (r.has_model && weightsShown !== r.status) {
      weightsShown = r.status;
      evaluation(id);
      filters(id);
    } else if (!r.has_model) {
      el("evaluated").textContent = "(when the run has weights)";
    }
  };
  const plot = (rows) => {
    drawChart(el("loss"), [
      { name: "train loss", points: curve(rows, "train", "loss") },
      { name: "valid loss", points: curve(rows, "valid", "loss") }], "loss");
    drawChart(el("accuracy"), [
      { name: "train accuracy", points: curve(rows, "train", "accuracy") },
      { name: "valid accuracy", points: curve(rows, "valid", "accuracy") }], "accuracy");
    el("points").textContent = `${curve(rows, "valid", "accuracy").length} validated epochs`;
    el("points").dataset.epochs = curve(rows, "valid", "accuracy").length;
  };
  try {
    const d = await getJSON(`/api/runs/${encodeURIComponent(id)}`);
    plot(d.metrics);
    show(d);
  } catch (err) { el("summary").innerHTML = `<span class="error">${err.message}</span>`; return; }
  const events = new EventSource(`/api/runs/${encodeURIComponent(id)}/events`);
  events.addEventListener("metrics", (e) => {
    el("live").textContent = "(live)";
    plot(JSON.parse(e.data));
    getJSON(`/api/runs/${encodeURIComponent(id)}`).then(show).catch(() => {});
  });
}

// The run's filters, one picture per convolution.
function filters(id) {
  getJSON(`/api/runs/${encodeURIComponent(id)}/filters`)
    .then((f) => (el("filters").innerHTML = f.filters.map((x) =>
      `<figure><figcaption>${x.layer}</figcaption><img src="${x.png}" alt="${x.layer}"></figure>`).join("")))
    .catch((err) => (el("filters").innerHTML = `<span class="error">${err.message}</span>`));
}

// The run's test-set evaluation: the confusion matrix (cells shaded by their share of the row),
// per-class recall, and the first misclassified images.
async function evaluation(id) {
  el("evaluated").textContent = "(evaluating…)";
  let e;
  try { e = await getJSON(`/api/runs/${encodeURIComponent(id)}/evaluation`); }
  catch (err) { el("evaluated").innerHTML = `<span class="error">${err.message}</span>`; return; }
  const names = e.class_names;
  el("evaluated").textContent = `${e.dataset}: ${e.correct.toLocaleString("en")} / ${e.num_samples.toLocaleString("en")} correct
    (${pct(e.accuracy)})${e.cached ? ", cached" : ""}`;
  const head = `<tr><th></th>${names.map((n) => `<th>${n}</th>`).join("")}</tr>`;
  const rows = e.confusion_matrix.map((row, t) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return `<tr><th>${names[t]}</th>${row.map((v, p) => {
      const share = v / total;
      const hue = p === t ? "22,163,74" : "220,38,38";
      const shade = v === 0 ? 0 : Math.max(0.08, p === t ? share : Math.min(1, share * 8));
      return `<td class="${p === t ? "hit" : ""}" style="background:rgba(${hue},${shade.toFixed(2)})"
        title="true ${names[t]}, predicted ${names[p]}: ${v}">${v}</td>`;
    }).join("")}</tr>`;
  });
  el("confusion").innerHTML = head + rows.join("");
  el("classes").innerHTML = `<table><tr><th>class</th><th>precision</th><th>recall</th><th>images</th></tr>
    ${e.per_class.map((c) => `<tr><td>${c.name}</td><td>${pct(c.precision)}</td><td>${pct(c.recall)}</td>
    <td>${c.support}</td></tr>`).join("")}</table>`;
  el("wrong-title").textContent = e.misclassified_total
    ? `Misclassified: the first ${e.misclassified.length} of ${e.misclassified_total} (true → predicted, probability)`
    : "No misclassified images";
  el("misclassified").innerHTML = e.misclassified.map((m) =>
    `<figure><img src="${m.png}" alt="test image ${m.index}" title="test image ${m.index}">
     <figcaption>${names[m.label]} → ${names[m.predicted]} (${m.probability.toFixed(2)})</figcaption></figure>`).join("");
}

// ---- playground ----
async function playgroundPage() {
  const pad = el("pad"), ctx = pad.getContext("2d");
  const clear = () => {
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, pad.width, pad.height);
    el("bars").innerHTML = ""; el("answer").textContent = ""; el("maps").innerHTML = "";
    el("input").removeAttribute("src");
  };
  clear();
  const wanted = new URLSearchParams(location.search).get("run");
  const runs = (await getJSON("/api/runs")).runs.filter((r) => r.has_model);
  el("run").innerHTML = runs.map((r) =>
    `<option value="${r.id}" ${r.id === wanted ? "selected" : ""}>${r.id} (${r.model}, ${r.dataset})</option>`).join("");
  if (!runs.length) el("message").textContent = "No run with weights: train one with lenet train.";

  let busy = false, again = false;
  const ask = async (body, type) => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const run = encodeURIComponent(el("run").value);
      const p = await getJSON(`/api/predict?run=${run}&top=10&features=true`,
        { method: "POST", headers: { "Content-Type": type }, body });
      el("message").textContent = "";
      el("bars").innerHTML = p.top.map((t, i) => `<div class="bar ${i ? "" : "best"}">
        <span class="name">${t.name}</span><div class="fill" style="width:${Math.round(200 * t.probability)}px"></div>
        <span>${(100 * t.probability).toFixed(1)} %</span></div>`).join("");
      el("answer").textContent = `prediction: ${p.top[0].name}`;
      el("answer").dataset.class = p.top[0].name;
      el("input").src = p.input;
      el("maps").innerHTML = p.features.map((f) =>
        `<figure><figcaption>${f.layer}</figcaption><img src="${f.png}" alt="${f.layer}"></figure>`).join("");
    } catch (err) {
      el("message").textContent = err.message;
    } finally {
      busy = false;
      if (again) { again = false; sendPad(); }
    }
  };
  const sendPad = () => pad.toBlob((blob) => ask(blob, "image/png"), "image/png");

  let drawing = false, last = null;
  const at = (e) => {
    const r = pad.getBoundingClientRect();
    return [(e.clientX - r.left) * (pad.width / r.width), (e.clientY - r.top) * (pad.height / r.height)];
  };
  pad.addEventListener("pointerdown", (e) => { drawing = true; last = at(e); pad.setPointerCapture(e.pointerId); });
  pad.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = at(e);
    ctx.strokeStyle = "#000"; ctx.lineWidth = 18; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(...last); ctx.lineTo(...p); ctx.stroke();
    last = p;
  });
  const end = () => { if (drawing) { drawing = false; sendPad(); } };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointerleave", end);
  el("clear").addEventListener("click", clear);
  el("run").addEventListener("change", () => sendPad());
  el("upload").addEventListener("change", (e) => {
    const f = e.target.files[0];
    if (f) ask(f, f.type || "application/octet-stream");
  });
}

const page = document.body.dataset.page;
({ runs: runsPage, run: runPage, playground: playgroundPage })[page]().catch((err) => {
  const m = el("message") || el("summary");
  if (m) m.textContent = err.message;
});
