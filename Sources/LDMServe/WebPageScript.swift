// The script of `ldm serve`'s page (see WebPage.swift), first part: state, the form, the A1111 API
// calls, progress polling with previews (the mask brush, gallery and start-up: WebPageScriptMask.swift).
extension WebPage {
    static let script = scriptForm + "\n" + scriptMask

    static let scriptForm = #"""
<script>
'use strict';
const $ = (id) => document.getElementById(id);
const MASK_RGB = [255, 40, 90];
const state = {
  running: false, interrupted: false, startedAt: 0, pollToken: 0,
  models: [], samplers: [], model: '', lastSeed: null,
  initData: null, initSource: null, painting: false, px: 0, py: 0,
  results: [], historyBefore: null, galleryToken: 0, detail: null,
};

// ---- helpers ----
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const asDataURL = (b64) => (b64.startsWith('data:') ? b64 : 'data:image/png;base64,' + b64);
const round8 = (v) => Math.min(2048, Math.max(64, Math.round(v / 8) * 8));
const currentMode = () => document.querySelector('input[name=mode]:checked').value;

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function num(id, fallback) {
  const raw = $(id).value, v = Number(raw);
  return raw !== '' && Number.isFinite(v) ? v : fallback;
}

function setStatus(text) { $('status').textContent = text; }

function showError(message) {
  const line = String(message || '').replace(/\s+/g, ' ').trim();
  const box = $('error');
  box.textContent = line;
  box.title = line ? line + ' (click to dismiss)' : '';
  box.hidden = !line;
}
const clearError = () => showError('');

function formatSeconds(s) {
  if (!(s > 0)) return '';
  return s < 60 ? `${Math.ceil(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

// GET (no body) or POST JSON; a non-2xx answer throws its `detail` as one line.
async function api(path, body) {
  const init = body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  };
  let response;
  try { response = await fetch(path, init); } catch (e) { throw new Error(`Network error: ${e.message}`); }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    let why = (data && (data.detail || data.error)) || text.slice(0, 300) || response.statusText;
    if (typeof why !== 'string') why = JSON.stringify(why);
    throw new Error(`${why} (HTTP ${response.status})`);
  }
  return data;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error('Could not read that image.'));
    image.src = src;
  });
}

function readAsDataURL(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error || new Error('Could not read the file.'));
    reader.readAsDataURL(blob);
  });
}

// ---- models, samplers, form ----
function findModel(name) {
  if (!name) return null;
  return state.models.find((m) => m.title === name || m.model_name === name)
    || state.models.find((m) => m.title.startsWith(name)) || null;
}

function findSampler(name) {
  if (!name) return null;
  return state.samplers.find((s) => s.name === name || (s.aliases || []).includes(name)) || null;
}

async function loadModels() {
  const [models, options] = await Promise.all([api('/sdapi/v1/sd-models'), api('/sdapi/v1/options')]);
  state.models = Array.isArray(models) ? models : [];
  const select = $('model');
  select.replaceChildren(...state.models.map((m) => new Option(m.title, m.title)));
  const current = findModel(options && options.sd_model_checkpoint);
  if (current) select.value = current.title;
  state.model = select.value;
}

async function loadSamplers() {
  const samplers = await api('/sdapi/v1/samplers');
  state.samplers = Array.isArray(samplers) ? samplers : [];
  $('sampler').replaceChildren(...state.samplers.map((s) => new Option(s.name, s.name)));
  if (findSampler('Euler a')) $('sampler').value = 'Euler a';
}

// The selected model's own defaults (size, steps, guidance, sampler) from GET /ldm/defaults.
async function loadDefaults() {
  const d = await api('/ldm/defaults');
  if (!d) return;
  if (d.width) $('width').value = d.width;
  if (d.height) $('height').value = d.height;
  if (d.steps) $('steps').value = d.steps;
  if (d.cfg_scale) $('cfg').value = d.cfg_scale;
  if (d.sampler_name && findSampler(d.sampler_name)) $('sampler').value = d.sampler_name;
}

async function changeModel() {
  const select = $('model'), title = select.value;
  if (!title || title === state.model) return;
  select.disabled = true;
  setStatus(`Loading model ${title}…`);
  try {
    await api('/sdapi/v1/options', { sd_model_checkpoint: title });
    state.model = title;
    await loadDefaults();
    setStatus(`Model: ${title}`);
  } catch (e) {
    select.value = state.model;
    setStatus('');
    showError(`Could not switch model: ${e.message}`);
  } finally {
    select.disabled = state.running;
  }
}

// Fills the form from history fields or parsed parameters text (same keys as the API).
function fillForm(p) {
  const fields = { prompt: 'prompt', negative_prompt: 'negative', seed: 'seed', steps: 'steps',
    cfg_scale: 'cfg', width: 'width', height: 'height' };
  for (const [key, id] of Object.entries(fields)) if (p[key] != null) $(id).value = p[key];
  const sampler = findSampler(p.sampler_name);
  if (sampler) $('sampler').value = sampler.name;
  const model = findModel(p.model);
  if (model && model.title !== $('model').value) { $('model').value = model.title; changeModel(); }
  if (p.model && !model) setStatus(`Model “${p.model}” is not available; kept ${$('model').value}.`);
}

// A1111's parameters text: prompt lines, "Negative prompt: …" lines, then "Steps: 20, Sampler: …".
function parseInfotext(text) {
  const lines = text.trim().split('\n');
  const last = lines.pop() || '';
  const re = /\s*(\w[\w \-\/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/g;
  let pairs = [...last.matchAll(re)];
  if (pairs.length < 3) { lines.push(last); pairs = []; }
  const prompt = [], negative = [];
  let inNegative = false;
  for (const line of lines) {
    if (line.startsWith('Negative prompt:')) { inNegative = true; negative.push(line.slice(16).trim()); }
    else (inNegative ? negative : prompt).push(line);
  }
  const kv = Object.fromEntries(pairs.map((m) => [m[1].trim(), m[2].trim()]));
  const size = /^(\d+)x(\d+)$/.exec(kv.Size || '');
  return {
    prompt: prompt.join('\n').trim(), negative_prompt: negative.join('\n').trim(),
    steps: kv.Steps, sampler_name: kv.Sampler, cfg_scale: kv['CFG scale'], seed: kv.Seed, model: kv.Model,
    width: size ? size[1] : undefined, height: size ? size[2] : undefined,
  };
}

function onModeChange() {
  const mode = currentMode();
  $('init-section').hidden = mode === 'txt2img';
  $('mask-tools').hidden = mode !== 'inpaint';
  $('mask-canvas').hidden = mode !== 'inpaint' || !state.initData;
  $('brush-cursor').hidden = true;
}

function setMode(mode) {
  $('mode-' + mode).checked = true;
  onModeChange();
}

// ---- input image and mask ----
// The input is re-encoded as PNG at its own size; the mask canvas takes that size (which clears it).
async function setInit(src) {
  const image = await loadImage(src);
  const w = image.naturalWidth, h = image.naturalHeight;
  const canvas = el('canvas', { width: w, height: h });
  canvas.getContext('2d').drawImage(image, 0, 0);
  state.initData = canvas.toDataURL('image/png');
  state.initSource = src;
  $('init-image').src = state.initData;
  const mask = $('mask-canvas');
  mask.width = w;
  mask.height = h;
  $('stage').hidden = false;
  $('drop-hint').hidden = true;
  $('pnginfo').disabled = false;
  fitSize(w, h);
  $('init-info').textContent = `Input ${w}×${h}; output size set to ${$('width').value}×${$('height').value}.`;
  onModeChange();
}

// Output size: the input's aspect ratio, no larger than the current width/height budget, multiples of 8.
function fitSize(w, h) {
  const budget = Math.max(num('width', 512), num('height', 512));
  const scale = Math.min(1, budget / Math.max(w, h));
  $('width').value = round8(w * scale);
  $('height').value = round8(h * scale);
}

async function useFile(file) {
  if (!file) return;
  if (!file.type.startsWith('image/')) return showError(`${file.name} is not an image.`);
  try {
    clearError();
    await setInit(await readAsDataURL(file));
    if (currentMode() === 'txt2img') setMode('img2img');
  } catch (e) { showError(e.message); }
}

async function useAsInput(src) {
  try {
    clearError();
    await setInit(src);
    $('init-file').value = '';
    if (currentMode() === 'txt2img') setMode('img2img');
    $('init-section').scrollIntoView({ behavior: 'smooth', block: 'start' });
  } catch (e) { showError(e.message); }
}

// An image dropped anywhere but on a text field becomes the input (and switches txt2img to img2img).
function bindDrop(zone) {
  const textTarget = (e) => e.target.closest && e.target.closest('textarea, input:not([type=file])');
  zone.addEventListener('dragover', (e) => {
    if (textTarget(e)) return;
    e.preventDefault();
    $('stage-wrap').classList.add('dragover');
  });
  zone.addEventListener('dragleave', () => $('stage-wrap').classList.remove('dragover'));
  zone.addEventListener('drop', (e) => {
    if (textTarget(e)) return;
    e.preventDefault();
    $('stage-wrap').classList.remove('dragover');
    const file = e.dataTransfer.files[0];
    if (file) return useFile(file);
    const uri = (e.dataTransfer.getData('text/uri-list') || '').split('\n')[0].trim();
    if (uri) useAsInput(uri);
  });
}

async function readPngInfo() {
  const src = state.initSource;
  if (!src) return showError('Choose an image first.');
  try {
    const image = src.startsWith('data:') ? src : await readAsDataURL(await (await fetch(src)).blob());
    const data = await api('/sdapi/v1/png-info', { image });
    const text = (data && data.info) || '';
    $('init-info').textContent = text ? 'Parameters loaded from the image.' : 'This image carries no generation parameters.';
    if (text) fillForm(parseInfotext(text));
  } catch (e) { showError(e.message); }
}

const maskContext = () => $('mask-canvas').getContext('2d', { willReadFrequently: true });

// Pointer position in image pixels; `scale` converts screen pixels to image pixels.
function canvasPoint(e) {
  const canvas = $('mask-canvas'), r = canvas.getBoundingClientRect();
  const scale = canvas.width / r.width;
  return { x: (e.clientX - r.left) * scale, y: (e.clientY - r.top) * (canvas.height / r.height), scale };
}
"""#
}
