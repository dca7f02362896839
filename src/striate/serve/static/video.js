// Video: a clip in, one label per frame out, drawn as a strip (stronger colour: surer). Each
// label sits under its frame: a zip's images are unpacked here, in the order the server reads
// them (by name); a video file plays above the strip.
"use strict";
let playing = null;  // the object URL of the video file on show, released at the next clip

const IMAGE_TYPES = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif",
                      bmp: "image/bmp", webp: "image/webp", tif: "image/tiff", tiff: "image/tiff" };

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// The frame images of a zip, sorted by name like the server sorts them, as data: URLs;
// [] when this browser cannot unpack it (the labels still come from the server).
async function zipFrames(file) {
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const view = new DataView(bytes.buffer);
    let end = bytes.length - 22;  // the end of central directory record
    while (end >= 0 && view.getUint32(end, true) !== 0x06054b50) end--;
    if (end < 0) return [];
    const entries = [];
    for (let p = view.getUint32(end + 16, true), n = view.getUint16(end + 10, true); n > 0; n--) {
      if (view.getUint32(p, true) !== 0x02014b50) return [];
      const nameLength = view.getUint16(p + 28, true);
      entries.push({ name: new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLength)),
                     method: view.getUint16(p + 10, true), size: view.getUint32(p + 20, true),
                     offset: view.getUint32(p + 42, true) });
      p += 46 + nameLength + view.getUint16(p + 30, true) + view.getUint16(p + 32, true);
    }
    const frames = entries.filter((e) => !e.name.endsWith("/") &&
                                         !e.name.split("/").pop().startsWith("."));
    frames.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return await Promise.all(frames.map(async (e) => {
      const start = e.offset + 30 + view.getUint16(e.offset + 26, true) +
                    view.getUint16(e.offset + 28, true);
      const type = IMAGE_TYPES[e.name.split(".").pop().toLowerCase()] || "image/png";
      const data = new Blob([bytes.subarray(start, start + e.size)], { type });
      if (e.method === 0) return dataUrl(data);
      if (e.method !== 8) throw new Error("unsupported zip method");
      const stream = data.stream().pipeThrough(new DecompressionStream("deflate-raw"));
      return dataUrl(new Blob([await new Response(stream).arrayBuffer()], { type }));
    }));
  } catch (e) {
    return [];
  }
}

async function label(file) {
  $("status").textContent = `labelling ${file.name}…`;
  if (playing) URL.revokeObjectURL(playing);
  const isZip = file.name.toLowerCase().endsWith(".zip");
  const playable = !isZip && !file.name.toLowerCase().endsWith(".gif");
  playing = playable ? URL.createObjectURL(file) : null;
  $("player").hidden = !playable;
  if (playable) $("player").src = playing;
  const frames = isZip ? await zipFrames(file) : [];
  const base64 = await fileToBase64(file);
  const inputs = isZip ? { zip: base64 } : { video: base64, name: file.name };
  const results = await predict(inputs, {});
  if (!results) { $("status").textContent = ""; return; }
  $("status").textContent = `${results.frames.length} frames of ${file.name}`;
  const pictures = frames.length === results.frames.length ? frames : [];
  $("strip").replaceChildren(...results.frames.map((f, i) => {
    const box = document.createElement("div");
    box.className = "frame";
    box.style.background = `rgba(53, 89, 224, ${(0.08 + 0.5 * f.probability).toFixed(2)})`;
    const n = document.createElement("div"); n.className = "n"; n.textContent = `#${f.frame}`;
    box.append(n);
    if (pictures[i]) {
      const picture = document.createElement("img");
      picture.src = pictures[i]; picture.alt = `frame ${f.frame}`;
      box.append(picture);
    }
    const l = document.createElement("div"); l.className = "label"; l.textContent = f.label;
    const p = document.createElement("div"); p.textContent = (100 * f.probability).toFixed(0) + "%";
    box.append(l, p);
    return box;
  }));
}
dropZone($("drop"), $("file"), label);
