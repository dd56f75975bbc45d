// The web page: talks to the same JSON API as any client (no build step, no external files).
"use strict";

const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
keyInput.value = sessionStorage.getItem("apiKey") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("apiKey", keyInput.value));

// POST a FormData to the API; resolves to the JSON body or throws an Error with the server's detail.
async function post(path, form) {
  const headers = keyInput.value ? { "X-API-Key": keyInput.value } : {};
  let response;
  try {
    response = await fetch(path, { method: "POST", body: form, headers });
  } catch (err) {
    throw new Error("the server cannot be reached");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { /* not JSON: handled below */ }
  if (response.status === 401) $("key-row").hidden = false;
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : response.statusText;
    throw new Error(`${detail} (HTTP ${response.status})`);
  }
  return body;
}

function showError(id, err) {
  $(id).textContent = err ? err.message : "";
  $(id).hidden = !err;
}

function bars(list, rows) {
  list.replaceChildren(...rows.map(([label, p]) => {
    const li = document.createElement("li");
    const pct = (100 * p).toFixed(1);
    li.innerHTML = '<span class="label"></span><span class="track"><span class="fill"></span></span><span class="value"></span>';
    li.querySelector(".label").textContent = label;
    li.querySelector(".fill").style.width = `${pct}%`;
    li.querySelector(".value").textContent = `${pct}%`;
    return li;
  }));
}

async function sampleFile(src) {
  const blob = await (await fetch(src)).blob();
  return new File([blob], src.split("/").pop(), { type: blob.type || "image/png" });
}

// ---- CAPTCHA ----------------------------------------------------------------------------
async function readCaptcha(file) {
  showError("captcha-error", null);
  $("captcha-result").hidden = true;
  const form = new FormData();
  form.append("image", file);
  try {
    const result = (await post("/v1/captcha/read", form)).results[0];
    await drawBoxes(file, result.characters);
    $("captcha-text").textContent = result.text || "(nothing read)";
    $("captcha-confidence").textContent = `confidence ${(100 * result.confidence).toFixed(1)}% · ${result.reader} reader · ${result.ms} ms`;
    bars($("captcha-chars"), result.characters.map((c) => [c.char, c.probability]));
    $("captcha-result").hidden = false;
  } catch (err) {
    showError("captcha-error", err);
  }
}

async function drawBoxes(file, characters) {
  const bitmap = await createImageBitmap(file);
  const canvas = $("captcha-canvas");
  const scale = Math.max(1, Math.min(3, 360 / bitmap.width));
  canvas.width = bitmap.width * scale;
  canvas.height = bitmap.height * scale;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  ctx.lineWidth = 2;
  ctx.font = `${Math.round(10 * scale)}px monospace`;
  for (const c of characters) {
    const [x0, y0, x1, y1] = c.box.map((v) => v * scale);
    ctx.strokeStyle = c.probability >= 0.9 ? "#1a8f3c" : "#d9822b";
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText(c.char, x0 + 2, Math.max(y0 - 3, 12));
  }
}

const drop = $("captcha-drop");
$("captcha-file").addEventListener("change", (e) => e.target.files[0] && readCaptcha(e.target.files[0]));
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) readCaptcha(e.dataTransfer.files[0]);
});
for (const button of $("captcha-samples").querySelectorAll("button")) {
  button.addEventListener("click", async () => readCaptcha(await sampleFile(button.dataset.src)));
}

// ---- VQA --------------------------------------------------------------------------------
let vqaImage = null;

function chooseVqaImage(file) {
  vqaImage = file;
  $("vqa-preview").src = URL.createObjectURL(file);
  $("vqa-preview").hidden = false;
  $("vqa-choose").textContent = file.name;
  showError("vqa-error", null);
}

$("vqa-file").addEventListener("change", (e) => e.target.files[0] && chooseVqaImage(e.target.files[0]));
for (const button of $("vqa-samples").querySelectorAll("button")) {
  button.addEventListener("click", async () => chooseVqaImage(await sampleFile(button.dataset.src)));
}
for (const chip of $("vqa-chips").querySelectorAll("button")) {
  chip.addEventListener("click", () => { $("vqa-question").value = chip.textContent; $("vqa-form").requestSubmit(); });
}

$("vqa-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  showError("vqa-error", null);
  $("vqa-answers").replaceChildren();
  if (!vqaImage) return showError("vqa-error", new Error("choose an image (or a sample) first"));
  const form = new FormData();
  form.append("image", vqaImage);
  form.append("question", $("vqa-question").value);
  form.append("top", "3");
  try {
    const result = (await post("/v1/vqa/answer", form)).results[0];
    bars($("vqa-answers"), result.answers.map((a) => [a.answer, a.probability]));
  } catch (err) {
    showError("vqa-error", err);
  }
});

// ---- which models the server holds ------------------------------------------------------
fetch("/healthz").then((r) => r.json()).then((health) => {
  const loaded = ["captcha", "vqa"].filter((k) => health[k]);
  $("status").textContent = `models loaded: ${loaded.join(" and ") || "none"}`;
  for (const kind of ["captcha", "vqa"]) {
    if (!health[kind]) {
      $(kind).classList.add("off");
      const note = document.createElement("p");
      note.className = "muted";
      note.textContent = `No ${kind === "vqa" ? "VQA" : "CAPTCHA"} model is loaded on this server.`;
      $(kind).querySelector("h2").after(note);
    }
  }
}).catch(() => { $("status").textContent = "the server cannot be reached"; });
