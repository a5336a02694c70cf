// The activities page: each activity with its instances by state, its
// items and its aggregations, and a link to search it.
import { h, api, errorBox, count, setTitle, href, seg } from './ui.js';

export async function render(main, _params, _query, current) {
  setTitle('Activities');
  let data;
  try {
    data = await api('/v1/activities', { counts: 'true' });
  } catch (err) {
    if (current()) main.replaceChildren(h('h1', {}, 'Activities'), errorBox(err));
    return;
  }
  if (!current()) return;
  const acts = data.activities || [];
  main.replaceChildren(
    h('h1', {}, 'Activities'),
    acts.length === 0
      ? h('p', { class: 'muted' }, 'No activity yet: deploy a definition (bam deploy definitions.yaml) or send events.')
      : h('div', { class: 'table-wrap' }, h('table', { id: 'activities' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Activity'),
          h('th', { scope: 'col', class: 'num' }, 'Active'),
          h('th', { scope: 'col', class: 'num' }, 'Completed'),
          h('th', { scope: 'col', class: 'num' }, 'Pending'),
          h('th', { scope: 'col' }, 'Items'),
          h('th', { scope: 'col' }, 'Aggregations'),
          h('th', { scope: 'col' }, 'Definition'))),
        h('tbody', {}, acts.map(row)))),
  );
}

function row(a) {
  const n = a.instances || {};
  return h('tr', { 'data-activity': a.name },
    h('th', { scope: 'row' }, a.deployed
      ? h('a', { href: href(`/activities/${seg(a.name)}/search`) }, a.name)
      : a.name),
    h('td', { class: 'num' }, count(n.active || 0)),
    h('td', { class: 'num' }, count(n.completed || 0)),
    h('td', { class: 'num' }, count(n.pending || 0)),
    h('td', {}, (a.items || []).map((it) => it.name).join(', ')),
    h('td', {}, (a.aggregations || []).map((g, i) => [i ? ', ' : '',
      h('a', { href: href(`/activities/${seg(a.name)}/aggregations/${seg(g.name)}`), class: 'aggregation' }, g.name)])),
    h('td', {}, a.deployed ? `version ${a.version}` : h('span', { class: 'muted' }, 'none deployed (not searchable)')),
  );
}
