// Sentiment: one text in, the label, its probability and every class's probability out.
"use strict";
async function classify() {
  const results = await predict($("text").value, {});
  if (!results) return;
  const row = results[0];
  $("label").textContent = `${row.label} · ${(100 * row.probability).toFixed(1)}%`;
  drawBars($("bars"), Object.entries(row.probabilities).sort((a, b) => b[1] - a[1]));
}
$("go").addEventListener("click", classify);
