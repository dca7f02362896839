// Video: a clip in, one label per frame out, drawn as a strip (stronger colour: surer).
"use strict";
async function label(file) {
  $("status").textContent = `labelling ${file.name}…`;
  const base64 = await fileToBase64(file);
  const inputs = file.name.toLowerCase().endsWith(".zip")
    ? { zip: base64 } : { video: base64, name: file.name };
  const results = await predict(inputs, {});
  if (!results) { $("status").textContent = ""; return; }
  $("status").textContent = `${results.frames.length} frames of ${file.name}`;
  $("strip").replaceChildren(...results.frames.map((f) => {
    const box = document.createElement("div");
    box.className = "frame";
    box.style.background = `rgba(53, 89, 224, ${(0.08 + 0.5 * f.probability).toFixed(2)})`;
    const n = document.createElement("div"); n.className = "n"; n.textContent = `#${f.frame}`;
    const l = document.createElement("div"); l.className = "label"; l.textContent = f.label;
    const p = document.createElement("div"); p.textContent = (100 * f.probability).toFixed(0) + "%";
    box.append(n, l, p);
    return box;
  }));
}
dropZone($("drop"), $("file"), label);
