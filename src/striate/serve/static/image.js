// Image classifier: draw on the canvas (white ink on black, like MNIST) or drop an image;
// the top-5 bars update while drawing (at most one request in flight, the latest wins).
"use strict";
const canvas = $("draw");
const ctx = canvas.getContext("2d");
const input = CONFIG.describe.input;
$("spec").textContent = `the model sees ${input.image_size}×${input.image_size}, ` +
  (input.channels === 1 ? "grayscale" : "colour");
let drawing = false, last = null, busy = false, pending = null, requests = 0;

function clear() {
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  drawBars($("bars"), []);
  $("status").textContent = "Draw a digit with the mouse: the bars follow as you draw.";
}

function point(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
}

async function send(base64) {
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
clear();
