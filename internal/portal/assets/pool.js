// The pool page: the seed's figure, live. Sources on the left with their
// partitions (the sessions), nodes on the right, a line from each session
// to the node that owns it; below, every session's owner, epoch, lease,
// backlog and last error, and the nodes that left. It reads GET /v1/nodes
// and GET /v1/sessions once a second while the page is shown (two
// requests, whose counts are bounded; less often when they take long:
// pause), so a node that joins, dies or stops changes the picture within
// a second or two. A read that has no answer within timeout is given up,
// and the page says since when the node has not answered.
import { h, fill, api, count, time, setTitle, svg } from './ui.js';

const every = 1000;
const longest = 5000;
const timeout = 5000;

// The next refresh waits a second, or four times what the last one took
// if that is longer: a pool of thousands of sessions, whose backlogs take
// the store longer to count, is asked less often, so that an open page
// never keeps the store busy more than a fifth of the time. It never
// waits more than longest: a read that took long because the node hung
// (SIGSTOP, a stalled store) says nothing of how long the next will take,
// and the page must see the node back soon after it answers again.
function pause(took) {
  return Math.min(longest, Math.max(every, 4 * took));
}

export async function render(main, _params, _query, current) {
  setTitle('Pool');
  const view = new PoolView(main);
  let took = await view.refresh(current);
  const tick = async () => {
    if (!current() || !document.body.contains(main)) return;
    if (document.visibilityState === 'visible') took = await view.refresh(current);
    if (current()) setTimeout(tick, pause(took));
  };
  setTimeout(tick, pause(took));
}

class PoolView {
  constructor(main) {
    this.main = main;
    this.figure = h('div', { id: 'pool-figure' });
    this.sessions = h('div', { id: 'pool-sessions' });
    this.gone = h('div', { id: 'pool-gone' });
    this.status = h('p', { class: 'muted', id: 'pool-status', 'aria-live': 'polite' });
    fill(main, h('h1', {}, 'Pool'), this.status, this.figure, h('h2', {}, 'Sessions'), this.sessions, h('h2', {}, 'Nodes that left'), this.gone);
  }

  // refresh reads and draws the pool; it returns how long the reads took,
  // in milliseconds.
  async refresh(current) {
    let nodes, sessions;
    const start = performance.now();
    try {
      [nodes, sessions] = await Promise.all([api('/v1/nodes', {}, { timeout }), api('/v1/sessions', {}, { timeout })]);
    } catch (err) {
      // The picture stays as the last answer drew it, dimmed, under a
      // line that says since when nothing came, while reads fail.
      if (current()) {
        this.figure.classList.add('stale');
        fill(this.status, h('strong', { id: 'pool-no-answer', class: 'error-text', role: 'alert' },
          this.answered ? `No answer since ${this.answered}` : 'No answer yet', `: ${err.message}. `),
        this.answered ? 'The picture below is as it was then.' : '');
      }
      return performance.now() - start;
    }
    const took = performance.now() - start;
    if (!current()) return took;
    this.answered = `${new Date().toISOString().slice(11, 19)}Z`;
    this.figure.classList.remove('stale');
    // The rate of applied events, from the sessions' counters at two
    // refreshes: what the pool does now, for no cost to the store.
    const applied = (sessions.sessions || []).reduce((n, s) => n + (s.applied || 0) + (s.failed_total || 0), 0);
    const now = performance.now();
    let rate = '';
    if (this.last && now > this.last.at && applied >= this.last.applied) {
      rate = ` Applying ${count(Math.round((applied - this.last.applied) / ((now - this.last.at) / 1000)))} events/s.`;
    }
    this.last = { at: now, applied };
    const next = pause(took) / 1000;
    const paused = (sessions.sessions || []).find((s) => s.pool_paused);
    fill(this.status, paused ? h('strong', { id: 'pool-paused', class: 'error-text' }, 'The pool is paused (bam pause',
      paused.pool_paused_at ? ` since ${time(paused.pool_paused_at)}` : '', paused.pool_paused_by ? ` by ${paused.pool_paused_by}` : '',
      '): no session is applied; writers keep writing; bam resume applies them. ') : '',
      h('span', { id: 'pool-rate' }, rate.trim()), rate ? ' ' : '',
      `Updated ${this.answered}, every ${next === 1 ? 'second' : `${next.toFixed(1)} s`} while this page is shown.`);
    this.draw(nodes, sessions.sessions || []);
    return took;
  }

  draw(nodes, sessions) {
    const live = nodes.nodes || [];
    const names = nodeNames(live);
    const owner = (id, name) => h('span', { title: `node ${id}` }, names.get(id) || name || id);
    fill(this.figure, figure(live, sessions, names));
    fill(this.sessions, sessions.length === 0 ? h('p', { class: 'muted' }, 'No session: add a source (bam source add).') :
      h('div', { class: 'table-wrap' }, h('table', { id: 'session-table' },
        h('thead', {}, h('tr', {}, ['Session', 'Owner', 'Epoch', 'Lease left', 'Backlog', 'Oldest unapplied', 'Applied', 'Failed', 'Last error']
          .map((x, i) => h('th', { scope: 'col', class: i >= 2 && i <= 7 ? 'num' : null }, x)))),
        h('tbody', {}, sessions.map((s) => h('tr', { 'data-session': `${s.source}/${s.partition}`, 'data-owner': s.owner_name || '' },
          h('th', { scope: 'row' }, `${s.source}/${s.partition}`, s.paused ? ' (paused)' : '', s.enabled ? '' : ' (disabled)'),
          h('td', {}, s.owner ? owner(s.owner, s.owner_name) : h('span', { class: 'muted' }, 'none'),
            s.moving_to && s.moving_to !== s.owner ? [' → ', owner(s.moving_to)] : ''),
          h('td', { class: 'num' }, s.epoch),
          h('td', { class: 'num' }, s.owner ? `${(s.lease_remaining_seconds || 0).toFixed(1)}s` : ''),
          h('td', { class: 'num' }, backlog(s.backlog)),
          h('td', { class: 'num oldest' }, oldest(s.backlog)),
          h('td', { class: 'num' }, count(s.applied)),
          h('td', { class: 'num' }, count(s.failed_outstanding)),
          h('td', { class: s.last_error ? 'error-text' : null }, s.last_error ? `${s.last_error} (${time(s.last_error_at)})` : '')))))));
    const gone = nodes.gone || [];
    fill(this.gone, gone.length === 0 ? h('p', { class: 'muted' }, 'None recently.') :
      h('ul', { id: 'gone-list' }, gone.map((g) => h('li', { 'data-node': g.name },
        h('strong', {}, g.name), ` (${g.id}, ${g.host}, pid ${g.pid}) `, time(g.gone_at), ': ',
        g.found_dead_by ? `found dead by ${names.get(g.found_dead_by) || g.found_dead_by}${g.why ? ` (${g.why})` : ''}` : 'left the pool'))));
  }
}

// nodeNames labels each live node by id: its name, or, when another node
// has that name too (two nodes named after one host), "name (id)", as bam
// status writes it.
function nodeNames(nodes) {
  const seen = new Map();
  for (const n of nodes) seen.set(n.name, (seen.get(n.name) || 0) + 1);
  return new Map(nodes.map((n) => [n.id, seen.get(n.name) > 1 ? `${n.name} (${n.id})` : n.name]));
}

// nodeState writes a node's state; a silent one's with the age of its
// heartbeat, the figure that says how long it has not been heard from.
function nodeState(n) {
  return n.state === 'silent' ? `silent, heartbeat ${Math.round(n.heartbeat_age_seconds || 0)}s ago` : n.state;
}

// oldest writes the age of a session's oldest unapplied event: "-" when
// none waits (the API's 0), empty when the backlog is unknown.
function oldest(b) {
  if (!b) return '';
  return b.events > 0 && b.oldest_age_seconds !== undefined && b.oldest_age_seconds !== null ? `${b.oldest_age_seconds.toFixed(1)}s` : '-';
}

function backlog(b) {
  if (!b) return '';
  return `${count(b.events)}${b.events_is_lower_bound ? '+' : ''} events${b.held ? ' (held)' : ''}`;
}

// figure draws sources and their sessions on the left, nodes on the right,
// and a line from each session to its owner.
function figure(nodes, sessions, names) {
  const sources = new Map();
  for (const s of sessions) {
    if (!sources.has(s.source)) sources.set(s.source, []);
    sources.get(s.source).push(s);
  }
  const rowH = 30, gap = 18, width = 1000, srcX = 20, srcW = 300, nodeX = 640, nodeW = 340;
  // Left column: a box per source holding a row per session.
  let y = 10;
  const sessionY = new Map();
  const left = [];
  for (const [name, list] of sources) {
    const top = y;
    const rows = list.map((s, i) => {
      const ry = top + 30 + i * rowH;
      sessionY.set(`${s.source}/${s.partition}`, ry + rowH / 2 - 4);
      return svg('g', { class: `session${s.owner ? '' : ' unowned'}`, 'data-session': `${s.source}/${s.partition}`, 'data-owner': s.owner_name || '' },
        svg('text', { x: srcX + 14, y: ry + rowH / 2, class: 'session-label' }, `partition ${s.partition}`),
        svg('text', { x: srcX + srcW - 12, y: ry + rowH / 2, 'text-anchor': 'end', class: 'session-lag' }, lag(s)));
    });
    const hgt = 34 + list.length * rowH;
    left.push(svg('g', { class: 'source', 'data-source': name },
      svg('rect', { x: srcX, y: top, width: srcW, height: hgt, rx: 6 }),
      svg('text', { x: srcX + 12, y: top + 20, class: 'box-title' }, name),
      rows));
    y += hgt + gap;
  }
  // Right column: a box per node.
  let ny = 10;
  const nodeY = new Map();
  const right = nodes.map((n) => {
    const hgt = 56;
    nodeY.set(n.id, ny + hgt / 2);
    const g = svg('g', { class: `node state-${n.state}`, 'data-node': n.name, 'data-id': n.id },
      svg('title', {}, `${n.name} (${n.id}): ${nodeState(n)}, on ${n.host} pid ${n.pid}, joined ${time(n.joined_at)}`),
      svg('rect', { x: nodeX, y: ny, width: nodeW, height: hgt, rx: 6 }),
      svg('text', { x: nodeX + 12, y: ny + 22, class: 'box-title' }, names.get(n.id)),
      svg('text', { x: nodeX + 12, y: ny + 42, class: 'node-detail' },
        `${nodeState(n)} · ${n.host} pid ${n.pid} · ${(n.sessions || []).length} session${(n.sessions || []).length === 1 ? '' : 's'}`));
    ny += hgt + gap;
    return g;
  });
  const links = sessions.filter((s) => s.owner && nodeY.has(s.owner)).map((s) => {
    const y1 = sessionY.get(`${s.source}/${s.partition}`), y2 = nodeY.get(s.owner);
    return svg('path', { class: 'link', d: `M ${srcX + srcW} ${y1} C ${srcX + srcW + 120} ${y1}, ${nodeX - 120} ${y2}, ${nodeX} ${y2}` },
      svg('title', {}, `${s.source}/${s.partition} → ${names.get(s.owner)}, epoch ${s.epoch}`));
  });
  const height = Math.max(y, ny, 80);
  const description = sessions.map((s) => `${s.source}/${s.partition}: ${s.owner ? names.get(s.owner) || s.owner_name || s.owner : 'no owner'}`).join('; ');
  return [svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', id: 'pool', 'aria-label': `Sessions and their owners: ${description || 'none'}` },
    links, left, right,
    nodes.length === 0 ? svg('text', { x: nodeX, y: 30, class: 'node-detail' }, 'No node running.') : null)];
}

function lag(s) {
  const b = s.backlog || {};
  const parts = [];
  if (b.events) parts.push(`${count(b.events)}${b.events_is_lower_bound ? '+' : ''} behind`);
  if (b.oldest_age_seconds) parts.push(`${b.oldest_age_seconds.toFixed(1)}s`);
  if (!s.owner) parts.push('no owner');
  else parts.push(`epoch ${s.epoch}`);
  return parts.join(' · ');
}
