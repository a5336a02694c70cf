// The portal's router: it renders the page of the URL into <main>, and
// turns clicks on the portal's own links into history entries, so that
// every page's state is its URL (doc.go, "Pages and URLs").
import * as activities from './activities.js';
import * as search from './search.js';
import * as instance from './instance.js';
import * as aggregation from './aggregation.js';
import * as pool from './pool.js';
import * as failed from './failed.js';
import * as alerts from './alerts.js';
import { h, setTitle } from './ui.js';

const routes = [
  { path: /^\/$/, page: activities },
  { path: /^\/pool$/, page: pool },
  { path: /^\/failed$/, page: failed },
  { path: /^\/alerts$/, page: alerts },
  { path: /^\/alerts\/([^/]+)\/([^/]+)$/, page: { render: alerts.renderOne } },
  { path: /^\/activities\/([^/]+)\/search$/, page: search },
  { path: /^\/activities\/([^/]+)\/instances\/([^/]+)$/, page: instance },
  { path: /^\/activities\/([^/]+)\/aggregations\/([^/]+)$/, page: aggregation },
];

let rendering = 0;

// route renders the page of the current URL. A render that a newer one
// overtook (the user navigated while it loaded) drops its result.
async function route() {
  const main = document.getElementById('main');
  const n = ++rendering;
  const current = () => n === rendering;
  for (const a of document.querySelectorAll('.top nav a')) {
    if (new URL(a.href).pathname === location.pathname) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const r of routes) {
    const m = location.pathname.match(r.path);
    if (!m) continue;
    let params;
    try {
      params = m.slice(1).map(decodeURIComponent);
    } catch {
      break; // a segment that is no UTF-8 when decoded (%E0): no page has it
    }
    await r.page.render(main, params, new URLSearchParams(location.search), current);
    return;
  }
  setTitle('No such page');
  main.replaceChildren(h('h1', {}, 'No such page'),
    h('p', {}, `The portal has no page at ${location.pathname}. `, h('a', { href: '/' }, 'The activities'), ' list what it has.'));
}

// go moves to a portal URL, as a link would.
export function go(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  route();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download') || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/v1/') || url.pathname.startsWith('/assets/')) return;
  e.preventDefault();
  go(url.pathname + url.search + url.hash);
  document.getElementById('main').focus();
});
window.addEventListener('popstate', route);
route();
