// The search page: a query builder (groups of conditions, AND or OR, each
// maybe negated) that writes bam's filter language, the filter as text,
// an order, the columns, and a page of the matching instances. Its state
// is the URL: ?where=&order=&columns=&state=&cursor= (doc.go). The builder
// reads a filter back through GET /v1/activities/{a}/filter, which parses
// and checks it in Go and answers it as a tree with the activity's fields
// and the operators each takes: when the page opens, and as the filter's
// text is typed, so that the builder and the text stay the same filter
// (a text the builder cannot show leaves the builder inert, and says why).
import { h, fill, api, errorBox, count, time, setTitle, href, seg, ApiError } from './ui.js';
import { go } from './app.js';

const pageSize = 50;
const exportLimit = 100000;
const savedKey = 'bam.savedSearches';

// The words a field may not be written as bare (package search, keywords).
const keywords = new Set(['and', 'or', 'not', 'in', 'between', 'contains', 'starts', 'with', 'is', 'empty', 'last', 'true', 'false', 'asc', 'desc']);

export async function render(main, [activity], query, current) {
  setTitle(`Search ${activity}`);
  const url = {
    where: query.get('where') || '',
    order: query.get('order') || '',
    columns: query.get('columns') || '',
    state: query.get('state') || 'all',
    cursor: query.get('cursor') || '',
  };
  const base = `/v1/activities/${seg(activity)}`;
  // The filter and the order, checked; on a 400 the fields alone, so that
  // the page still offers the builder beside the error.
  let checked, urlError = null;
  try {
    checked = await api(`${base}/filter`, { where: url.where, order: url.order });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400) {
      if (current()) main.replaceChildren(h('h1', {}, `Search ${activity}`), errorBox(err));
      return;
    }
    urlError = err;
    try {
      checked = await api(`${base}/filter`);
      checked.where = url.where;
      checked.order = url.order;
      checked.tree = null;
    } catch (err2) {
      if (current()) main.replaceChildren(h('h1', {}, `Search ${activity}`), errorBox(err2));
      return;
    }
  }
  if (!current()) return;
  const page = new SearchPage(main, checked, url, urlError);
  page.draw();
  if (!urlError) await page.run(current);
}

class SearchPage {
  constructor(main, checked, url, urlError) {
    this.main = main;
    this.activity = checked.activity;
    this.fields = checked.fields;
    this.byName = new Map(this.fields.map((f) => [f.name.toLowerCase(), f]));
    this.items = this.fields.filter((f) => f.item);
    this.url = url;
    this.urlError = urlError;
    this.where = checked.where;
    this.order = checked.order;
    this.builderNote = null;
    this.root = fromTree(checked.tree);
    if (!this.root) {
      // A filter the builder cannot show as groups (a NOT of a NOT): its
      // text is still the filter, and searches as written.
      this.builderNote = 'This filter has a form the builder cannot show; edit it as text.';
      this.root = group('AND');
    }
    const chosen = url.columns ? url.columns.split(',').map((c) => c.trim().toLowerCase()) : null;
    this.columns = this.items.filter((f) => !chosen || chosen.includes(f.name.toLowerCase())).map((f) => f.name);
  }

  field(name) {
    return this.byName.get(String(name).toLowerCase());
  }

  // draw renders the form; the results go into this.results.
  draw() {
    this.text = h('textarea', { id: 'filter-text', rows: 2, spellcheck: 'false', 'aria-describedby': 'filter-help', oninput: () => this.typed() }, this.where);
    this.text.value = this.where;
    this.problem = h('div', { id: 'filter-problem', 'aria-live': 'polite' }, this.urlError ? errorBox(this.urlError) : null);
    this.builder = h('div', { id: 'builder' });
    this.note = h('p', { id: 'builder-note', class: 'muted', 'aria-live': 'polite' });
    if (this.builderNote) this.outOfStep(this.builderNote);
    this.results = h('section', { id: 'results', 'aria-label': 'Results' });
    const orderInput = h('input', { id: 'order-text', type: 'text', size: 40, value: this.order, placeholder: 'instance_id', spellcheck: 'false' });
    this.orderInput = orderInput;
    // A state the URL names that is none of them (?state=bogus) shows as
    // it is, so that the selector does not claim "all" beside the
    // search's refusal.
    const states = ['all', 'active', 'completed', 'pending'];
    const stateSelect = h('select', { id: 'state' },
      states.map((s) => h('option', { value: s, selected: s === this.url.state }, s)),
      states.includes(this.url.state) ? null : h('option', { value: this.url.state, selected: true }, `${this.url.state} (no such state)`));
    this.stateSelect = stateSelect;
    const columnBoxes = this.items.map((f) => h('label', {},
      h('input', { type: 'checkbox', name: 'column', value: f.name, checked: this.columns.includes(f.name) }), ' ', f.name));
    this.columnBoxes = columnBoxes;
    this.drawBuilder();
    const form = h('form', { id: 'search-form', onsubmit: (e) => { e.preventDefault(); this.submit(); } },
      h('div', { class: 'panel' },
        h('h2', { id: 'builder-title' }, 'Conditions'),
        this.note,
        this.builder,
        h('label', { for: 'filter-text' }, h('strong', {}, 'Filter')),
        this.text,
        h('p', { id: 'filter-help', class: 'muted' },
          'The builder writes this text and reads it back; edit either. ',
          'The language is that of bam instance list --where: ', h('code', {}, "Customer = 'Contoso' AND (Amount > 1000 OR Rush = true)"), '.'),
        this.problem,
        h('div', { class: 'row' },
          h('label', { for: 'order-text' }, 'Order'), orderInput,
          h('label', { for: 'state' }, 'Instances'), stateSelect),
        h('details', {}, h('summary', {}, 'Columns'), h('div', { class: 'chips', role: 'group', 'aria-label': 'Columns' }, columnBoxes)),
        h('div', { class: 'row' },
          h('button', { type: 'submit', class: 'primary', id: 'search' }, 'Search'),
          h('button', { type: 'button', id: 'export', onclick: () => this.exportCSV() }, 'Export CSV'),
          h('button', { type: 'button', id: 'alert-from-search', onclick: () => this.alertOnSearch() }, 'Alert on this search'),
          this.saveControls()),
        this.savedList()));
    this.main.replaceChildren(h('h1', {}, 'Search ', h('span', {}, this.activity)), form, this.results);
  }

  // alertOnSearch opens the alert form with this search's filter (its
  // state too): an instance alert fires for each instance that comes to
  // match it.
  alertOnSearch() {
    let where = this.text.value.trim();
    const state = this.stateSelect.value;
    if (state !== 'all') where = where ? `state = '${state}' AND (${where})` : `state = '${state}'`;
    go(href('/alerts', { new: '1', activity: this.activity, where }));
  }

  // drawBuilder renders the conditions from this.root. The control that
  // had the focus has it again after (by its data-key): choosing a field
  // by keyboard redraws its condition, and must not send the focus away.
  drawBuilder() {
    const had = document.activeElement && this.builder.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    this.builder.replaceChildren(this.groupView(this.root, null, 'the filter'));
    if (had) {
      const again = this.builder.querySelector(`[data-key="${had}"]`);
      if (again) again.focus();
    }
  }

  // typed reads the filter's text back into the builder, a quarter of a
  // second after the last key. Until then the builder is inert: a change
  // made in it would write its older filter over the text typed.
  typed() {
    clearTimeout(this.typing);
    this.builder.inert = true;
    this.typing = setTimeout(() => this.readBack(), 250);
  }

  // readBack parses the text through the API and shows it in the builder,
  // or, when it cannot, keeps the text as typed and says why.
  async readBack() {
    const where = this.text.value;
    const n = this.reads = (this.reads || 0) + 1;
    let checked;
    try {
      checked = await api(`/v1/activities/${seg(this.activity)}/filter`, { where });
    } catch (err) {
      if (n === this.reads && this.text.value === where) {
        this.outOfStep(err instanceof ApiError && err.status === 400
          ? `The builder shows this filter once it reads: ${err.message}`
          : `The builder cannot read the filter back: ${err.message}`);
      }
      return;
    }
    if (n !== this.reads || this.text.value !== where) return; // typed on since
    const root = fromTree(checked.tree);
    if (!root) {
      this.outOfStep('This filter has a form the builder cannot show; edit it as text.');
      return;
    }
    this.root = root;
    this.builder.inert = false;
    this.builder.classList.remove('stale');
    fill(this.note);
    this.drawBuilder();
  }

  // outOfStep leaves the builder inert, dimmed, under a note that says why
  // it does not show the text's filter.
  outOfStep(why) {
    this.builder.inert = true;
    this.builder.classList.add('stale');
    fill(this.note, why);
  }

  // changed writes the filter from the builder into the text.
  changed() {
    this.text.value = writeGroup(this.root, this, true);
    this.problem.replaceChildren();
  }

  groupView(g, parent, label) {
    const ops = h('select', { 'aria-label': `How the conditions of ${label} combine`, class: 'group-op', onchange: (e) => { g.op = e.target.value; this.changed(); } },
      h('option', { value: 'AND', selected: g.op === 'AND' }, 'all of'),
      h('option', { value: 'OR', selected: g.op === 'OR' }, 'any of'));
    const negate = h('label', {}, h('input', { type: 'checkbox', class: 'group-not', checked: g.not, onchange: (e) => { g.not = e.target.checked; this.changed(); } }), ' not');
    const terms = h('div', {}, g.terms.map((t, i) => t.kind === 'group'
      ? this.groupView(t, g, `group ${i + 1} of ${label}`)
      : this.condView(t, g, i)));
    return h('div', { class: 'group', role: 'group', 'aria-label': label },
      h('div', { class: 'row' }, negate, ops, h('span', { class: 'muted' }, 'these conditions:'),
        parent ? h('button', { type: 'button', class: 'link', onclick: () => { remove(parent, g); this.drawBuilder(); this.changed(); } }, 'remove group') : null),
      terms,
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'add-condition', onclick: () => { g.terms.push(cond(this.items[0] || this.fields[0])); this.drawBuilder(); this.changed(); focusLast(this.builder, 'select.field'); } }, '+ condition'),
        h('button', { type: 'button', class: 'add-group', onclick: () => { g.terms.push(group(g.op === 'AND' ? 'OR' : 'AND', [cond(this.items[0] || this.fields[0])])); this.drawBuilder(); this.changed(); } }, '+ group')));
  }

  condView(c, parent, i) {
    const f = this.field(c.field);
    const n = i + 1;
    const fieldSelect = h('select', { class: 'field', 'data-key': `${c.id}:field`, 'aria-label': `Field of condition ${n}`, onchange: (e) => {
      const nf = this.field(e.target.value);
      c.field = nf.name;
      if (!nf.operators.includes(c.op)) c.op = nf.operators[0];
      c.values = fitValues(c.op, c.values);
      this.drawBuilder(); this.changed();
    } }, this.fields.map((x) => h('option', { value: x.name, selected: f && x.name === f.name }, x.item ? x.name : `${x.name} (built in)`)));
    const opSelect = h('select', { class: 'op', 'data-key': `${c.id}:op`, 'aria-label': `Operator of condition ${n}`, onchange: (e) => {
      c.op = e.target.value;
      c.values = fitValues(c.op, c.values);
      this.drawBuilder(); this.changed();
    } }, (f ? f.operators : [c.op]).map((o) => h('option', { value: o, selected: o === c.op }, o.toLowerCase())));
    const negate = h('label', {}, h('input', { type: 'checkbox', class: 'cond-not', checked: c.not, 'aria-label': `Not condition ${n}`, onchange: (e) => { c.not = e.target.checked; this.changed(); } }), ' not');
    return h('div', { class: 'cond' }, negate, fieldSelect, opSelect, this.valueInputs(c, f, n),
      h('button', { type: 'button', class: 'link', 'aria-label': `Remove condition ${n}`, onclick: () => { remove(parent, c); this.drawBuilder(); this.changed(); } }, 'remove'));
  }

  valueInputs(c, f, n) {
    const type = f ? f.type : 'text';
    const input = (j, label) => {
      const set = (e) => { c.values[j] = e.target.value; this.changed(); };
      const key = `${c.id}:value${j}`;
      if (type === 'boolean') {
        if (!c.values[j]) c.values[j] = 'true';
        return h('select', { class: 'value', 'data-key': key, 'aria-label': label, onchange: set },
          h('option', { value: 'true', selected: c.values[j] === 'true' }, 'true'),
          h('option', { value: 'false', selected: c.values[j] === 'false' }, 'false'));
      }
      if (type === 'state') {
        if (!c.values[j]) c.values[j] = 'active';
        return h('select', { class: 'value', 'data-key': key, 'aria-label': label, onchange: set },
          ['pending', 'active', 'completed'].map((s) => h('option', { value: s, selected: c.values[j] === s }, s)));
      }
      const attrs = { class: 'value', type: 'text', 'data-key': key, 'aria-label': label, value: c.values[j] || '', oninput: set, spellcheck: 'false' };
      if (c.op === 'IN LAST') Object.assign(attrs, { placeholder: '2h', size: 6 });
      else if (type === 'time') Object.assign(attrs, { placeholder: '2026-11-25 or 2026-11-25T10:00:00Z', size: 24 });
      else if (['integer', 'float', 'decimal'].includes(type)) Object.assign(attrs, { inputmode: 'decimal', size: 10 });
      return h('input', attrs);
    };
    switch (c.op) {
      case 'IS EMPTY': case 'IS NOT EMPTY':
        return null;
      case 'BETWEEN':
        return [input(0, `From, condition ${n}`), h('span', {}, 'and'), input(1, `To, condition ${n}`)];
      case 'IN': case 'NOT IN':
        return [c.values.map((_, j) => input(j, `Value ${j + 1} of condition ${n}`)),
          h('button', { type: 'button', class: 'link', onclick: () => { c.values.push(''); this.drawBuilder(); this.changed(); } }, '+ value')];
      default:
        return input(0, `Value of condition ${n}`);
    }
  }

  // submit checks the text's filter and the order, then moves to their URL.
  async submit() {
    const where = this.text.value.trim();
    const order = this.orderInput.value.trim();
    let checked;
    try {
      checked = await api(`/v1/activities/${seg(this.activity)}/filter`, { where, order });
    } catch (err) {
      this.problem.replaceChildren(errorBox(err));
      this.text.focus();
      return;
    }
    const cols = this.columnBoxes.map((l) => l.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
    if (cols.length === 0 && this.items.length > 0) {
      // No columns is no value of columns= (empty means every item).
      this.problem.replaceChildren(h('p', { class: 'error', role: 'alert' }, 'Tick at least one column (the instance, its state and times are always shown).'));
      this.main.querySelector('details').open = true;
      this.columnBoxes[0].querySelector('input').focus();
      return;
    }
    go(href(location.pathname, {
      where: checked.where,
      order: checked.order,
      columns: cols.length === this.items.length ? '' : cols.join(','),
      state: this.stateSelect.value === 'all' ? '' : this.stateSelect.value,
    }));
  }

  params(extra = {}) {
    return {
      where: this.url.where, order: this.url.order, columns: this.url.columns,
      state: this.url.state === 'all' ? '' : this.url.state, ...extra,
    };
  }

  // run searches the URL's query and shows a page of it.
  // The results say what they show (data-query, the URL's query) and
  // whether they are there yet (data-state, aria-busy): for people using a
  // screen reader, and for the browser tests.
  async run(current) {
    const r = this.results;
    r.dataset.query = location.search;
    r.dataset.state = 'loading';
    r.setAttribute('aria-busy', 'true');
    r.replaceChildren(h('p', { class: 'muted' }, 'Searching…'));
    let page;
    try {
      page = await api(`/v1/activities/${seg(this.activity)}/search`, this.params({ cursor: this.url.cursor, limit: pageSize, columns: this.columns.join(',') }));
    } catch (err) {
      if (current()) {
        r.replaceChildren(errorBox(err));
        r.dataset.state = 'error';
        r.setAttribute('aria-busy', 'false');
      }
      return;
    }
    if (!current()) return;
    const here = location.pathname;
    // The rows first; the count (bounded, but it may read every instance
    // a filter without an index matches) comes after, in its own request.
    const counted = h('span', { class: 'muted' }, 'Counting the matches…');
    this.results.replaceChildren(
      h('p', { id: 'result-count' }, counted, this.url.cursor ? ' (a later page)' : ''),
      page.rows.length === 0 ? h('p', { class: 'muted' }, 'No instance on this page.') : h('div', { class: 'table-wrap' }, this.table(page.rows)),
      h('div', { class: 'row' },
        this.url.cursor ? h('a', { href: href(here, this.params()), id: 'first-page' }, 'First page') : null,
        page.next ? h('a', { href: href(here, this.params({ cursor: page.next })), id: 'next-page' }, 'Next page') : null));
    r.dataset.state = 'done';
    r.setAttribute('aria-busy', 'false');
    let c;
    try {
      c = await api(`/v1/activities/${seg(this.activity)}/search`, this.params({ limit: 1, count: 'true', columns: this.columns[0] || '' }));
    } catch (err) {
      if (current()) counted.replaceWith(errorBox(err));
      return;
    }
    if (!current()) return;
    counted.className = '';
    counted.textContent = c.count_is_lower_bound ? `At least ${count(c.count)} instances match` : `${count(c.count)} ${c.count === 1 ? 'instance matches' : 'instances match'}`;
    r.dataset.counted = 'true';
  }

  table(rows) {
    const sortable = (name, label) => {
      const [key, dir] = (this.url.order.split(',')[0] || '').trim().split(/\s+/);
      const on = key && key.toLowerCase() === name.toLowerCase();
      const desc = on && (dir || '').toUpperCase() === 'DESC';
      const next = on && !desc ? `${quoteField(name)} DESC` : quoteField(name);
      return h('th', { scope: 'col', 'aria-sort': on ? (desc ? 'descending' : 'ascending') : null },
        h('a', { href: href(location.pathname, this.params({ order: next })), title: `Order by ${name}` }, label, on ? (desc ? ' ▼' : ' ▲') : ''));
    };
    return h('table', { id: 'result-table' },
      h('thead', {}, h('tr', {},
        sortable('instance_id', 'Instance'), sortable('state', 'State'), sortable('begin_time', 'Begin'), sortable('end_time', 'End'),
        this.columns.map((c) => sortable(c, c)))),
      h('tbody', {}, rows.map((r) => h('tr', { 'data-instance': r.instance_id },
        h('td', {}, h('a', { href: href(`/activities/${seg(this.activity)}/instances/${seg(r.instance_id)}`) }, r.instance_id)),
        h('td', { class: `state-${r.state}` }, r.state),
        h('td', { class: 'time', title: r.begin_time || '' }, time(r.begin_time)),
        h('td', { class: 'time', title: r.end_time || '' }, time(r.end_time)),
        this.columns.map((c) => cell(r.items[c], this.field(c)))))));
  }

  // exportCSV downloads every match (up to exportLimit) as CSV, a page of
  // 1000 at a time.
  async exportCSV() {
    const btn = this.main.querySelector('#export');
    btn.disabled = true;
    const cols = this.columns;
    const lines = [csvLine(['instance_id', 'state', 'begin_time', 'end_time', 'last_modified', 'events', ...cols])];
    let cursor = '', n = 0;
    try {
      do {
        const page = await api(`/v1/activities/${seg(this.activity)}/search`, this.params({ cursor, limit: 1000, columns: cols.join(',') }));
        for (const r of page.rows) {
          lines.push(csvLine([r.instance_id, r.state, r.begin_time, r.end_time, r.last_modified, r.events, ...cols.map((c) => r.items[c])]));
        }
        n += page.rows.length;
        cursor = page.next || '';
        btn.textContent = `Exporting… ${count(n)}`;
      } while (cursor && n < exportLimit);
    } catch (err) {
      this.results.prepend(errorBox(err));
      btn.disabled = false;
      btn.textContent = 'Export CSV';
      return;
    }
    const a = h('a', { href: URL.createObjectURL(new Blob([lines.join('\r\n') + '\r\n'], { type: 'text/csv' })), download: `${this.activity}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    btn.disabled = false;
    btn.textContent = cursor ? `Export CSV (the first ${count(n)} went)` : 'Export CSV';
  }

  // Saved searches live in this browser (localStorage), as URLs.
  saveControls() {
    const name = h('input', { type: 'text', id: 'save-name', placeholder: 'name', size: 16, 'aria-label': 'Name of the saved search' });
    return [name, h('button', { type: 'button', id: 'save', onclick: () => {
      const n = name.value.trim();
      if (!n) { name.focus(); return; }
      const saved = readSaved().filter((s) => !(s.activity === this.activity && s.name === n));
      saved.push({ activity: this.activity, name: n, url: location.pathname + location.search });
      localStorage.setItem(savedKey, JSON.stringify(saved));
      this.draw();
      this.run(() => true);
    } }, 'Save search')];
  }

  savedList() {
    const mine = readSaved().filter((s) => s.activity === this.activity);
    if (mine.length === 0) return null;
    return h('nav', { 'aria-label': 'Saved searches', id: 'saved' }, h('span', { class: 'muted' }, 'Saved: '),
      mine.map((s) => h('span', {}, h('a', { href: s.url }, s.name),
        h('button', { type: 'button', class: 'link', 'aria-label': `Forget saved search ${s.name}`, onclick: () => {
          localStorage.setItem(savedKey, JSON.stringify(readSaved().filter((x) => !(x.activity === s.activity && x.name === s.name))));
          this.draw();
          this.run(() => true);
        } }, '×'), ' ')));
  }
}

function readSaved() {
  try { return JSON.parse(localStorage.getItem(savedKey) || '[]'); } catch { return []; }
}

// Each condition has an id of its own, which keys its controls.
let nextID = 1;
function group(op, terms = []) { return { kind: 'group', op, not: false, terms }; }
function cond(f) { return { kind: 'cond', id: nextID++, not: false, field: f ? f.name : '', op: f ? f.operators[0] : '=', values: [''] }; }
function remove(parent, t) { parent.terms.splice(parent.terms.indexOf(t), 1); }
function focusLast(root, sel) { const all = root.querySelectorAll(sel); if (all.length) all[all.length - 1].focus(); }

// fitValues keeps the values an operator takes: none, two, or one or more.
function fitValues(op, values) {
  switch (op) {
    case 'IS EMPTY': case 'IS NOT EMPTY': return [];
    case 'BETWEEN': return [values[0] || '', values[1] || ''];
    case 'IN': case 'NOT IN': return values.length ? values : [''];
    default: return [values[0] || ''];
  }
}

// fromTree turns the API's tree into the builder's groups; null when it
// has a form the builder cannot show (a NOT of a NOT).
function fromTree(t) {
  if (!t) return group('AND');
  const node = convert(t);
  if (!node) return null;
  return node.kind === 'group' ? node : group('AND', [node]);
}

function convert(t, negated = false) {
  if (t.not) {
    if (negated) return null;
    const x = convert(t.not, true);
    if (x) x.not = true;
    return x;
  }
  if (t.and || t.or) {
    const terms = (t.and || t.or).map((x) => convert(x));
    if (terms.includes(null)) return null;
    return group(t.and ? 'AND' : 'OR', terms);
  }
  return { kind: 'cond', id: nextID++, not: false, field: t.field, op: t.op, values: (t.values || []).map((v) => v.text) };
}

// writeGroup writes a group in the filter language; top: no parentheses.
function writeGroup(g, page, top = false) {
  const parts = g.terms.map((t) => t.kind === 'group' ? writeGroup(t, page) : writeCond(t, page)).filter((s) => s);
  if (parts.length === 0) return '';
  let s = parts.join(` ${g.op} `);
  if (g.not) return `NOT (${s})`;
  if (!top && parts.length > 1) s = `(${s})`;
  return s;
}

function writeCond(c, page) {
  if (!c.field) return '';
  const f = page.field(c.field);
  const type = f ? f.type : 'text';
  const v = (x) => value(type, c.op, x);
  let s = `${quoteField(c.field)} `;
  switch (c.op) {
    case 'IS EMPTY': case 'IS NOT EMPTY': s += c.op; break;
    case 'BETWEEN': s += `BETWEEN ${v(c.values[0])} AND ${v(c.values[1])}`; break;
    case 'IN': case 'NOT IN': s += `${c.op} (${c.values.map(v).join(', ')})`; break;
    case 'IN LAST': s += `IN LAST ${(c.values[0] || '').trim()}`; break;
    default: s += `${c.op} ${v(c.values[0])}`;
  }
  return c.not ? `NOT ${s}` : s;
}

// value writes a value as the filter language reads it for a field type:
// numbers and booleans bare, the rest quoted ('' is a quote).
function value(type, op, text = '') {
  if (['integer', 'float', 'decimal'].includes(type)) return text.trim();
  if (type === 'boolean') return text.toLowerCase();
  return `'${text.replaceAll("'", "''")}'`;
}

function quoteField(name) {
  return keywords.has(name.toLowerCase()) ? `"${name}"` : name;
}

function cell(v, f) {
  if (v === null || v === undefined) return h('td', { class: 'muted' }, '');
  const numeric = f && ['integer', 'float', 'decimal'].includes(f.type);
  if (f && f.type === 'time') return h('td', { class: 'time', title: v }, time(v));
  return h('td', { class: numeric ? 'num' : null }, typeof v === 'object' ? JSON.stringify(v) : String(v));
}

function csvLine(values) {
  return values.map((v) => {
    if (v === null || v === undefined) return '';
    const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  }).join(',');
}
