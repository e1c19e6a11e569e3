// weft dashboard. Plain JavaScript, no build step and nothing from outside:
// it renders the snapshots the dashboard pushes on /events (the topology
// with each edge's traffic, the problems, the routes and policies) and, on
// a service's page, the service's history from the admin API.
'use strict';

const SVGNS = 'http://www.w3.org/2000/svg';

const state = {
  snap: null,
  // history of the service whose page is open: {service, points, error, at}
  history: null,
  historyLoading: false,
  source: null,
};

// ---------- DOM helpers ----------

function build(make, tag, attrs, children) {
  const el = make(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const h = (tag, attrs, ...children) => build(t => document.createElement(t), tag, attrs, children);
const s = (tag, attrs, ...children) => build(t => document.createElementNS(SVGNS, t), tag, attrs, children);

// ---------- formatting ----------

function fmtRate(r) {
  if (r === 0) return '0';
  if (r >= 100) return r.toFixed(0);
  if (r >= 10) return r.toFixed(1);
  return r.toFixed(2);
}
function fmtPct(r) {
  if (r === null || r === undefined) return '–';
  const p = r * 100;
  if (p === 100) return '100%';
  return (p >= 99 ? p.toFixed(2) : p.toFixed(1)) + '%';
}
function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms === 0) return '0';
  if (ms >= 1000) return (ms / 1000).toFixed(2) + ' s';
  if (ms >= 10) return ms.toFixed(0) + ' ms';
  if (ms >= 1) return ms.toFixed(1) + ' ms';
  return ms.toFixed(2) + ' ms';
}
function fmtBytes(b) {
  if (b >= 1e6) return (b / 1e6).toFixed(1) + ' MB/s';
  if (b >= 1e3) return (b / 1e3).toFixed(1) + ' kB/s';
  return b.toFixed(0) + ' B/s';
}
function fmtTime(d) {
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}
function plural(n, one, many) { return n + ' ' + (n === 1 ? one : (many || one + 's')); }
function shortName(id) { return id.slice(id.indexOf('/') + 1); }
function nsOf(id) { return id.slice(0, id.indexOf('/')); }

// Success rate colours: what the legend says.
function rateClass(r) { return r >= 0.99 ? 'ok' : r >= 0.95 ? 'warn' : 'bad'; }

function tcpActive(st) {
  const t = st && st.tcp;
  return !!t && (t.open > 0 || t.opened > 0 || t.receivedBytesPerSec > 0 || t.sentBytesPerSec > 0);
}

// The class of an edge: its success rate's colour, "tcp" for opaque TCP
// traffic (no requests to succeed or fail), "idle" for no calls in the
// window, "nodata" when the control plane has no stats yet.
function edgeClass(e, available) {
  const st = e.stats;
  if (!available || !st) return 'nodata';
  if (st.requests > 0 && st.successRate !== null) return rateClass(st.successRate);
  if (tcpActive(st)) return 'tcp';
  return 'idle';
}

// tcpText is a row's TCP traffic in a few words: the connections open at
// the end of the window or, for short ones, opened per second, and bytes.
function tcpText(st) {
  const t = st.tcp;
  const secs = state.snap && state.snap.stats.seconds;
  const conns = t.open > 0 || !secs ? plural(t.open, 'conn') + ' open' : fmtRate(t.opened / secs) + ' conn/s';
  return conns + ' · ' + fmtBytes(t.receivedBytesPerSec + t.sentBytesPerSec);
}

function signalsText(st, available) {
  if (!available || !st) return { text: 'no traffic data yet', none: true };
  if (st.requests > 0) {
    return { parts: [fmtRate(st.rps) + ' rps · ', { text: fmtPct(st.successRate), cls: rateClass(st.successRate) }, ' · p99 ' + fmtMs(st.latencyMs && st.latencyMs.p99)] };
  }
  if (tcpActive(st)) return { text: tcpText(st) };
  return { text: 'no calls', none: true };
}

// ---------- live updates ----------

function connect() {
  const es = new EventSource('/events');
  state.source = es;
  es.addEventListener('snapshot', ev => {
    state.snap = JSON.parse(ev.data);
    document.body.dataset.state = 'live';
    render();
    maybeFetchHistory();
  });
  es.addEventListener('error', () => {
    // EventSource reconnects by itself (after the retry the server set);
    // a stream closed for good is reopened here.
    document.body.dataset.state = state.snap ? 'stale' : 'connecting';
    renderLive();
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  });
}

function route() {
  const m = /^#\/(service|workload)\/([^/]+\/[^/]+)$/.exec(location.hash);
  if (m) return { page: m[1], id: decodeURIComponent(m[2]) };
  return { page: 'topology' };
}

function maybeFetchHistory() {
  const r = route();
  if (r.page !== 'service' || state.historyLoading) return;
  const hist = state.history;
  // Scrapes come every few seconds; asking more often shows nothing new.
  if (hist && hist.service === r.id && Date.now() - hist.at < 2000) return;
  state.historyLoading = true;
  fetch('/api/v1/stats/history?service=' + encodeURIComponent(r.id), { cache: 'no-store' })
    .then(async resp => {
      const body = await resp.text();
      if (!resp.ok) throw new Error(body.trim() || resp.statusText);
      const data = JSON.parse(body);
      state.history = { service: r.id, points: data.points || [], interval: data.interval, at: Date.now() };
    })
    .catch(err => {
      state.history = { service: r.id, points: [], error: String(err.message || err), at: Date.now() };
    })
    .finally(() => {
      state.historyLoading = false;
      if (route().id === r.id) render();
    });
}

// ---------- rendering ----------

function render() {
  renderLive();
  renderErrors();
  const view = document.getElementById('view');
  const focused = document.activeElement && document.activeElement.getAttribute && document.activeElement.getAttribute('href');
  const r = route();
  const crumbs = document.getElementById('crumbs');
  if (!state.snap) return;
  let content;
  if (r.page === 'service') {
    content = servicePage(state.snap, r.id);
    crumbs.replaceChildren(h('a', { href: '#/' }, 'Topology'), ' › service ', h('strong', {}, r.id));
  } else if (r.page === 'workload') {
    content = workloadPage(state.snap, r.id);
    crumbs.replaceChildren(h('a', { href: '#/' }, 'Topology'), ' › workload ', h('strong', {}, r.id));
  } else {
    content = topologyPage(state.snap);
    crumbs.replaceChildren();
  }
  view.dataset.page = r.page;
  view.replaceChildren(...content.filter(c => c !== null && c !== undefined));
  // Once in the document, the edge labels can be measured.
  fitLabels(view);
  if (focused) {
    const el = view.querySelector('[href="' + CSS.escape(focused) + '"]');
    if (el) el.focus({ preventScroll: true });
  }
}

function renderLive() {
  const live = document.getElementById('live');
  const snap = state.snap;
  const st = document.body.dataset.state;
  if (!snap) { live.textContent = 'connecting…'; return; }
  const at = fmtTime(new Date(snap.time));
  live.textContent = st === 'stale' ? 'reconnecting… (last update ' + at + ')' : 'live · updated ' + at;
  document.getElementById('model').textContent =
    'control plane ' + snap.admin + ' · model v' + snap.version + ' · ' + plural(snap.proxies, 'proxy', 'proxies') + ' connected';
}

function renderErrors() {
  const box = document.getElementById('errors');
  const errs = (state.snap && state.snap.errors) || [];
  box.hidden = errs.length === 0;
  box.replaceChildren(...errs.map(e => h('p', {}, 'Could not read the control plane: ' + e)));
}

function statsNotice(snap) {
  const st = snap.stats;
  if (st.available) return null;
  let why = 'the control plane computes rates from two scrapes of the proxies\u2019 metrics' +
    (st.interval ? ', one every ' + st.interval : '') + '; they show within seconds of traffic flowing.';
  if (st.error) why = 'the control plane\u2019s stats could not be read (' + st.error + ').';
  return h('div', { class: 'notice', id: 'no-stats', role: 'status' }, h('strong', {}, 'No traffic data yet: '), why);
}

function topologyPage(snap) {
  const st = snap.stats;
  const hint = st.available ? 'rates over the last ' + st.window + ' · click a service for its page' : 'click a service for its page';
  const out = [];
  const notice = statsNotice(snap);
  out.push(h('section', { class: 'panel', 'aria-labelledby': 'topology-title' },
    h('h2', { id: 'topology-title' }, 'Topology', h('span', { class: 'hint' }, hint)),
    notice,
    snap.topology.nodes.length ? topologySVG(snap) : h('p', { class: 'empty' }, 'No services or workloads in the mesh yet.'),
    legend()));
  out.push(h('div', { class: 'grid2' },
    h('section', { class: 'panel', 'aria-labelledby': 'traffic-title' },
      h('h2', { id: 'traffic-title' }, 'Traffic', h('span', { class: 'hint' }, 'each workload\u2019s calls to each service')),
      edgeTable(snap, snap.topology.edges, true)),
    problemsPanel(snap.problems, 'Problems')));
  return out;
}

function legend() {
  const item = (cls, text) => h('span', {}, h('i', { class: cls }), text);
  return h('div', { class: 'legend' },
    item('ok', 'success ≥ 99%'), item('warn', '≥ 95%'), item('bad', '< 95%'),
    item('tcp', 'TCP streams'), item('nodata', 'no calls or no data'),
    h('span', {}, lockIconHTML(), ' mTLS'),
    h('span', {}, 'labels: requests/s · p99 latency'));
}

function lockIconHTML() {
  return s('svg', { width: 10, height: 12, viewBox: '0 0 10 12', 'aria-hidden': 'true' }, lockShape(0, 0));
}
function lockShape(x, y) {
  return [
    s('path', { class: 'lock-shackle', d: `M${x + 2.5},${y + 5.5} v-2 a2.5,2.5 0 0 1 5,0 v2` }),
    s('rect', { class: 'lock-body', x: x + 0.8, y: y + 5, width: 8.4, height: 6.5, rx: 1.2 }),
  ];
}

// Layout of the graph: a column per call depth, left to right.
const G = { nodeW: 230, head: 44, row: 22, chip: 26, pad: 8, colGap: 190, rowGap: 30, margin: 16 };

function topologySVG(snap) {
  const topo = snap.topology;
  const available = snap.stats.available;
  const byId = new Map(topo.nodes.map(n => [n.id, n]));
  const boxOf = id => { const n = byId.get(id); return n && n.within ? n.within : id; };
  const boxes = topo.nodes.filter(n => !n.within);
  const chips = new Map();
  for (const n of topo.nodes) if (n.within) (chips.get(n.within) || chips.set(n.within, []).get(n.within)).push(n);

  // Columns, each ordered by where its callers are (barycentres), so
  // that edges cross little.
  const cols = [];
  for (const b of boxes) (cols[b.layer] = cols[b.layer] || []).push(b);
  for (let i = 0; i < cols.length; i++) cols[i] = cols[i] || [];
  const callers = new Map();
  for (const e of topo.edges) {
    const to = boxOf(e.target);
    if (to !== e.from) (callers.get(to) || callers.set(to, []).get(to)).push(e.from);
  }
  const rank = new Map();
  cols.forEach((col, i) => {
    const key = n => {
      const ps = (callers.get(n.id) || []).filter(p => rank.has(p));
      return ps.length ? ps.reduce((a, p) => a + rank.get(p), 0) / ps.length : Number.MAX_SAFE_INTEGER;
    };
    const keys = new Map(col.map(n => [n.id, i === 0 ? 0 : key(n)]));
    col.sort((a, b) => (keys.get(a.id) - keys.get(b.id)) || a.id.localeCompare(b.id));
    col.forEach((n, j) => rank.set(n.id, j));
  });

  const heightOf = n => G.head + Math.max(1, n.workloads.length) * G.row + (chips.get(n.id) || []).length * G.chip + G.pad;
  const colHeights = cols.map(col => col.reduce((a, n) => a + heightOf(n), 0) + Math.max(0, col.length - 1) * G.rowGap);
  const tall = Math.max(...colHeights, 0);
  const geo = new Map();
  cols.forEach((col, i) => {
    let y = G.margin + (tall - colHeights[i]) / 2;
    const x = G.margin + i * (G.nodeW + G.colGap);
    for (const n of col) {
      const g = { x, y, w: G.nodeW, h: heightOf(n), rows: new Map(), chips: new Map() };
      n.workloads.forEach((w, k) => g.rows.set(w.id, y + G.head + k * G.row + G.row / 2));
      (chips.get(n.id) || []).forEach((c, k) => g.chips.set(c.id, y + G.head + Math.max(1, n.workloads.length) * G.row + k * G.chip + G.chip / 2));
      geo.set(n.id, g);
      y += g.h + G.rowGap;
    }
  });
  const width = G.margin * 2 + cols.length * G.nodeW + Math.max(0, cols.length - 1) * G.colGap;
  const height = G.margin * 2 + tall;

  // Where each edge starts (its workload's row) and ends (the left side of
  // its target's box, spread over the box for several, or the subset's chip).
  const ends = new Map();
  const start = e => {
    const g = geo.get(e.from);
    return { x: g.x + g.w, y: g.rows.get(e.source) || (g.y + G.head / 2) };
  };
  const incoming = new Map();
  for (const e of topo.edges) {
    const b = boxOf(e.target);
    if (!geo.has(b) || !geo.has(e.from)) continue;
    const key = byId.get(e.target) && byId.get(e.target).within ? e.target : b;
    (incoming.get(key) || incoming.set(key, []).get(key)).push(e);
  }
  for (const [key, es] of incoming) {
    const g = geo.get(boxOf(key));
    es.sort((a, b) => start(a).y - start(b).y || a.id.localeCompare(b.id));
    es.forEach((e, i) => {
      let y;
      if (g.chips.has(key)) y = g.chips.get(key);
      else y = g.y + 14 + (g.h - 28) * (i + 1) / (es.length + 1);
      ends.set(e.id, { x: g.x, y, g });
    });
  }

  const defs = s('defs', {}, ['ok', 'warn', 'bad', 'tcp', 'idle', 'nodata'].map(c =>
    s('marker', { id: 'arrow-' + c, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow-' + c }))));

  const edgeEls = [];
  const labelEls = [];
  for (const e of topo.edges) {
    const end = ends.get(e.id);
    if (!end) continue;
    const a = start(e);
    const cls = edgeClass(e, available);
    let d, mid;
    if (end.x > a.x) {
      const dx = Math.max(40, (end.x - a.x) / 2);
      const c1 = { x: a.x + dx, y: a.y }, c2 = { x: end.x - dx, y: end.y };
      d = `M${a.x},${a.y} C${c1.x},${c1.y} ${c2.x},${c2.y} ${end.x - 1},${end.y}`;
      mid = { x: (a.x + 3 * c1.x + 3 * c2.x + end.x) / 8, y: (a.y + 3 * c1.y + 3 * c2.y + end.y) / 8 };
    } else {
      // A call back to an earlier column, or within one box: round the
      // outside of the boxes rather than through them.
      const below = Math.max(a.y, end.y) + 60;
      d = `M${a.x},${a.y} C${a.x + 90},${a.y} ${a.x + 90},${below} ${(a.x + end.x) / 2},${below} S${end.x - 90},${end.y} ${end.x - 1},${end.y}`;
      mid = { x: (a.x + end.x) / 2, y: below };
    }
    const st = e.stats;
    const attrs = {
      class: 'edge ' + cls, 'data-edge': e.id, 'data-source': e.source, 'data-target': e.target, 'data-class': cls,
    };
    if (available && st) {
      attrs['data-rps'] = st.rps;
      attrs['data-requests'] = st.requests;
      if (st.successRate !== null) attrs['data-success'] = st.successRate;
      if (st.latencyMs) attrs['data-p99'] = st.latencyMs.p99;
      if (st.tcp) attrs['data-tcp-open'] = st.tcp.open;
    }
    if (e.mtls !== null && e.mtls !== undefined) attrs['data-mtls'] = String(e.mtls);
    const title = edgeTitle(e, available);
    edgeEls.push(s('g', attrs,
      s('title', {}, title),
      s('path', { class: 'line', d, 'marker-end': `url(#arrow-${cls})`, 'stroke-width': strokeWidth(st, available) })));
    const text = edgeLabel(e, available);
    if (text) {
      // Placed around its point of the curve by fitLabels, once measured.
      labelEls.push(s('g', { class: 'edge ' + cls, 'data-label-for': e.id, 'data-x': mid.x, 'data-y': mid.y },
        s('rect', { class: 'label-bg', rx: 4 }),
        e.mtls === true ? s('g', { class: 'lock' }, s('title', {}, 'mTLS'), lockShape(0, 0)) : null,
        s('text', { class: 'label', x: mid.x, y: mid.y + 4 }, text,
          e.mtls === false ? s('tspan', { class: 'plain' }, ' · plaintext') : null)));
    }
  }

  const nodeEls = boxes.map(n => nodeSVG(n, geo.get(n.id), chips.get(n.id) || [], available));
  return s('svg', {
    id: 'topology', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
    'aria-label': `Service topology: ${plural(topo.nodes.length, 'node')}, ${plural(topo.edges.length, 'edge')}`,
    'data-nodes': topo.nodes.length, 'data-edges': topo.edges.length,
  }, defs, s('g', { class: 'edges' }, edgeEls), s('g', { class: 'nodes' }, nodeEls), s('g', { class: 'labels' }, labelEls));
}

function strokeWidth(st, available) {
  if (!available || !st || !(st.rps > 0)) return 2;
  return (2 + Math.min(4, Math.log10(1 + st.rps) * 2)).toFixed(1);
}

function edgeLabel(e, available) {
  const st = e.stats;
  if (!available || !st) return '';
  if (st.requests > 0) return fmtRate(st.rps) + ' rps · p99 ' + fmtMs(st.latencyMs && st.latencyMs.p99);
  if (tcpActive(st)) return tcpText(st);
  return 'no calls';
}

function edgeTitle(e, available) {
  let t = e.source + ' → ' + e.target;
  const st = e.stats;
  if (!available || !st) return t + ': no traffic data yet';
  if (st.requests > 0) {
    t += `: ${fmtRate(st.rps)} rps, ${fmtPct(st.successRate)} success, p50 ${fmtMs(st.latencyMs.p50)}, p99 ${fmtMs(st.latencyMs.p99)}`;
  } else if (tcpActive(st)) {
    t += ': ' + edgeLabel(e, available);
  } else {
    t += ': no calls in the window';
  }
  if (e.mtls === true) t += ', mTLS';
  if (e.mtls === false) t += ', not all over mTLS';
  return t;
}

// fitLabels centres each edge label, a lock for mTLS and the text, on
// its point of the curve, over a background its size: only the browser
// can measure the text.
function fitLabels(root) {
  const lockW = 13, height = 17;
  const placed = [];
  const labels = [...root.querySelectorAll('g[data-label-for]')];
  labels.sort((a, b) => Number(a.dataset.y) - Number(b.dataset.y));
  for (const g of labels) {
    const x = Number(g.dataset.x);
    let y = Number(g.dataset.y);
    const text = g.querySelector('text');
    const lock = g.querySelector('g.lock');
    const w = text.getComputedTextLength() + (lock ? lockW : 0);
    const left = x - w / 2;
    // Labels of calls that converge would cover each other: move each
    // below those already placed that it overlaps.
    for (let moved = true; moved;) {
      moved = false;
      for (const p of placed) {
        if (left - 5 < p.right && left + w + 5 > p.left && y - 8 < p.bottom && y - 8 + height > p.top) {
          y = p.bottom + 9;
          moved = true;
        }
      }
    }
    placed.push({ left: left - 5, right: left + w + 5, top: y - 8, bottom: y - 8 + height });
    if (lock) lock.setAttribute('transform', `translate(${left},${y - 6})`);
    text.setAttribute('x', left + (lock ? lockW : 0));
    text.setAttribute('y', y + 4);
    const rect = g.querySelector('rect.label-bg');
    rect.setAttribute('x', left - 5);
    rect.setAttribute('y', y - 8);
    rect.setAttribute('width', w + 10);
    rect.setAttribute('height', height);
  }
}

function nodeSVG(n, g, chipNodes, available) {
  const isService = n.kind === 'service';
  const href = (isService ? '#/service/' : '#/workload/') + n.id;
  const w = g.w;
  const headPath = `M0,6 a6,6 0 0 1 6,-6 h${w - 12} a6,6 0 0 1 6,6 v${G.head - 6} h${-w} z`;
  const sig = isService ? signalsText(n.stats, available) : clientText(n, available);
  const sigText = sig.parts
    ? s('text', { class: 'sig', x: 10, y: 35 }, sig.parts.map(p => typeof p === 'string' ? p : s('tspan', { class: p.cls }, p.text)))
    : s('text', { class: 'sig' + (sig.none ? ' none' : ''), x: 10, y: 35 }, sig.text);
  const kindText = isService ? nsOf(n.id) + (n.protocol ? ' · ' + n.protocol : '') : nsOf(n.id) + ' · workload';
  const rows = n.workloads.map((wl, k) => {
    const y = G.head + k * G.row + G.row / 2;
    const wst = wl.stats;
    let right = '';
    if (available && wst && wst.requests > 0) right = fmtRate(wst.rps) + ' rps in';
    else if (available && tcpActive(wst)) right = plural(wst.tcp.open, 'conn') + ' in';
    return s('g', { 'data-workload': wl.id, 'data-connected': String(wl.connected) },
      s('title', {}, wl.id + (wl.connected ? ': proxy connected' : ': proxy not connected')),
      s('circle', { class: wl.connected ? 'up' : 'down', cx: 14, cy: y, r: 4 }),
      s('text', { class: 'wl', x: 24, y: y + 4 }, shortName(wl.id)),
      right ? s('text', { class: 'wl-rps', x: w - 10, y: y + 4, 'text-anchor': 'end' }, right) : null);
  });
  if (n.workloads.length === 0) {
    rows.push(s('text', { class: 'sig none', x: 10, y: G.head + G.row / 2 + 4 }, n.endpoints ? 'workloads drawn in another service' : 'no endpoints'));
  }
  const chipEls = chipNodes.map((c, k) => {
    const y = G.head + Math.max(1, n.workloads.length) * G.row + k * G.chip;
    const cst = c.stats;
    let right = '';
    if (available && cst && cst.requests > 0) right = ' · ' + fmtRate(cst.rps) + ' rps';
    return s('a', { class: 'chiplink', href: '#/service/' + c.id, 'data-service': c.id, 'data-node': c.id, 'data-within': n.id, 'aria-label': 'service ' + c.id },
      s('rect', { class: 'chip', x: 8, y: y + 3, width: w - 16, height: G.chip - 6, rx: 4 }),
      s('text', { class: 'chiptext', x: 16, y: y + G.chip / 2 + 4 }, shortName(c.id) + ' · ' + plural(c.endpoints, 'endpoint') + right));
  });
  const attrs = { class: 'node ' + (isService ? 'service-node' : 'workload-node'), transform: `translate(${g.x},${g.y})`, 'data-node': n.id, 'data-kind': n.kind, 'data-layer': n.layer };
  if (isService) attrs['data-service'] = n.id;
  if (available && n.stats) attrs['data-rps'] = n.stats.rps;
  return s('g', attrs,
    s('a', { href, 'aria-label': (isService ? 'service ' : 'workload ') + n.id },
      s('rect', { class: 'box', width: w, height: g.h, rx: 6 }),
      s('path', { class: 'head', d: headPath }),
      s('text', { class: 'name', x: 10, y: 18 }, shortName(n.id)),
      s('text', { class: 'ns', x: w - 10, y: 18, 'text-anchor': 'end' }, kindText),
      sigText,
      rows),
    chipEls);
}

// clientText is what a box of a workload no service selects shows: the
// calls it makes, as it takes none through a service.
function clientText(n, available) {
  if (!available) return { text: 'no traffic data yet', none: true };
  const out = state.snap.topology.edges.filter(e => e.from === n.id && e.stats);
  const rps = out.reduce((a, e) => a + e.stats.rps, 0);
  if (rps > 0) return { text: 'calls ' + fmtRate(rps) + ' rps' };
  return { text: 'no calls', none: true };
}

function edgeTable(snap, edges, withSource, withTarget = true) {
  if (!edges.length) return h('p', { class: 'sub' }, 'None.');
  const available = snap.stats.available;
  const rows = edges.map(e => {
    const st = available ? e.stats : null;
    const has = st && st.requests > 0;
    const cls = edgeClass(e, available);
    return h('tr', { 'data-edge-row': e.id },
      withSource ? h('td', {}, h('a', { href: workloadHref(snap, e.source) }, e.source)) : null,
      withTarget ? h('td', {}, h('a', { href: '#/service/' + e.target }, e.target)) : null,
      h('td', { class: 'num' }, st ? fmtRate(st.rps) : '–'),
      h('td', { class: 'num' }, has ? h('span', { class: 'rate ' + cls }, fmtPct(st.successRate)) : '–'),
      h('td', { class: 'num' }, has ? fmtMs(st.latencyMs.p50) : '–'),
      h('td', { class: 'num' }, has ? fmtMs(st.latencyMs.p99) : '–'),
      h('td', { class: 'num' }, st && tcpActive(st) ? tcpText(st).split(' · ')[0] : '–'),
      h('td', {}, mtlsBadge(e, available)));
  });
  return h('table', {},
    h('thead', {}, h('tr', {},
      withSource ? h('th', {}, 'From') : null, withTarget ? h('th', {}, 'To') : null, h('th', { class: 'num' }, 'RPS'), h('th', { class: 'num' }, 'Success'),
      h('th', { class: 'num' }, 'p50'), h('th', { class: 'num' }, 'p99'), h('th', { class: 'num' }, 'TCP'), h('th', {}, 'mTLS'))),
    h('tbody', {}, rows));
}

function workloadHref(snap, id) {
  // A workload drawn in a service's box leads to that service.
  const node = snap.topology.nodes.find(n => n.workloads.some(w => w.id === id));
  if (node && node.kind === 'service') return '#/service/' + node.id;
  return '#/workload/' + id;
}

function mtlsBadge(e, available) {
  if (e.mtls === true) return h('span', { class: 'badge ok', 'data-mtls': 'true' }, lockIconHTML(), ' mTLS');
  if (e.mtls === false) return h('span', { class: 'badge bad', 'data-mtls': 'false' }, 'plaintext');
  if (!available) return '–';
  // The proxies label requests with mTLS, not TCP streams.
  if (tcpActive(e.stats)) return h('span', { class: 'badge muted', title: 'TCP streams are not labelled with mTLS; requests are' }, 'TCP: not measured');
  return h('span', { class: 'badge muted' }, 'no calls');
}

function problemsPanel(problems, title) {
  return h('section', { class: 'panel', id: 'problems', 'aria-labelledby': 'problems-title', 'data-count': problems.length },
    h('h2', { id: 'problems-title' }, title, h('span', { class: 'hint' }, problems.length ? String(problems.length) : '')),
    problems.length === 0
      ? h('p', { class: 'ok-text' }, 'None: every manifest, route and policy is in force.')
      : h('ul', { class: 'problems' }, problems.map(p => h('li', { class: 'kind-' + p.kind, 'data-problem': p.kind },
        h('div', { class: 'what' }, p.object || p.file || p.kind, p.file && p.object ? h('span', { class: 'sub' }, ' · ' + p.file) : null),
        h('div', { class: 'msg' }, p.message)))));
}

// ---------- service page ----------

function servicePage(snap, id) {
  const node = snap.topology.nodes.find(n => n.id === id && n.kind === 'service');
  const svc = snap.services.find(x => x.name === id);
  if (!node || !svc) {
    return [h('p', { class: 'empty' }, 'No service ' + id + ' in the mesh (now). ', h('a', { href: '#/' }, 'Back to the topology.'))];
  }
  const available = snap.stats.available;
  const st = node.stats;
  const out = [];
  out.push(h('div', { class: 'title', 'data-service-page': id },
    h('h1', {}, shortName(id)),
    h('span', { class: 'sub' }, 'service in ' + nsOf(id)),
    svc.ports.map(p => h('span', { class: 'badge muted' }, p.port + '/' + (p.protocol || 'auto'))),
    h('span', { class: 'badge muted' }, plural(svc.endpoints.length, 'endpoint'))));
  if (node.within) out.push(h('p', { class: 'sub' }, 'Its workloads are some of ', h('a', { href: '#/service/' + node.within }, node.within), '\u2019s, and drawn there.'));
  out.push(statsNotice(snap));
  if (available && st) {
    const has = st.requests > 0;
    const tile = (k, v, cls) => h('div', { class: 'tile' }, h('div', { class: 'k' }, k), h('div', { class: 'v' + (cls ? ' rate ' + cls : '') }, v));
    out.push(h('div', { class: 'tiles', 'data-window': snap.stats.window },
      tile('Requests/s', fmtRate(st.rps)),
      tile('Success', has ? fmtPct(st.successRate) : '–', has ? rateClass(st.successRate) : ''),
      tile('p50', has ? fmtMs(st.latencyMs.p50) : '–'),
      tile('p95', has ? fmtMs(st.latencyMs.p95) : '–'),
      tile('p99', has ? fmtMs(st.latencyMs.p99) : '–'),
      st.tcp ? tile('TCP open', String(st.tcp.open)) : null,
      st.tcp ? tile('TCP bytes', fmtBytes(st.tcp.receivedBytesPerSec + st.tcp.sentBytesPerSec)) : null));
  }
  out.push(charts(id));

  const eps = svc.endpoints.map(ep => {
    const wl = findWorkload(snap, ep.workload);
    const wst = wl && wl.stats;
    const has = available && wst && wst.requests > 0;
    return h('tr', { 'data-endpoint': ep.workload },
      h('td', {}, ep.workload),
      h('td', { class: 'mono' }, ep.address),
      h('td', { class: 'mono' }, ep.identity),
      h('td', {}, wl && wl.connected ? h('span', { class: 'badge ok' }, 'connected') : h('span', { class: 'badge bad' }, 'not connected')),
      h('td', { class: 'num' }, has ? fmtRate(wst.rps) : '–'),
      h('td', { class: 'num' }, has ? fmtPct(wst.successRate) : '–'),
      h('td', { class: 'num' }, has ? fmtMs(wst.latencyMs.p99) : '–'));
  });
  out.push(h('section', { class: 'panel' }, h('h2', {}, 'Endpoints', h('span', { class: 'hint' }, 'each workload\u2019s proxy, inbound')),
    eps.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Workload'), h('th', {}, 'Address'), h('th', {}, 'Identity'),
      h('th', {}, 'Proxy'), h('th', { class: 'num' }, 'RPS in'), h('th', { class: 'num' }, 'Success'), h('th', { class: 'num' }, 'p99'))),
    h('tbody', {}, eps)) : h('p', { class: 'sub' }, 'No workload serves this service.')));

  const mine = new Set(svc.endpoints.map(e => e.workload));
  // Calls to the services drawn within this one (its versions, a route's
  // backends) are calls to it too.
  const inside = new Set(snap.topology.nodes.filter(n => n.within === id).map(n => n.id));
  const callers = snap.topology.edges.filter(e => e.target === id || inside.has(e.target));
  const calls = snap.topology.edges.filter(e => mine.has(e.source));
  out.push(h('section', { class: 'panel', id: 'callers' }, h('h2', {}, 'Called by'), edgeTable(snap, callers, true, callers.some(e => e.target !== id))));
  out.push(h('section', { class: 'panel', id: 'calls' }, h('h2', {}, 'Calls', h('span', { class: 'hint' }, 'by this service’s workloads')), edgeTable(snap, calls, true)));

  out.push(routesPanel(snap, id));
  out.push(policiesPanel(snap, nsOf(id)));
  out.push(problemsPanel(snap.problems.filter(p => (p.services || []).includes(id)), 'Problems of this service'));
  return out;
}

function findWorkload(snap, id) {
  for (const n of snap.topology.nodes) for (const w of n.workloads) if (w.id === id) return w;
  return null;
}

function routesPanel(snap, id) {
  const ns = nsOf(id), name = shortName(id);
  const routes = snap.routes.filter(r => r.namespace === ns && r.parents.some(p => p.split(':')[0] === name));
  const stats = new Map((snap.routeStats || []).map(r => [r.name, r]));
  const rows = routes.map(r => {
    const key = r.kind + ' ' + r.namespace + '/' + r.name;
    const rs = stats.get(key);
    const statuses = r.status.filter(st => st.parent.split(':')[0] === name);
    return h('tr', { 'data-route': key },
      h('td', {}, h('strong', {}, r.name), h('div', { class: 'sub' }, r.kind)),
      h('td', {}, r.summary, r.rejected ? h('ul', { class: 'reasons' }, h('li', {}, 'rejected: ' + r.rejected)) : null),
      h('td', {}, statuses.map(st => h('div', {},
        st.inForce ? h('span', { class: 'badge ok', 'data-status': 'in-force' }, 'in force') : h('span', { class: 'badge bad', 'data-status': 'not-in-force' }, r.rejected ? 'rejected' : 'not in force'),
        statuses.length > 1 || st.parent.includes(':') ? h('span', { class: 'sub' }, ' on ' + st.parent) : null,
        st.reasons && st.reasons.length ? h('ul', { class: 'reasons' }, st.reasons.map(x => h('li', {}, x))) : null))),
      h('td', { class: 'num' }, rs && rs.requests > 0 ? fmtRate(rs.rps) + ' rps · ' + fmtPct(rs.successRate) : '–'));
  });
  return h('section', { class: 'panel', id: 'routes' },
    h('h2', {}, 'Routes and splits', h('span', { class: 'hint' }, 'attached to this service; the calls a route sends to a backend service count as calls to that service')),
    rows.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Route'), h('th', {}, 'Rules'), h('th', {}, 'Status'), h('th', { class: 'num' }, 'Traffic'))),
      h('tbody', {}, rows)) : h('p', { class: 'sub' }, 'None: calls go to the service\u2019s endpoints, balanced.'));
}

function policiesPanel(snap, ns) {
  const ps = snap.policies.filter(p => p.namespace === ns);
  const rows = ps.map(p => h('tr', { 'data-policy': p.kind + ' ' + p.namespace + '/' + p.name },
    h('td', {}, h('strong', {}, p.name), h('div', { class: 'sub' }, p.kind)),
    h('td', {}, p.summary),
    h('td', {}, !p.status ? h('span', { class: 'badge muted' }, '–')
      : p.status.inForce ? h('span', { class: 'badge ok' }, 'in force')
        : [h('span', { class: 'badge warn' }, 'not in force'), h('div', { class: 'sub' }, p.status.reason)])));
  return h('section', { class: 'panel', id: 'policies' },
    h('h2', {}, 'Policies', h('span', { class: 'hint' }, 'of namespace ' + ns)),
    rows.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Policy'), h('th', {}, 'What it does'), h('th', {}, 'Status'))),
      h('tbody', {}, rows)) : h('p', { class: 'sub' }, 'None.'));
}

// ---------- charts ----------

function charts(id) {
  const hist = state.history && state.history.service === id ? state.history : null;
  if (!hist) return h('div', { class: 'charts', id: 'charts' }, h('p', { class: 'sub' }, 'Loading the history…'));
  if (hist.error) return h('div', { class: 'notice', id: 'charts' }, 'No history: ' + hist.error);
  const pts = hist.points.map(p => ({ t: new Date(p.time).getTime(), p }));
  const series = f => pts.map(({ t, p }) => [t, f(p)]);
  return h('div', { class: 'charts', id: 'charts', 'data-points': pts.length },
    lineChart({ id: 'rps', title: 'Requests per second', fmt: fmtRate, series: [{ name: 'rps', values: series(p => p.rps) }] }),
    lineChart({ id: 'success', title: 'Success rate', fmt: fmtPct, success: true, series: [{ name: 'success', values: series(p => p.successRate) }] }),
    lineChart({
      id: 'latency', title: 'Latency', fmt: fmtMs,
      series: [{ name: 'p50', values: series(p => p.latencyMs && p.latencyMs.p50) }, { name: 'p99', values: series(p => p.latencyMs && p.latencyMs.p99) }],
    }));
}

function lineChart(c) {
  const W = 460, H = 170, L = 52, R = 14, T = 10, B = 24;
  const all = c.series.flatMap(x => x.values).filter(([, v]) => v !== null && v !== undefined);
  const keys = c.series.length > 1
    ? h('span', { class: 'key' }, c.series.map((x, i) => h('span', {}, h('i', { class: 's' + i }), x.name + ' ')))
    : null;
  const box = h('div', { class: 'chart', 'data-chart': c.id, 'data-points': all.length }, h('h3', {}, c.title, keys));
  if (all.length === 0) {
    box.append(s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': c.title + ': no requests yet' },
      s('text', { class: 'nodata', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no requests in the samples kept yet')));
    return box;
  }
  const times = c.series[0].values.map(([t]) => t);
  const t0 = Math.min(...times), t1 = Math.max(...times);
  let lo = 0, hi = Math.max(...all.map(([, v]) => v));
  if (c.success) {
    const min = Math.min(...all.map(([, v]) => v));
    hi = 1;
    lo = min >= 0.9 ? 0.9 : min >= 0.5 ? 0.5 : 0;
  } else {
    hi = niceCeil(hi || 1);
  }
  const x = t => L + (t1 === t0 ? (W - L - R) : (t - t0) / (t1 - t0) * (W - L - R));
  const y = v => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const grid = [];
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    grid.push(s('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    grid.push(s('text', { class: 'axis', x: L - 6, y: y(v) + 3.5, 'text-anchor': 'end' }, c.fmt(v)));
  }
  for (const t of t1 === t0 ? [t0] : [t0, (t0 + t1) / 2, t1]) {
    grid.push(s('text', { class: 'axis', x: x(t), y: H - 6, 'text-anchor': t === t0 ? 'start' : t === t1 ? 'end' : 'middle' }, fmtTime(new Date(t))));
  }
  const lines = c.series.map((ser, i) => {
    // A point without requests has no success rate or latency: the line
    // breaks there rather than dropping to zero.
    let d = '', pen = false;
    for (const [t, v] of ser.values) {
      if (v === null || v === undefined) { pen = false; continue; }
      d += (pen ? 'L' : 'M') + x(t).toFixed(1) + ',' + y(v).toFixed(1);
      pen = true;
    }
    const last = ser.values.filter(([, v]) => v !== null && v !== undefined).pop();
    return s('g', { 'data-series': ser.name },
      s('path', { class: 'series s' + i, d }),
      last ? s('circle', { class: 'series s' + i, cx: x(last[0]), cy: y(last[1]), r: 2.5 }) : null,
      last ? s('title', {}, ser.name + ': ' + c.fmt(last[1])) : null);
  });
  box.append(s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': c.title + ' over the samples kept' }, grid, lines));
  return box;
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// ---------- workload page ----------

function workloadPage(snap, id) {
  const wl = (snap.workloads || []).find(w => w.name === id);
  const row = findWorkload(snap, id);
  if (!wl) return [h('p', { class: 'empty' }, 'No workload ' + id + ' in the mesh (now). ', h('a', { href: '#/' }, 'Back to the topology.'))];
  const services = snap.services.filter(svc => svc.endpoints.some(e => e.workload === id));
  const available = snap.stats.available;
  const st = row && row.stats;
  const out = [h('div', { class: 'title', 'data-workload-page': id }, h('h1', {}, shortName(id)), h('span', { class: 'sub' }, 'workload in ' + nsOf(id)),
    row && row.connected ? h('span', { class: 'badge ok' }, 'proxy connected') : h('span', { class: 'badge bad' }, 'proxy not connected'))];
  out.push(statsNotice(snap));
  const kv = (k, v) => h('tr', {}, h('th', {}, k), h('td', {}, v));
  out.push(h('section', { class: 'panel' }, h('h2', {}, 'Workload'), h('table', {}, h('tbody', {},
    kv('Address', h('span', { class: 'mono' }, wl.address)),
    kv('Service account', wl.serviceAccount),
    kv('Ports', (wl.ports || []).map(p => p.port + '/' + (p.protocol || 'auto')).join(', ') || 'none (a client only)'),
    kv('Services', services.length ? services.map(x => h('a', { href: '#/service/' + x.name }, x.name, ' ')) : 'none'),
    kv('Inbound', available && st && st.requests > 0 ? `${fmtRate(st.rps)} rps, ${fmtPct(st.successRate)} success, p99 ${fmtMs(st.latencyMs.p99)}` : '–'),
    kv('Source', wl.source)))));
  out.push(h('section', { class: 'panel', id: 'calls' }, h('h2', {}, 'Calls'), edgeTable(snap, snap.topology.edges.filter(e => e.source === id), false)));
  return out;
}

// ---------- start ----------

window.addEventListener('hashchange', () => {
  render();
  maybeFetchHistory();
  document.getElementById('view').focus({ preventScroll: true });
  window.scrollTo(0, 0);
});
connect();
