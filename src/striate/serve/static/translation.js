// Translation: each line is translated by beam search; the normalized log-probability of
// the best hypothesis is shown beside it.
"use strict";
const spec = CONFIG.describe.input;
document.querySelector("label[for=text]").textContent =
  `Sentences (${spec.source_language} → ${spec.target_language}), one per line`;

async function translate() {
  const lines = $("text").value.split("\n");
  const options = { beam: numberValue("beam"), length_penalty: numberValue("length_penalty") };
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
    return box;
  }));
}
$("go").addEventListener("click", translate);
