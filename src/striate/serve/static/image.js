// Image classifier: draw on the canvas (white ink on black, like MNIST) or drop an image;
// the top-5 bars update while drawing (at most one request in flight, the latest wins).
"use strict";
const canvas = $("draw");
const ctx = canvas.getContext("2d");
const input = CONFIG.describe.input;
$("spec").textContent = `the model sees ${input.image_size}×${input.image_size}, ` +
  (input.channels === 1 ? "grayscale" : "colour");
let drawing = false, last = null, busy = false, pending = null, requests = 0, lastImage = null;
for (const name of CONFIG.describe.model.classes || []) {
  const option = document.createElement("option");
  option.value = name; option.textContent = name;
  $("target").append(option);
}

function clear() {
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  drawBars($("bars"), []);
  lastImage = null;
  $("explained").hidden = true;
  $("status").textContent = "Draw a digit with the mouse: the bars follow as you draw.";
}

function point(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
}

async function send(base64) {
  lastImage = base64;
  if (busy) { pending = base64; return; }
  busy = true;
  try {
    const results = await predict([base64], { top_k: 5 });
    if (results) {
      requests += 1;
      drawBars($("bars"), results[0].top.map((t) => [t.class, t.probability]));
      const best = results[0].top[0];
      $("status").textContent = `best: ${best.class} (${(100 * best.probability).toFixed(1)}%)`;
      $("bars").dataset.updates = String(requests);
    }
  } finally {
    busy = false;
    if (pending) { const next = pending; pending = null; send(next); }
  }
}

function sendCanvas() { send(canvas.toDataURL("image/png").split(",")[1]); }

canvas.addEventListener("pointerdown", (e) => {
  drawing = true; last = point(e); canvas.setPointerCapture(e.pointerId);
  ctx.beginPath(); ctx.fillStyle = "#fff";
  ctx.arc(last[0], last[1], 13, 0, 2 * Math.PI); ctx.fill();
});
canvas.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const p = point(e);
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 26; ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
  last = p;
  sendCanvas();
});
const stop = () => { if (drawing) { drawing = false; sendCanvas(); } };
canvas.addEventListener("pointerup", stop);
canvas.addEventListener("pointercancel", stop);
$("clear").addEventListener("click", clear);

dropZone($("drop"), $("file"), async (file) => {
  const base64 = await fileToBase64(file);
  const image = new Image();
  image.onload = () => {  // show what was dropped, centre-cropped like the model sees it
    const side = Math.min(image.width, image.height);
    ctx.drawImage(image, (image.width - side) / 2, (image.height - side) / 2, side, side,
                  0, 0, canvas.width, canvas.height);
  };
  image.src = "data:" + (file.type || "image/png") + ";base64," + base64;
  send(base64);
});
// Explain: the first convolution's maps as tiles, and the saliency map over the image
// (as the model sees it: the canvas, centre-cropped) in red, opaque where it is largest.
async function explain() {
  if (!lastImage) { $("explain-status").textContent = "Draw or drop an image first."; return; }
  const options = { top_k: 5, explain: true };
  if ($("target").value) options.target = $("target").value;
  const results = await predict([lastImage], options);
  if (!results) return;
  const seen = results[0].explain;
  const maps = seen.feature_maps;
  $("maps").replaceChildren(...maps.maps.map((url, i) => {
    const tile = document.createElement("img");
    tile.src = url; tile.alt = `map ${i + 1}`; tile.title = `${maps.layer} map ${i + 1}`;
    return tile;
  }));
  $("maps-note").textContent = `${maps.layer}: ${maps.maps.length} of ${maps.count} maps, ` +
    `${maps.size[0]}×${maps.size[1]}`;
  const view = $("seen").getContext("2d");
  view.fillStyle = "#000"; view.fillRect(0, 0, 196, 196);
  view.globalAlpha = 0.45;  // the image dimmed, so the saliency stands out over it
  view.drawImage(canvas, 0, 0, 196, 196);
  view.globalAlpha = 1;
  const [h, w] = seen.saliency.size;
  const small = document.createElement("canvas");
  small.width = w; small.height = h;
  const cells = small.getContext("2d").createImageData(w, h);
  seen.saliency.map.forEach((row, y) => row.forEach((v, x) => {
    const k = 4 * (y * w + x);
    cells.data[k] = 255; cells.data[k + 1] = 40; cells.data[k + 2] = 40;
    cells.data[k + 3] = Math.round(230 * v);
  }));
  small.getContext("2d").putImageData(cells, 0, 0);
  const overlay = $("saliency").getContext("2d");
  overlay.clearRect(0, 0, 196, 196);
  overlay.imageSmoothingEnabled = false;
  overlay.drawImage(small, 0, 0, 196, 196);
  $("explained").hidden = false;
  $("explained").dataset.target = seen.class;
  $("explain-status").textContent = `saliency for class ${seen.class}`;
}
$("explain").addEventListener("click", explain);
clear();
