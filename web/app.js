// The weir dashboard page: keeps the last N windows pushed by the `socketio` sink and draws them
// with uPlot. Events from the server: `config` (title, series, N), `history` (points and totals
// on connect), `window` (one new point and the totals after it), `refused`.
'use strict';

(function () {
  const COLORS = ['#d6336c', '#1c7ed6', '#868e96', '#2f9e44', '#f08c00', '#7048e8'];
  const el = {
    title: document.getElementById('title'),
    state: document.getElementById('state'),
    pause: document.getElementById('pause'),
    totals: document.getElementById('totals'),
    chart: document.getElementById('chart'),
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
  let points = [];
  let totals = {};
  let paused = false;
  let chart = null;

  // Read-only access for tests and for the curious (browser console).
  window.weirDashboard = {
    points: () => points.map((p) => ({ t: p.t, values: Object.assign({}, p.values) })),
    totals: () => Object.assign({}, totals),
    state: () => el.state.textContent,
  };

  function setState(state) {
    el.state.textContent = state;
    el.state.className = 'state ' + state;
    document.body.dataset.state = state;
  }

  function buildChart() {
    if (chart) {
      chart.destroy();
    }
    const series = [{}].concat(config.series.map((s, i) => ({
      label: s.label,
      stroke: COLORS[i % COLORS.length],
      width: 2,
      points: { show: true, size: 5 },
    })));
    chart = new uPlot({
      width: Math.max(320, el.chart.clientWidth),
      height: 360,
      series: series,
      scales: { x: { time: true } },
      axes: [{}, { label: '人数 / count' }],
    }, [[]].concat(config.series.map(() => [])), el.chart);
  }

  function render() {
    if (!config || !chart) {
      return;
    }
    const xs = points.map((p) => p.t / 1000);
    // A key missing from a window had no records in it: plot 0, not a gap.
    const ys = config.series.map((s) => points.map((p) => (s.key in p.values ? p.values[s.key] : 0)));
    chart.setData([xs].concat(ys));
    el.totals.replaceChildren(...config.series.map((s, i) => {
      const item = document.createElement('div');
      item.className = 'total';
      item.style.borderColor = COLORS[i % COLORS.length];
      const label = document.createElement('span');
      label.textContent = s.label;
      const value = document.createElement('strong');
      value.textContent = String(totals[s.key] || 0);
      value.dataset.key = s.key;
      item.append(label, value);
      return item;
    }));
    document.body.dataset.points = String(points.length);
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
    document.title = c.title;
    el.title.textContent = c.title;
    buildChart();
    render();
  });
  socket.on('history', (h) => {
    points = h.points;
    totals = h.totals;
    render();
  });
  socket.on('window', (update) => {
    points.push(update.point);
    const keep = config ? config.points : 20;
    if (points.length > keep) {
      points.splice(0, points.length - keep);
    }
    totals = update.totals;
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
    if (chart) {
      chart.setSize({ width: Math.max(320, el.chart.clientWidth), height: 360 });
    }
  });
})();
