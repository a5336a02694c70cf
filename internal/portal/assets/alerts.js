// The alerts pages. /alerts: every deployed alert with its state (how many
// keys it fires for now, when it last fired), then the latest firings
// (?open=true for the open ones only, a page at a time with ?before=).
// /alerts/{activity}/{alert}: one alert, the node that evaluates it, its
// open firings and its latest, each with its deliveries.
import { h, fill, api, errorBox, count, time, setTitle, href, seg } from './ui.js';
import { alertForm } from './alertform.js';
import { go } from './app.js';

const pageSize = 50;

export async function render(main, _params, query, current) {
  setTitle('Alerts');
  const open = query.get('open') === 'true';
  const before = query.get('before') || '';
  let alerts, firings, activities;
  try {
    [alerts, firings, activities] = await Promise.all([
      api('/v1/alerts'),
      api('/v1/firings', { open: open ? 'true' : '', before, limit: pageSize }),
      api('/v1/activities'),
    ]);
  } catch (err) {
    if (current()) fill(main, h('h1', {}, 'Alerts'), errorBox(err));
    return;
  }
  if (!current()) return;
  const list = alerts.alerts || [];
  const editor = h('div', { id: 'alert-editor' });
  const canAdd = (activities.activities || []).some((a) => a.deployed);
  // ?new=1&activity=&where= (the search page's "Alert on this search")
  // opens the form with them.
  const prefill = query.get('new') ? { activity: query.get('activity') || '', where: query.get('where') || '' } : null;
  fill(main,
    h('h1', {}, 'Alerts'),
    canAdd ? h('p', {}, h('button', { type: 'button', id: 'alert-new', hidden: !!prefill, onclick: (e) => {
      e.target.hidden = true;
      fill(editor, alertForm(activities.activities, null));
      editor.querySelector('#alert-name').focus();
    } }, 'New alert')) : null,
    editor,
    list.length === 0
      ? h('p', { class: 'muted' }, 'No alerts deployed: declare them under alerts: in a definition file and deploy it (bam deploy).')
      : h('div', { class: 'table-wrap' }, h('table', { id: 'alerts' },
        h('thead', {}, h('tr', {}, ['Alert', 'Kind', 'Severity', 'Condition', 'Open', 'Last fired', 'Delivered to']
          .map((x) => h('th', { scope: 'col', class: x === 'Open' ? 'num' : null }, x)))),
        h('tbody', {}, list.map(alertRow)))),
    h('h2', {}, open ? 'Open firings' : 'Latest firings'),
    h('p', {}, open
      ? h('a', { id: 'firings-all', href: href('/alerts') }, 'Show every firing')
      : h('a', { id: 'firings-open', href: href('/alerts', { open: 'true' }) }, 'Show the open firings only')),
    firingsTable(firings.firings || [], true),
    firings.next ? h('p', {}, h('a', { id: 'firings-next', href: href('/alerts', { open: open ? 'true' : '', before: firings.next }) }, 'Older firings')) : null,
    before ? h('p', {}, h('a', { href: href('/alerts', { open: open ? 'true' : '' }) }, 'Latest firings')) : null,
  );
  if (prefill && canAdd) {
    fill(editor, alertForm(activities.activities, null, prefill));
    editor.querySelector('#alert-name').focus();
  }
}

function alertRow(a) {
  return h('tr', { 'data-alert': `${a.activity}.${a.name}` },
    h('th', { scope: 'row' }, h('a', { href: alertPath(a.activity, a.name) }, `${a.activity}.${a.name}`)),
    h('td', {}, a.kind),
    h('td', {}, severity(a.severity)),
    h('td', { class: 'condition' }, a.condition),
    h('td', { class: 'num open' }, count(a.open)),
    h('td', { class: 'time' }, a.last_fired_at ? time(a.last_fired_at) : h('span', { class: 'muted' }, 'never')),
    h('td', {}, a.subscribers.length ? a.subscribers.map((s) => s.target).join(', ') : h('span', { class: 'muted' }, 'nobody: the history only')),
  );
}

export function alertPath(activity, alert) {
  return `/alerts/${seg(activity)}/${seg(alert)}`;
}

function severity(s) {
  return h('span', { class: `severity severity-${s}` }, s);
}

// keyText writes a firing's key: an instance id, or an aggregation cell
// (JSON) as "dimension=value" pairs.
function keyText(key) {
  if (!key.startsWith('{')) return key;
  try {
    const cell = JSON.parse(key);
    const parts = Object.entries(cell).map(([k, v]) => `${k}=${v === null ? '(empty)' : v}`);
    return parts.length ? parts.join(', ') : '(the one cell)';
  } catch {
    return key;
  }
}

// firingsTable lists firings; withAlert adds a column naming the alert.
// An instance key links to its instance.
function firingsTable(firings, withAlert) {
  if (firings.length === 0) return h('p', { class: 'muted' }, 'None.');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'firings' },
    h('thead', {}, h('tr', {}, ['Id', 'Fired', 'Cleared', withAlert ? 'Alert' : null, 'Key', 'Message', 'Deliveries']
      .filter((x) => x !== null).map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, firings.map((f) => h('tr', { 'data-firing': f.id, class: f.cleared_at ? 'cleared' : 'open' },
      h('td', {}, f.id),
      h('td', { class: 'time' }, time(f.fired_at)),
      h('td', { class: 'time' }, f.cleared_at ? time(f.cleared_at) : h('strong', {}, 'open')),
      withAlert ? h('td', {}, h('a', { href: alertPath(f.activity, f.alert) }, `${f.activity}.${f.alert}`)) : null,
      h('td', { class: 'key' }, f.key.startsWith('{') ? keyText(f.key)
        : h('a', { href: `/activities/${seg(f.activity)}/instances/${seg(f.key)}` }, f.key)),
      h('td', { class: 'message' }, f.message),
      h('td', { class: 'deliveries' }, deliveries(f.deliveries)))))));
}

function deliveries(ds) {
  if (!ds || ds.length === 0) return h('span', { class: 'muted' }, 'none');
  return h('ul', { class: 'plain' }, ds.map((d) => h('li', { 'data-delivery': d.id, class: `delivery-${d.state}` },
    `${d.channel} ${d.target}: `, h('strong', {}, d.state),
    d.attempts > 1 || d.state !== 'delivered' ? ` after ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}` : '',
    d.last_error ? h('span', { class: 'muted' }, ` (${d.last_error})`) : null,
    d.next_attempt_at ? ` — next ${time(d.next_attempt_at)}` : null)));
}

// evaluator writes the evaluating node as the pool page does: "name (id)",
// or the id alone when the node is not listed.
function evaluator(id, nodes) {
  const n = ((nodes && nodes.nodes) || []).find((x) => x.id === id);
  return n ? `${n.name} (${id})` : id;
}

// renderOne is the page of one alert.
export async function renderOne(main, [activity, name], _query, current) {
  setTitle(`Alert ${activity}.${name}`);
  let a, activities, nodes;
  try {
    // The nodes name the evaluator, which the alert gives by id; the page
    // does without them.
    [a, activities, nodes] = await Promise.all([api(`/v1/alerts/${seg(activity)}/${seg(name)}`), api('/v1/activities'),
      api('/v1/nodes').catch(() => null)]);
  } catch (err) {
    if (current()) fill(main, h('h1', {}, `Alert ${activity}.${name}`), errorBox(err));
    return;
  }
  if (!current()) return;
  const target = a.kind === 'aggregate'
    ? h('a', { href: `/activities/${seg(a.activity)}/aggregations/${seg(a.aggregation)}` }, `aggregation ${a.aggregation}`)
    : h('a', { href: href(`/activities/${seg(a.activity)}/search`, { where: a.where }) }, 'the instances it matches now');
  const editor = h('div', { id: 'alert-editor' });
  const message = h('div', { id: 'alert-status', 'aria-live': 'polite' });
  const dialog = h('dialog', { id: 'confirm', 'aria-labelledby': 'confirm-text' });
  const remove = async () => {
    const ok = await new Promise((resolve) => {
      const finish = (yes) => { dialog.close(); resolve(yes); };
      fill(dialog,
        h('p', { id: 'confirm-text' }, `Remove alert ${a.activity}.${a.name}? Its open firings are cleared; its history stays.`),
        h('div', { class: 'row' },
          h('button', { type: 'button', class: 'primary', id: 'confirm-yes', onclick: () => finish(true) }, 'Remove'),
          h('button', { type: 'button', id: 'confirm-no', onclick: () => finish(false) }, 'Cancel')));
      dialog.addEventListener('cancel', () => resolve(false), { once: true });
      dialog.showModal();
      dialog.querySelector('#confirm-no').focus();
    });
    if (!ok) return;
    try {
      await api(`/v1/alerts/${seg(a.activity)}/${seg(a.name)}`, {}, { method: 'DELETE' });
    } catch (err) {
      fill(message, errorBox(err));
      return;
    }
    go('/alerts');
  };
  fill(main,
    h('p', {}, h('a', { href: '/alerts' }, 'Alerts')),
    h('h1', {}, `Alert ${a.activity}.${a.name} `, severity(a.severity)),
    h('div', { class: 'row' },
      h('button', { type: 'button', id: 'alert-change', onclick: () => {
        fill(editor, alertForm(activities.activities || [], a));
        editor.querySelector('#alert-where').focus();
      } }, 'Change'),
      h('button', { type: 'button', id: 'alert-remove', onclick: remove }, 'Remove')),
    message,
    editor,
    dialog,
    h('dl', { class: 'facts', id: 'alert-facts' },
      h('dt', {}, 'Kind'), h('dd', {}, a.kind === 'aggregate' ? 'aggregate: each cell whose measure crosses the threshold fires' : 'instance: each instance that starts matching fires'),
      h('dt', {}, 'Condition'), h('dd', { class: 'condition' }, a.condition, ' — ', target),
      h('dt', {}, 'Message'), h('dd', {}, a.message),
      h('dt', {}, 'Delivered to'), h('dd', {}, a.subscribers.length
        ? h('ul', { class: 'plain' }, a.subscribers.map((s) => h('li', {}, `${s.channel} ${s.target}`, s.secret_env ? ` (signed with $${s.secret_env})` : '')))
        : h('span', { class: 'muted' }, 'nobody: the firings are kept in the history only')),
      h('dt', {}, 'Evaluated by'), h('dd', { id: 'alert-evaluator' }, a.evaluator
        ? ['node ', h('a', { href: '/pool' }, evaluator(a.evaluator, nodes))]
        : h('span', { class: 'warn' }, 'no node now: is bam serve running?')),
      h('dt', {}, 'Open'), h('dd', { id: 'alert-open' }, count(a.open), a.more_open_firings ? ' (the first 100 below)' : ''),
      h('dt', {}, 'Last fired'), h('dd', {}, a.last_fired_at ? time(a.last_fired_at) : 'never')),
    h('h2', {}, 'Open firings'),
    firingsTable(a.open_firings || [], false),
    h('h2', {}, 'Latest firings'),
    firingsTable(a.recent_firings || [], false),
    h('p', {}, h('a', { href: href('/alerts') }, 'Every firing of every alert')),
  );
}
