// Helpers shared by the pages: building elements, calling the API, and
// formatting values.

// h builds an element: attrs are attributes, except on* (listeners),
// class, and boolean values (present or absent); children are nodes or
// text (null and false are skipped).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

// svg builds an SVG element: attrs are attributes, children nodes or text.
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// fill replaces el's children with children, as h takes them (arrays
// flattened, null and false skipped).
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// ApiError is an answer of the API other than 2xx: its status and the
// message of its JSON error body.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// api GETs (or, with a method, sends) path with the query params (empty
// values left out) and returns the JSON body. With a timeout (in
// milliseconds), a request that has no whole answer by then is abandoned
// and throws an ApiError of status 0, as one the node refused: a node
// that hangs (SIGSTOP, a stalled store) would otherwise keep the page
// waiting for good.
export async function api(path, params = {}, { method = 'GET', body, timeout = 0, headers = {} } = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const url = path + (q.toString() ? '?' + q : '');
  const signal = timeout > 0 ? AbortSignal.timeout(timeout) : undefined;
  let res, text;
  try {
    res = await fetch(url, { method, signal, headers: body ? { 'Content-Type': 'application/json', ...headers } : headers, body: body ? JSON.stringify(body) : undefined });
    text = await res.text();
  } catch (e) {
    if (e.name === 'TimeoutError') throw new ApiError(0, `the bam node did not answer within ${timeout / 1000} s: is it paused or overloaded?`);
    throw new ApiError(0, `the bam node does not answer (${e.message}): is it still running?`);
  }
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: said below */ }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || `${res.status} ${res.statusText}`);
  if (data === null) throw new ApiError(res.status, `the answer to ${url} is not JSON`);
  return data;
}

// errorBox shows an error where a page's content would be.
export function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err instanceof ApiError ? err.message : `Error: ${err.message || err}`);
}

// count writes a number with thousands separators.
export function count(n) {
  return n === null || n === undefined ? '' : Number(n).toLocaleString('en-US');
}

// time writes an RFC 3339 time as the API gives it, in UTC, to the second
// (the title keeps the full value).
export function time(s) {
  if (!s) return '';
  return s.replace('T', ' ').replace(/(\.\d+)?Z$/, 'Z');
}

// setTitle sets the document's title and the heading of main.
export function setTitle(text) {
  document.title = text ? `${text} · bam` : 'bam';
}

// link builds an <a> to a portal path with query params.
export function href(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  return path + (q.toString() ? '?' + q : '');
}

// seg encodes a path segment.
export const seg = encodeURIComponent;
