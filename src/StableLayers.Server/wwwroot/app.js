// StableLayers page: upload, follow the job, inspect and recomposite the layers, download. No libraries, no network
// beyond this server. Recent jobs are the ids this browser created (kept in localStorage): the server never lists ids.
'use strict';

const $ = (id) => document.getElementById(id);
const RECENT_KEY = 'stable-layers.recent';
const POLL_MS = 500;
let info = null;
let chosenFile = null;
let current = null;        // id of the job shown
let pollTimer = null;
let layerImages = [];      // HTMLImageElement per layer, bottom first
let visible = [];

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  const type = response.headers.get('content-type') || '';
  if (type.includes('json')) body = await response.json();
  if (!response.ok) {
    const error = new Error(body && body.error ? body.error : `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function showMessage(text) {
  const m = $('message');
  m.textContent = text || '';
  m.hidden = !text;
}

function fmt(x, digits = 2) {
  return typeof x === 'number' ? x.toFixed(digits) : '–';
}

async function loadInfo() {
  info = await api('/api/info');
  const select = $('layers');
  select.innerHTML = '';
  const options = [['auto', 'auto: the judge ranks 2..8'], ['auto-count', 'auto: count distinct layers (faster)']];
  for (let n = info.min_layers; n <= info.max_layers; n++) options.push([String(n), String(n)]);
  for (const [value, text] of options) {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    select.appendChild(o);
  }
  select.value = '4';
  $('steps').max = info.max_steps;
  $('steps').value = Math.min(20, info.max_steps);
  renderInfo();
}

function renderInfo() {
  if (!info) return;
  const q = info.queue;
  $('info').textContent = `model ${info.model} · judge ${info.judge} · ${q.running}/${q.max_running} running, ${q.queued} waiting`;
}

function pickFile(file) {
  if (!file) return;
  showMessage('');
  if (info && file.size > info.max_upload_bytes) {
    showMessage(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB, over the server's limit of ${(info.max_upload_bytes / 1048576).toFixed(1)} MB`);
    return;
  }
  chosenFile = file;
  const preview = $('drop-preview');
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $('drop-text').textContent = file.name;
  $('start').disabled = false;
}

function setupUpload() {
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    pickFile(e.dataTransfer.files[0]);
  });
  drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') $('file').click(); });
  $('file').addEventListener('change', (e) => pickFile(e.target.files[0]));
  $('settings').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!chosenFile) return;
    const form = new FormData();
    form.append('image', chosenFile, chosenFile.name);
    const layers = $('layers').value;
    form.append('layers', layers.startsWith('auto') ? 'auto' : layers);
    if (layers.startsWith('auto')) form.append('auto_method', layers === 'auto-count' ? 'count' : 'judge');
    form.append('seed', $('seed').value || '0');
    form.append('steps', $('steps').value || '20');
    $('start').disabled = true;
    showMessage('');
    try {
      const job = await api('/api/jobs', { method: 'POST', body: form });
      remember(job);
      showJob(job.id);
    } catch (err) {
      showMessage(err.message);
    } finally {
      $('start').disabled = false;
    }
  });
  $('cancel').addEventListener('click', async () => {
    if (!current) return;
    try {
      render(await api(`/api/jobs/${current}/cancel`, { method: 'POST' }));
    } catch (err) {
      showMessage(err.message);
    }
  });
}

function recentList() {
  try { return JSON.parse(localStorage.getItem(RECENT_KEY) || '[]'); } catch { return []; }
}

function remember(job) {
  const list = recentList().filter((j) => j.id !== job.id);
  list.unshift({ id: job.id, name: job.input.name, created: job.created });
  localStorage.setItem(RECENT_KEY, JSON.stringify(list.slice(0, 20)));
  renderRecent();
}

async function renderRecent() {
  const ul = $('recent');
  const list = recentList();
  ul.innerHTML = list.length ? '' : '<li class="muted">No jobs yet.</li>';
  for (const entry of list) {
    const li = document.createElement('li');
    li.dataset.id = entry.id;
    const thumb = document.createElement('img');
    thumb.alt = '';
    const link = document.createElement('a');
    link.textContent = entry.name;
    link.addEventListener('click', () => showJob(entry.id));
    const status = document.createElement('span');
    status.className = 'muted';
    status.textContent = new Date(entry.created).toLocaleTimeString();
    li.append(thumb, link, status);
    ul.appendChild(li);
    try {
      const job = await api(`/api/jobs/${entry.id}`);
      thumb.src = job.input.url;
      const n = job.result ? ` · ${job.result.layers.length} layers` : '';
      status.textContent = `${job.status}${n} · ${new Date(job.created).toLocaleTimeString()}`;
    } catch {
      status.textContent = 'forgotten by the server';
      link.replaceWith(document.createTextNode(entry.name));
    }
  }
}

function showJob(id) {
  current = id;
  layerImages = [];
  $('job-panel').hidden = false;
  $('result').hidden = true;
  $('job-panel').dataset.status = '';
  clearTimeout(pollTimer);
  poll();
}

async function poll() {
  const id = current;
  try {
    const job = await api(`/api/jobs/${id}`);
    if (id !== current) return;
    render(job);
    if (job.status === 'queued' || job.status === 'running') {
      pollTimer = setTimeout(poll, POLL_MS);
    } else {
      renderRecent();
    }
  } catch (err) {
    if (id !== current) return;
    $('job-status').textContent = err.status === 404 ? 'forgotten' : 'error';
    $('progress-text').textContent = err.message;
    $('job-panel').dataset.status = 'error';
  }
  try { info = await api('/api/info'); renderInfo(); } catch { /* the page keeps working without the counters */ }
}

function render(job) {
  $('job-title').textContent = `${job.input.name} (${job.input.width}×${job.input.height}, layers ${job.layers}, seed ${job.seed}, ${job.steps} steps)`;
  const status = $('job-status');
  status.textContent = job.status;
  status.className = `status ${job.status}`;
  $('cancel').hidden = !(job.status === 'queued' || job.status === 'running');
  const bar = $('progress');
  let text = '';
  if (job.status === 'queued') {
    bar.removeAttribute('value');
    text = job.queue_position === 0 ? 'next in line' : `waiting: ${job.queue_position} job(s) ahead`;
  } else if (job.status === 'running') {
    const p = job.progress;
    if (p && p.total > 0) {
      bar.max = p.total;
      bar.value = p.done;
      text = `${p.phase}: ${p.done} / ${p.total}`;
    } else {
      bar.removeAttribute('value');
      text = 'starting';
    }
  } else {
    bar.max = 1;
    bar.value = job.status === 'done' ? 1 : 0;
    text = job.status === 'done' ? `done in ${fmt(job.seconds, 1)} s` : (job.error || job.status);
  }
  $('progress-text').textContent = text;
  if (job.status === 'done' && job.result && $('job-panel').dataset.status !== 'done') {
    renderResult(job);
  }
  if (job.status !== 'done') $('job-panel').dataset.status = job.status;
}

async function renderResult(job) {
  const r = job.result;
  $('input-image').src = job.input.url;
  $('judge-name').textContent = r.scores.judge;
  const tbody = $('scores').querySelector('tbody');
  tbody.innerHTML = '';
  for (const key of r.scores.criteria) {
    const tr = document.createElement('tr');
    const name = document.createElement('td');
    name.textContent = key.replaceAll('_', ' ');
    const p1 = document.createElement('td');
    p1.className = 'num';
    p1.textContent = fmt(r.scores.phase1 && r.scores.phase1[key]);
    const p2 = document.createElement('td');
    p2.className = 'num';
    p2.textContent = fmt(r.scores.calibrated && r.scores.calibrated[key]);
    tr.append(name, p1, p2);
    tbody.appendChild(tr);
  }
  $('reward').textContent = r.scores.error ? `judge: ${r.scores.error}` : `reward ${fmt(r.scores.reward, 3)}`;
  const auto = $('auto');
  auto.hidden = !r.auto;
  if (r.auto) {
    const tried = r.auto.candidates.map((c) => (c.distinct_layers == null
      ? `${c.layers}: reward ${fmt(c.reward, 3)}`
      : `${c.layers}: ${c.distinct_layers} distinct`)).join(', ');
    auto.textContent = `auto chose ${r.auto.chosen} layers of ${r.auto.min_layers}..${r.auto.max_layers} (method ${r.auto.method}; ${tried})`;
  }
  $('dl-psd').href = r.downloads.psd;
  $('dl-ora').href = r.downloads.ora;
  $('dl-zip').href = r.downloads.zip;

  const list = $('layers-list');
  list.innerHTML = '';
  layerImages = [];
  visible = r.layers.map(() => true);
  const loads = [];
  for (const layer of r.layers) {
    const card = document.createElement('div');
    card.className = 'layer';
    const img = document.createElement('img');
    img.className = 'checker';
    img.alt = layer.name;
    img.src = layer.url;
    loads.push(img.decode());
    layerImages.push(img);
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = true;
    box.className = 'layer-toggle';
    box.dataset.index = String(layer.index);
    box.addEventListener('change', () => {
      visible[layer.index] = box.checked;
      card.classList.toggle('hidden-layer', !box.checked);
      recomposite();
    });
    label.append(box, document.createTextNode(`${layer.index}: ${layer.name}`));
    card.append(img, label);
    list.appendChild(card);
  }
  const canvas = $('composite');
  canvas.width = r.width;
  canvas.height = r.height;
  await Promise.all(loads);
  $('result').hidden = false;
  recomposite();
  $('job-panel').dataset.status = 'done';
}

// Source-over of the visible layers, bottom first, as the server composites them.
function recomposite() {
  const canvas = $('composite');
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  layerImages.forEach((img, i) => { if (visible[i]) ctx.drawImage(img, 0, 0, canvas.width, canvas.height); });
  canvas.dataset.renders = String(Number(canvas.dataset.renders || 0) + 1);
}

document.addEventListener('DOMContentLoaded', async () => {
  setupUpload();
  try {
    await loadInfo();
  } catch (err) {
    showMessage(`cannot reach the server: ${err.message}`);
  }
  renderRecent();
});
