// Translation: each line is translated by beam search; the normalized log-probability of
// the best hypothesis is shown beside it, and, when the model attends, the attention matrix
// (rows: target words, columns: source words; darker = more weight).
"use strict";
const spec = CONFIG.describe.input;
document.querySelector("label[for=text]").textContent =
  `Sentences (${spec.source_language} → ${spec.target_language}), one per line`;
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// The matrix as SVG: one cell per (target word, source word), its weight as opacity.
function attentionMatrix(attention) {
  const cell = 26, left = 8 + 7.5 * Math.max(...attention.target.map((w) => w.length), 3);
  const top = 8 + 7.5 * Math.max(...attention.source.map((w) => w.length), 3);
  const width = left + cell * attention.source.length + top * 0.6, height = top + cell * attention.target.length;
  const chart = svg("svg", { class: "attention", width, height, viewBox: `0 0 ${width} ${height}`,
                              role: "img", "aria-label": "attention matrix" });
  attention.source.forEach((word, s) => {
    const x = left + s * cell + cell / 2;
    chart.append(svg("text", { class: "source", x, y: top - 6,
                               transform: `rotate(-60 ${x} ${top - 6})` }, word));
  });
  attention.target.forEach((word, t) => {
    chart.append(svg("text", { class: "target", x: left - 6, y: top + t * cell + cell / 2 + 4,
                               "text-anchor": "end" }, word));
    attention.weights[t].forEach((w, s) => {
      const rect = svg("rect", { class: "cell", x: left + s * cell, y: top + t * cell,
                                 width: cell - 1, height: cell - 1, "fill-opacity": 0.04 + 0.96 * w });
      rect.append(svg("title", {}, `${word} ← ${attention.source[s]}: ${w.toFixed(3)}`));
      chart.append(rect);
    });
  });
  return chart;
}

async function translate() {
  const lines = $("text").value.split("\n");
  const options = { beam: numberValue("beam"), length_penalty: numberValue("length_penalty"),
                    attention: true };
  const maxLength = numberValue("max_length");
  if (maxLength !== null) options.max_length = maxLength;
  const results = await predict(lines, options);
  if (!results) return;
  $("results").replaceChildren(...results.filter((r) => r.source.trim()).map((r) => {
    const box = document.createElement("div");
    box.className = "result";
    const src = document.createElement("div");
    src.className = "src"; src.textContent = r.source;
    const out = document.createElement("div");
    out.className = "big translation"; out.textContent = r.translation || "(an empty translation)";
    const score = document.createElement("div");
    score.className = "status"; score.textContent = `score ${r.score.toFixed(3)} (beam ${options.beam})`;
    box.append(src, out, score);
    if (r.attention && r.attention.weights) {
      if (r.attention.weights.length) box.append(attentionMatrix(r.attention));
    } else if (r.attention) {
      const note = document.createElement("div");
      note.className = "hint"; note.textContent = r.attention.note;
      box.append(note);
    }
    return box;
  }));
}
$("go").addEventListener("click", translate);
