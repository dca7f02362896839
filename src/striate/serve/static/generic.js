// Any task without a page of its own: JSON in, JSON out, through the same API.
"use strict";
const describe = CONFIG.describe || {};
$("spec").textContent = `input: ${JSON.stringify(describe.input)}\n` +
  `options: ${JSON.stringify(describe.options)}`;

function parsed(id, what) {
  try { return JSON.parse($(id).value); }
  catch (e) { showError(`the ${what} are not JSON (${e.message})`); return undefined; }
}

async function run() {
  const inputs = parsed("inputs", "inputs");
  const options = parsed("options", "options");
  if (inputs === undefined || options === undefined) return;
  const results = await predict(inputs, options);
  if (results !== null) $("output").textContent = JSON.stringify(results, null, 2);
}
$("go").addEventListener("click", run);
