// The activities page: each activity with its instances by state, its
// events per second, its items and its aggregations, and a link to search
// it. The rate is the change of the events the sessions applied to the
// activity (GET /v1/activities?events=true, a read of one row per session)
// between two reads, every two seconds while the page is visible, or four
// times what a read took when that is longer (at most ten seconds); every
// fifth read counts the instances by state again too (an index entry read
// per instance). A read with no answer within timeout is given up, and
// the page says since when the node has not answered.
import { h, fill, api, errorBox, count, setTitle, href, seg } from './ui.js';

const every = 2000;
const longest = 10000;
const timeout = 5000;

export async function render(main, _params, _query, current) {
  setTitle('Activities');
  let data;
  try {
    data = await api('/v1/activities', { counts: 'true', events: 'true' });
  } catch (err) {
    if (current()) main.replaceChildren(h('h1', {}, 'Activities'), errorBox(err));
    return;
  }
  if (!current()) return;
  const acts = data.activities || [];
  main.replaceChildren(
    h('h1', {}, 'Activities'),
    h('p', { id: 'activities-status', 'aria-live': 'polite' }),
    acts.length === 0
      ? h('p', { class: 'muted' }, 'No activity yet: deploy a definition (bam deploy definitions.yaml) or send events.')
      : h('div', { class: 'table-wrap' }, h('table', { id: 'activities' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Activity'),
          h('th', { scope: 'col', class: 'num' }, 'Active'),
          h('th', { scope: 'col', class: 'num' }, 'Completed'),
          h('th', { scope: 'col', class: 'num' }, 'Pending'),
          h('th', { scope: 'col', class: 'num' }, 'Events/s'),
          h('th', { scope: 'col' }, 'Items'),
          h('th', { scope: 'col' }, 'Aggregations'),
          h('th', { scope: 'col' }, 'Definition'))),
        h('tbody', {}, acts.map(row)))),
  );
  if (acts.length) follow(main, current, totals(acts), performance.now());
}

function totals(acts) {
  return Object.fromEntries(acts.map((a) => [a.name, a.events_applied]));
}

// follow reads the events applied again and again while the page is
// shown, and writes each activity's rate since the read before.
function follow(main, current, last, at) {
  let took = 0;
  let reads = 0;
  let answered = new Date();
  const status = main.querySelector('#activities-status');
  const tick = async () => {
    if (!current() || !document.body.contains(main)) return;
    if (document.visibilityState === 'visible') {
      const start = performance.now();
      const counts = ++reads % 5 === 0;
      let data;
      try {
        data = await api('/v1/activities', { events: 'true', counts: counts ? 'true' : '' }, { timeout });
      } catch (err) {
        // The next read tries again; the counts stay as they were, under
        // a line that says since when.
        data = null;
        if (current()) {
          fill(status, h('strong', { class: 'error-text', role: 'alert' },
            `No answer since ${answered.toISOString().slice(11, 19)}Z: ${err.message}. The figures below are as they were then.`));
        }
      }
      took = performance.now() - start;
      if (!current()) return;
      if (data) {
        answered = new Date();
        fill(status);
        const now = performance.now();
        const next = totals(data.activities || []);
        for (const cell of main.querySelectorAll('td.rate')) {
          const name = cell.closest('tr').dataset.activity;
          const before = last[name], after = next[name];
          if (before === undefined || after === undefined || after < before) continue; // new, or its sessions' counts started again
          cell.textContent = count(Math.round((after - before) / ((now - at) / 1000)));
        }
        if (counts) {
          for (const a of data.activities || []) {
            const tr = main.querySelector(`tr[data-activity="${CSS.escape(a.name)}"]`);
            if (!tr || !a.instances) continue;
            for (const state of ['active', 'completed', 'pending']) {
              const td = tr.querySelector(`td.${state}`);
              (td.querySelector('a') || td).textContent = count(a.instances[state] || 0);
            }
          }
        }
        last = next;
        at = now;
      }
    }
    // Capped: a read that took long because the node hung says nothing
    // of the next.
    setTimeout(tick, Math.min(longest, Math.max(every, 4 * took)));
  };
  setTimeout(tick, every);
}

function row(a) {
  const n = a.instances || {};
  // Each count links to the search of its instances, when there is one.
  const counted = (state) => h('td', { class: `num ${state}` }, a.deployed
    ? h('a', { href: href(`/activities/${seg(a.name)}/search`, { state }), title: `Search the ${state} instances` }, count(n[state] || 0))
    : count(n[state] || 0));
  return h('tr', { 'data-activity': a.name },
    h('th', { scope: 'row' }, a.deployed
      ? h('a', { href: href(`/activities/${seg(a.name)}/search`) }, a.name)
      : a.name),
    counted('active'),
    counted('completed'),
    counted('pending'),
    h('td', { class: 'num rate', title: 'events applied per second, over the last two seconds' }, '…'),
    h('td', {}, (a.items || []).map((it) => it.name).join(', ')),
    h('td', {}, (a.aggregations || []).map((g, i) => [i ? ', ' : '',
      h('a', { href: href(`/activities/${seg(a.name)}/aggregations/${seg(g.name)}`), class: 'aggregation' }, g.name)])),
    h('td', {}, a.deployed ? `version ${a.version}` : h('span', { class: 'muted' }, 'none deployed (not searchable)')),
  );
}
