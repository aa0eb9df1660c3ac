// The Live view: camera frames (getUserMedia) go to the service as JPEGs over a WebSocket and come back swapped.
// At most two frames are unanswered, so nothing queues: one frame's rendering overlaps the next one's trip
// (29 frames/s instead of 25 on a quiet 2-core machine). When frames come back slowly (a busy machine, where two
// in flight cost more CPU a frame and four times the latency) one at a time: see docs/benchmarks.md.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = 'swapface.apiKey';
  const IN_FLIGHT = 2;
  const SLOW_MS = 100;  // median camera-to-screen latency above which one frame at a time is kept in flight
  const JPEG_QUALITY = 0.85;
  const STALL_MS = 2000;  // no answer for this long: the unanswered frames are given up (the engine skipped them)
  let run = null;  // the running stream: its session, socket, camera and counters
  // What the page has measured, for whoever watches it (a benchmark reads this).
  window.liveStats = { shown: 0, latencies: [], engineMs: [] };

  const keyField = $('live-api-key');
  keyField.value = localStorage.getItem(KEY_STORE) || '';
  if (keyField.value) $('live-key-details').open = true;

  function authHeaders() {
    const key = keyField.value.trim();
    if (key) localStorage.setItem(KEY_STORE, key); else localStorage.removeItem(KEY_STORE);
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  function say(text) { const box = $('live-message'); box.textContent = text; box.hidden = false; }
  function unsay() { const box = $('live-message'); box.textContent = ''; box.hidden = true; }
  function setState(state, text) { const p = $('live-state'); p.dataset.state = state; p.textContent = text; }

  function options() {
    return {
      face_selector_mode: $('live-mode').value,
      face_mask_blur: parseFloat($('live-blur').value),
      color_transfer: $('live-color').checked ? 'on' : 'off',
      label_output: $('live-label').checked,
    };
  }

  async function apiError(res) {
    try { const body = await res.json(); return `${body.detail} (${body.code})`; } catch (e) { return `The service answered ${res.status}.`; }
  }

  function cameraProblem(err) {
    switch (err && err.name) {
      case 'NotAllowedError': case 'SecurityError':
        return 'Camera access was refused: allow this page to use the camera, then press Start again.';
      case 'NotFoundError': case 'OverconstrainedError': case 'DevicesNotFoundError':
        return 'No camera was found: connect a webcam, then press Start again.';
      case 'NotReadableError': case 'TrackStartError':
        return 'The camera is busy or unreadable: close other programs using it, then press Start again.';
      default:
        return `The camera could not be opened (${(err && (err.name || err.message)) || err}).`;
    }
  }

  function idle(state, text) {
    setState(state, text);
    $('live-start').disabled = false; $('live-stop').disabled = true; $('live-size').disabled = false;
  }

  async function openCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say('This browser gives this page no camera: open it over https or on localhost.'); return null;
    }
    setState('starting', 'Opening the camera…');
    const [width, height] = $('live-size').value.split('x').map(Number);
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: false, video: { width: { ideal: width }, height: { ideal: height } } });
    } catch (err) { say(cameraProblem(err)); return null; }
  }

  function stopCamera(camera) {
    camera.getTracks().forEach((t) => t.stop());
    $('live-camera').srcObject = null;
  }

  async function start() {
    unsay();
    const file = $('live-source').files[0];
    if (!file) { say('Choose a photo of the face to put in first.'); return; }
    $('live-start').disabled = true; $('live-size').disabled = true;
    const camera = await openCamera();
    if (!camera) { idle('error', 'Not running.'); return; }
    setState('starting', 'Analysing the face to put in…');
    const form = new FormData();
    form.append('source', file);
    form.append('options', JSON.stringify(options()));
    let res;
    try { res = await fetch('/v1/live/sessions', { method: 'POST', body: form, headers: authHeaders() }); }
    catch (err) { res = null; }
    if (!res || !res.ok) {
      say(res ? await apiError(res) : 'The service cannot be reached.');
      stopCamera(camera); idle('error', 'Not running.'); return;
    }
    await connect(await res.json(), camera);
  }

  // A session started elsewhere (swapface live): show its options, open the camera and stream to it.
  async function attach(sessionId) {
    $('live-start').disabled = true; $('live-size').disabled = true;
    const res = await fetch(`/v1/live/sessions/${encodeURIComponent(sessionId)}`, { headers: authHeaders() }).catch(() => null);
    if (!res || !res.ok) {
      say(res ? `${await apiError(res)} Choose a face and press Start for a new session.` : 'The service cannot be reached.');
      idle('error', 'Not running.'); return;
    }
    const session = await res.json();
    const opts = session.options || {};
    if (opts.face_selector_mode) $('live-mode').value = opts.face_selector_mode;
    if (opts.face_mask_blur !== undefined) $('live-blur').value = opts.face_mask_blur;
    if (opts.color_transfer) $('live-color').checked = opts.color_transfer === 'on';
    $('live-label').checked = opts.label_output !== false;
    const camera = await openCamera();
    if (!camera) {
      await fetch(`/v1/live/sessions/${session.id}`, { method: 'DELETE', headers: authHeaders() }).catch(() => null);
      idle('error', 'Not running.'); return;
    }
    await connect({ ...session, stream: `/v1/live/sessions/${session.id}/stream` }, camera);
  }

  async function connect(session, camera) {
    const video = $('live-camera');
    video.srcObject = camera;
    await video.play().catch(() => {});
    const url = new URL(session.stream, location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(url);
    socket.binaryType = 'arraybuffer';
    const r = { session, socket, camera, video, sent: 0, answered: 0, skipped: 0, encoding: false, done: false,
                lastClock: -1, lastAnswer: performance.now(), shownAt: [], capture: document.createElement('canvas') };
    run = r;
    window.liveStats = { shown: 0, latencies: [], engineMs: [], sessionId: session.id };
    socket.onopen = () => { setState('running', 'Running.'); $('live-stop').disabled = false; pump(r); };
    socket.onmessage = (ev) => show(r, ev.data);
    socket.onclose = (ev) => {
      if (r.done) return;
      say(ev.code === 4408  // the service ends a stream that sends no camera frame for a while (a hidden tab sends none)
        ? `The live session ended: the service got ${ev.reason.split(':')[0]}. Press Start again.`
        : 'The live session ended: the connection to the service closed.');
      teardown(r); idle('stopped', 'Stopped.');
    };
  }

  function pump(r) {
    const next = () => {
      if (r.done) return;
      if ('requestVideoFrameCallback' in r.video) r.video.requestVideoFrameCallback(tick); else requestAnimationFrame(tick);
    };
    const tick = () => { grab(r); next(); };
    next();
  }

  async function grab(r) {
    const now = performance.now();
    const limit = r.slow ? 1 : IN_FLIGHT;
    if (r.sent - r.answered - r.skipped >= limit && now - r.lastAnswer > STALL_MS) {
      r.skipped = r.sent - r.answered; r.lastAnswer = now;
    }
    if (r.encoding || r.done || r.socket.readyState !== WebSocket.OPEN) return;
    if (r.sent - r.answered - r.skipped >= limit || !r.video.videoWidth) return;
    r.encoding = true;
    const clock = performance.now();
    const c = r.capture;
    if (c.width !== r.video.videoWidth || c.height !== r.video.videoHeight) {
      c.width = r.video.videoWidth; c.height = r.video.videoHeight;
    }
    c.getContext('2d').drawImage(r.video, 0, 0, c.width, c.height);
    const blob = await new Promise((done) => c.toBlob(done, 'image/jpeg', JPEG_QUALITY));
    r.encoding = false;
    if (!blob || r.done || r.socket.readyState !== WebSocket.OPEN) return;
    const message = new Uint8Array(8 + blob.size);
    new DataView(message.buffer).setFloat64(0, clock, true);
    message.set(new Uint8Array(await blob.arrayBuffer()), 8);
    r.sent += 1;
    r.socket.send(message.buffer);
  }

  async function show(r, data) {
    const head = new DataView(data, 0, 16);
    const clock = head.getFloat64(0, true), engineMs = head.getFloat32(8, true), dropped = head.getUint32(12, true);
    r.answered += 1; r.lastAnswer = performance.now();
    r.skipped = Math.max(r.skipped, dropped);
    const bitmap = await createImageBitmap(new Blob([new Uint8Array(data, 16)], { type: 'image/jpeg' }));
    if (r.done || clock < r.lastClock) { bitmap.close(); return; }  // an older frame never overwrites a newer one
    r.lastClock = clock;
    const out = $('live-output');
    if (out.width !== bitmap.width || out.height !== bitmap.height) { out.width = bitmap.width; out.height = bitmap.height; }
    out.getContext('2d').drawImage(bitmap, 0, 0);
    bitmap.close();
    const now = performance.now();
    const stats = window.liveStats;
    stats.shown += 1; stats.latencies.push(now - clock); stats.engineMs.push(engineMs);
    r.shownAt.push(now);
    while (r.shownAt.length && r.shownAt[0] < now - 2000) r.shownAt.shift();
    if (!r.lastReport || now - r.lastReport > 500) {
      r.lastReport = now;
      const fps = r.shownAt.length > 1 ? (r.shownAt.length - 1) * 1000 / (now - r.shownAt[0]) : 0;
      const recent = stats.latencies.slice(-30).sort((a, b) => a - b);
      const latency = recent[Math.floor(recent.length / 2)];
      r.slow = recent.length >= 10 && latency > SLOW_MS;
      $('live-fps').textContent = `${fps.toFixed(1)} frames/s`; $('live-fps').dataset.fps = fps.toFixed(2);
      $('live-latency').textContent = `${Math.round(latency)} ms`; $('live-latency').dataset.ms = latency.toFixed(1);
    }
  }

  function teardown(r) {
    r.done = true;
    try { r.socket.close(); } catch (e) { /* already closed */ }
    stopCamera(r.camera);
    if (run === r) run = null;
  }

  async function stop() {
    const r = run;
    if (!r) return;
    $('live-stop').disabled = true;
    r.done = true;
    try { await fetch(`/v1/live/sessions/${r.session.id}`, { method: 'DELETE', headers: authHeaders() }); } catch (e) { /* the socket closing ends it too */ }
    teardown(r);
    idle('stopped', 'Stopped.');
  }

  let pendingOptions = null;
  function optionsChanged() {
    if (!run) return;
    clearTimeout(pendingOptions);
    pendingOptions = setTimeout(async () => {
      const r = run;
      if (!r) return;
      const res = await fetch(`/v1/live/sessions/${r.session.id}`, {
        method: 'PATCH', headers: { 'Content-Type': 'application/json', ...authHeaders() },
        body: JSON.stringify({ options: options() }),
      });
      if (res.ok) unsay(); else say(await apiError(res));
    }, 150);
  }

  async function sourceChanged() {
    const r = run, file = $('live-source').files[0];
    if (!r || !file) return;
    const form = new FormData();
    form.append('source', file);
    const res = await fetch(`/v1/live/sessions/${r.session.id}/source`, { method: 'PUT', body: form, headers: authHeaders() });
    if (res.ok) unsay(); else say(`${await apiError(res)} The previous face stays in.`);
  }

  $('live-start').addEventListener('click', start);
  $('live-stop').addEventListener('click', stop);
  $('live-source').addEventListener('change', sourceChanged);
  for (const id of ['live-mode', 'live-blur', 'live-color', 'live-label']) $(id).addEventListener('change', optionsChanged);
  window.addEventListener('pagehide', () => { if (run) teardown(run); });
  const query = new URLSearchParams(location.search);
  const askedSize = query.get('size');
  if (askedSize) {
    const select = $('live-size');
    if (![...select.options].some((o) => o.value === askedSize)) select.add(new Option(askedSize.replace('x', ' × '), askedSize));
    select.value = askedSize;
  }
  if (query.get('session')) attach(query.get('session'));
})();
