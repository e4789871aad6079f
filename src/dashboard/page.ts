/**
 * The dashboard page: one HTML document with its style and script inline; the chart libraries come
 * from the aggregator itself (/dashboard/assets). It redraws from /dashboard/state whenever the
 * event stream says something changed, and polls as a fallback when the stream is down.
 */
export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>FL testbed dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
:root{--up:#2e9e5b;--down:#c93c3c;--unknown:#999;--accent:#2f6db3}
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#222}
header{background:#1f2a37;color:#fff;padding:.8rem 1.5rem;display:flex;gap:1.5rem;align-items:center;flex-wrap:wrap}
header h1{font-size:1.2rem;margin:0}
.badge{padding:.15rem .6rem;border-radius:1rem;background:#3d4c5e;font-size:.85rem}
.badge.he-on{background:#5b3fa0}.badge.done{background:var(--up)}
main{display:grid;grid-template-columns:minmax(440px,1fr) minmax(660px,1.6fr);gap:1rem;padding:1rem 1.5rem}
section{background:#fff;border-radius:6px;padding:.8rem 1rem;box-shadow:0 1px 2px #0002;overflow-x:auto}
h2{font-size:1rem;margin:.2rem 0 .6rem}
table{border-collapse:collapse;font-size:.8rem;width:100%}
th,td{padding:.2rem .4rem;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.wrap{white-space:normal}
.dot{display:inline-block;width:.7rem;height:.7rem;border-radius:50%;background:var(--unknown);vertical-align:middle}
.dot.up{background:var(--up)}.dot.down,.dot.failed{background:var(--down)}
.bar{height:.6rem;background:#e3e7ee;border-radius:.3rem;overflow:hidden;width:14rem;display:inline-block;vertical-align:middle}
.bar>div{height:100%;background:var(--accent);width:0;transition:width .4s}
.charts section{margin-bottom:1rem;overflow-x:auto}
#status{font-size:.75rem;color:#ccd}
</style></head>
<body>
<header>
  <h1 id="experiment">experiment</h1>
  <span>round <b id="round">–</b> of <b id="rounds">–</b></span>
  <span class="bar" title="rounds finished"><div id="rounds-bar"></div></span>
  <span class="badge" id="stage">connecting</span>
  <span>clients reported <b id="reported">0</b>/<b id="selected">0</b></span>
  <span class="bar" title="clients reported in the round in flight"><div id="round-bar"></div></span>
  <span class="badge" id="he">HE</span>
  <span id="status"></span>
</header>
<main>
  <div>
    <section><h2>Settings</h2><table id="settings"></table></section>
    <section style="margin-top:1rem"><h2>Nodes</h2>
      <table><thead><tr><th></th><th>node</th><th>role</th><th>round</th><th class="num">sent MB</th><th class="num">recv MB</th><th>phases (ms)</th></tr></thead>
      <tbody id="nodes"></tbody></table>
    </section>
  </div>
  <div class="charts">
    <section><div id="chart-accuracy" data-rounds="0"></div></section>
    <section><div id="chart-rounds"></div></section>
    <section><div id="chart-bytes"></div></section>
    <section><div id="chart-phases"></div></section>
  </div>
</main>
<script src="/dashboard/assets/vega.min.js"></script>
<script src="/dashboard/assets/vega-lite.min.js"></script>
<script>
const views = {};
const drawn = {};
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const mb = (b) => (b / 1e6).toFixed(2);

async function drawChart(name, spec) {
  const key = JSON.stringify(spec);
  if (drawn[name] === key) return;
  drawn[name] = key;
  views[name]?.finalize();
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'svg', container: $('chart-' + name), hover: true });
  views[name] = view;
  await view.runAsync();
}

function render(state) {
  document.title = state.experiment + ': round ' + state.round + '/' + state.rounds;
  $('experiment').textContent = state.experiment;
  $('round').textContent = state.round;
  $('rounds').textContent = state.rounds;
  $('rounds-bar').style.width = (100 * state.rounds_done / state.rounds) + '%';
  $('stage').textContent = state.finished ? 'finished' : state.stage;
  $('stage').className = 'badge' + (state.finished ? ' done' : '');
  $('reported').textContent = state.reported;
  $('selected').textContent = state.selected;
  $('round-bar').style.width = (state.selected ? 100 * state.reported / state.selected : 0) + '%';
  $('he').textContent = state.encrypted ? 'HE on (CKKS)' : 'HE off';
  $('he').className = 'badge' + (state.encrypted ? ' he-on' : '');
  $('settings').innerHTML = state.settings.map(([k, v]) => '<tr><th>' + esc(k) + '</th><td class="wrap">' + esc(v) + '</td></tr>').join('');
  $('nodes').innerHTML = state.nodes.map((n) => {
    const health = n.health ? n.health.state : 'unknown';
    const title = n.health ? health + (n.health.reason ? ': ' + n.health.reason : '') : 'not checked yet';
    const last = n.last;
    const phases = last ? Object.entries(last.phases).map(([p, ms]) => p + ' ' + Math.round(ms)).join(', ') : '';
    return '<tr data-node="' + esc(n.address) + '"><td><span class="dot ' + health + '" title="' + esc(title) + '"></span></td>' +
      '<td>' + esc(n.address) + '</td><td>' + n.role + '</td><td>' + (last ? last.round : '–') + '</td>' +
      '<td class="num">' + (last ? mb(last.sent) : '') + '</td><td class="num">' + (last ? mb(last.received) : '') + '</td>' +
      '<td class="wrap">' + esc(phases) + '</td></tr>';
  }).join('');
  return Promise.all(Object.entries(state.charts).map(([name, spec]) => drawChart(name, spec)))
    .then(() => $('chart-accuracy').setAttribute('data-rounds', String(state.rows.length)));
}

let pending = false;
async function refresh() {
  if (pending) return;
  pending = true;
  try {
    const res = await fetch('/dashboard/state', { cache: 'no-store' });
    if (res.ok) await render(await res.json());
    $('status').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (err) {
    $('status').textContent = 'aggregator not reachable (' + err.message + ')';
  } finally {
    pending = false;
  }
}

let timer;
function scheduleRefresh() {
  clearTimeout(timer);
  timer = setTimeout(refresh, 150); // a burst of changes (many logs at once) makes one refresh
}
const events = new EventSource('/dashboard/events');
events.addEventListener('change', scheduleRefresh);
events.onopen = scheduleRefresh;
setInterval(() => { if (events.readyState !== EventSource.OPEN) refresh(); }, 5000);
refresh();
</script>
</body></html>
`;
