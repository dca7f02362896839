// Captioner: drop an image, read its caption; with an attention model, each word lights up
// the part of the image the decoder attended to when it chose that word.
"use strict";
const picture = $("picture").getContext("2d");
const overlay = $("overlay").getContext("2d");
const side = 256;
let current = null;

function showMap(index) {
  overlay.clearRect(0, 0, side, side);
  document.querySelectorAll("#words button").forEach((b, i) => b.classList.toggle("on", i === index));
  if (!current || !current.attention || index < 0) return;
  const [h, w] = current.attention.grid;
  const map = current.attention.maps[index];
  let peak = -Infinity, low = Infinity;  // shown relative to the map's own range
  map.forEach((row) => row.forEach((v) => { peak = Math.max(peak, v); low = Math.min(low, v); }));
  const range = peak - low;
  const small = document.createElement("canvas");
  small.width = w; small.height = h;
  const cells = small.getContext("2d").createImageData(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const k = 4 * (y * w + x), a = range > 1e-6 ? (map[y][x] - low) / range : 1;
    cells.data[k] = 0; cells.data[k + 1] = 0; cells.data[k + 2] = 0;
    cells.data[k + 3] = Math.round(200 * (1 - a));  // dark where the model did not look
  }
  small.getContext("2d").putImageData(cells, 0, 0);
  overlay.imageSmoothingEnabled = true;
  overlay.drawImage(small, 0, 0, side, side);
}

async function caption(file) {
  const base64 = await fileToBase64(file);
  const image = new Image();
  image.onload = () => {
    const s = Math.min(image.width, image.height);
    picture.drawImage(image, (image.width - s) / 2, (image.height - s) / 2, s, s, 0, 0, side, side);
  };
  image.src = "data:" + (file.type || "image/png") + ";base64," + base64;
  const results = await predict([base64], { beam: numberValue("beam") });
  if (!results) return;
  current = results[0];
  $("caption").textContent = current.caption || "(an empty caption)";
  $("attention-hint").textContent = current.attention
    ? "Point at a word to see where the model looked for it."
    : "This model has no attention (train with --attention to see where it looks).";
  $("words").replaceChildren(...current.words.map((word, i) => {
    const b = document.createElement("button");
    b.textContent = word;
    b.addEventListener("mouseenter", () => showMap(i));
    b.addEventListener("focus", () => showMap(i));
    b.addEventListener("click", () => showMap(i));
    return b;
  }));
  showMap(-1);
}
dropZone($("drop"), $("file"), caption);
