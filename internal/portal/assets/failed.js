// The failed events page: the events the nodes quarantined, filtered
// (?source=&partition=&activity=&reason=&since=&until=, a page at a time
// with ?after=), each with its reason and, on demand, its payload, which
// can be fixed before a retry; retry and discard one, the selected, or
// every match, each bulk action after a confirmation that says how many.
import { h, fill, api, errorBox, count, time, setTitle, href } from './ui.js';
import { go } from './app.js';

const filters = ['source', 'partition', 'activity', 'reason', 'since', 'until'];
const pageSize = 50;

export async function render(main, _params, query, current) {
  setTitle('Failed events');
  const f = Object.fromEntries(filters.map((k) => [k, query.get(k) || '']));
  const after = query.get('after') || '';
  let page;
  try {
    page = await api('/v1/failed', { ...f, after, limit: pageSize });
  } catch (err) {
    if (current()) fill(main, h('h1', {}, 'Failed events'), form(f), errorBox(err));
    return;
  }
  if (!current()) return;
  new FailedPage(main, f, after, page).draw();
}

function form(f) {
  const inputs = filters.map((k) => h('input', { id: `f-${k}`, name: k, type: 'text', value: f[k], size: k === 'reason' ? 24 : 12,
    placeholder: { since: '2026-11-25T10:00:00Z', until: '2026-11-26T00:00:00Z', reason: 'text in the reason' }[k] || '' }));
  return h('form', { id: 'failed-filters', class: 'row', onsubmit: (e) => {
    e.preventDefault();
    go(href('/failed', Object.fromEntries(inputs.map((i) => [i.name, i.value.trim()]))));
  } }, inputs.map((i) => [h('label', { for: i.id }, i.name), i]), h('button', { type: 'submit', class: 'primary' }, 'Filter'));
}

class FailedPage {
  constructor(main, f, after, page) {
    this.main = main;
    this.f = f;
    this.after = after;
    this.page = page;
    this.message = h('div', { id: 'failed-message', 'aria-live': 'polite' });
    this.dialog = h('dialog', { id: 'confirm', 'aria-labelledby': 'confirm-text' });
  }

  // filterBody is the list's filters as a bulk request's JSON fields.
  filterBody() {
    const body = {};
    for (const k of filters) {
      if (!this.f[k]) continue;
      body[k] = k === 'partition' ? Number(this.f[k]) : this.f[k];
    }
    return Object.keys(body).length ? body : { all: true };
  }

  draw() {
    const p = this.page;
    const rows = p.failed || [];
    const matched = p.count === null || p.count === undefined ? `${count(rows.length)} on this page`
      : `${count(p.count)}${p.count_is_lower_bound ? '+' : ''} ${p.count === 1 ? 'failed event matches' : 'failed events match'}`;
    this.boxes = [];
    fill(this.main,
      h('h1', {}, 'Failed events'),
      form(this.f),
      this.message,
      h('p', { id: 'failed-count' }, matched),
      rows.length === 0 ? h('p', { class: 'muted' }, 'None.') : [
        h('div', { class: 'row' },
          h('button', { type: 'button', id: 'retry-selected', onclick: () => this.bulk('retry', this.selected()) }, 'Retry selected'),
          h('button', { type: 'button', id: 'discard-selected', onclick: () => this.bulk('discard', this.selected()) }, 'Discard selected'),
          h('button', { type: 'button', id: 'retry-all', onclick: () => this.bulk('retry', null) }, 'Retry all that match'),
          h('button', { type: 'button', id: 'discard-all', onclick: () => this.bulk('discard', null) }, 'Discard all that match')),
        h('div', { class: 'table-wrap' }, h('table', { id: 'failed-table' },
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, h('input', { type: 'checkbox', 'aria-label': 'Select every event of this page', onchange: (e) => { for (const b of this.boxes) b.checked = e.target.checked; } })),
            ['Id', 'Failed', 'Session', 'Activity', 'Instance', 'Reason', ''].map((x) => h('th', { scope: 'col' }, x)))),
          h('tbody', {}, rows.map((r) => this.row(r)))))],
      p.next ? h('p', {}, h('a', { id: 'failed-next', href: href('/failed', { ...this.f, after: p.next }) }, 'Next page')) : null,
      this.after ? h('p', {}, h('a', { href: href('/failed', this.f) }, 'First page')) : null,
      this.dialog);
  }

  row(r) {
    const box = h('input', { type: 'checkbox', value: r.id, 'aria-label': `Select failed event ${r.id}` });
    this.boxes.push(box);
    const detail = h('tr', { class: 'detail', hidden: true }, h('td', { colspan: 8 }));
    const tr = h('tr', { 'data-id': r.id },
      h('td', {}, box),
      h('td', {}, r.id),
      h('td', { class: 'time' }, time(r.failed_at)),
      h('td', {}, `${r.source}/${r.partition}`),
      h('td', {}, r.activity || ''),
      h('td', {}, r.instance || ''),
      h('td', { class: 'reason' }, r.reason),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'link show', onclick: () => this.show(r, detail) }, 'Show'),
        h('button', { type: 'button', class: 'link retry', onclick: () => this.retry(r.id, null) }, 'Retry'),
        h('button', { type: 'button', class: 'link discard', onclick: () => this.bulk('discard', [r.id]) }, 'Discard')));
    return [tr, detail];
  }

  selected() {
    return this.boxes.filter((b) => b.checked).map((b) => Number(b.value));
  }

  // show reads the event's payload into a box where it can be fixed
  // before a retry.
  async show(r, detail) {
    if (!detail.hidden) { detail.hidden = true; return; }
    let ev;
    try {
      ev = await api(`/v1/failed/${r.id}`);
    } catch (err) {
      fill(detail.firstChild, errorBox(err));
      detail.hidden = false;
      return;
    }
    const text = h('textarea', { class: 'payload', rows: 4, spellcheck: 'false', 'aria-label': `Payload of failed event ${r.id}` });
    text.value = ev.payload !== undefined && ev.payload !== null ? ev.payload : '';
    fill(detail.firstChild,
      h('p', {}, h('strong', {}, 'Reason: '), ev.reason),
      ev.payload_base64 ? h('p', { class: 'muted' }, 'Not UTF-8: base64 ', h('code', {}, ev.payload_base64)) : [
        h('label', {}, 'Payload (edit it to retry a fixed event)'), text,
        h('div', { class: 'row' }, h('button', { type: 'button', class: 'primary retry-fixed', onclick: () => this.retry(r.id, text.value) }, 'Retry with this payload'))]);
    detail.hidden = false;
  }

  async retry(id, payload) {
    try {
      await api(`/v1/failed/${id}/retry`, {}, { method: 'POST', body: payload === null ? undefined : { payload } });
    } catch (err) {
      fill(this.message, errorBox(err));
      return;
    }
    this.done(`Failed event ${id} was applied and removed.`);
  }

  // bulk retries or discards ids (null: every event the filters match),
  // after a confirmation.
  async bulk(action, ids) {
    if (ids && ids.length === 0) {
      fill(this.message, h('p', { class: 'error', role: 'alert' }, 'Select events first.'));
      return;
    }
    const what = ids ? `${ids.length} selected event${ids.length === 1 ? '' : 's'}`
      : `every failed event that matches${this.page.count !== null && this.page.count !== undefined ? ` (${count(this.page.count)}${this.page.count_is_lower_bound ? '+' : ''})` : ''}`;
    if (!(await this.confirm(`${action === 'retry' ? 'Retry' : 'Discard'} ${what}?${action === 'discard' ? ' Discarded events are gone for good.' : ''}`, action))) return;
    let res;
    try {
      res = await api(`/v1/failed:${action}`, {}, { method: 'POST', body: ids ? { ids } : this.filterBody() });
    } catch (err) {
      fill(this.message, errorBox(err));
      return;
    }
    const n = action === 'retry' ? res.retried : res.discarded;
    const parts = [`${action === 'retry' ? 'Retried' : 'Discarded'} ${count(n || 0)} of ${count(res.matched)}.`];
    if (res.refused && res.refused.length) parts.push(` Refused ${res.refused.length}: ${res.refused.map((x) => `${x.id} (${x.reason})`).join('; ')}.`);
    if (res.gone) parts.push(` ${res.gone} no longer failed.`);
    if (res.more) parts.push(' More match: do it again for the next ones.');
    this.done(parts.join(''));
  }

  // confirm asks in a modal dialog; true when the person confirmed.
  confirm(text, action) {
    return new Promise((resolve) => {
      const finish = (ok) => { this.dialog.close(); resolve(ok); };
      fill(this.dialog,
        h('p', { id: 'confirm-text' }, text),
        h('div', { class: 'row' },
          h('button', { type: 'button', class: 'primary', id: 'confirm-yes', onclick: () => finish(true) }, action === 'retry' ? 'Retry' : 'Discard'),
          h('button', { type: 'button', id: 'confirm-no', onclick: () => finish(false) }, 'Cancel')));
      this.dialog.addEventListener('cancel', () => resolve(false), { once: true });
      this.dialog.showModal();
      this.dialog.querySelector('#confirm-no').focus();
    });
  }

  // done reloads the list (same URL) and says what happened.
  async done(message) {
    let page;
    try {
      page = await api('/v1/failed', { ...this.f, after: this.after, limit: pageSize });
    } catch (err) {
      fill(this.message, errorBox(err));
      return;
    }
    this.page = page;
    this.draw();
    fill(this.message, h('p', { class: 'ok', role: 'status' }, message));
  }
}
