// Text generator: POST /api/NAME/stream answers with server-sent events; each piece is
// appended as it arrives. Stop aborts the request, which stops the sampling on the server.
"use strict";
let controller = null;

function setRunning(running) {
  $("generate").disabled = running;
  $("stop").disabled = !running;
}

async function generate() {
  const options = { temperature: numberValue("temperature"), top_k: numberValue("top_k"),
                    length: numberValue("length") };
  const seed = numberValue("seed");
  if (seed !== null) options.seed = seed;
  const prime = $("prime").value;
  const output = $("output");
  output.replaceChildren();
  const bold = document.createElement("b");
  bold.textContent = prime;
  const text = document.createTextNode("");
  output.append(bold, text);
  showError("");
  controller = new AbortController();
  setRunning(true);
  const started = performance.now();
  let count = 0, firstAt = null;
  $("status").textContent = "sampling…";
  try {
    const response = await fetch(API + "/stream", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ inputs: prime, options: options }), signal: controller.signal,
    });
    if (!response.ok) { showError(await readError(response)); $("status").textContent = ""; return; }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        let event = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        const payload = data ? JSON.parse(data) : {};
        if (event === "error") { showError(payload.error); }
        else if (event === "done") { $("status").textContent = `done: ${count} characters`; }
        else if (payload.text !== undefined) {
          if (firstAt === null) firstAt = performance.now() - started;
          text.data += payload.text; count += payload.text.length;
          $("status").textContent = `streaming… ${count} characters ` +
            `(first after ${firstAt.toFixed(0)} ms)`;
        }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") $("status").textContent = `stopped after ${count} characters`;
    else showError(String(e));
  } finally {
    controller = null;
    setRunning(false);
  }
}

$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
