// The weir dashboard page: draws the windows the `socketio` sink pushes, in the panels the
// pipeline file lists (by default one line chart). Events from the server: `config` (title and
// panels), `history` (each panel's last windows and totals, on connect), `window` (one new window
// of panel `panel`, with that panel's totals after it), `refused`.
'use strict';

(function () {
  const COLORS = ['#d6336c', '#1c7ed6', '#868e96', '#2f9e44', '#f08c00', '#7048e8', '#0c8599', '#e8590c'];
  const el = {
    title: document.getElementById('title'),
    state: document.getElementById('state'),
    pause: document.getElementById('pause'),
    panels: document.getElementById('panels'),
  };
  // The token comes once in the address (?token=… or #token=…), is kept for this tab and in a
  // same-site cookie (which Socket.IO 2.x pages on this server send too), and is dropped from the
  // address at once, so it stays out of history, bookmarks and Referer headers.
  const token = (function () {
    const query = new URLSearchParams(window.location.search);
    const fragment = new URLSearchParams(window.location.hash.slice(1));
    const given = query.get('token') || fragment.get('token');
    if (given) {
      try { window.sessionStorage.setItem('weir_token', given); } catch (e) { /* storage off */ }
      document.cookie = 'weir_token=' + encodeURIComponent(given) + '; path=/; SameSite=Strict' +
        (location.protocol === 'https:' ? '; Secure' : '');
      query.delete('token');
      const rest = query.toString();
      window.history.replaceState(null, '', window.location.pathname + (rest ? '?' + rest : ''));
      return given;
    }
    try { return window.sessionStorage.getItem('weir_token'); } catch (e) { return null; }
  })();
  let config = null;
  // Per panel: { view (from config), points, totals, element, chart, keys (a line chart's series) }.
  let panels = [];
  let paused = false;

  // Read-only access for tests and for the curious (browser console): the first panel's points
  // and totals, every panel's, and what each panel shows.
  const copy = (p) => ({ t: p.t, values: Object.assign({}, p.values) });
  window.weirDashboard = {
    points: () => (panels[0] ? panels[0].points.map(copy) : []),
    totals: () => (panels[0] ? Object.assign({}, panels[0].totals) : {}),
    state: () => el.state.textContent,
    panels: () => panels.map((p) => ({
      type: p.view.type,
      title: p.view.title,
      points: p.points.map(copy),
      totals: Object.assign({}, p.totals),
      shown: shown(p),
    })),
  };

  function setState(state) {
    el.state.textContent = state;
    el.state.className = 'state ' + state;
    document.body.dataset.state = state;
  }

  function label(panel, key) {
    const known = panel.view.series.find((s) => s.key === key);
    return known ? known.label : key;
  }

  // The keys a panel draws: its labelled keys for a line chart that has labels, else every key
  // seen in its windows, in order.
  function keysOf(panel) {
    if (panel.view.type === 'line' && panel.view.series.length > 0) {
      return panel.view.series.map((s) => s.key);
    }
    const seen = new Set();
    panel.points.forEach((p) => Object.keys(p.values).forEach((k) => seen.add(k)));
    Object.keys(panel.totals).forEach((k) => seen.add(k));
    return Array.from(seen).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  }

  function latest(panel) {
    return panel.points.length ? panel.points[panel.points.length - 1] : null;
  }

  // What a panel shows now, by label: for tests.
  function shown(panel) {
    const last = latest(panel);
    const out = {};
    if (panel.view.type === 'number') {
      out.value = last ? Object.values(last.values).reduce((a, b) => a + b, 0) : 0;
      return out;
    }
    keysOf(panel).forEach((k) => {
      out[label(panel, k)] = last && k in last.values ? last.values[k] : 0;
    });
    return out;
  }

  function format(value) {
    return Number.isInteger(value) ? String(value) : value.toFixed(2);
  }

  function windowTime(point) {
    return point ? new Date(point.t).toLocaleTimeString() : '';
  }

  function buildPanels() {
    panels.forEach((p) => p.chart && p.chart.destroy());
    panels = config.panels.map((view) => ({ view: view, points: [], totals: {}, chart: null, keys: [] }));
    el.panels.replaceChildren(...panels.map((panel, i) => {
      const section = document.createElement('section');
      section.className = 'panel ' + panel.view.type;
      section.dataset.type = panel.view.type;
      section.dataset.panel = String(i);
      // One panel titled as the page needs no heading of its own.
      if (panel.view.title && !(config.panels.length === 1 && panel.view.title === config.title)) {
        const heading = document.createElement('h2');
        heading.textContent = panel.view.title;
        section.append(heading);
      }
      panel.body = document.createElement('div');
      panel.body.className = 'body';
      if (panel.view.type === 'line') {
        panel.totalsEl = document.createElement('div');
        panel.totalsEl.className = 'totals';
        panel.totalsEl.setAttribute('aria-label', 'Totals so far');
        panel.body.setAttribute('role', 'img');
        panel.body.setAttribute('aria-label', 'Line chart of the last windows');
        section.append(panel.totalsEl);
      }
      section.append(panel.body);
      panel.element = section;
      return section;
    }));
  }

  function lineChart(panel, keys) {
    if (panel.chart) {
      panel.chart.destroy();
    }
    panel.keys = keys;
    const series = [{}].concat(keys.map((k, i) => ({
      label: label(panel, k),
      stroke: COLORS[i % COLORS.length],
      width: 2,
      points: { show: true, size: 5 },
    })));
    panel.chart = new uPlot({
      width: Math.max(320, panel.body.clientWidth),
      height: 360,
      series: series,
      scales: { x: { time: true } },
      axes: [{}, { label: '人数 / count' }],
    }, [[]].concat(keys.map(() => [])), panel.body);
  }

  function renderLine(panel) {
    const keys = keysOf(panel);
    if (!panel.chart || keys.join('\u0000') !== panel.keys.join('\u0000')) {
      lineChart(panel, keys);
    }
    const xs = panel.points.map((p) => p.t / 1000);
    // A key missing from a window had no records in it: plot 0, not a gap.
    const ys = keys.map((k) => panel.points.map((p) => (k in p.values ? p.values[k] : 0)));
    panel.chart.setData([xs].concat(ys));
    panel.totalsEl.replaceChildren(...keys.map((k, i) => {
      const item = document.createElement('div');
      item.className = 'total';
      item.style.borderColor = COLORS[i % COLORS.length];
      const name = document.createElement('span');
      name.textContent = label(panel, k);
      const value = document.createElement('strong');
      value.textContent = format(panel.totals[k] || 0);
      value.dataset.key = k;
      item.append(name, value);
      return item;
    }));
  }

  function renderBar(panel) {
    const last = latest(panel);
    const keys = keysOf(panel);
    const values = keys.map((k) => (last && k in last.values ? last.values[k] : 0));
    const top = Math.max(1, ...values.map(Math.abs));
    const rows = keys.map((k, i) => {
      const row = document.createElement('div');
      row.className = 'bar-row';
      row.dataset.key = k;
      const name = document.createElement('span');
      name.className = 'bar-label';
      name.textContent = label(panel, k);
      const track = document.createElement('span');
      track.className = 'bar-track';
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = (100 * Math.abs(values[i]) / top).toFixed(1) + '%';
      bar.style.background = COLORS[i % COLORS.length];
      track.append(bar);
      const value = document.createElement('strong');
      value.textContent = format(values[i]);
      row.append(name, track, value);
      return row;
    });
    const when = document.createElement('p');
    when.className = 'when';
    when.textContent = last ? 'window ending ' + windowTime(last) : 'no window yet';
    panel.body.replaceChildren(...rows, when);
  }

  function renderTable(panel) {
    const last = latest(panel);
    const table = document.createElement('table');
    const head = table.createTHead().insertRow();
    ['key', 'latest window', 'total'].forEach((h) => {
      const th = document.createElement('th');
      th.textContent = h;
      head.append(th);
    });
    const body = table.createTBody();
    keysOf(panel).forEach((k) => {
      const row = body.insertRow();
      row.dataset.key = k;
      row.insertCell().textContent = label(panel, k);
      row.insertCell().textContent = format(last && k in last.values ? last.values[k] : 0);
      row.insertCell().textContent = format(panel.totals[k] || 0);
    });
    const when = document.createElement('p');
    when.className = 'when';
    when.textContent = last ? 'window ending ' + windowTime(last) : 'no window yet';
    panel.body.replaceChildren(table, when);
  }

  function renderNumber(panel) {
    const last = latest(panel);
    const value = document.createElement('strong');
    value.className = 'number';
    value.textContent = format(shown(panel).value);
    const when = document.createElement('p');
    when.className = 'when';
    when.textContent = last ? 'window ending ' + windowTime(last) : 'no window yet';
    panel.body.replaceChildren(value, when);
  }

  const RENDER = { line: renderLine, bar: renderBar, table: renderTable, number: renderNumber };

  function render() {
    if (!config) {
      return;
    }
    panels.forEach((panel) => (RENDER[panel.view.type] || renderLine)(panel));
    document.body.dataset.points = String(panels[0] ? panels[0].points.length : 0);
  }

  const socket = io({ auth: token ? { token: token } : {} });
  socket.on('connect', () => setState('connected'));
  socket.on('disconnect', () => setState('disconnected'));
  socket.on('connect_error', () => setState('disconnected'));
  socket.io.on('reconnect_attempt', () => setState('reconnecting'));
  socket.on('refused', (m) => {
    setState('refused');
    el.state.title = m && m.reason ? m.reason : '';
  });
  socket.on('config', (c) => {
    config = c;
    if (!config.panels) {
      config.panels = [{ type: 'line', title: c.title, points: c.points, series: c.series }];
    }
    document.title = c.title;
    el.title.textContent = c.title;
    buildPanels();
    render();
  });
  socket.on('history', (h) => {
    const each = h.panels || [{ points: h.points || [], totals: h.totals || {} }];
    each.forEach((snapshot, i) => {
      if (panels[i]) {
        panels[i].points = snapshot.points;
        panels[i].totals = snapshot.totals;
      }
    });
    render();
  });
  socket.on('window', (update) => {
    const panel = panels[update.panel || 0];
    if (!panel) {
      return;
    }
    panel.points.push(update.point);
    const keep = panel.view.points || 20;
    if (panel.points.length > keep) {
      panel.points.splice(0, panel.points.length - keep);
    }
    panel.totals = update.totals;
    if (!paused) {
      render();
    }
  });

  el.pause.addEventListener('click', () => {
    paused = !paused;
    el.pause.textContent = paused ? 'Resume' : 'Pause';
    el.pause.setAttribute('aria-pressed', String(paused));
    if (!paused) {
      render();
    }
  });

  window.addEventListener('resize', () => {
    panels.forEach((panel) => {
      if (panel.chart) {
        panel.chart.setSize({ width: Math.max(320, panel.body.clientWidth), height: 360 });
      }
    });
  });
})();
