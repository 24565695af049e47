// The emberflow dashboard: one Alpine component fed by the server's event stream.
// The stream is read with fetch() rather than EventSource, because EventSource cannot send the
// Authorization header and the API token must never travel in a URL.
'use strict';

const TOKEN_KEY = 'emberflow-token';
const STAGES = [
  ['end_of_speech_wait', 'end-of-speech wait'], ['asr', 'speech recognition'],
  ['llm_first_token', 'LLM first token'], ['llm_first_clause', 'LLM first clause'],
  ['tts_first_audio', 'TTS first audio'], ['framework_overhead', 'overhead'], ['end_to_end', 'end to end'],
];
const PCM_RATE = 16000;
const PUSH_EVERY = 2048; // samples (128 ms) per POST while the button is held

// Library objects live outside Alpine's reactive state: proxying them would break them.
let graph = null;
const charts = {};
let mic = null;      // {ctx, node, stream, pending: Int16Array[], sent}
let speaker = null;  // {ctx, at}

function emptySnapshot() {
  return {units: [], tasks: [], graph: {nodes: [], edges: []}, voice: {turns: [], exchanges: []},
          camera: {cameras: [], detectors: []}, ptt: {state: 'off'}, flows: {}};
}

function dash() {
  return {
    version: '', live: false, notice: '',
    tokenRequired: document.querySelector('meta[name=emberflow-token-required]').content === '1',
    token: localStorage.getItem(TOKEN_KEY) || '', tokenDraft: '', tokenError: '',
    snapshot: emptySnapshot(), events: [], flows: [], exchanges: [],
    ptt: {state: 'off', detail: ''}, talking: false, pttStatus: '', answerSeconds: 0,
    live_answer: null,
    chatModels: [], chatModel: '', messages: [], draft: '', chatting: false,
    camera: {work_id: '', detections: [], detectors: []},
    catalogue: [], files: [], targets: [], report: {file: '', kind: 'analyze', target: 'host', html: '', error: '', busy: false},

    boot() {
      window.__dashboardLoads = (window.__dashboardLoads || 0) + 1;
      performance.mark('emberflow:boot');  // bench/dashboard_first_render.py reads these marks
      if (this.tokenRequired && !this.token) { this.askToken(); return; }
      this.start();
    },
    start() {
      this.openStream();
      this.loadModels();
      this.loadFlows();
      setInterval(() => this.pollCamera(), 250);
    },

    // --- token --------------------------------------------------------------------------------
    headers(extra) {
      const h = Object.assign({}, extra || {});
      if (this.token) h.Authorization = 'Bearer ' + this.token;
      return h;
    },
    askToken(message) {
      this.tokenError = message || '';
      const d = document.getElementById('token-dialog');
      if (!d.open) d.showModal();
    },
    saveToken() {
      this.token = this.tokenDraft.trim();
      this.tokenDraft = '';
      localStorage.setItem(TOKEN_KEY, this.token);
      document.getElementById('token-dialog').close();
      if (!this.started) { this.started = true; this.start(); }
    },
    forgetToken() { localStorage.removeItem(TOKEN_KEY); this.token = ''; this.askToken(); },
    async api(path, options) {
      const opts = Object.assign({method: 'GET'}, options || {});
      opts.headers = this.headers(Object.assign(opts.method === 'GET' ? {} : {'X-Emberflow-Dashboard': '1'}, opts.headers));
      const res = await fetch(path, opts);
      if (res.status === 401) { this.askToken('The token was refused.'); throw new Error('the token was refused'); }
      const body = (res.headers.get('content-type') || '').includes('json') ? await res.json() : await res.text();
      if (!res.ok) throw new Error((body.error && (body.error.message || body.error)) || body.detail || res.statusText);
      return body;
    },
    async act(path, body, what) {
      try {
        return await this.api(path, {method: 'POST', body: body === undefined ? undefined : JSON.stringify(body),
                                     headers: {'Content-Type': 'application/json'}});
      } catch (e) { this.notice = (what || path) + ': ' + e.message; return null; }
    },

    // --- the event stream ---------------------------------------------------------------------
    async openStream() {
      this.started = true;
      for (;;) {
        try {
          const res = await fetch('/dashboard/api/stream', {headers: this.headers(), cache: 'no-store'});
          if (res.status === 401) { this.live = false; this.askToken('The token was refused.'); this.started = false; return; }
          if (!res.ok) throw new Error('stream: ' + res.status);
          this.live = true;
          performance.mark('emberflow:stream');
          await this.readStream(res.body.getReader());
        } catch (e) { /* the daemon restarts or the network blinked: try again below */ }
        this.live = false;
        await new Promise(r => setTimeout(r, 1000));
      }
    },
    async readStream(reader) {
      await readEvents(reader, (name, data) => { if (data) this.on(name, JSON.parse(data)); });
    },
    on(name, data) {
      if (name === 'hello') {
        performance.mark('emberflow:hello');
        this.version = data.version;
        this.events = data.events;
        this.exchanges = data.exchanges;
        this.ptt = data.ptt;
        for (const p of data.metrics) this.addPoint(p, false);
        this.drawCharts();
        if (data.snapshot) this.onSnapshot(data.snapshot);
      } else if (name === 'snapshot') {
        this.onSnapshot(data);
      } else if (name === 'lifecycle') {
        this.events.push(data);
        if (this.events.length > 50) this.events.shift();
      } else if (name === 'metrics') {
        this.addPoint(data, true);
      } else if (name === 'voice') {
        this.onVoice(data);
      }
    },
    onSnapshot(s) {
      this.snapshot = s;
      if (!window.cytoscape && !this._graphLoading) {
        // after this first render: parsing the graph library must not delay the tables
        this._graphLoading = true;
        requestAnimationFrame(() => setTimeout(() => loadScript('/dashboard/static/vendor/cytoscape.min.js')
          .then(() => this.drawGraph(this.snapshot.graph)), 0));
      }
      this.ptt = s.ptt;
      this.exchanges = s.voice.exchanges;
      for (const f of this.flows) f.running = s.flows[f.name] || null;
      this.drawGraph(s.graph);
    },
    describe(e) {
      const when = new Date(e.at * 1000).toLocaleTimeString();
      const what = {TaskStarted: 'started', TaskEnded: 'ended', TaskLost: 'lost', UnitLost: 'unit lost',
                    TaskLinked: e.linked ? 'linked to ' + e.source : 'unlinked from ' + e.source}[e.type] || e.type;
      return `${when} ${e.work_id || e.kind} ${what}${e.reason ? ' (' + e.reason + ')' : ''}${e.detail ? ': ' + e.detail : ''}`;
    },

    // --- units and tasks ----------------------------------------------------------------------
    bytes(n) {
      if (n == null) return '—';
      const units = ['B', 'KB', 'MB', 'GB'];
      let i = 0;
      while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
      return (i ? n.toFixed(1) : n) + ' ' + units[i];
    },
    ms(s) { return s == null ? '—' : Math.round(s * 1000) + ' ms'; },
    async exitTask(workId) { await this.act('/dashboard/api/tasks/' + encodeURIComponent(workId) + '/exit', undefined, 'exit ' + workId); },
    async reset() {
      if (!confirm('Reset: end every task and restart the units?')) return;
      await this.act('/dashboard/api/reset', undefined, 'reset');
    },

    // --- flow graph ---------------------------------------------------------------------------
    async loadFlows() {
      try { this.flows = (await this.api('/dashboard/api/flows')).flows; } catch (e) { this.notice = 'flows: ' + e.message; }
    },
    async startFlow(name) {
      this.notice = 'starting ' + name + ' (loading its models)…';
      if (await this.act('/dashboard/api/flows/' + name + '/start', undefined, 'start ' + name)) this.notice = '';
    },
    async stopFlow(name) { await this.act('/dashboard/api/flows/' + name + '/stop', undefined, 'stop ' + name); },
    drawGraph(g) {
      if (!window.cytoscape) return;
      if (!graph) {
        graph = cytoscape({container: document.getElementById('graph'), userZoomingEnabled: false, maxZoom: 1.2, style: [
          {selector: 'node', style: {label: 'data(id)', 'font-size': 11, 'text-valign': 'bottom', 'text-margin-y': 4,
                                     'background-color': '#4a7ebb', width: 22, height: 22}},
          {selector: 'node.busy', style: {'background-color': '#d9a21b'}},
          {selector: 'node.crashed, node.restarting', style: {'background-color': '#c0392b'}},
          {selector: 'node.starting', style: {'background-color': '#999'}},
          {selector: 'edge', style: {width: 2, 'curve-style': 'bezier', 'target-arrow-shape': 'triangle',
                                     'line-color': '#bbb', 'target-arrow-color': '#bbb', label: 'data(label)', 'font-size': 9}},
          {selector: 'edge.lit', style: {'line-color': '#e67e22', 'target-arrow-color': '#e67e22', width: 4}},
          {selector: 'edge.dropping', style: {'line-style': 'dashed'}},
        ]});
      }
      const want = new Set([...g.nodes.map(n => n.id), ...g.edges.map(e => e.id)]);
      let changed = false;
      graph.elements().forEach(el => { if (!want.has(el.id())) { el.remove(); changed = true; } });
      for (const n of g.nodes) {
        let el = graph.getElementById(n.id);
        if (el.empty()) { el = graph.add({group: 'nodes', data: {id: n.id}}); changed = true; }
        el.classes(n.state);
      }
      for (const e of g.edges) {
        let el = graph.getElementById(e.id);
        if (el.empty()) { el = graph.add({group: 'edges', data: {id: e.id, source: e.source, target: e.target}}); changed = true; }
        el.data('label', e.policy + (e.drops ? ' · ' + e.drops + ' dropped' : ''));
        el.classes([e.lit ? 'lit' : '', e.drops ? 'dropping' : ''].join(' '));
      }
      if (changed) graph.layout({name: 'breadthfirst', directed: true, spacingFactor: 1.1, padding: 20}).run();
      document.getElementById('graph').dataset.nodes = g.nodes.length;
      document.getElementById('graph').dataset.edges = g.edges.length;
    },

    // --- voice --------------------------------------------------------------------------------
    get current() {
      if (this.live_answer) return this.live_answer;
      return this.exchanges.length ? this.exchanges[this.exchanges.length - 1] : {heard: '', answer: ''};
    },
    get turns() {
      const byTurn = new Map(this.exchanges.filter(e => e.turn).map(e => [JSON.stringify(e.turn), e.heard]));
      return this.snapshot.voice.turns.map(t => Object.assign({heard: byTurn.get(JSON.stringify(t)) || ''}, t));
    },
    get lastTurn() { const t = this.snapshot.voice.turns; return t.length ? t[t.length - 1] : null; },
    get bars() {
      const t = this.lastTurn;
      if (!t) return [];
      const total = t.end_to_end || 1, scale = 100 / total;  // percent of the turn
      const wait = t.end_of_speech_wait || 0, asr = t.asr || 0, clause = t.llm_first_clause || 0;
      const starts = {end_of_speech_wait: 0, asr: wait, llm_first_token: wait + asr, llm_first_clause: wait + asr,
                      tts_first_audio: wait + asr + clause, framework_overhead: wait + asr + clause + (t.tts_first_audio || 0),
                      end_to_end: 0};
      return STAGES.filter(([k]) => t[k] != null).map(([k, label]) => ({
        key: k, label, x: starts[k] * scale, w: Math.max(0, t[k]) * scale, ms: Math.round(t[k] * 1000)}));
    },
    onVoice(v) {
      if (v.type === 'ptt') { this.ptt = v; return; }
      if (v.type === 'heard') { this.live_answer = {heard: v.text, answer: ''}; this.answerSeconds = 0; }
      else if (v.type === 'answer') {
        if (!this.live_answer) this.live_answer = {heard: '', answer: ''};
        this.live_answer.answer += v.delta;
      } else if (v.type === 'answered') { this.live_answer = null; this.exchanges.push(v.exchange); }
      else if (v.type === 'audio') this.play(v.pcm, v.rate);
      else if (v.type === 'error') this.notice = v.work_id + ': ' + v.message + (v.detail ? ' (' + v.detail + ')' : '');
    },
    async setupPtt() {
      this.pttStatus = 'loading the speech recogniser, the LLM and the voice…';
      const r = await this.act('/dashboard/api/voice/start', undefined, 'push-to-talk');
      if (r) { this.ptt = r; this.pttStatus = r.state === 'ready' ? 'ready: hold the button and speak' : r.detail; }
    },
    async talk() {
      if (this.talking) return;
      this.talking = true;
      this.ensureSpeaker();
      try {
        await this.openMic();
        mic.sent = 0;
        mic.pending = [];
        mic.recording = true;
        this.pttStatus = 'listening…';
      } catch (e) { this.talking = false; this.notice = 'microphone: ' + e.message; }
    },
    async release() {
      if (!this.talking) return;
      this.talking = false;
      if (!mic) return;
      mic.recording = false;
      await this.flushMic();
      const r = await this.act('/dashboard/api/voice/release', undefined, 'push-to-talk');
      if (r) this.pttStatus = 'sent ' + r.pushed_seconds.toFixed(1) + ' s of speech; waiting for the answer…';
    },
    async openMic() {
      if (mic) return;
      const stream = await navigator.mediaDevices.getUserMedia({audio: {channelCount: 1, echoCancellation: false,
                                                                          noiseSuppression: false, autoGainControl: false}});
      const ctx = new AudioContext();
      await ctx.audioWorklet.addModule('/dashboard/static/ptt-worklet.js');
      const node = new AudioWorkletNode(ctx, 'ptt-capture');
      mic = {ctx, node, stream, pending: [], queued: 0, sent: 0, recording: false, posting: Promise.resolve()};
      node.port.onmessage = (m) => {
        if (!mic.recording) return;
        const pcm = toPcm16(m.data, ctx.sampleRate);
        mic.pending.push(pcm);
        mic.queued += pcm.length;
        if (mic.queued >= PUSH_EVERY) this.flushMic();
      };
      ctx.createMediaStreamSource(stream).connect(node);
    },
    flushMic() {
      // one POST at a time, in order: the audio unit must get the recording as it was spoken
      const parts = mic.pending;
      mic.pending = [];
      mic.queued = 0;
      const total = parts.reduce((n, p) => n + p.length, 0);
      if (total) {
        const body = new Int16Array(total);
        let at = 0;
        for (const p of parts) { body.set(p, at); at += p.length; }
        mic.posting = mic.posting.then(() => this.postAudio(body));
      }
      return mic.posting;
    },
    async postAudio(body) {
      try {
        const r = await this.api('/dashboard/api/voice/audio', {method: 'POST', body: body.buffer,
                                                                 headers: {'Content-Type': 'application/octet-stream'}});
        mic.sent = r.pushed_seconds;
        document.getElementById('ptt').dataset.pushed = r.pushed_seconds;
      } catch (e) { this.notice = 'push-to-talk: ' + e.message; }
    },
    ensureSpeaker() {
      if (!speaker) speaker = {ctx: new AudioContext(), at: 0};
      if (speaker.ctx.state === 'suspended') speaker.ctx.resume();
    },
    play(b64, rate) {
      const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
      const samples = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
      this.answerSeconds += samples.length / rate;
      if (!speaker) return; // no gesture yet: the browser would refuse to play
      const buf = speaker.ctx.createBuffer(1, samples.length, rate);
      const ch = buf.getChannelData(0);
      for (let i = 0; i < samples.length; i++) ch[i] = samples[i] / 32768;
      const src = speaker.ctx.createBufferSource();
      src.buffer = buf;
      src.connect(speaker.ctx.destination);
      speaker.at = Math.max(speaker.at, speaker.ctx.currentTime);
      src.start(speaker.at);
      speaker.at += buf.duration;
    },

    // --- metrics ------------------------------------------------------------------------------
    addPoint(p, draw) {
      const series = this._series || (this._series = {t: [], rps: [], p50: [], p99: [], tokens: [], depth: []});
      series.t.push(p.t); series.rps.push(p.rps); series.p50.push(p.p50_ms); series.p99.push(p.p99_ms);
      series.tokens.push(p.tokens_s); series.depth.push(p.depth);
      if (series.t.length > 120) for (const k in series) series[k].shift();
      if (draw) this.drawCharts();
    },
    drawCharts() {
      const s = this._series;
      if (!s || typeof uPlot === 'undefined') return;
      const specs = {
        rps: ['requests / s', [s.rps], ['#4a7ebb']],
        latency: ['latency p50 / p99 (ms)', [s.p50, s.p99], ['#4a7ebb', '#c0392b']],
        tokens: ['LLM tokens / s', [s.tokens], ['#27ae60']],
        depth: ['queue depth', [s.depth], ['#e67e22']],
      };
      for (const [key, [title, ys, colors]] of Object.entries(specs)) {
        const data = [s.t, ...ys];
        if (!charts[key]) {
          const el = document.getElementById('chart-' + key);
          charts[key] = new uPlot({title, width: Math.max(220, el.clientWidth || 260), height: 130, legend: {show: false},
                                   series: [{}, ...colors.map((stroke, i) => ({stroke, spanGaps: true, label: title + i}))],
                                   axes: [{}, {size: 40}]}, data, el);
        } else charts[key].setData(data);
      }
      document.getElementById('metrics').dataset.points = s.t.length;
    },

    // --- chat ---------------------------------------------------------------------------------
    async send() {
      const text = this.draft.trim();
      if (!text || this.chatting) return;
      this.draft = '';
      this.messages.push({role: 'user', content: text});
      const history = this.messages.map(m => ({role: m.role, content: m.content}));
      const answer = {role: 'assistant', content: ''};
      this.messages.push(answer);
      const shown = this.messages[this.messages.length - 1];
      this.chatting = true;
      try {
        const res = await fetch('/v1/chat/completions', {method: 'POST', headers: this.headers({'Content-Type': 'application/json'}),
          body: JSON.stringify({model: this.chatModel, messages: history, stream: true, temperature: 0, max_tokens: 128})});
        if (!res.ok) throw new Error((await res.json()).error.message);
        await readEvents(res.body.getReader(), (name, data) => {
          if (!data || data === '[DONE]') return;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta.content;
          if (delta) shown.content += delta;
        });
        document.getElementById('messages').dataset.answers = this.messages.filter(m => m.role === 'assistant').length;
      } catch (e) { shown.content += ' [' + e.message + ']'; }
      this.chatting = false;
    },

    // --- camera -------------------------------------------------------------------------------
    async pollCamera() {
      if (!this.live || !this.snapshot.camera.cameras.length || this._cameraBusy) return;
      this._cameraBusy = true;
      try {
        const c = await this.api('/dashboard/api/camera');
        this.camera = c;
        if (c.jpeg && c.seq !== this._cameraSeq) { this._cameraSeq = c.seq; await drawCamera(c); }
      } catch (e) { /* the camera task ended between two polls */ }
      this._cameraBusy = false;
    },

    // --- models -------------------------------------------------------------------------------
    async loadModels() {
      try {
        const m = await this.api('/dashboard/api/models');
        this.catalogue = m.catalogue; this.files = m.files; this.targets = m.targets;
        this.chatModels = m.chat_models; this.chatModel = m.default_llm || m.chat_models[0] || '';
      } catch (e) { this.notice = 'models: ' + e.message; }
    },
    async upload(ev) {
      const file = ev.target.files[0];
      if (!file) return;
      try {
        const f = await this.api('/dashboard/api/models/upload?name=' + encodeURIComponent(file.name),
                                 {method: 'POST', body: file, headers: {'Content-Type': 'application/octet-stream'}});
        await this.loadModels();
        this.report.file = f.id;
      } catch (e) { this.report.error = e.message; }
    },
    async makeReport() {
      this.report.busy = true; this.report.error = ''; this.report.html = '';
      try {
        const r = await this.api('/dashboard/api/models/report', {method: 'POST', headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({file: this.report.file, kind: this.report.kind, target: this.report.target})});
        this.report.html = r.html;
      } catch (e) { this.report.error = e.message; }
      this.report.busy = false;
    },
  };
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const el = document.createElement('script');
    el.src = src;
    el.onload = resolve;
    el.onerror = () => reject(new Error('could not load ' + src));
    document.head.appendChild(el);
  });
}

// Server-sent events from a fetch() body: calls onEvent(name, data) for each event.
async function readEvents(reader, onEvent) {
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = 'message', data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      onEvent(name, data);
    }
  }
}

function toPcm16(floats, rate) {
  // linear resampling to 16 kHz: enough for speech recognition, and no library
  const n = Math.floor(floats.length * PCM_RATE / rate);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    const x = i * rate / PCM_RATE, j = Math.floor(x), f = x - j;
    const v = (floats[j] || 0) * (1 - f) + (floats[j + 1] || floats[j] || 0) * f;
    out[i] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
  }
  return out;
}

async function drawCamera(c) {
  const canvas = document.getElementById('camera-canvas');
  const img = new Image();
  img.src = 'data:image/jpeg;base64,' + c.jpeg;
  await img.decode();
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const g = canvas.getContext('2d');
  g.drawImage(img, 0, 0);
  g.lineWidth = 2; g.font = '14px sans-serif'; g.strokeStyle = '#e67e22'; g.fillStyle = '#e67e22';
  for (const d of c.detections) {
    const b = d.bbox || [0, 0, 0, 0];
    const [x, y, w, h] = c.box_format === 'xywh' ? b : [b[0], b[1], b[2] - b[0], b[3] - b[1]];
    g.strokeRect(x, y, w, h);
    g.fillText(`${d.class} ${Math.round((d.confidence || 0) * 100)}%`, x + 3, Math.max(14, y - 4));
  }
  canvas.dataset.seq = c.seq;
  canvas.dataset.boxes = c.detections.length;
}

document.addEventListener('alpine:init', () => Alpine.data('dash', dash));
