// dashboard.js - live server numbers from the SSE stats stream
// (GET /api/stream/stats, docs/SERVER.md): six counters and two charts.
// EventSource reconnects by itself (retry: 2000, Last-Event-ID) when the
// stream ends (10 minute lifetime) or the server goes away.
import { LineChart } from './chart.js';

const WINDOW_MS = 5 * 60 * 1000;

export function formatBytes(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

const rate = (v) => (Number.isFinite(v) ? (v >= 100 ? Math.round(v) : Math.round(v * 10) / 10).toString() : '–');

export function startDashboard({ intervalMs = 1000 } = {}) {
  const $ = (id) => document.getElementById(id);
  const charts = {
    connections: new LineChart($('chart-connections'), { color: '#6366f1', windowMs: WINDOW_MS }),
    updates: new LineChart($('chart-updates'), { color: '#22d3ee', windowMs: WINDOW_MS }),
  };
  const state = $('dash-state');
  const dash = { events: 0, last: null, source: null, recent: [] }; // recent: the last 120 samples
  const es = new EventSource(`/api/stream/stats?interval_ms=${intervalMs}`);
  dash.source = es;
  es.addEventListener('connected', () => { state.textContent = 'live'; state.dataset.live = '1'; });
  es.addEventListener('stats-update', (ev) => {
    let s;
    try { s = JSON.parse(ev.data); } catch { return; }
    dash.events++;
    if (!state.dataset.live) { state.textContent = 'live'; state.dataset.live = '1'; }
    dash.last = s;
    dash.recent.push(s);
    if (dash.recent.length > 120) dash.recent.shift();
    $('stat-connections').textContent = String(s.connections);
    $('stat-rooms').textContent = String(s.rooms);
    $('stat-updates').textContent = rate(s.updates_per_s);
    $('stat-messages').textContent = rate(s.messages_per_s);
    $('stat-bytes').textContent = `${formatBytes(s.bytes_per_s)}/s`;
    $('stat-memory').textContent = formatBytes(s.memory);
    const t = Number.isFinite(s.time_ms) ? s.time_ms : Date.now();
    charts.connections.push(t, s.connections);
    charts.updates.push(t, s.updates_per_s);
    document.querySelector('.dashboard').dataset.events = String(dash.events);
  });
  es.onerror = () => { state.textContent = navigator.onLine === false ? 'offline' : 'reconnecting…'; delete state.dataset.live; };
  window.addEventListener('offline', () => { state.textContent = 'offline'; delete state.dataset.live; });
  window.addEventListener('resize', () => { charts.connections.draw(); charts.updates.draw(); });
  return dash;
}
