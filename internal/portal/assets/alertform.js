// The form that adds or changes an alert through PUT /v1/alerts/{a}/{name}
// (a deployment of its activity, checked as a definition file would be):
// its fields as the definition file has them (docs/ALERTS.md), the API's
// refusal shown where it was made, in words. A new alert may not take
// the name of one the activity has (the PUT would replace it): the form
// says so and links to that alert, whose own page changes it.
import { h, fill, api, errorBox, seg, ApiError } from './ui.js';
import { go } from './app.js';

// alertForm returns the form; existing is an alert as GET /v1/alerts gives
// it (null for a new one), activities the deployed ones with their
// aggregations (GET /v1/activities); prefill, for a new one, its activity
// and filter (a search's).
export function alertForm(activities, existing, prefill = null) {
  const deployed = activities.filter((a) => a.deployed);
  const id = (k) => `alert-${k}`;
  const field = (k, label, input, hint) => h('div', { class: 'field', 'data-field': k },
    h('label', { for: id(k) }, label), input, hint ? h('span', { class: 'muted hint' }, hint) : null);
  const text = (k, value, attrs = {}) => h('input', { id: id(k), name: k, type: 'text', value: value || '', ...attrs });
  const select = (k, options, value) => {
    const s = h('select', { id: id(k), name: k }, options.map((o) => h('option', { value: o }, o)));
    if (value !== undefined && value !== null) s.value = value;
    return s;
  };

  const activity = existing ? text('activity', existing.activity, { readonly: true }) : select('activity', deployed.map((a) => a.name));
  const name = text('name', existing && existing.name, { readonly: !!existing, required: true, pattern: '[A-Za-z][A-Za-z0-9_]*', size: 24 });
  const kind = select('kind', ['instance', 'aggregate'], existing ? existing.kind : 'instance');
  const where = h('textarea', { id: id('where'), name: 'where', rows: 2, cols: 70 }, existing ? existing.where || '' : (prefill ? prefill.where : ''));
  const aggregation = select('aggregation', []);
  const state = select('state', ['all', 'active', 'completed'], existing && existing.state);
  const measure = select('measure', []);
  const side = select('side', ['above', 'below'], existing && existing.below !== undefined && existing.below !== null ? 'below' : 'above');
  const threshold = h('input', { id: id('threshold'), name: 'threshold', type: 'number', step: 'any',
    value: existing ? (existing.above ?? existing.below ?? '') : '' });
  const severity = select('severity', ['info', 'warning', 'critical'], existing ? existing.severity : 'warning');
  const message = h('textarea', { id: id('message'), name: 'message', rows: 2, cols: 70 }, existing ? existing.message : '');
  const subscribers = h('textarea', { id: id('subscribers'), name: 'subscribers', rows: 3, cols: 70 },
    existing ? existing.subscribers.map((s) => s.channel === 'email' ? s.target : s.target + (s.secret_env ? ` secret_env=${s.secret_env}` : '')).join('\n') : '');
  const problem = h('div', { id: 'alert-problem', 'aria-live': 'polite' });

  const current = () => deployed.find((a) => a.name.toLowerCase() === activity.value.toLowerCase());
  const fillAggregations = () => {
    const aggs = (current() || {}).aggregations || [];
    fill(aggregation, aggs.map((g) => h('option', { value: g.name }, g.name)));
    if (existing && existing.aggregation) aggregation.value = aggs.find((g) => g.name.toLowerCase() === existing.aggregation.toLowerCase())?.name || '';
    fillMeasures();
  };
  const fillMeasures = () => {
    const g = ((current() || {}).aggregations || []).find((x) => x.name === aggregation.value);
    const names = ['instances', ...((g && g.measures) || []).map((m) => m.name.toLowerCase())];
    fill(measure, names.map((n) => h('option', { value: n }, n)));
    if (existing && existing.measure && names.includes(existing.measure)) measure.value = existing.measure;
  };
  const aggregateOnly = [];
  const showKind = () => {
    for (const el of aggregateOnly) el.hidden = kind.value !== 'aggregate';
  };
  if (!existing) activity.addEventListener('change', fillAggregations);
  aggregation.addEventListener('change', fillMeasures);
  kind.addEventListener('change', showKind);

  const aggFields = [
    field('aggregation', 'Aggregation', aggregation),
    field('state', 'Cells', state, 'of active, completed or all instances'),
    field('measure', 'Measure', measure),
    field('threshold', 'Fires when the measure is', h('span', { class: 'row' }, side, threshold)),
  ];
  aggregateOnly.push(...aggFields);

  const form = h('form', { id: 'alert-form', class: 'stack', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const body = { severity: severity.value };
    if (where.value.trim()) body.where = where.value.trim();
    if (message.value.trim()) body.message = message.value.trim();
    if (kind.value === 'aggregate') {
      body.aggregation = aggregation.value;
      body.state = state.value;
      body.measure = measure.value;
      if (threshold.value !== '') body[side.value] = Number(threshold.value);
    }
    body.subscribers = subscribers.value.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
      const [target, ...opts] = l.split(/\s+/);
      if (!/^https?:\/\//i.test(target)) return { email: target };
      const s = { webhook: target };
      for (const o of opts) if (o.startsWith('secret_env=')) s.secret_env = o.slice('secret_env='.length);
      return s;
    });
    if (!name.value.trim()) {
      fill(problem, h('p', { class: 'error', role: 'alert' }, 'Give the alert a name.'));
      name.focus();
      return;
    }
    const path = `/v1/alerts/${seg(activity.value)}/${seg(name.value.trim())}`;
    if (!existing) {
      // Names match in any case, as the deployment matches them.
      let have = null;
      try {
        have = await api(path);
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 404) {
          fill(problem, errorBox(err));
          return;
        }
      }
      if (have) {
        fill(problem, h('p', { class: 'error', role: 'alert' }, `${have.activity} already has an alert named ${have.name}: saving would replace it. `,
          'Choose another name, or ', h('a', { href: `/alerts/${seg(have.activity)}/${seg(have.name)}` }, `open ${have.activity}.${have.name}`), ' and change it there.'));
        name.focus();
        return;
      }
    }
    try {
      // A new alert is only added: if another client added one of that
      // name since the check above, the server keeps it (412).
      await api(path, {}, { method: 'PUT', body, headers: existing ? {} : { 'If-None-Match': '*' } });
    } catch (err) {
      fill(problem, errorBox(err));
      return;
    }
    go(`/alerts/${seg(current() ? current().name : activity.value)}/${seg(name.value.trim())}`);
  } },
    h('h2', {}, existing ? 'Change this alert' : 'New alert'),
    h('p', { class: 'muted' }, 'Saving deploys the activity with the alert, as bam deploy would; bam definition export gives it back in the file.'),
    field('activity', 'Activity', activity),
    field('name', 'Name', name),
    field('kind', 'Kind', kind, 'an instance alert fires for each instance that starts matching; an aggregate alert for each cell that crosses the threshold'),
    field('where', 'Where', where, 'the filter language of the search; for an aggregate alert, the instances its cells count (optional)'),
    aggFields,
    field('severity', 'Severity', severity),
    field('message', 'Message', message, '{instance}, {Item}, {value}, {key}… are filled in for each firing'),
    field('subscribers', 'Deliver to', subscribers, 'one per line: a webhook URL (and secret_env=VARIABLE to sign it) or an email address; none: the history only'),
    problem,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', id: 'alert-save' }, existing ? 'Save the change' : 'Add the alert')));
  if (prefill && deployed.some((a) => a.name === prefill.activity)) activity.value = prefill.activity;
  fillAggregations();
  showKind();
  return form;
}
