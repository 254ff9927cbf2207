// recolor's page: plain JavaScript, no libraries, and nothing loaded from anywhere but this server.
// The API it uses is listed in recolor/serve/app.py; scripts can use it the same way.
'use strict';

const $ = (selector, root = document) => root.querySelector(selector);
const token = new URLSearchParams(location.search).get('token');
const state = { health: null, cards: [] };
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
// The server says which suffixes, render factors and job states it has (GET /api/health): nothing restated here.
const isFilm = file => file.type.startsWith('video/') ||
  Boolean(state.health && state.health.suffixes.film.some(suffix => file.name.toLowerCase().endsWith(suffix)));

// ------------------------------------------------------------------------------------------ the server
function authHeaders() {
  return token ? { 'X-Recolor-Token': token } : {};
}

// For addresses the browser fetches by itself (EventSource, <video src>, downloads): no headers there.
function withToken(url) {
  return token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url;
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (e) { /* not JSON: say what we know */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

// POST a form. A busy server (503/429) is asked again after the time it names, a few times, so dropping many
// photos on a server that other people use too just waits.
async function postForm(url, form) {
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(url, { method: 'POST', body: form, headers: authHeaders() });
    if ((response.status === 503 || response.status === 429) && attempt < 10) {
      await sleep(Math.min(30, Number(response.headers.get('Retry-After')) || 2) * 1000);
      continue;
    }
    return response;
  }
}

function showBanner(text) {
  const banner = $('#banner');
  banner.textContent = text;
  banner.hidden = false;
}

function offline(text) {
  showBanner(text);
  $('#server').textContent = 'not connected';
  $('#server').classList.add('offline');
}

async function connect() {
  let response;
  try {
    response = await fetch('/api/health', { headers: authHeaders() });
  } catch (e) {
    offline('Cannot reach the recolor server: is it still running?');
    return;
  }
  if (!response.ok) {
    offline(await errorOf(response));
    return;
  }
  const health = state.health = await response.json();
  const select = $('#model');
  for (const model of health.models) {
    select.append(new Option(model.name, model.name, model.name === health.model, model.name === health.model));
  }
  setRange('rf', health.render_factor, health.render_factor.photo);
  setRange('film-rf', health.render_factor, health.render_factor.film);
  $('#pick').accept = health.suffixes.photo.join(',');
  $('#card-template').content.querySelector('.reference').accept = health.suffixes.photo.join(',');
  $('#film-file').accept = ['video/*', ...health.suffixes.film].join(',');
  $('#photo-suffixes').textContent = health.suffixes.photo.map(s => s.slice(1).toUpperCase()).join(', ');
  $('#server').textContent = `model ${health.model} · ${health.device} (${health.runtime})`;
  $('#version').textContent = health.version;
  document.body.dataset.ready = '1';
}

function setRange(id, { min, max }, value) {
  Object.assign($(`#${id}`), { min, max, value });
  $(`#${id}-value`).value = value;
}

function tooBig(bytes, limitMb) {
  return limitMb && bytes > limitMb * 1e6
    ? `too large: ${(bytes / 1e6).toFixed(1)} MB is over this server's limit of ${limitMb} MB` : null;
}

// ------------------------------------------------------------------------------------------ a work queue
// At most two photos in flight: the server colours one at a time, and the next one is uploaded meanwhile.
const pool = { running: 0, limit: 2, waiting: [] };

function schedule(task) {
  pool.waiting.push(task);
  pump();
}

function pump() {
  while (pool.running < pool.limit && pool.waiting.length) {
    const task = pool.waiting.shift();
    pool.running++;
    task().finally(() => {
      pool.running--;
      pump();
    });
  }
}

// ------------------------------------------------------------------------------------------ photos
function resultName(name) {
  const dot = name.lastIndexOf('.');
  return `${dot > 0 ? name.slice(0, dot) : name}_color.png`;
}

// The before | after block (index.html's compare-template), one copy in each card and one in the viewer.
function fillCompare(compare) {
  const parts = $('#compare-template').content.cloneNode(true);
  const slider = $('.slider', parts);
  compare.prepend(parts);
  compare.append(slider);  // last, over a card's hint points: a drag moves the split unless hints are on
}

function addPhoto(file) {
  const el = $('#card-template').content.firstElementChild.cloneNode(true);
  fillCompare($('.compare', el));
  const card = {
    file, el, points: [], reference: null, seq: 0, queued: false, removed: false, result: null,
    resultURL: null, beforeURL: URL.createObjectURL(file), noBefore: false,
    compare: $('.compare', el), before: $('.before', el), after: $('.after', el), slider: $('.slider', el),
    hintMode: $('.hint-mode', el), hintColor: $('.hint-color', el), download: $('.download', el),
  };
  $('.name', el).textContent = file.name;
  $('.name', el).title = file.name;
  card.compare.classList.add('no-result');
  card.before.addEventListener('error', () => {  // a format the browser cannot show (TIFF): gray the result
    if (card.before.src !== card.beforeURL) return;
    card.noBefore = true;
    card.compare.classList.add('no-before');  // no broken-image icon
    if (card.resultURL) showGrayBefore(card);
  });
  card.before.src = card.beforeURL;
  card.slider.addEventListener('input', () => setSplit(card, card.slider.value));
  card.hintMode.addEventListener('change', () => card.compare.classList.toggle('hinting', card.hintMode.checked));
  card.compare.addEventListener('click', event => addHint(card, event));
  $('.clear-hints', el).addEventListener('click', () => setPoints(card, []));
  $('.reference', el).addEventListener('change', event => {
    if (event.target.files.length) setReference(card, event.target.files[0]);
    event.target.value = '';
  });
  $('.clear-reference', el).addEventListener('click', () => setReference(card, null));
  $('.remove', el).addEventListener('click', () => removeCard(card));
  $('.enlarge', el).addEventListener('click', () => openViewer(card));
  el.card = card;
  $('#cards').append(el);
  state.cards.push(card);
  updateButtons();
  const problem = tooBig(file.size, state.health && state.health.limits.upload_mb);
  if (problem) {
    fail(card, problem);
    return;
  }
  requestRender(card);
}

function setSplit(card, percent) {
  card.after.style.clipPath = `inset(0 0 0 ${percent}%)`;
  $('.divider', card.el).style.left = `${percent}%`;
}

function showGrayBefore(card) {
  card.before.src = card.resultURL;
  card.before.classList.add('gray');
  card.compare.classList.remove('no-before');
}

// Render again with the current settings; renders asked for while one is running collapse into one.
function requestRender(card) {
  card.seq++;
  if (!card.queued) {
    card.queued = true;
    schedule(() => render(card));
  }
}

async function render(card) {
  card.queued = false;
  if (card.removed) return;
  const seq = card.seq;
  setStatus(card, 'colorizing…');
  card.el.dataset.state = 'pending';
  card.compare.classList.add('pending');
  const form = new FormData();
  form.append('file', card.file, card.file.name);
  form.append('render_factor', $('#rf').value);
  if ($('#model').value) form.append('model', $('#model').value);
  if (card.points.length) {
    form.append('hints', JSON.stringify({ points: card.points.map(({ x, y, color }) => ({ x, y, color })) }));
  }
  if (card.reference) form.append('reference', card.reference, card.reference.name);
  const started = performance.now();
  let blob = null, error = null;
  try {
    const response = await postForm('/api/colorize', form);
    if (response.ok) blob = await response.blob();
    else error = await errorOf(response);
  } catch (e) {
    error = `could not reach the server (${e.message})`;
  }
  if (card.removed || seq !== card.seq) return;  // settings changed meanwhile: the newer render shows
  card.compare.classList.remove('pending');
  if (error) fail(card, error);
  else showResult(card, blob, performance.now() - started);
}

function setStatus(card, text, kind = '') {
  const status = $('.status', card.el);
  status.textContent = text;
  status.className = `status ${kind}`;
}

function fail(card, message) {
  const error = $('.error', card.el);
  error.textContent = message;
  error.hidden = false;
  card.compare.classList.remove('pending');
  card.el.dataset.state = 'failed';
  setStatus(card, card.result ? 'previous result kept' : 'failed');
}

function showResult(card, blob, ms) {
  if (card.resultURL) URL.revokeObjectURL(card.resultURL);
  card.result = blob;
  card.resultURL = URL.createObjectURL(blob);
  card.after.src = card.resultURL;
  if (card.noBefore) showGrayBefore(card);
  card.compare.classList.remove('no-result');
  $('.error', card.el).hidden = true;
  card.download.href = card.resultURL;
  card.download.download = resultName(card.file.name);
  card.download.hidden = false;
  $('.enlarge', card.el).hidden = false;
  card.el.classList.add('has-result');
  setStatus(card, `done in ${(ms / 1000).toFixed(1)} s`, 'done');
  card.el.dataset.state = 'done';
  if (viewer.card === card) fillViewer(card);
  updateButtons();
}

// ------------------------------------------------------------------------------------------ full size
// One result as large as the window allows, with the same before | after slider; Esc or Close ends it.
const viewer = { card: null };

function fillViewer(card) {
  const dialog = $('#viewer');
  const before = $('.before', dialog), after = $('.after', dialog);
  before.src = card.before.src;
  before.classList.toggle('gray', card.before.classList.contains('gray'));
  after.src = card.resultURL;
  $('.compare', dialog).style.setProperty('--ratio', card.after.naturalWidth / card.after.naturalHeight || 1.5);
  $('#viewer-name').textContent = card.file.name;
  Object.assign($('.download', dialog), { href: card.resultURL, download: resultName(card.file.name) });
}

function openViewer(card) {
  viewer.card = card;
  fillViewer(card);
  const dialog = $('#viewer');
  $('.slider', dialog).value = card.slider.value;
  setSplit({ after: $('.after', dialog), el: dialog }, card.slider.value);
  dialog.showModal();
}

function wireViewer() {
  const dialog = $('#viewer');
  fillCompare($('.compare', dialog));
  const slider = $('.slider', dialog);
  slider.addEventListener('input', () => setSplit({ after: $('.after', dialog), el: dialog }, slider.value));
  $('.close', dialog).addEventListener('click', () => dialog.close());
  dialog.addEventListener('click', event => {  // a click on the backdrop, outside the dialog's box
    const box = dialog.getBoundingClientRect();
    const inside = event.clientX >= box.left && event.clientX <= box.right && event.clientY >= box.top &&
      event.clientY <= box.bottom;
    if (event.target === dialog && !inside) dialog.close();
  });
  dialog.addEventListener('close', () => { viewer.card = null; });
}

// A click on the photo in hint mode: "this spot was this colour", in the photo's own pixels.
function addHint(card, event) {
  if (!card.hintMode.checked || !card.result || event.target.classList.contains('point')) return;
  const box = card.after.getBoundingClientRect();
  const width = card.after.naturalWidth, height = card.after.naturalHeight;
  const x = Math.min(width - 1, Math.max(0, Math.floor((event.clientX - box.left) / box.width * width)));
  const y = Math.min(height - 1, Math.max(0, Math.floor((event.clientY - box.top) / box.height * height)));
  setPoints(card, [...card.points, { x, y, color: card.hintColor.value }]);
}

function setPoints(card, points) {
  card.points = points;
  const layer = $('.points', card.el);
  layer.replaceChildren();
  const width = card.after.naturalWidth || 1, height = card.after.naturalHeight || 1;
  points.forEach((point, i) => {
    const dot = document.createElement('button');
    dot.type = 'button';
    dot.className = 'point';
    dot.title = `${point.color} at ${point.x}, ${point.y}: click to remove`;
    dot.style.left = `${(point.x + 0.5) / width * 100}%`;
    dot.style.top = `${(point.y + 0.5) / height * 100}%`;
    dot.style.background = point.color;
    dot.addEventListener('click', event => {
      event.stopPropagation();
      setPoints(card, card.points.filter((_, j) => j !== i));
    });
    layer.append(dot);
  });
  $('.clear-hints', card.el).hidden = !points.length;
  requestRender(card);
  showRegions(card);
}

// The region each hint takes, as the server will hold it: a faint tint and outline over the photo.
async function showRegions(card) {
  const seq = card.regionSeq = (card.regionSeq || 0) + 1;
  let overlay = $('.regions', card.el);
  if (!card.points.length) {
    if (overlay) overlay.remove();
    return;
  }
  const form = new FormData();
  form.append('file', card.file, card.file.name);
  form.append('render_factor', $('#rf').value);
  form.append('hints', JSON.stringify({ points: card.points.map(({ x, y, color }) => ({ x, y, color })) }));
  let blob = null;
  try {
    const response = await postForm('/api/hint-regions', form);
    if (response.ok) blob = await response.blob();
  } catch (e) { /* only a preview: the colour result reports what went wrong */ }
  if (!blob || card.removed || seq !== card.regionSeq) return;
  if (!overlay) {
    overlay = document.createElement('img');
    overlay.className = 'regions';
    overlay.alt = '';
    Object.assign(overlay.style, { position: 'absolute', inset: '0', width: '100%', height: '100%',
      pointerEvents: 'none', opacity: '0.8' });
    $('.points', card.el).before(overlay);
  }
  if (overlay.src) URL.revokeObjectURL(overlay.src);
  overlay.src = URL.createObjectURL(blob);
}

function setReference(card, file) {
  card.reference = file;
  const clear = $('.clear-reference', card.el);
  clear.hidden = !file;
  clear.textContent = file ? `✕ reference: ${file.name}` : '';
  requestRender(card);
}

function removeCard(card) {
  card.removed = true;
  if (viewer.card === card) $('#viewer').close();
  URL.revokeObjectURL(card.beforeURL);
  if (card.resultURL) URL.revokeObjectURL(card.resultURL);
  card.el.remove();
  state.cards = state.cards.filter(c => c !== card);
  updateButtons();
}

function updateButtons() {
  $('#download-all').disabled = !state.cards.some(card => card.result);
  $('#clear').disabled = !state.cards.length;
}

// ------------------------------------------------------------------------------------------ ZIP of results
// A stored (uncompressed) ZIP: PNGs do not compress further, and this needs no library.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

async function zipOf(files) {  // [{name, blob}] -> Blob
  const parts = [], central = [];
  let offset = 0;
  for (const { name, blob } of files) {
    const data = new Uint8Array(await blob.arrayBuffer());
    const nameBytes = new TextEncoder().encode(name);
    const crc = crc32(data);
    const local = new DataView(new ArrayBuffer(30));
    [[0, 0x04034b50, 4], [4, 20, 2], [6, 0x0800, 2], [8, 0, 2], [10, 0, 2], [12, 0x21, 2], [14, crc, 4],
     [18, data.length, 4], [22, data.length, 4], [26, nameBytes.length, 2], [28, 0, 2]]
      .forEach(([at, value, size]) => size === 4 ? local.setUint32(at, value, true) : local.setUint16(at, value, true));
    const entry = new DataView(new ArrayBuffer(46));
    [[0, 0x02014b50, 4], [4, 20, 2], [6, 20, 2], [8, 0x0800, 2], [10, 0, 2], [12, 0, 2], [14, 0x21, 2],
     [16, crc, 4], [20, data.length, 4], [24, data.length, 4], [28, nameBytes.length, 2], [30, 0, 2], [32, 0, 2],
     [34, 0, 2], [36, 0, 2], [38, 0, 4], [42, offset, 4]]
      .forEach(([at, value, size]) => size === 4 ? entry.setUint32(at, value, true) : entry.setUint16(at, value, true));
    parts.push(local, nameBytes, data);
    central.push(entry, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const size = central.reduce((sum, part) => sum + part.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  [[0, 0x06054b50, 4], [8, files.length, 2], [10, files.length, 2], [12, size, 4], [16, offset, 4]]
    .forEach(([at, value, n]) => n === 4 ? end.setUint32(at, value, true) : end.setUint16(at, value, true));
  return new Blob([...parts, ...central, end], { type: 'application/zip' });
}

async function downloadAll() {
  const used = new Map();
  const files = state.cards.filter(card => card.result).map(card => {
    let name = resultName(card.file.name);
    const seen = used.get(name) || 0;
    used.set(name, seen + 1);
    if (seen) name = name.replace(/_color\.png$/, ` (${seen + 1})_color.png`);
    return { name, blob: card.result };
  });
  const url = URL.createObjectURL(await zipOf(files));
  const link = Object.assign(document.createElement('a'), { href: url, download: 'recolor_photos.zip' });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// ------------------------------------------------------------------------------------------ film
let filmFile = null;

function chooseFilm(file) {
  filmFile = file;
  $('#film-name').textContent = file.name;
  $('#film-go').disabled = false;
}

function startJob(file) {
  const el = $('#job-template').content.firstElementChild.cloneNode(true);
  const job = { el, id: null, upload: null, events: null, finished: false };
  $('.name', el).textContent = file.name;
  $('.cancel', el).addEventListener('click', () => removeJob(job));
  $('#jobs').prepend(el);
  const problem = tooBig(file.size, state.health && state.health.limits.film_mb);
  if (problem) return jobFailed(job, problem);
  const form = new FormData();
  form.append('file', file, file.name);
  form.append('render_factor', $('#film-rf').value);
  if ($('#model').value) form.append('model', $('#model').value);
  if ($('#film-start').value.trim()) form.append('start', $('#film-start').value.trim());
  if ($('#film-duration').value.trim()) form.append('duration', $('#film-duration').value.trim());
  // XMLHttpRequest, not fetch: it reports the upload's progress, which for a big film takes a while
  const upload = job.upload = new XMLHttpRequest();
  upload.open('POST', '/api/jobs');
  if (token) upload.setRequestHeader('X-Recolor-Token', token);
  upload.upload.addEventListener('progress', event => {
    if (event.lengthComputable) jobStatus(job, `uploading ${Math.round(100 * event.loaded / event.total)}%`);
  });
  upload.addEventListener('load', () => {
    job.upload = null;
    let body = {};
    try { body = JSON.parse(upload.responseText); } catch (e) { /* not JSON */ }
    if (upload.status !== 202) return jobFailed(job, body.error || `the server answered ${upload.status}`);
    job.id = body.id;
    follow(job);
  });
  upload.addEventListener('error', () => jobFailed(job, 'could not reach the server'));
  upload.send(form);
  jobStatus(job, 'uploading');
}

function follow(job) {
  const events = job.events = new EventSource(withToken(`/api/jobs/${job.id}/events`));
  events.addEventListener('message', event => showJob(job, JSON.parse(event.data)));
  events.addEventListener('error', () => {
    events.close();
    if (!job.finished) jobFailed(job, 'lost the connection to the server');
  });
}

function jobStatus(job, text, kind = '') {
  const status = $('.status', job.el);
  status.textContent = text;
  status.className = `status ${kind}`;
}

function showJob(job, s) {
  job.el.dataset.state = s.state;
  const progress = $('.progress', job.el);
  if (s.total) progress.value = s.done / s.total;
  if (s.state === 'queued') jobStatus(job, 'waiting for the film before it');
  if (s.state === 'running') jobStatus(job, s.total ? `frame ${s.done} of ${s.total}` : 'starting');
  if (!state.health.job_states.finished.includes(s.state)) return;
  job.finished = true;
  job.events.close();
  $('.cancel', job.el).textContent = 'Remove';
  if (s.state === 'failed') return jobFailed(job, s.error);
  if (s.state === 'cancelled') return jobStatus(job, 'cancelled');
  progress.value = 1;
  jobStatus(job, `done: ${s.done} frames`, 'done');
  const url = withToken(s.result);
  const video = $('.preview', job.el);
  video.src = url;
  video.hidden = false;
  const download = $('.download', job.el);
  download.href = url;
  download.download = resultName(s.name).replace(/\.png$/, '.mp4');
  download.hidden = false;
}

function jobFailed(job, message) {
  job.finished = true;
  job.el.dataset.state = 'failed';
  const error = $('.error', job.el);
  error.textContent = message;
  error.hidden = false;
  jobStatus(job, 'failed');
  $('.cancel', job.el).textContent = 'Remove';
}

function removeJob(job) {
  if (job.upload) job.upload.abort();
  if (job.events) job.events.close();
  if (job.id) fetch(`/api/jobs/${job.id}`, { method: 'DELETE', headers: authHeaders() }).catch(() => {});
  job.el.remove();
}

// ------------------------------------------------------------------------------------------ wiring
function addFiles(files) {
  for (const file of files) {
    if (isFilm(file)) {
      chooseFilm(file);
      $('#film').scrollIntoView({ behavior: 'smooth' });
    } else {
      addPhoto(file);
    }
  }
}

function wire() {
  $('#pick').addEventListener('change', event => {
    addFiles([...event.target.files]);
    event.target.value = '';
  });
  // Files dropped anywhere are taken (so the browser never opens them instead); one photo dropped on a photo
  // becomes its reference.
  document.addEventListener('dragover', event => {
    event.preventDefault();
    document.body.classList.add('dragging');
    document.querySelectorAll('.card.target').forEach(el => el.classList.remove('target'));
    const target = event.target.closest && event.target.closest('.card');
    if (target) target.classList.add('target');
  });
  document.addEventListener('dragleave', event => {
    if (!event.relatedTarget) document.body.classList.remove('dragging');
  });
  document.addEventListener('drop', event => {
    event.preventDefault();
    document.body.classList.remove('dragging');
    document.querySelectorAll('.card.target').forEach(el => el.classList.remove('target'));
    const files = [...event.dataTransfer.files];
    const target = event.target.closest && event.target.closest('.card');
    if (target && files.length === 1 && !isFilm(files[0])) setReference(target.card, files[0]);
    else addFiles(files);
  });
  $('#rf').addEventListener('input', () => { $('#rf-value').value = $('#rf').value; });
  $('#rf').addEventListener('change', () => state.cards.forEach(requestRender));
  $('#model').addEventListener('change', () => state.cards.forEach(requestRender));
  $('#download-all').addEventListener('click', downloadAll);
  $('#clear').addEventListener('click', () => [...state.cards].forEach(removeCard));
  $('#film-file').addEventListener('change', event => {
    if (event.target.files.length) chooseFilm(event.target.files[0]);
  });
  $('#film-rf').addEventListener('input', () => { $('#film-rf-value').value = $('#film-rf').value; });
  $('#film-form').addEventListener('submit', event => {
    event.preventDefault();
    if (filmFile) startJob(filmFile);
  });
}

wire();
wireViewer();
connect();
