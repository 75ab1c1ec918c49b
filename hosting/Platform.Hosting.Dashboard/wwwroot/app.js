// Platform dashboard: draws each view from the JSON API. Values always go through textContent or
// attributes, never innerHTML, because resource output and telemetry are untrusted text.
'use strict';

const view = document.body.dataset.view;
const arg = document.body.dataset.arg;
const main = document.getElementById('main');
const params = new URLSearchParams(location.search);
const palette = ['#5b3cc4', '#0b7a75', '#c2410c', '#1d4ed8', '#9d174d', '#4d7c0f', '#7c2d12', '#0369a1'];
const colors = new Map();

function colorOf(name) {
  if (!colors.has(name)) {
    let h = 0;
    for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    colors.set(name, palette[h % palette.length]);
  }
  return colors.get(name);
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, options) {
  const response = await fetch(path, { credentials: 'same-origin', ...options });
  if (response.status === 401) { location.href = '/login?returnUrl=' + encodeURIComponent(location.pathname + location.search); throw new Error('401'); }
  if (!response.ok) {
    let message = response.status + ' ' + response.statusText;
    try { message = (await response.json()).error || message; } catch { /* not JSON */ }
    throw new Error(message);
  }
  return response.status === 204 ? null : response.json();
}

function badge(text, cls) { return el('span', { class: 'badge ' + (cls || '') }, text ?? '—'); }
function time(value) { return value ? new Date(value).toLocaleTimeString() : '—'; }
function dateTime(value) { return value ? new Date(value).toLocaleString() : '—'; }
function ms(value) { return value < 1 ? value.toFixed(2) + ' ms' : value < 1000 ? value.toFixed(1) + ' ms' : (value / 1000).toFixed(2) + ' s'; }
function resLabel(name) { return el('span', { class: 'res', style: 'background:' + colorOf(name) }, name); }
function setUrl(values) {
  const p = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(values)) { if (v) p.set(k, v); else p.delete(k); }
  history.replaceState(null, '', location.pathname + (p.toString() ? '?' + p : ''));
}
// Empty filters are left out: the API treats a missing parameter as "any", and an empty one may not bind.
function query(values) {
  return new URLSearchParams(Object.entries(values).filter(([, v]) => v !== '' && v !== null && v !== undefined)).toString();
}
function kvTable(rows) {
  return el('table', { class: 'kv' }, rows.map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', { class: 'mono' }, v))));
}
function poll(fn, interval) {
  let stopped = false;
  const loop = async () => {
    if (stopped) return;
    try { await fn(); } catch (e) { if (e.message !== '401') console.warn(e); }
    setTimeout(loop, interval);
  };
  loop();
  return () => { stopped = true; };
}
async function resourceNames() {
  return (await api('/api/resources')).filter(r => r.type !== 'Parameter').map(r => r.name);
}
function resourceSelect(names, selected, includeAll, onchange) {
  return el('select', { 'data-testid': 'resource-select', onchange },
    includeAll ? el('option', { value: '' }, 'All resources') : null,
    names.map(n => el('option', { value: n, selected: n === selected }, n)));
}

for (const a of document.querySelectorAll('header nav a')) {
  if (a.dataset.nav === view || (view === 'resource' && a.dataset.nav === 'resources') || (view === 'trace' && a.dataset.nav === 'traces')) a.classList.add('active');
}

// ---------------------------------------------------------------- resources
async function action(name, verb, instance, button) {
  button.disabled = true;
  const old = button.textContent;
  button.textContent = verb + '…';
  try {
    await api(`/api/resources/${encodeURIComponent(name)}/${verb}` + (instance ? '?instance=' + encodeURIComponent(instance) : ''), { method: 'POST' });
  } catch (e) {
    alert(`${verb} ${instance || name} failed: ${e.message}`);
  } finally {
    button.disabled = false;
    button.textContent = old;
  }
}

function actionButtons(r, instance) {
  if (r.type === 'Parameter') return [];
  const target = instance || r.name;
  return ['stop', 'start', 'restart'].map(verb =>
    el('button', { 'data-testid': `${verb}-${target}`, title: `${verb} ${target}`, onclick: e => action(r.name, verb, instance, e.target) }, verb));
}

function resourcesView() {
  main.replaceChildren(el('h1', {}, 'Resources'), el('table', { 'data-testid': 'resources' },
    el('thead', {}, el('tr', {}, ['Name', 'Type', 'State', 'Health', 'Start time', 'Endpoints', 'Replicas', 'Restarts', 'Actions'].map(h => el('th', {}, h)))),
    el('tbody', { id: 'rows' })));
  poll(async () => {
    const resources = await api('/api/resources');
    const rows = [];
    for (const r of resources) {
      rows.push(el('tr', { 'data-resource': r.name, 'data-testid': 'resource-row' },
        el('td', {}, el('a', { href: '/resources/' + encodeURIComponent(r.name) }, r.name)),
        el('td', {}, r.type),
        el('td', {}, badge(r.state, 'state-' + r.state)),
        el('td', { 'data-testid': 'health' }, r.type === 'Parameter' ? '—' : badge(r.health ?? '—', 'health-' + r.health)),
        el('td', {}, time(r.startedAt)),
        el('td', {}, r.endpoints.map(e => el('div', {}, el('a', { href: e.url, target: '_blank', rel: 'noopener' }, e.url)))),
        el('td', {}, r.instances.length > 1 ? r.instances.map(i => el('div', { 'data-instance': i.instanceId },
          i.instanceId + ' ', badge(i.state, 'state-' + i.state), ' ', i.pid ? 'pid ' + i.pid : '', ' ', actionButtons(r, i.instanceId))) : String(r.replicas)),
        el('td', {}, String(r.restarts)),
        el('td', {}, actionButtons(r), r.type !== 'Parameter' ? el('a', { href: '/console?resource=' + encodeURIComponent(r.name), style: 'margin-left:.4rem' }, 'console') : null)));
    }
    document.getElementById('rows').replaceChildren(...rows);
  }, 2000);
}

function resourceView() {
  poll(async () => {
    const r = await api('/api/resources/' + encodeURIComponent(arg));
    const summary = (await api('/api/resources')).find(x => x.name === r.name);
    main.replaceChildren(
      el('h1', {}, r.name, ' ', badge(r.state, 'state-' + r.state), ' ', r.health ? badge(r.health, 'health-' + r.health) : ''),
      el('div', { class: 'toolbar' }, summary ? actionButtons(summary) : [],
        el('a', { href: '/console?resource=' + encodeURIComponent(r.name) }, 'Console logs'),
        el('a', { href: '/structuredlogs?resource=' + encodeURIComponent(r.name) }, 'Structured logs'),
        el('a', { href: '/traces?resource=' + encodeURIComponent(r.name) }, 'Traces'),
        el('a', { href: '/metrics?resource=' + encodeURIComponent(r.name) }, 'Metrics')),
      r.message ? el('p', { class: 'error-text' }, r.message) : null,
      el('h2', {}, 'Replicas'),
      el('table', {}, el('tr', {}, ['Instance', 'State', 'Health', 'PID', 'Started', 'Restarts', 'Exit code', 'Actions'].map(h => el('th', {}, h))),
        r.replicas.map(i => el('tr', {}, el('td', {}, i.instanceId), el('td', {}, badge(i.state, 'state-' + i.state)),
          el('td', {}, badge(i.health ?? '—', 'health-' + i.health)), el('td', {}, i.pid ?? '—'), el('td', {}, dateTime(i.startedAt)),
          el('td', {}, String(i.restarts)), el('td', {}, i.exitCode ?? '—'), el('td', {}, summary ? actionButtons(summary, i.instanceId) : [])))),
      el('h2', {}, 'Endpoints'),
      kvTable(r.endpoints.map(e => [e.name, el('a', { href: e.url, target: '_blank', rel: 'noopener' }, e.url)])),
      el('h2', {}, 'Health reports'),
      r.healthReports.length ? el('table', {}, el('tr', {}, ['Check', 'Status', 'Description', 'Checked'].map(h => el('th', {}, h))),
        r.healthReports.map(h => el('tr', {}, el('td', {}, h.name), el('td', {}, badge(h.status, 'health-' + h.status)), el('td', { class: 'mono' }, h.description ?? ''), el('td', {}, time(h.checkedAt)))))
        : el('p', { class: 'muted' }, 'No health checks.'),
      el('h2', {}, 'References'),
      r.references.length ? el('p', {}, r.references.map(n => el('a', { href: '/resources/' + encodeURIComponent(n), style: 'margin-right:.8rem' }, n))) : el('p', { class: 'muted' }, 'None.'),
      el('h2', {}, 'Environment'),
      kvTable(r.environment.map(e => [e.name, e.isSecret ? el('span', { class: 'muted', title: 'secret' }, e.value) : e.value])));
  }, 3000);
}

// ---------------------------------------------------------------- console logs
async function consoleView() {
  const names = await resourceNames();
  let resource = params.get('resource') || names[0];
  let filter = params.get('filter') || '';
  let source = null;
  const output = el('div', { class: 'console', 'data-testid': 'console' });
  let follow = true;
  output.addEventListener('scroll', () => { follow = output.scrollTop + output.clientHeight >= output.scrollHeight - 20; });
  const open = () => {
    if (source) source.close();
    output.replaceChildren();
    setUrl({ resource, filter });
    source = new EventSource(`/api/resources/${encodeURIComponent(resource)}/logs/stream?filter=${encodeURIComponent(filter)}`);
    source.onmessage = e => {
      const line = JSON.parse(e.data);
      output.append(el('div', { class: line.isError ? 'err' : '', 'data-testid': 'console-line' },
        el('span', { class: 'inst' }, time(line.timestamp) + ' ' + line.instanceId), line.text));
      while (output.childElementCount > 5000) output.firstChild.remove();
      if (follow) output.scrollTop = output.scrollHeight;
    };
  };
  let debounce;
  main.replaceChildren(el('h1', {}, 'Console logs'), el('div', { class: 'toolbar' },
    resourceSelect(names, resource, false, e => { resource = e.target.value; open(); }),
    el('input', { type: 'search', placeholder: 'Filter', value: filter, 'data-testid': 'console-filter',
      oninput: e => { clearTimeout(debounce); debounce = setTimeout(() => { filter = e.target.value; open(); }, 300); } }),
    el('button', { onclick: () => output.replaceChildren() }, 'Clear view')), output);
  if (resource) open();
}

// ---------------------------------------------------------------- structured logs
async function structuredLogsView() {
  const names = await resourceNames();
  const state = { resource: params.get('resource') || '', level: params.get('level') || '', text: params.get('text') || '', traceId: params.get('traceId') || '' };
  const body = el('tbody');
  const details = el('div');
  const count = el('span', { class: 'muted' });
  const refresh = async () => {
    setUrl(state);
    const q = query({ ...state, limit: '500' });
    const page = await api('/api/logs?' + q);
    count.textContent = `${page.logs.length} of ${page.total}`;
    body.replaceChildren(...page.logs.map(l => el('tr', { class: 'clickable', 'data-testid': 'log-row', onclick: () => showLog(l) },
      el('td', {}, time(l.time)), el('td', { class: 'level-' + l.level }, l.level), el('td', {}, resLabel(l.resource)),
      el('td', {}, l.message), el('td', { class: 'mono' }, l.traceId ? el('a', { href: '/traces/' + l.traceId }, l.traceId.slice(0, 8)) : ''))));
  };
  const showLog = l => details.replaceChildren(el('div', { class: 'details' }, el('h2', {}, l.message),
    kvTable([['Time', dateTime(l.time)], ['Level', l.level], ['Resource', l.instanceId], ['Category', l.category], ['Event', l.eventName ?? ''],
      ['Trace', l.traceId ?? ''], ['Span', l.spanId ?? ''], ...l.attributes.map(a => [a.key, a.value])])));
  let debounce;
  const input = (key, placeholder) => el('input', { type: 'search', placeholder, value: state[key], 'data-testid': 'logs-' + key,
    oninput: e => { clearTimeout(debounce); debounce = setTimeout(() => { state[key] = e.target.value; refresh(); }, 300); } });
  main.replaceChildren(el('h1', {}, 'Structured logs'), el('div', { class: 'toolbar' },
    resourceSelect(names, state.resource, true, e => { state.resource = e.target.value; refresh(); }),
    el('select', { 'data-testid': 'logs-level', onchange: e => { state.level = e.target.value; refresh(); } },
      el('option', { value: '' }, 'All levels'), ['Debug', 'Information', 'Warning', 'Error', 'Critical'].map(l => el('option', { value: l, selected: state.level === l }, l + '+'))),
    input('text', 'Filter text'), input('traceId', 'Trace id'), count),
  el('table', { 'data-testid': 'structured-logs' }, el('thead', {}, el('tr', {}, ['Time', 'Level', 'Resource', 'Message', 'Trace'].map(h => el('th', {}, h)))), body), details);
  poll(refresh, 2000);
}

// ---------------------------------------------------------------- traces
async function tracesView() {
  const names = await resourceNames();
  const state = { resource: params.get('resource') || '', text: params.get('text') || '', errors: params.get('errors') || '', minDurationMs: params.get('minDurationMs') || '' };
  const body = el('tbody');
  const count = el('span', { class: 'muted' });
  const refresh = async () => {
    setUrl(state);
    const q = query({ ...state, limit: '200' });
    const result = await api('/api/traces?' + q);
    count.textContent = `${result.traces.length} of ${result.total}`;
    const longest = Math.max(1, ...result.traces.map(t => t.durationMs));
    body.replaceChildren(...result.traces.map(t => el('tr', { class: 'clickable', 'data-testid': 'trace-row', 'data-trace-id': t.traceId, onclick: () => { location.href = '/traces/' + t.traceId; } },
      el('td', {}, time(t.start)),
      el('td', {}, el('a', { href: '/traces/' + t.traceId }, t.rootResource + ': ' + t.rootName)),
      el('td', {}, t.resources.map(r => resLabel(r.resource + (r.spans > 1 ? ' ×' + r.spans : '')))),
      el('td', {}, String(t.spanCount)),
      el('td', {}, t.errorCount ? badge(t.errorCount + ' error' + (t.errorCount > 1 ? 's' : ''), 'status-Error') : ''),
      el('td', {}, el('div', { style: `background:#c7b8ff;height:.6rem;width:${Math.max(2, 160 * t.durationMs / longest)}px;display:inline-block;margin-right:.4rem` }), ms(t.durationMs)))));
  };
  let debounce;
  const input = (key, placeholder, type) => el('input', { type: type || 'search', placeholder, value: state[key], 'data-testid': 'traces-' + key,
    oninput: e => { clearTimeout(debounce); debounce = setTimeout(() => { state[key] = e.target.value; refresh(); }, 300); } });
  main.replaceChildren(el('h1', {}, 'Traces'), el('div', { class: 'toolbar' },
    resourceSelect(names, state.resource, true, e => { state.resource = e.target.value; refresh(); }),
    input('text', 'Name, attribute or trace id'), input('minDurationMs', 'Min ms', 'number'),
    el('label', {}, el('input', { type: 'checkbox', checked: state.errors === 'true', onchange: e => { state.errors = e.target.checked ? 'true' : ''; refresh(); } }), ' errors only'),
    count),
  el('table', { 'data-testid': 'traces' }, el('thead', {}, el('tr', {}, ['Start', 'Name', 'Resources', 'Spans', 'Status', 'Duration'].map(h => el('th', {}, h)))), body));
  poll(refresh, 2000);
}

async function traceView() {
  const trace = await api('/api/traces/' + encodeURIComponent(arg));
  const s = trace.summary;
  const total = Math.max(s.durationMs, 0.001);
  const details = el('div');
  const rows = trace.spans.map(span => {
    const left = 100 * span.offsetMs / total;
    const width = Math.max(0.2, 100 * span.durationMs / total);
    const row = el('div', { class: 'row', 'data-testid': 'span-row', 'data-resource': span.resource, 'data-span-id': span.spanId },
      el('div', { class: 'label', style: `padding-left:${0.4 + span.depth * 1.1}rem`, title: span.name }, resLabel(span.resource), span.name),
      el('div', { class: 'track' },
        el('div', { class: 'bar' + (span.status === 'Error' ? ' error' : ''), style: `left:${left}%;width:${width}%;background:${colorOf(span.resource)}` }),
        el('div', { class: 'dur', style: left + width > 80 ? `right:${100 - left + 0.5}%` : `left:${left + width + 0.5}%` }, ms(span.durationMs))));
    row.addEventListener('click', () => {
      for (const r of document.querySelectorAll('.waterfall .row.selected')) r.classList.remove('selected');
      row.classList.add('selected');
      details.replaceChildren(el('div', { class: 'details', 'data-testid': 'span-details' }, el('h2', {}, span.name),
        kvTable([['Resource', span.instanceId], ['Kind', span.kind], ['Status', span.status + (span.statusMessage ? ': ' + span.statusMessage : '')],
          ['Start', dateTime(span.start)], ['Duration', ms(span.durationMs)], ['Span id', span.spanId], ['Parent', span.parentSpanId ?? '—'], ['Scope', span.scope],
          ...span.attributes.map(a => [a.key, a.value])]),
        span.events.length ? [el('h2', {}, 'Events'), kvTable(span.events.map(e => [ms(e.offsetMs), e.name + ' ' + e.attributes.map(a => a.key + '=' + a.value).join(' ')]))] : []));
    });
    return row;
  });
  main.replaceChildren(
    el('h1', {}, s.rootResource + ': ' + s.rootName),
    el('div', { class: 'toolbar' },
      el('span', {}, `Trace ${s.traceId}`), el('span', {}, dateTime(s.start)), el('span', {}, ms(s.durationMs)),
      el('span', { 'data-testid': 'trace-resources' }, s.resources.map(r => resLabel(r.resource))), el('span', {}, `${s.spanCount} spans`),
      el('a', { href: `/api/traces/${s.traceId}/otlp`, download: `trace-${s.traceId}.json`, 'data-testid': 'export-otlp' }, 'Export OTLP-JSON'),
      el('a', { href: '/structuredlogs?traceId=' + s.traceId }, 'Logs of this trace')),
    el('div', { class: 'waterfall', 'data-testid': 'waterfall' }, rows), details);
}

// ---------------------------------------------------------------- metrics
async function metricsView() {
  const state = { resource: params.get('resource') || '', meter: params.get('meter') || '', name: params.get('name') || '', view: params.get('view') || '', minutes: params.get('minutes') || '5' };
  const list = el('div', { class: 'instruments', 'data-testid': 'instruments' });
  const chart = el('div');
  const names = (await api('/api/telemetry')).resources.map(r => r.resource);
  if (!state.resource && names.length) state.resource = names[0];
  const loadInstruments = async () => {
    const instruments = await api('/api/metrics?resource=' + encodeURIComponent(state.resource));
    const items = [];
    let meter = null;
    for (const i of instruments) {
      if (i.meter !== meter) { meter = i.meter; items.push(el('div', { class: 'meter' }, meter || '(no meter)')); }
      items.push(el('div', { class: i.meter === state.meter && i.name === state.name ? 'selected' : '', 'data-testid': 'instrument', title: i.description,
        onclick: () => { Object.assign(state, { meter: i.meter, name: i.name, view: '' }); loadInstruments(); drawChart(); } }, i.name));
    }
    list.replaceChildren(...(items.length ? items : [el('div', { class: 'muted' }, 'No metrics received yet.')]));
  };
  const drawChart = async () => {
    setUrl(state);
    if (!state.name) { chart.replaceChildren(el('p', { class: 'muted' }, 'Pick an instrument.')); return; }
    const q = query({ resource: state.resource, meter: state.meter, name: state.name, view: state.view, minutes: state.minutes });
    const data = await api('/api/metrics/chart?' + q);
    const unit = data.view === 'rate' ? (data.instrument.kind === 'Sum' ? (data.instrument.unit || '') + '/s' : 'per s') : data.instrument.unit;
    chart.replaceChildren(
      el('h2', {}, data.instrument.name, ' ', el('span', { class: 'muted' }, data.instrument.description)),
      el('div', { class: 'toolbar' },
        el('select', { 'data-testid': 'metric-view', onchange: e => { state.view = e.target.value; drawChart(); } }, data.views.map(v => el('option', { value: v, selected: v === data.view }, v))),
        el('select', { onchange: e => { state.minutes = e.target.value; drawChart(); } }, ['1', '5', '15', '60'].map(m => el('option', { value: m, selected: m === state.minutes }, `last ${m} min`))),
        el('span', { class: 'muted' }, `${data.instrument.kind}${data.instrument.isMonotonic ? ' (monotonic)' : ''} · ${unit || 'no unit'}`)),
      svgChart(data.series, unit));
  };
  main.replaceChildren(el('h1', {}, 'Metrics'), el('div', { class: 'toolbar' },
    resourceSelect(names, state.resource, false, e => { Object.assign(state, { resource: e.target.value, meter: '', name: '' }); loadInstruments(); drawChart(); })),
  el('div', { class: 'grid2' }, list, chart));
  await loadInstruments();
  poll(async () => { await loadInstruments(); await drawChart(); }, 2000);
}

function svgChart(series, unit) {
  const ns = 'http://www.w3.org/2000/svg';
  const W = 760, H = 300, L = 60, B = 24, T = 10, R = 10;
  const s = (tag, attrs) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  const svg = s('svg', { class: 'chart', width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'data-testid': 'metric-chart' });
  const points = series.flatMap(x => x.points);
  if (!points.length) { const t = s('text', { x: L, y: H / 2, fill: '#6b7280' }); t.textContent = 'No points in this window yet.'; svg.append(t); return svg; }
  const t0 = Math.min(...points.map(p => p.timeUnixNano)), t1 = Math.max(...points.map(p => p.timeUnixNano));
  const v1 = Math.max(...points.map(p => p.value), 0), v0 = Math.min(...points.map(p => p.value), 0);
  const x = t => L + (W - L - R) * (t1 === t0 ? 1 : (t - t0) / (t1 - t0));
  const y = v => H - B - (H - B - T) * (v1 === v0 ? 0.5 : (v - v0) / (v1 - v0));
  for (let i = 0; i <= 4; i++) {
    const v = v0 + (v1 - v0) * i / 4;
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#eceff3' }));
    const label = s('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#6b7280' });
    label.textContent = Number(v.toPrecision(3)).toString();
    svg.append(label);
  }
  const tl = s('text', { x: L, y: H - 6, 'font-size': 11, fill: '#6b7280' }); tl.textContent = new Date(t0 / 1e6).toLocaleTimeString(); svg.append(tl);
  const tr = s('text', { x: W - R, y: H - 6, 'font-size': 11, fill: '#6b7280', 'text-anchor': 'end' }); tr.textContent = new Date(t1 / 1e6).toLocaleTimeString(); svg.append(tr);
  const legend = el('div', { class: 'legend' });
  series.forEach((line, i) => {
    const color = palette[i % palette.length];
    if (line.points.length) svg.append(s('polyline', { fill: 'none', stroke: color, 'stroke-width': 1.6, points: line.points.map(p => `${x(p.timeUnixNano)},${y(p.value)}`).join(' ') }));
    const last = line.points.at(-1);
    legend.append(el('span', { style: 'color:' + color }, '■ ', line.label, last ? ` = ${Number(last.value.toPrecision(4))} ${unit || ''}` : ''));
  });
  return el('div', {}, svg, legend);
}

const views = { resources: resourcesView, resource: resourceView, console: consoleView, structuredlogs: structuredLogsView, traces: tracesView, trace: traceView, metrics: metricsView };
Promise.resolve(views[view]?.()).catch(e => main.replaceChildren(el('p', { class: 'error-text' }, e.message)));
