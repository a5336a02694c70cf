// The aggregation page: an aggregation's cells (GET /v1/activities/{a}/
// aggregations/{g}) as a pivot table and a chart, each cell's instances one
// click away (its drill-down filter, searched). ?state= keeps one state's
// cells or merges them (all); ?where= computes the cells of the instances a
// filter matches; ?measure= is the measure charted.
import { h, fill, api, errorBox, count, time, setTitle, href, seg, svg } from './ui.js';
import { go } from './app.js';

const maxBars = 40;
// A page reads and draws at most this many cells (?limit=): an aggregation
// by customer and month holds one cell per pair.
const maxRows = 1000;

export async function render(main, [activity, name], query, current) {
  setTitle(`${name} · ${activity}`);
  const state = query.get('state') || '';
  const where = query.get('where') || '';
  let agg;
  try {
    agg = await api(`/v1/activities/${seg(activity)}/aggregations/${seg(name)}`, { state, where, limit: maxRows });
  } catch (err) {
    if (current()) fill(main, h('h1', {}, `${activity} ${name}`), controls(activity, name, state, where, err), errorBox(err));
    return;
  }
  if (!current()) return;
  const keys = keyColumns(agg);
  const measures = agg.columns.filter((c) => !keys.includes(c) && c.name !== 'state');
  const chosen = measures.find((c) => c.name === query.get('measure')) || measures[0];
  fill(main,
    h('p', { class: 'muted' }, h('a', { href: '/' }, 'Activities'), ' › ', h('a', { href: href(`/activities/${seg(agg.activity)}/search`) }, agg.activity), ' › aggregation'),
    h('h1', {}, agg.aggregation, ' ', h('span', { class: 'muted' }, `of ${agg.activity}`)),
    h('p', { class: 'muted' }, 'Also the SQL view ', h('code', {}, agg.view), ', for BI tools.'),
    controls(agg.activity, agg.aggregation, state, where),
    agg.cells.length === 0 ? h('p', { class: 'muted', id: 'no-cells' }, 'No cell: no instance is counted here yet.') : [
      chart(agg, keys, chosen, query),
      h('div', { class: 'table-wrap' }, pivot(agg, keys)),
    ]);
}

// keyColumns are the columns that place a cell (the dimensions), as the
// API lists them: those before "instances", the state aside.
function keyColumns(agg) {
  const i = agg.columns.findIndex((c) => c.name === 'instances');
  return agg.columns.slice(0, i < 0 ? 0 : i).filter((c) => c.name !== 'state');
}

function controls(activity, name, state, where, err) {
  const stateSelect = h('select', { id: 'agg-state' },
    [['', 'each state'], ['active', 'active'], ['completed', 'completed'], ['pending', 'pending'], ['all', 'all states merged']]
      .map(([v, label]) => h('option', { value: v, selected: v === state }, label)));
  const whereInput = h('input', { id: 'agg-where', type: 'text', size: 60, value: where, spellcheck: 'false', placeholder: "e.g. Rush = true (default: the cells the store keeps)" });
  return h('form', { class: 'row', id: 'agg-form', onsubmit: (e) => {
    e.preventDefault();
    go(href(`/activities/${seg(activity)}/aggregations/${seg(name)}`, { state: stateSelect.value, where: whereInput.value.trim() }));
  } },
  h('label', { for: 'agg-state' }, 'Cells of'), stateSelect,
  h('label', { for: 'agg-where' }, 'Instances matching'), whereInput,
  h('button', { type: 'submit', class: 'primary' }, 'Show'));
}

function label(cell, keys) {
  const parts = keys.map((k) => show(cell[k.name], k));
  if (cell.state) parts.push(cell.state);
  return parts.join(' · ');
}

function show(v, col) {
  if (v === null || v === undefined) return '(none)';
  if (col && col.kind === 'time') return time(v).replace(/ 00:00:00Z$/, '');
  if (col && col.kind === 'seconds') return seconds(Number(v));
  if (col && isNumber(col)) return Number(v).toLocaleString('en-US', { maximumFractionDigits: 2 });
  return String(v);
}

function seconds(s) {
  if (!isFinite(s)) return '';
  if (s < 120) return `${Math.round(s * 10) / 10}s`;
  if (s < 7200) return `${Math.round(s / 6) / 10}m`;
  if (s < 172800) return `${Math.round(s / 360) / 10}h`;
  return `${Math.round(s / 8640) / 10}d`;
}

// pivot is the cells as a table: a row per cell, its state and dimensions,
// then its instances (the drill-down link) and measures.
function pivot(agg, keys) {
  const cols = agg.columns;
  const cells = agg.cells;
  return [agg.more ? h('p', { class: 'muted', id: 'cells-cut' },
    `The first ${count(cells.length)} cells, of more: choose a state or a filter above, or take them all with bam aggregate ${agg.activity} ${agg.aggregation} --format csv.`) : null,
  h('table', { id: 'cells' },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', class: isNumber(c) ? 'num' : null }, c.name)))),
    h('tbody', {}, cells.map((cell) => h('tr', { 'data-filter': cell.filter },
      cols.map((c) => {
        if (c.name === 'instances') {
          return h('td', { class: 'num' }, h('a', { class: 'drill', href: href(`/activities/${seg(agg.activity)}/search`, { where: cell.filter }), title: `The instances of this cell: ${cell.filter}` }, count(cell.instances)));
        }
        const v = cell[c.name];
        return h('td', { class: isNumber(c) ? 'num' : null, title: v === null || v === undefined ? null : String(v) }, v === null || v === undefined ? h('span', { class: 'muted' }, '') : show(v, c));
      }))))) ];
}

function isNumber(c) {
  return ['integer', 'float', 'decimal', 'count', 'sum', 'seconds'].includes(c.kind);
}

// chart draws the chosen measure of each cell: over time when the first
// dimension is a time bucket (a line per combination of the others), as
// bars otherwise.
function chart(agg, keys, chosen, query) {
  const measureSelect = h('select', { id: 'agg-measure', onchange: (e) => {
    const q = new URLSearchParams(location.search);
    q.set('measure', e.target.value);
    go(`${location.pathname}?${q}`, { replace: true });
  } }, agg.columns.filter((c) => isNumber(c)).map((c) => h('option', { value: c.name, selected: chosen && c.name === chosen.name }, c.name)));
  const m = chosen ? chosen.name : 'instances';
  const timeKey = keys.length > 0 && keys[0].kind === 'time' ? keys[0] : null;
  const drawing = timeKey ? series(agg, keys, m, chosen) : bars(agg, keys, m, chosen);
  return h('figure', { class: 'chart' },
    h('div', { class: 'row' }, h('label', { for: 'agg-measure' }, 'Chart'), measureSelect, h('span', { class: 'muted' }, timeKey ? `over ${timeKey.name}` : 'by cell')),
    drawing);
}


function bars(agg, keys, m, col) {
  const cells = agg.cells.filter((c) => c[m] !== null && c[m] !== undefined).slice(0, maxBars);
  const values = cells.map((c) => Number(c[m]));
  const top = Math.max(...values, 0) || 1;
  const rowH = 26, labelW = 320, width = 1000, barW = width - labelW - 110;
  const height = cells.length * rowH + 10;
  const nodes = cells.map((c, i) => {
    const w = Math.max(values[i] / top * barW, values[i] > 0 ? 1 : 0);
    const y = 5 + i * rowH;
    return svg('g', { class: 'bar' },
      svg('title', {}, `${label(c, keys)}: ${show(c[m], col)}`),
      svg('text', { x: labelW - 8, y: y + rowH / 2 + 5, 'text-anchor': 'end', class: 'label' }, clip(label(c, keys), 40)),
      svg('rect', { x: labelW, y: y + 3, width: w, height: rowH - 6 }),
      svg('text', { x: labelW + w + 6, y: y + rowH / 2 + 5, class: 'value' }, show(c[m], col)));
  });
  return [svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', id: 'chart', 'aria-label': `${m} by cell` }, nodes),
    agg.cells.length > maxBars ? h('p', { class: 'muted' }, `The first ${maxBars} cells of ${count(agg.cells.length)}; the table has them all.`) : null];
}

function series(agg, keys, m, col) {
  const [tk, ...rest] = keys;
  const lines = new Map();
  for (const c of agg.cells) {
    if (c[tk.name] === null || c[m] === null || c[m] === undefined) continue;
    const name = [...rest.map((k) => show(c[k.name], k)), c.state].filter((x) => x).join(' · ') || m;
    if (!lines.has(name)) lines.set(name, []);
    lines.get(name).push({ t: Date.parse(c[tk.name]), v: Number(c[m]), cell: c });
  }
  const all = [...lines.values()].flat();
  if (all.length === 0) return h('p', { class: 'muted' }, 'Nothing to draw.');
  const t0 = Math.min(...all.map((p) => p.t)), t1 = Math.max(...all.map((p) => p.t));
  const top = Math.max(...all.map((p) => p.v), 0) || 1;
  const width = 1000, height = 260, left = 70, right = 20, topPad = 16, bottom = 40;
  const x = (t) => t1 === t0 ? (left + width - right) / 2 : left + (t - t0) / (t1 - t0) * (width - left - right);
  const y = (v) => topPad + (1 - v / top) * (height - topPad - bottom);
  const nodes = [
    svg('line', { x1: left, y1: y(0), x2: width - right, y2: y(0), class: 'axis' }),
    svg('text', { x: left - 6, y: y(top) + 4, 'text-anchor': 'end', class: 'value' }, show(top, col)),
    svg('text', { x: left - 6, y: y(0) + 4, 'text-anchor': 'end', class: 'value' }, '0'),
    svg('text', { x: left, y: height - 12, class: 'value' }, show(new Date(t0).toISOString(), tk)),
    svg('text', { x: width - right, y: height - 12, 'text-anchor': 'end', class: 'value' }, show(new Date(t1).toISOString(), tk)),
  ];
  let k = 0;
  const legend = [];
  for (const [name, pts] of [...lines.entries()].slice(0, 8)) {
    pts.sort((a, b) => a.t - b.t);
    const cls = `series s${k++ % 8}`;
    nodes.push(svg('g', { class: cls },
      svg('polyline', { points: pts.map((p) => `${x(p.t)},${y(p.v)}`).join(' ') }),
      pts.map((p) => svg('circle', { cx: x(p.t), cy: y(p.v), r: 4 }, svg('title', {}, `${name}, ${show(p.cell[tk.name], tk)}: ${show(p.cell[m], col)}`)))));
    legend.push(h('li', { class: cls }, name));
  }
  return [svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', id: 'chart', 'aria-label': `${m} over ${tk.name}` }, nodes),
    h('ul', { class: 'legend' }, legend),
    lines.size > 8 ? h('p', { class: 'muted' }, `The first 8 series of ${lines.size}; the table has them all.`) : null];
}

function clip(s, n) {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}
