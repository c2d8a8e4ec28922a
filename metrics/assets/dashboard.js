// The meshbridge dashboard: polls /api/dashboard every second and updates the page in place.
// No framework, no build step. Every value a test (or a person) may read is also in a data-*
// attribute: [data-node], [data-edge], [data-split] > [data-backend], [data-mesh][data-feature],
// [data-object].
'use strict';
(function () {
  const API = '/api/dashboard';
  const PERIOD_MS = 1000;
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);
  const state = { updates: 0, errors: 0, last: null, lastOk: null };
  window.meshbridgeDashboard = state;

  // ---- small DOM helpers -------------------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const k of kids) e.append(k);
    return e;
  }
  function text(e, t) { t = String(t); if (e.textContent !== t) e.textContent = t; }
  function attr(e, k, v) { v = v === null || v === undefined ? '' : String(v); if (e.getAttribute(k) !== v) e.setAttribute(k, v); }
  // Keeps parent's children one per item, in order, reusing the element of the same key.
  function keyed(parent, items, key, make, update) {
    const old = new Map();
    for (const c of Array.from(parent.children)) old.set(c.getAttribute('data-key'), c);
    let prev = null;
    for (const it of items) {
      const k = key(it);
      let e = old.get(k);
      if (e) old.delete(k); else { e = make(it); e.setAttribute('data-key', k); }
      update(e, it);
      const want = prev ? prev.nextSibling : parent.firstChild;
      if (e !== want) parent.insertBefore(e, want);
      prev = e;
    }
    for (const e of old.values()) e.remove();
  }

  // ---- formatting --------------------------------------------------------------------------
  const num = (v) => (typeof v === 'number' && isFinite(v) ? v : null);
  function fmtRps(v) { v = num(v) || 0; return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + ' rps'; }
  function fmtPct(v) { v = num(v); if (v === null) return '–'; return (Math.round(v * 10) / 10) + '%'; }
  function fmtRate(v) { v = num(v); return v === null ? '–' : fmtPct(v * 100); }
  function fmtMs(v) { v = num(v); return v === null ? '–' : (v >= 100 ? v.toFixed(0) : (Math.round(v * 100) / 100)) + ' ms'; }
  function statsLine(s) {
    if (!s || !(s.requests > 0)) return 'no requests';
    return `${fmtRps(s.rps)} · ${fmtRate(s.successRate)} · p99 ${fmtMs(s.p99Ms)}`;
  }
  function health(s) {
    if (!s || !(s.requests > 0)) return 'idle';
    const r = num(s.successRate);
    return r === null ? 'idle' : r >= 0.99 ? 'good' : r >= 0.9 ? 'warn' : 'bad';
  }
  const short = (id, nodes) => { const n = nodes.get(id); return n ? n.name : id; };

  // ---- topology ----------------------------------------------------------------------------
  const NW = 250, NH = 62, COLGAP = 330, ROWGAP = 34, PAD = 20;

  // Columns by longest path from the callers (cycles broken where met).
  function layout(nodes, edges) {
    const out = new Map(nodes.map((n) => [n.id, []]));
    const indeg = new Map(nodes.map((n) => [n.id, 0]));
    for (const e of edges) {
      if (!out.has(e.from) || !out.has(e.to) || e.from === e.to) continue;
      out.get(e.from).push(e.to);
      indeg.set(e.to, indeg.get(e.to) + 1);
    }
    const rank = new Map();
    const onStack = new Set();
    function visit(id, r) {
      if (onStack.has(id) || (rank.has(id) && rank.get(id) >= r)) return;
      rank.set(id, r);
      onStack.add(id);
      for (const t of out.get(id)) visit(t, r + 1);
      onStack.delete(id);
    }
    for (const n of nodes) if (indeg.get(n.id) === 0) visit(n.id, 0);
    for (const n of nodes) if (!rank.has(n.id)) visit(n.id, 0);
    const cols = [];
    for (const n of nodes) { const r = rank.get(n.id); (cols[r] = cols[r] || []).push(n); }
    const pos = new Map();
    const tallest = Math.max(1, ...cols.map((c) => (c ? c.length : 0)));
    const height = PAD * 2 + tallest * NH + (tallest - 1) * ROWGAP;
    cols.forEach((c, i) => {
      if (!c) return;
      const h = c.length * NH + (c.length - 1) * ROWGAP;
      const y0 = (height - h) / 2;
      c.forEach((n, j) => pos.set(n.id, { x: PAD + i * (NW + COLGAP), y: y0 + j * (NH + ROWGAP) }));
    });
    const width = PAD * 2 + Math.max(1, cols.length) * NW + Math.max(0, cols.length - 1) * COLGAP;
    return { pos, width, height };
  }

  // Where the segment from the centre of box a towards point p leaves the box.
  function boundary(a, p) {
    const cx = a.x + NW / 2, cy = a.y + NH / 2;
    const dx = p.x - cx, dy = p.y - cy;
    if (dx === 0 && dy === 0) return { x: cx, y: cy };
    const s = Math.min(Math.abs((NW / 2 + 4) / (dx || 1e-9)), Math.abs((NH / 2 + 4) / (dy || 1e-9)));
    return { x: cx + dx * s, y: cy + dy * s };
  }

  // An edge's path (a quadratic curve between the boxes' borders) and its label's place.
  function geometry(e, pos, pairs) {
    const a = pos.get(e.from), b = pos.get(e.to), s = e.stats || {};
    const ca = { x: a.x + NW / 2, y: a.y + NH / 2 }, cb = { x: b.x + NW / 2, y: b.y + NH / 2 };
    // Bend edges that share a column or run both ways, so that they do not overlap.
    let bend = 0;
    if (pairs.has(e.to + '\u0000' + e.from)) bend = 28;
    if (e.from !== e.to && Math.abs(a.x - b.x) < 1) bend = 70;
    const mx = (ca.x + cb.x) / 2, my = (ca.y + cb.y) / 2;
    const len = Math.hypot(cb.x - ca.x, cb.y - ca.y) || 1;
    const nx = -(cb.y - ca.y) / len, ny = (cb.x - ca.x) / len;
    const ctl = e.from === e.to ? { x: ca.x + NW / 2 + 60, y: ca.y - NH } : { x: mx + nx * bend * 2, y: my + ny * bend * 2 };
    const straight = e.from !== e.to && bend === 0;
    const p0 = boundary(a, straight ? cb : ctl);
    const p1 = boundary(b, straight ? ca : ctl);
    const denied = num(s.denied) || 0;
    const label = e.refused ? `refused · ${denied} denied` : statsLine(s) + (denied > 0 ? ` · ${denied} denied` : '');
    // The label just above the line, where it fits between the boxes: starting at 30 % of
    // the way when the line falls to the right, ending at 70 % when it rises, centred on the
    // middle when it is level. (`spreadLabels` may slide it along the line.)
    const dx = p1.x - p0.x, dy = p1.y - p0.y;
    const w = label.length * 6.5;
    const level = Math.abs(dy) <= Math.abs(dx) * 0.05;
    const falls = dy * dx > 0 || Math.abs(dx) < 1;
    const anchor = level ? 'middle' : falls ? 'start' : 'end';
    const place = (t) => {
      const at = (k) => (1 - t) * (1 - t) * p0[k] + 2 * (1 - t) * t * ctl[k] + t * t * p1[k];
      const lx = at('x') + (level ? 0 : falls ? 6 : -6), ly = at('y') - 6;
      const x0 = anchor === 'start' ? lx : anchor === 'end' ? lx - w : lx - w / 2;
      return { lx, ly, x0, x1: x0 + w };
    };
    const t = level ? 0.5 : dx >= 0 === falls ? 0.3 : 0.7;
    return {
      d: `M${p0.x.toFixed(1)},${p0.y.toFixed(1)} Q${ctl.x.toFixed(1)},${ctl.y.toFixed(1)} ${p1.x.toFixed(1)},${p1.y.toFixed(1)}`,
      anchor, denied, text: label, t, place, ...place(t),
    };
  }

  // Labels that would overlap (edges crossing) slide along their own line, else move down.
  function spreadLabels(labels) {
    const placed = [];
    const clash = (l) => placed.some((o) => o.x0 < l.x1 && l.x0 < o.x1 && Math.abs(o.ly - l.ly) < 15);
    for (const l of labels) {
      const tries = [0, 0.2, -0.2, 0.1, -0.1, 0.3, -0.3].map((c) => l.t + c).filter((t) => t > 0.05 && t < 0.95);
      let free = false;
      for (const t of tries) {
        Object.assign(l, l.place(t));
        if (!clash(l)) { free = true; break; }
      }
      if (!free) {
        Object.assign(l, l.place(l.t));
        while (clash(l)) l.ly += 15;
      }
      placed.push(l);
    }
  }

  function renderTopology(d) {
    const nodes = Array.isArray(d.nodes) ? d.nodes : [];
    const edges = Array.isArray(d.edges) ? d.edges : [];
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const { pos, width, height } = layout(nodes, edges);
    const svg = $('topology');
    attr(svg, 'viewBox', `0 0 ${width} ${height}`);
    attr(svg, 'width', width);
    attr(svg, 'height', height);
    svg.hidden = nodes.length === 0;
    $('topology-empty').hidden = nodes.length > 0;
    const pairs = new Set(edges.map((e) => e.from + '\u0000' + e.to));

    keyed($('nodes'), nodes, (n) => n.id, () => {
      const g = el('svg:g', { class: 'node' });
      g.append(el('svg:rect', { width: NW, height: NH, rx: 8 }),
        el('svg:text', { class: 'name', x: 12, y: 22 }),
        el('svg:text', { class: 'kind', x: 12, y: 38 }),
        el('svg:text', { class: 'stats', x: 12, y: 54 }),
        el('svg:title', {}));
      return g;
    }, (g, n) => {
      const p = pos.get(n.id), s = n.served || {};
      attr(g, 'transform', `translate(${p.x},${p.y})`);
      attr(g, 'data-node', n.id);
      attr(g, 'data-name', n.name);
      attr(g, 'data-kind', n.kind);
      attr(g, 'data-namespace', n.namespace);
      attr(g, 'data-requests', s.requests);
      attr(g, 'data-rps', s.rps);
      attr(g, 'data-success-rate', s.successRate);
      attr(g, 'data-p99', s.p99Ms);
      attr(g, 'data-health', health(s));
      const [, name, kind, stats, title] = g.children;
      text(name, n.name);
      text(kind, `${n.kind} · ${n.namespace}`);
      text(stats, s.requests > 0 ? 'serves ' + statsLine(s) : 'serves no requests');
      text(title, `${n.id}\nserved: ${statsLine(s)}${s.denied > 0 ? `\ndenied: ${s.denied}` : ''}`);
    });

    const drawn = edges.filter((e) => pos.has(e.from) && pos.has(e.to));
    const geo = new Map(drawn.map((e) => [e, geometry(e, pos, pairs)]));
    spreadLabels(Array.from(geo.values()));
    keyed($('edges'), drawn, (e) => e.from + ' -> ' + e.to, () => {
      const g = el('svg:g', { class: 'edge' });
      g.append(el('svg:path', {}), el('svg:text', { class: 'label', 'text-anchor': 'middle' }), el('svg:title', {}));
      return g;
    }, (g, e) => {
      const s = e.stats || {}, q = geo.get(e);
      const [path, label, title] = g.children;
      attr(path, 'd', q.d);
      attr(path, 'marker-end', e.refused ? 'url(#arrow-refused)' : 'url(#arrow)');
      attr(label, 'x', q.lx.toFixed(1));
      attr(label, 'y', q.ly.toFixed(1));
      attr(label, 'text-anchor', q.anchor);
      text(label, q.text);
      text(title, `${e.from} → ${e.to}\n${statsLine(s)}${q.denied > 0 ? `\ndenied: ${q.denied}` : ''}`);
      attr(g, 'class', e.refused ? 'edge refused' : 'edge');
      attr(g, 'data-edge', e.from + ' -> ' + e.to);
      attr(g, 'data-from', e.from);
      attr(g, 'data-to', e.to);
      attr(g, 'data-refused', e.refused ? 'true' : 'false');
      attr(g, 'data-requests', s.requests);
      attr(g, 'data-rps', s.rps);
      attr(g, 'data-success-rate', s.successRate);
      attr(g, 'data-p99', s.p99Ms);
      attr(g, 'data-denied', q.denied);
    });

    const refused = edges.filter((e) => e.refused);
    $('refused-box').hidden = refused.length === 0;
    keyed($('refused'), refused, (e) => e.from + ' -> ' + e.to, () => el('li', {}), (li, e) => {
      attr(li, 'data-refused-edge', e.from + ' -> ' + e.to);
      const s = e.stats || {};
      text(li, `${short(e.from, byId)} → ${short(e.to, byId)}: ${num(s.denied) || 0} requests denied (no TrafficTarget allows ${e.from} to call ${e.to})`);
    });
  }

  // ---- splits ------------------------------------------------------------------------------
  const PALETTE = ['#3b7dd8', '#e08a1e', '#2e9e5b', '#a05cc8', '#d04a4a', '#4aa8b8', '#8c7a3a', '#c85c9a'];

  function bar(cls) { return el('div', { class: 'bar ' + cls }, el('div', { class: 'fill' }), el('span', { class: 'val' })); }
  function setBar(b, pct, color, label) {
    const f = b.firstChild;
    const w = `${Math.max(0, Math.min(100, num(pct) || 0))}%`;
    if (f.style.width !== w) f.style.width = w;
    if (color && f.style.backgroundColor !== color) f.style.backgroundColor = color;
    text(b.lastChild, label);
  }
  function stack(cls, title) {
    return el('div', { class: 'stackrow' }, el('span', { class: 'stacklabel' }, title), el('div', { class: 'stack ' + cls }));
  }
  function setStack(row, backends, field) {
    const s = row.lastChild;
    const any = backends.some((b) => num(b[field]) !== null && b[field] > 0);
    s.classList.toggle('none', !any);
    keyed(s, any ? backends : [], (b) => b.service, () => el('div', { class: 'seg' }), (seg, b) => {
      const i = backends.indexOf(b);
      const w = `${num(b[field]) || 0}%`;
      if (seg.style.width !== w) seg.style.width = w;
      seg.style.backgroundColor = PALETTE[i % PALETTE.length];
      attr(seg, 'title', `${b.service}: ${fmtPct(b[field])}`);
      text(seg, (num(b[field]) || 0) >= 8 ? `${b.service} ${fmtPct(b[field])}` : '');
    });
  }

  function renderSplits(d) {
    const splits = Array.isArray(d.splits) ? d.splits : [];
    $('splits-empty').hidden = splits.length > 0;
    keyed($('splits'), splits, (s) => s.object, () => {
      const card = el('div', { class: 'split card' });
      const tbl = el('table', { class: 'backends' },
        el('thead', {}, el('tr', {}, el('th', {}, 'backend'), el('th', {}, 'weight'), el('th', {}, 'declared'), el('th', {}, 'observed'), el('th', {}, 'requests'))),
        el('tbody', {}));
      card.append(el('h3', {}, el('span', { class: 'apex' }), ' ', el('small', { class: 'object' })),
        stack('declared', 'declared'), stack('observed', 'observed'), tbl);
      return card;
    }, (card, s) => {
      const backends = Array.isArray(s.backends) ? s.backends : [];
      attr(card, 'data-split', `${s.namespace}/${s.apex}`);
      attr(card, 'data-object', s.object);
      text(card.querySelector('.apex'), `${s.namespace}/${s.apex}`);
      text(card.querySelector('.object'), s.object);
      const [, declared, observed] = card.children;
      setStack(declared, backends, 'declaredPercent');
      setStack(observed, backends, 'observedPercent');
      keyed(card.querySelector('tbody'), backends, (b) => b.service, () => {
        const tr = el('tr', {});
        tr.append(el('td', { class: 'svc' }, el('span', { class: 'dot' }), el('span', {})), el('td', { class: 'weight' }),
          el('td', {}, bar('declared')), el('td', {}, bar('observed')), el('td', { class: 'requests' }));
        return tr;
      }, (tr, b) => {
        const i = backends.indexOf(b), color = PALETTE[i % PALETTE.length];
        attr(tr, 'data-backend', b.service);
        attr(tr, 'data-weight', b.weight);
        attr(tr, 'data-declared', b.declaredPercent);
        attr(tr, 'data-observed', num(b.observedPercent) === null ? '' : b.observedPercent);
        attr(tr, 'data-requests', b.requests);
        const [svc, weight, dec, obs, req] = tr.children;
        svc.firstChild.style.backgroundColor = color;
        text(svc.lastChild, b.service);
        text(weight, b.weight);
        setBar(dec.firstChild, b.declaredPercent, color, fmtPct(b.declaredPercent));
        setBar(obs.firstChild, b.observedPercent, color, num(b.observedPercent) === null ? 'no traffic' : fmtPct(b.observedPercent));
        text(req, num(b.requests) === null ? '–' : b.requests);
      });
    });
  }

  // ---- meshes ------------------------------------------------------------------------------
  function renderMeshes(d) {
    const meshes = Array.isArray(d.meshes) ? d.meshes : [];
    $('meshes-empty').hidden = meshes.length > 0;
    const table = $('capabilities');
    table.hidden = meshes.length === 0;
    const features = [];
    for (const m of meshes) for (const c of Array.isArray(m.capabilities) ? m.capabilities : []) if (!features.includes(c.feature)) features.push(c.feature);
    const head = table.tHead.rows[0];
    const cols = [{ key: ' feature' }, ...meshes.map((m) => ({ key: m.name, m }))];
    keyed(head, cols, (c) => c.key, (c) => el('th', {}, el('span', { class: 'mesh-name' }), el('br'), el('small', {})), (th, c) => {
      if (!c.m) { text(th.firstChild, 'feature'); text(th.lastChild, ''); return; }
      attr(th, 'data-mesh', c.m.name);
      attr(th, 'data-type', c.m.type);
      text(th.firstChild, c.m.name);
      text(th.lastChild, Array.isArray(c.m.capabilities) ? c.m.type : `${c.m.type || '?'}: no capability matrix (not programmed by this runtime)`);
    });
    keyed(table.tBodies[0], features, (f) => f, () => el('tr', {}), (tr, f) => {
      attr(tr, 'data-feature', f);
      keyed(tr, cols, (c) => c.key, (c) => (c.m ? el('td', {}, el('b', {}), el('div', { class: 'reason' })) : el('th', { scope: 'row' })), (td, c) => {
        if (!c.m) { text(td, f); return; }
        const row = (Array.isArray(c.m.capabilities) ? c.m.capabilities : []).find((r) => r.feature === f);
        const level = row ? row.level : 'Unknown';
        attr(td, 'class', 'level level-' + level);
        attr(td, 'data-mesh', c.m.name);
        attr(td, 'data-feature', f);
        attr(td, 'data-level', level);
        text(td.firstChild, row ? level : '–');
        text(td.lastChild, row && row.reason ? row.reason : '');
      });
    });
  }

  // ---- objects -----------------------------------------------------------------------------
  function troubled(o) {
    return (Array.isArray(o.problems) && o.problems.length > 0) ||
      (Array.isArray(o.conditions) && o.conditions.some((c) => c.status !== 'True'));
  }

  function renderObjects(d) {
    const objects = Array.isArray(d.objects) ? d.objects : [];
    const only = $('only-problems').checked;
    const shown = only ? objects.filter(troubled) : objects;
    $('objects-empty').hidden = shown.length > 0;
    text($('objects-empty'), objects.length ? 'No object has a problem.' : 'No objects.');
    keyed($('objects').tBodies[0], shown, (o) => `${o.kind}/${o.namespace}/${o.name}`, () => {
      const tr = el('tr', {});
      tr.append(el('td', { class: 'kind' }), el('td', { class: 'name' }), el('td', { class: 'conditions' }), el('td', { class: 'problems' }, el('ul', {})));
      return tr;
    }, (tr, o) => {
      const conds = Array.isArray(o.conditions) ? o.conditions : [];
      const problems = Array.isArray(o.problems) ? o.problems : [];
      attr(tr, 'data-object', `${o.kind}/${o.namespace}/${o.name}`);
      attr(tr, 'data-problems', problems.length);
      attr(tr, 'class', troubled(o) ? 'troubled' : '');
      const [kind, name, cs, ps] = tr.children;
      text(kind, o.kind);
      text(name, o.namespace ? `${o.namespace}/${o.name}` : o.name);
      keyed(cs, conds, (c) => c.type, () => el('div', { class: 'cond' }, el('span', { class: 'pill' }), el('span', { class: 'msg' })), (div, c) => {
        attr(div, 'data-condition', c.type);
        attr(div, 'data-status', c.status);
        attr(div, 'class', 'cond status-' + c.status);
        text(div.firstChild, `${c.type}: ${c.status}`);
        text(div.lastChild, [c.reason, c.message].filter(Boolean).join(' — '));
      });
      keyed(ps.firstChild, problems, (p) => p, () => el('li', {}), (li, p) => text(li, p));
    });
  }

  // ---- polling -----------------------------------------------------------------------------
  function render(d) {
    text($('generation'), d.generation ?? '–');
    text($('timestamp'), d.timestamp ?? '–');
    text($('window'), d.window ?? '–');
    document.body.setAttribute('data-generation', d.generation ?? '');
    renderTopology(d);
    renderSplits(d);
    renderMeshes(d);
    renderObjects(d);
  }

  function setStatus(kind, msg) {
    const s = $('status');
    attr(s, 'data-state', kind);
    text(s, msg);
    document.body.classList.toggle('stale', kind === 'error' && state.last !== null);
  }

  async function poll() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 4000);
    try {
      const r = await fetch(API, { cache: 'no-store', signal: ctl.signal });
      const body = await r.text();
      let d;
      try { d = JSON.parse(body); } catch (e) { throw new Error(`HTTP ${r.status}: not JSON: ${body.slice(0, 200)}`); }
      if (!r.ok) throw new Error(`HTTP ${r.status}: ${d && (d.error || d.message) ? d.error || d.message : body.slice(0, 200)}`);
      render(d);
      state.last = d;
      state.lastOk = new Date();
      state.updates++;
      document.body.setAttribute('data-updates', state.updates);
      setStatus('ok', `live · updated ${state.lastOk.toLocaleTimeString()}`);
    } catch (e) {
      state.errors++;
      const why = e.name === 'AbortError' ? 'no answer within 4 s' : e.message || String(e);
      setStatus('error', `${API} failed: ${why}` +
        (state.lastOk ? ` — showing the data of ${state.lastOk.toLocaleTimeString()}; retrying every second` : ' — retrying every second'));
    } finally {
      clearTimeout(timer);
      setTimeout(poll, PERIOD_MS);
    }
  }

  $('only-problems').addEventListener('change', () => { if (state.last) renderObjects(state.last); });
  poll();
})();
