// The ecgflow monitor page: a ward view of every stream and a patient view of one, kept
// live by server-sent events from /events. Plain JavaScript, no dependencies.
'use strict';

(function () {
  // A page opened as /?token=T passes the token on to every request it makes itself
  // (an EventSource cannot set headers).
  const TOKEN = new URLSearchParams(location.search).get('token');
  const CLASSES = ['N', 'S', 'V', 'F', 'Q'];
  // ECG paper: 25 mm/s, 10 mm/mV, 1 mm minor and 5 mm major squares.
  const PX_PER_MM = 4;
  const MM_PER_S = 25;
  const MM_PER_MV = 10;
  const COLOURS = { N: '#2e7d32', S: '#1565c0', V: '#c62828', F: '#ef6c00', Q: '#6a1b9a' };

  const $ = (id) => document.getElementById(id);

  function apiUrl(path, params) {
    const u = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) u.searchParams.set(k, v);
    if (TOKEN) u.searchParams.set('token', TOKEN);
    return u.pathname + u.search;
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function classChip(cls, extra) {
    const known = CLASSES.includes(cls);
    return el('span', { class: 'chip' + (known ? ' cls-' + cls : '') + (extra ? ' ' + extra : '') }, cls);
  }

  const state = {
    snapshot: null, // the last `streams` event
    current: null, // the stream of the patient view
    wave: null, // { fs, start, capacity, samples }
    beats: new Map(), // R-peak sample -> beat
    explanationSeq: 0,
    source: null,
    dirty: true,
  };

  // ---- connection ---------------------------------------------------------------------

  function connect() {
    if (state.source) state.source.close();
    const params = state.current ? { stream: state.current } : {};
    const source = new EventSource(apiUrl('/events', params));
    state.source = source;
    setConnection('connecting');
    source.onopen = () => setConnection('live');
    source.onerror = () => setConnection(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
    source.addEventListener('streams', (e) => onSnapshot(JSON.parse(e.data)));
    source.addEventListener('wave', (e) => onWave(JSON.parse(e.data)));
    source.addEventListener('beats', (e) => onBeats(JSON.parse(e.data)));
    source.addEventListener('explanation', (e) => onExplanation(JSON.parse(e.data)));
  }

  function setConnection(s) {
    const c = $('connection');
    c.dataset.state = s;
    c.textContent = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', closed: 'disconnected' }[s] || s;
  }

  // ---- views --------------------------------------------------------------------------

  function route() {
    const m = location.hash.match(/^#\/stream\/(.+)$/);
    let name = null;
    if (m) {
      try { name = decodeURIComponent(m[1]); } catch (_) { name = null; }
    }
    if (name === state.current && state.source) return;
    state.current = name;
    state.wave = null;
    state.beats = new Map();
    state.explanationSeq = 0;
    $('ward').hidden = !!name;
    $('patient').hidden = !name;
    $('p-name').textContent = name || '';
    $('explanation').hidden = true;
    $('explanation').removeAttribute('src');
    $('explanation-caption').textContent = 'No explanation yet.';
    $('labels').replaceChildren();
    state.dirty = true;
    connect();
    if (state.snapshot) onSnapshot(state.snapshot);
  }

  function onSnapshot(snap) {
    state.snapshot = snap;
    const run = $('run');
    run.dataset.status = snap.status;
    run.textContent = snap.status === 'failed' ? 'pipeline failed: ' + (snap.error || '') : 'pipeline ' + snap.status;
    const n = snap.streams.length;
    $('count').textContent = n + (n === 1 ? ' stream' : ' streams');
    if (state.current) renderPatient(snap.streams.find((s) => s.stream === state.current));
    else renderWard(snap.streams);
  }

  function who(s) {
    const parts = [];
    if (s.patient) parts.push('patient ' + s.patient);
    if (s.ward) parts.push('ward ' + s.ward);
    return parts.join(' · ');
  }

  function renderWard(streams) {
    $('empty').hidden = streams.length > 0;
    const tiles = streams.map((s) => {
      const tile = el('a', { class: 'tile', href: '#/stream/' + encodeURIComponent(s.stream), 'data-stream': s.stream });
      if (s.alarms.length) tile.classList.add('alarm');
      if (s.ended) tile.classList.add('ended');
      if (s.failed) tile.classList.add('failed');
      const head = el('div', { class: 'tile-head' });
      head.append(el('span', { class: 'name' }, s.stream), el('span', { class: 'who' }, who(s)));
      const hr = el('div', { class: 'tile-hr' }, s.heart_rate == null ? '--' : Math.round(s.heart_rate));
      hr.append(' ', el('small', {}, 'bpm'));
      const strip = el('div', { class: 'strip', title: 'the last beats, by predicted class' });
      for (const b of s.last_beats) if (b.class) strip.append(classChip(b.class));
      const alarms = el('div', { class: 'tile-alarms' }, s.alarms.map((a) => a.kind.replace(/_/g, ' ')).join(', '));
      const status = s.failed ? ' · failed' : s.ended ? ' · ended' : '';
      const foot = el('div', { class: 'tile-foot' }, s.time_s.toFixed(1) + ' s · ' + s.beats + ' beats' + status);
      tile.append(head, hr, strip, alarms, foot);
      return tile;
    });
    $('tiles').replaceChildren(...tiles);
  }

  function renderPatient(s) {
    if (!s) {
      $('p-state').textContent = 'not (yet) in this run';
      return;
    }
    $('p-meta').textContent = who(s) + (s.lead ? ' · lead ' + s.lead : '') + (s.fs ? ' · ' + s.fs + ' Hz' : '');
    $('p-state').textContent = s.failed ? 'failed' : s.ended ? 'ended at ' + s.time_s.toFixed(1) + ' s' : s.time_s.toFixed(1) + ' s';
    const hr = $('hr');
    hr.textContent = s.heart_rate == null ? '--' : String(Math.round(s.heart_rate));
    hr.dataset.bpm = s.heart_rate == null ? '' : String(s.heart_rate);
    $('alarms').replaceChildren(...s.alarms.map((a) => {
      const li = el('li', { 'data-kind': a.kind }, a.kind.replace(/_/g, ' ') + ' ');
      li.append(el('small', {}, 'since ' + a.since_s.toFixed(1) + ' s' + (a.evidence ? ': ' + a.evidence : '')));
      return li;
    }));
    const rows = Object.entries(s.classes).map(([cls, count]) => {
      const tr = el('tr');
      const td = el('td');
      td.append(classChip(cls));
      tr.append(td, el('td', {}, count));
      return tr;
    });
    $('classes').replaceChildren(...rows);
    $('events').replaceChildren(...s.events.slice().reverse().map((e) =>
      el('li', {}, e.time_s.toFixed(1) + ' s ' + e.kind.replace(/_/g, ' ') + ' ' + e.phase + (e.evidence ? ': ' + e.evidence : ''))));
    $('p-window').textContent = s.window_s ? 'last ' + s.window_s.toFixed(0) + ' s' : '';
    if (s.explanation) showExplanation(s.explanation);
  }

  function onWave(w) {
    if (w.stream !== state.current) return;
    const samples = w.samples.map((v) => (v === null ? NaN : v));
    const wave = state.wave;
    if (w.reset || !wave || w.start !== wave.start + wave.samples.length) {
      state.wave = { fs: w.fs, start: w.start, capacity: w.capacity, samples };
    } else {
      wave.samples.push(...samples);
      wave.capacity = w.capacity;
      const extra = wave.samples.length - wave.capacity;
      if (extra > 0) {
        wave.samples.splice(0, extra);
        wave.start += extra;
      }
    }
    for (const sample of state.beats.keys()) if (sample < state.wave.start) state.beats.delete(sample);
    state.dirty = true;
  }

  function onBeats(b) {
    if (b.stream !== state.current) return;
    for (const beat of b.beats) state.beats.set(beat.sample, beat);
    state.dirty = true;
  }

  function onExplanation(e) {
    if (e.stream === state.current) showExplanation(e.explanation);
  }

  function showExplanation(info) {
    if (!info || info.seq === state.explanationSeq || !state.current) return;
    state.explanationSeq = info.seq;
    const img = $('explanation');
    img.src = apiUrl('/api/streams/' + encodeURIComponent(state.current) + '/explanation.png', { seq: info.seq });
    img.hidden = false;
    const fs = state.wave ? state.wave.fs : (state.snapshot && (state.snapshot.streams.find((s) => s.stream === state.current) || {}).fs);
    const at = fs ? ' at ' + (info.sample / fs).toFixed(1) + ' s' : '';
    // A decision after the network may call a class the network gives a low probability.
    const decided = info.decided_by && info.decided_by !== 'by the network' ? info.decided_by + '; network probability ' : '';
    $('explanation-caption').textContent = info.method + ': the beat' + at + ' classified ' + info.class + ' (' + decided +
      Math.round(info.probability * 100) + ' %)' + (info.symbol ? ', reference ' + info.symbol : '') +
      '; red pushed towards the class, blue away.';
  }

  // ---- drawing ------------------------------------------------------------------------

  function drawPaper(ctx, w, h) {
    ctx.fillStyle = '#fff7f8';
    ctx.fillRect(0, 0, w, h);
    const lines = (step, colour, width) => {
      ctx.beginPath();
      ctx.strokeStyle = colour;
      ctx.lineWidth = width;
      // From the right edge, where the newest sample is, so the grid moves with time 0.
      for (let x = w; x >= 0; x -= step) { ctx.moveTo(Math.round(x) + 0.5, 0); ctx.lineTo(Math.round(x) + 0.5, h); }
      for (let y = h / 2; y >= 0; y -= step) { ctx.moveTo(0, Math.round(y) + 0.5); ctx.lineTo(w, Math.round(y) + 0.5); }
      for (let y = h / 2 + step; y <= h; y += step) { ctx.moveTo(0, Math.round(y) + 0.5); ctx.lineTo(w, Math.round(y) + 0.5); }
      ctx.stroke();
    };
    lines(PX_PER_MM, '#f7d4da', 0.6);
    lines(5 * PX_PER_MM, '#ec9aa9', 1);
  }

  function median(values) {
    const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    return v.length ? v[v.length >> 1] : 0;
  }

  function draw() {
    const canvas = $('wave');
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (!w || !h) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    drawPaper(ctx, w, h);
    const labels = [];
    let drawn = 0;
    let beatsDrawn = 0;
    const wave = state.wave;
    if (wave && wave.fs > 0 && wave.samples.length) {
      const pxPerSample = (PX_PER_MM * MM_PER_S) / wave.fs;
      const pxPerMv = PX_PER_MM * MM_PER_MV;
      const end = wave.start + wave.samples.length;
      const visible = Math.min(wave.samples.length, Math.ceil(w / pxPerSample) + 1);
      const first = wave.samples.length - visible;
      const base = median(wave.samples.slice(first));
      const x = (sample) => w - (end - 1 - sample) * pxPerSample;
      const y = (mv) => h / 2 - (mv - base) * pxPerMv;
      ctx.beginPath();
      ctx.strokeStyle = '#111';
      ctx.lineWidth = 1.3;
      ctx.lineJoin = 'round';
      let pen = false;
      for (let i = first; i < wave.samples.length; i++) {
        const v = wave.samples[i];
        if (!Number.isFinite(v)) { pen = false; continue; }
        const px = x(wave.start + i);
        const py = Math.max(-2, Math.min(h + 2, y(v)));
        if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
        pen = true;
        drawn++;
      }
      ctx.stroke();
      const from = wave.start + first;
      for (const beat of state.beats.values()) {
        if (beat.sample < from || beat.sample >= end) continue;
        const bx = x(beat.sample);
        const cls = beat.class;
        ctx.strokeStyle = (cls && COLOURS[cls]) || '#90a4ae';
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.moveTo(bx, 0);
        ctx.lineTo(bx, 10);
        ctx.stroke();
        const text = cls || beat.symbol || '·';
        const label = el('span', { class: 'beat-label' + (cls ? (CLASSES.includes(cls) ? ' cls-' + cls : '') : ' ref'), 'data-sample': beat.sample }, text);
        label.style.left = bx + 'px';
        const p = beat.probability != null ? ' ' + Math.round(beat.probability * 100) + ' %' : '';
        const by = beat.decided_by && beat.probability == null ? ' ' + beat.decided_by : '';
        label.title = (cls ? 'predicted ' + cls + p + by : 'not classified') + (beat.symbol ? ', reference ' + beat.symbol : '');
        labels.push(label);
        beatsDrawn++;
      }
    }
    $('labels').replaceChildren(...labels);
    canvas.dataset.samplesDrawn = String(drawn);
    canvas.dataset.beatsDrawn = String(beatsDrawn);
  }

  function frame() {
    if (state.dirty && state.current) {
      state.dirty = false;
      draw();
    }
    requestAnimationFrame(frame);
  }

  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => { state.dirty = true; });
  // A headless or hidden page may not get animation frames: draw on a timer as well.
  setInterval(() => { if (state.dirty && state.current) { state.dirty = false; draw(); } }, 250);
  route();
  requestAnimationFrame(frame);
})();
