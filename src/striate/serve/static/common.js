// Shared by every page: the run's configuration, calls to the JSON API, bars, errors.
"use strict";
const CONFIG = JSON.parse(document.body.dataset.config || "{}");
const API = CONFIG.name ? "/api/" + encodeURIComponent(CONFIG.name) : "";
const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message ? "Error: " + message : "";
}

async function readError(response) {
  try { return (await response.json()).error || response.statusText; }
  catch (e) { return response.status + " " + response.statusText; }
}

// POST /api/NAME/predict; resolves to the results, or shows the error and resolves to null.
async function predict(inputs, options) {
  const response = await fetch(API + "/predict", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ inputs: inputs, options: options || {} }),
  });
  if (!response.ok) { showError(await readError(response)); return null; }
  showError("");
  return (await response.json()).results;
}

function fileToBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",")[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// rows: [[name, probability], ...] drawn as horizontal bars.
function drawBars(container, rows) {
  container.replaceChildren(...rows.map(([name, p]) => {
    const bar = document.createElement("div");
    bar.className = "bar";
    const label = document.createElement("span");
    label.className = "name"; label.textContent = name; label.title = name;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill"; fill.style.width = (100 * p).toFixed(1) + "%";
    fill.style.display = "block";
    track.append(fill);
    const value = document.createElement("span");
    value.className = "value"; value.textContent = (100 * p).toFixed(1) + "%";
    bar.append(label, track, value);
    return bar;
  }));
}

// A drop zone (and its file input) calling onFile(file).
function dropZone(zone, input, onFile) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    if (e.dataTransfer.files.length) onFile(e.dataTransfer.files[0]);
  });
  input.addEventListener("change", () => { if (input.files.length) onFile(input.files[0]); });
}

function numberValue(id) {
  const text = $(id).value.trim();
  return text === "" ? null : Number(text);
}
