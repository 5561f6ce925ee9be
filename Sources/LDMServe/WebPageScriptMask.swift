// The script of `ldm serve`'s page, second part: the mask brush, the gallery and start-up.
extension WebPage {
    static let scriptMask = #"""
function brushStyle(ctx, scale) {
  ctx.globalCompositeOperation = $('erase').checked ? 'destination-out' : 'source-over';
  ctx.strokeStyle = ctx.fillStyle = `rgb(${MASK_RGB.join(',')})`;
  ctx.lineWidth = num('brush', 40) * scale;
  ctx.lineCap = ctx.lineJoin = 'round';
}

function paintStart(e) {
  if (e.button !== 0 || !state.initData) return;
  e.preventDefault();
  $('mask-canvas').setPointerCapture(e.pointerId);
  const p = canvasPoint(e), ctx = maskContext();
  brushStyle(ctx, p.scale);
  ctx.beginPath();
  ctx.arc(p.x, p.y, ctx.lineWidth / 2, 0, Math.PI * 2);
  ctx.fill();
  Object.assign(state, { painting: true, px: p.x, py: p.y });
}

function paintMove(e) {
  moveCursor(e);
  if (!state.painting) return;
  const p = canvasPoint(e), ctx = maskContext();
  brushStyle(ctx, p.scale);
  ctx.beginPath();
  ctx.moveTo(state.px, state.py);
  ctx.lineTo(p.x, p.y);
  ctx.stroke();
  Object.assign(state, { px: p.x, py: p.y });
}

function paintEnd() { state.painting = false; }

function moveCursor(e) {
  const cursor = $('brush-cursor'), r = $('stage').getBoundingClientRect(), size = num('brush', 40);
  Object.assign(cursor.style, {
    left: `${e.clientX - r.left}px`, top: `${e.clientY - r.top}px`, width: `${size}px`, height: `${size}px`,
  });
  cursor.hidden = false;
}

function clearMask() {
  const canvas = $('mask-canvas');
  maskContext().clearRect(0, 0, canvas.width, canvas.height);
}

function invertMask() {
  const canvas = $('mask-canvas'), ctx = maskContext();
  if (!canvas.width) return;
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const d = pixels.data;
  for (let i = 0; i < d.length; i += 4) {
    d[i] = MASK_RGB[0]; d[i + 1] = MASK_RGB[1]; d[i + 2] = MASK_RGB[2];
    d[i + 3] = 255 - d[i + 3];
  }
  ctx.putImageData(pixels, 0, 0);
}

// The mask as sent: a black/white PNG of the input's size, white where painted; null if nothing is.
function maskDataURL() {
  const canvas = $('mask-canvas'), w = canvas.width, h = canvas.height;
  if (!w || !h) return null;
  const src = maskContext().getImageData(0, 0, w, h).data;
  const out = new ImageData(w, h);
  let painted = false;
  for (let i = 0; i < src.length; i += 4) {
    const v = src[i + 3] >= 128 ? 255 : 0;
    out.data[i] = out.data[i + 1] = out.data[i + 2] = v;
    out.data[i + 3] = 255;
    if (v) painted = true;
  }
  if (!painted) return null;
  const bw = el('canvas', { width: w, height: h });
  bw.getContext('2d').putImageData(out, 0, 0);
  return bw.toDataURL('image/png');
}

// ---- generation ----
function labelOf(input) {
  return input.labels && input.labels[0] ? input.labels[0].textContent.replace(/:.*$/, '').trim() : input.id;
}

function buildRequest() {
  const mode = currentMode();
  const inputs = [...$('form').elements];
  if (mode !== 'txt2img') inputs.push($('strength'));
  if (mode === 'inpaint') inputs.push($('mask-blur'));
  const bad = inputs.find((input) => input.willValidate && !input.checkValidity());
  if (bad) { bad.focus(); throw new Error(`${labelOf(bad)}: ${bad.validationMessage}`); }
  const body = {
    prompt: $('prompt').value, negative_prompt: $('negative').value,
    sampler_name: $('sampler').value, steps: num('steps', 20), cfg_scale: num('cfg', 7),
    seed: num('seed', -1), width: num('width', 512), height: num('height', 512),
    batch_size: num('batch', 1), n_iter: 1,
  };
  if ($('model').value) body.override_settings = { sd_model_checkpoint: $('model').value };
  if (mode === 'txt2img') return { path: '/sdapi/v1/txt2img', body };
  if (!state.initData) throw new Error('Choose an input image first (a file, a dropped image, or “Use as input” on a result).');
  body.init_images = [state.initData];
  body.denoising_strength = num('strength', 0.75);
  if (mode === 'inpaint') {
    const mask = maskDataURL();
    if (!mask) throw new Error('Paint over the part of the image to repaint first.');
    Object.assign(body, { mask, mask_blur: num('mask-blur', 4), inpainting_fill: 1, inpainting_mask_invert: 0 });
  }
  return { path: '/sdapi/v1/img2img', body };
}

function setRunning(on) {
  state.running = on;
  $('generate').disabled = on;
  $('interrupt').disabled = !on;
  $('model').disabled = on;
  $('output').setAttribute('aria-busy', String(on));
  $('result').classList.toggle('stale', on);
  if (on) {
    Object.assign(state, { startedAt: performance.now(), interrupted: false, pollToken: state.pollToken + 1 });
    $('progress').value = 0;
    $('progress-text').textContent = 'Starting…';
    setStatus('Generating…');
  } else {
    $('preview').hidden = true;
    $('preview').removeAttribute('src');
    setStatus('');
  }
}

function updateProgress(p) {
  if (!state.running || !p) return;
  const s = p.state || {}, fraction = Math.min(1, Math.max(0, p.progress || 0));
  $('progress').value = fraction;
  const parts = [`${Math.round(fraction * 100)}%`];
  if (s.sampling_steps) parts.push(`step ${s.sampling_step}/${s.sampling_steps}`);
  if (s.job_count > 1) parts.push(`batch ${Math.min(s.job_no + 1, s.job_count)}/${s.job_count}`);
  const eta = formatSeconds(p.eta_relative);
  if (eta) parts.push(`ETA ${eta}`);
  if (p.textinfo) parts.push(p.textinfo);
  $('progress-text').textContent = parts.join(' · ');
  if (p.current_image) {
    $('preview').src = asDataURL(p.current_image);
    $('preview').hidden = false;
  }
}

async function pollProgress() {
  const token = state.pollToken;
  while (state.running && token === state.pollToken) {
    try {
      const p = await api('/sdapi/v1/progress?skip_current_image=false');
      if (token === state.pollToken) updateProgress(p);
    } catch { /* a missed poll is harmless; the generate request reports real failures */ }
    await sleep(500);
  }
}

async function generate() {
  if (state.running) return;
  clearError();
  let request;
  try { request = buildRequest(); } catch (e) { return showError(e.message); }
  setRunning(true);
  pollProgress();
  try {
    const data = await api(request.path, request.body);
    showResults(data);
    const secs = ((performance.now() - state.startedAt) / 1000).toFixed(1);
    $('progress').value = state.interrupted ? $('progress').value : 1;
    $('progress-text').textContent = state.interrupted ? `Interrupted after ${secs} s` : `Done in ${secs} s`;
    loadGallery(true);
  } catch (e) {
    $('progress-text').textContent = 'Failed';
    showError(e.message);
  } finally {
    setRunning(false);
  }
}

async function interrupt() {
  $('interrupt').disabled = true;
  state.interrupted = true;
  try {
    await api('/sdapi/v1/interrupt', {});
    setStatus('Interrupting after the current step…');
  } catch (e) {
    showError(e.message);
    $('interrupt').disabled = !state.running;
  }
}

// `info` is a JSON string in A1111's answer; accept an object too.
function parseInfo(info) {
  if (!info) return {};
  if (typeof info === 'object') return info;
  try { return JSON.parse(info); } catch { return { infotexts: [String(info)] }; }
}

function showResults(data) {
  const info = parseInfo(data && data.info);
  const texts = info.infotexts || [], seeds = info.all_seeds || [];
  state.results = ((data && data.images) || []).map((image, i) => ({
    src: asDataURL(image), params: texts[i] || texts[0] || '', seed: seeds[i] ?? info.seed ?? null,
  }));
  const box = $('result');
  box.classList.toggle('single', state.results.length === 1);
  box.replaceChildren(...state.results.map(resultFigure));
  if (state.results.length) selectResult(0);
  else $('result-params').textContent = '';
}

function resultFigure(result, i) {
  const label = `Result ${i + 1}` + (result.seed != null ? `, seed ${result.seed}` : '');
  const image = el('img', { src: result.src, alt: label, tabIndex: 0, title: 'Show its parameters' });
  image.addEventListener('click', () => selectResult(i));
  image.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); selectResult(i); }
  });
  const use = el('button', { type: 'button', textContent: 'Use as input' });
  use.addEventListener('click', () => useAsInput(result.src));
  const download = el('a', { className: 'button', href: result.src, download: `ldm-${result.seed ?? i + 1}.png`, textContent: 'Download' });
  const caption = el('figcaption', {}, el('span', { textContent: result.seed != null ? `Seed ${result.seed}` : `Image ${i + 1}` }), download, use);
  return el('figure', {}, image, caption);
}

function selectResult(i) {
  const result = state.results[i];
  [...$('result').children].forEach((fig, j) => fig.classList.toggle('selected', j === i && state.results.length > 1));
  $('result-params').textContent = result ? result.params : '';
  if (result && result.seed != null && Number(result.seed) !== -1) {
    state.lastSeed = result.seed;
    $('seed-reuse').disabled = false;
  }
}

// ---- history gallery ----
async function loadGallery(reset) {
  const token = ++state.galleryToken;
  const before = reset ? null : state.historyBefore;
  const more = $('gallery-more');
  more.disabled = true;
  try {
    const query = before != null ? `&before=${encodeURIComponent(before)}` : '';
    const data = await api('/ldm/history?limit=60' + query);
    if (token !== state.galleryToken) return;
    const gallery = $('gallery'), thumbs = ((data && data.items) || []).map(thumbnail);
    if (reset) gallery.replaceChildren(...thumbs);
    else gallery.append(...thumbs);
    state.historyBefore = data && data.next_before != null ? data.next_before : null;
    more.hidden = state.historyBefore == null;
    $('gallery-empty').hidden = gallery.children.length > 0;
  } catch (e) {
    showError(`History: ${e.message}`);
  } finally {
    more.disabled = false;
  }
}

function thumbnail(item) {
  const button = el('button', { type: 'button', className: 'thumb', title: item.prompt || '' },
    el('img', { src: item.image, alt: '', loading: 'lazy' }));
  button.dataset.id = item.id;
  button.setAttribute('aria-label', `${item.kind || 'image'} ${item.id}: ${item.prompt || 'no prompt'}`);
  button.addEventListener('click', () => openDetail(item));
  return button;
}

function openDetail(item) {
  state.detail = item;
  const when = item.created ? new Date(item.created).toLocaleString() : '';
  $('detail-title').textContent = [`#${item.id}`, item.kind, when].filter(Boolean).join(' · ');
  $('detail-img').src = item.image;
  $('detail-img').alt = item.prompt || 'Generated image';
  $('detail-params').textContent = item.parameters || item.prompt || '';
  $('detail-download').href = item.image;
  $('detail-download').download = item.image.split('/').pop();
  $('detail').showModal();
}

function reuseDetail() {
  const item = state.detail;
  if (!item) return;
  fillForm(item);
  $('detail').close();
  $('prompt').focus();
  setStatus(`Parameters of #${item.id} loaded.`);
}

// ---- wiring ----
function bind() {
  $('form').addEventListener('submit', (e) => { e.preventDefault(); generate(); });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); generate(); }
  });
  $('interrupt').addEventListener('click', interrupt);
  $('model').addEventListener('change', changeModel);
  $('seed-random').addEventListener('click', () => { $('seed').value = -1; });
  $('seed-reuse').addEventListener('click', () => { if (state.lastSeed != null) $('seed').value = state.lastSeed; });
  $('swap-size').addEventListener('click', () => {
    const w = $('width').value;
    $('width').value = $('height').value;
    $('height').value = w;
  });
  for (const id of ['width', 'height']) {
    $(id).addEventListener('change', () => { $(id).value = round8(num(id, 512)); });
  }
  document.querySelectorAll('input[name=mode]').forEach((radio) => radio.addEventListener('change', onModeChange));
  $('init-file').addEventListener('change', () => useFile($('init-file').files[0]));
  bindDrop(document);
  $('pnginfo').addEventListener('click', readPngInfo);
  $('strength').addEventListener('input', () => { $('strength-value').value = num('strength', 0.75).toFixed(2); });
  $('brush').addEventListener('input', () => { $('brush-value').value = $('brush').value; });
  const mask = $('mask-canvas');
  mask.addEventListener('pointerdown', paintStart);
  mask.addEventListener('pointermove', paintMove);
  mask.addEventListener('pointerup', paintEnd);
  mask.addEventListener('pointercancel', paintEnd);
  mask.addEventListener('pointerleave', () => { $('brush-cursor').hidden = true; });
  $('mask-clear').addEventListener('click', clearMask);
  $('mask-invert').addEventListener('click', invertMask);
  $('gallery-more').addEventListener('click', () => loadGallery(false));
  $('gallery-refresh').addEventListener('click', () => loadGallery(true));
  $('detail-close').addEventListener('click', () => $('detail').close());
  $('detail').addEventListener('click', (e) => {
    const r = $('detail').getBoundingClientRect();
    const outside = e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom;
    if (e.target === $('detail') && outside) $('detail').close();
  });
  $('detail-reuse').addEventListener('click', reuseDetail);
  $('detail-use').addEventListener('click', () => {
    const src = state.detail && state.detail.image;
    $('detail').close();
    if (src) useAsInput(src);
  });
  $('error').addEventListener('click', clearError);
}

async function start() {
  bind();
  onModeChange();
  setStatus('Loading…');
  const outcomes = await Promise.allSettled([loadModels(), loadSamplers(), loadGallery(true)]);
  outcomes.push(...await Promise.allSettled([loadDefaults()]));
  const failed = outcomes.find((o) => o.status === 'rejected');
  setStatus('');
  if (failed) showError(failed.reason.message);
}

start();
</script>
</body>
</html>
"""#
}
