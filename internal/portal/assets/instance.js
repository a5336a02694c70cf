// The instance page: one instance read whole (GET /v1/activities/{a}/
// instances/{id}): its milestones drawn on a time axis, its data, its
// continuations, related instances and references, archived or not.
import { h, fill, api, errorBox, count, time, setTitle, href, seg, svg } from './ui.js';


export async function render(main, [activity, id], _query, current) {
  setTitle(`${id} · ${activity}`);
  let in_, fields;
  try {
    // The fields give the items in the definition's order; without them
    // (no deployed definition), the data is in alphabetical order.
    [in_, fields] = await Promise.all([api(`/v1/activities/${seg(activity)}/instances/${seg(id)}`),
      api(`/v1/activities/${seg(activity)}/filter`).catch(() => null)]);
  } catch (err) {
    if (current()) main.replaceChildren(h('h1', {}, `${activity} ${id}`), errorBox(err));
    return;
  }
  if (!current()) return;
  const order = ((fields && fields.fields) || []).filter((f) => f.item).map((f) => f.name);
  const rank = (k) => order.includes(k) ? order.indexOf(k) : order.length;
  const items = Object.keys(in_.data || {}).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  fill(main,
    h('p', { class: 'muted' }, h('a', { href: href(`/activities/${seg(in_.activity)}/search`) }, in_.activity), ' › instance'),
    h('h1', {}, in_.instance, ' ', h('span', { class: `state-${in_.state}`, id: 'instance-state' }, in_.state)),
    in_.archived ? h('p', { class: 'panel', id: 'archived' }, `Archived on ${time(in_.archived_at)}: read from the archive, no longer in the activity's online views.`) : null,
    h('dl', { class: 'facts' },
      fact('Begin', time(in_.begin)), fact('End', time(in_.end)),
      fact('Last change', time(in_.last_modified)), fact('Events', count(in_.events))),
    h('h2', {}, 'Timeline'),
    timeline(in_),
    h('h2', {}, 'Data'),
    items.length === 0 ? h('p', { class: 'muted' }, 'No data.') : h('div', { class: 'table-wrap' }, h('table', { id: 'data' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Item'), h('th', { scope: 'col' }, 'Value'))),
      h('tbody', {}, items.map((k) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, show(in_.data[k]))))))),
    section('Continuations', in_.continuations, ['Token', 'Instance', 'Open', 'Enabled', 'Ended', 'Events'], (c) => [
      c.token,
      c.instance ? h('a', { href: href(`/activities/${seg(c.activity)}/instances/${seg(c.instance)}`) }, `${c.activity} ${c.instance}`) : h('span', { class: 'muted' }, 'not yet linked'),
      c.open ? 'open' : 'ended', time(c.enabled_at), time(c.ended_at), count(c.events)]),
    section('Related instances', in_.related, ['Activity', 'Instance'], (r) => [
      r.activity, h('a', { href: href(`/activities/${seg(r.activity)}/instances/${seg(r.instance)}`), class: 'related' }, r.instance)]),
    section('References', in_.references, ['Type', 'Name', 'Value', 'Data', 'Time'], (r) => [
      r.type, r.name, r.value, r.data, time(r.time)]),
  );
}

function fact(name, value) {
  return [h('dt', {}, name), h('dd', {}, value || h('span', { class: 'muted' }, '—'))];
}

function show(v) {
  return typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
}

function section(title, rows, headings, cells) {
  const id = title.toLowerCase().replaceAll(' ', '-');
  return [h('h2', {}, title), !rows || rows.length === 0 ? h('p', { class: 'muted', id }, 'None.')
    : h('div', { class: 'table-wrap' }, h('table', { id },
      h('thead', {}, h('tr', {}, headings.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, cells(r).map((c) => h('td', {}, c))))))) ];
}


// timeline draws the begin, each milestone reached and the end on one
// time axis, and lists the time each step took: the question BAM users
// ask most is how long one step took. Labels go into lanes above and below
// the axis, the nearest lane where they overlap no other, since steps
// minutes apart sit hours from the next.
function timeline(in_) {
  const marks = [];
  if (in_.begin) marks.push({ label: 'begin', time: in_.begin, kind: 'edge' });
  for (const m of in_.timeline || []) marks.push({ label: m.item, time: m.time, kind: 'milestone' });
  if (in_.end) marks.push({ label: 'end', time: in_.end, kind: 'edge' });
  marks.sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  if (marks.length === 0) return h('p', { class: 'muted', id: 'timeline' }, 'No milestone reached yet.');
  const t0 = Date.parse(marks[0].time), t1 = Date.parse(marks[marks.length - 1].time);
  const width = 1000, margin = 80, laneHeight = 40;
  const span = Math.max(t1 - t0, 1);
  const x = (t) => marks.length === 1 ? width / 2 : margin + (Date.parse(t) - t0) / span * (width - 2 * margin);
  // Lanes: 0, 1 above the axis, 2, 3 below, and so on, alternating.
  const ends = [];
  let lanes = 2;
  marks.forEach((m, i) => {
    // The time of day, and the date too at the first mark and wherever
    // it changes: across days, 09:12 after 14:30 is the next day's.
    const at = time(m.time);
    m.when = i === 0 || at.slice(0, 10) !== time(marks[i - 1].time).slice(0, 10) ? at : at.slice(11);
  });
  for (const m of marks) {
    m.x = x(m.time);
    const half = Math.max(m.label.length, m.when.length, 9) * 4.6 + 6;
    let lane = 0;
    while (ends[lane] !== undefined && ends[lane] > m.x - half) lane++;
    ends[lane] = m.x + half;
    m.lane = lane;
    lanes = Math.max(lanes, lane + 1);
  }
  const above = Math.ceil(lanes / 2), below = Math.floor(lanes / 2);
  const axis = 16 + above * laneHeight;
  const heightOf = 16 + (above + below) * laneHeight + 8;
  const nodes = [svg('line', { x1: margin / 2, y1: axis, x2: width - margin / 2, y2: axis, class: 'axis' })];
  for (const m of marks) {
    const up = m.lane % 2 === 0, depth = Math.floor(m.lane / 2);
    const y = up ? axis - 10 - depth * laneHeight : axis + 24 + depth * laneHeight;
    nodes.push(svg('g', { class: `mark ${m.kind}`, 'data-item': m.label },
      svg('title', {}, `${m.label}: ${m.time}`),
      svg('line', { x1: m.x, y1: axis, x2: m.x, y2: up ? y + 2 : y - 14, class: 'tick' }),
      svg('circle', { cx: m.x, cy: axis, r: m.kind === 'edge' ? 5 : 7 }),
      svg('text', { x: m.x, y: up ? y - 16 : y, 'text-anchor': 'middle', class: 'label' }, m.label),
      svg('text', { x: m.x, y: up ? y : y + 16, 'text-anchor': 'middle', class: 'when' }, m.when)));
  }
  const steps = marks.slice(1).map((m, i) => h('li', {}, `${marks[i].label} → ${m.label}: `,
    h('strong', { class: 'step' }, duration(Date.parse(m.time) - Date.parse(marks[i].time)))));
  return h('figure', { class: 'timeline' },
    svg('svg', { viewBox: `0 0 ${width} ${heightOf}`, role: 'img', id: 'timeline', 'aria-labelledby': 'timeline-caption' }, nodes),
    h('figcaption', { id: 'timeline-caption' },
      h('span', { class: 'sr-only' }, marks.map((m) => `${m.label} ${time(m.time)}`).join(', ')),
      steps.length ? h('ol', { class: 'steps', 'aria-label': 'Steps' }, steps) : null));
}

// duration writes milliseconds as the largest units that matter: 2d 3h,
// 5m 10s, 0s.
function duration(ms) {
  let s = Math.round(ms / 1000);
  const parts = [];
  for (const [unit, n] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (s >= n || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(s / n)}${unit}`);
      s %= n;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}
