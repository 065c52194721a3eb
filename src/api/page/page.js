// rekindle's live page: plain JavaScript, no library, nothing fetched but
// this daemon's API. The token is asked once and kept in this closure's
// memory (never in the address or in storage). A run is followed over
// Server-Sent Events read with fetch (EventSource cannot send a token),
// resumed with Last-Event-ID after a reconnect; events only update the
// model, and the page is redrawn from it at most twice a second, so a run
// of tens of thousands of containers costs the browser what a small one
// does.
'use strict';
(function () {
  const REDRAW_MS = 500;
  const POLL_MS = 2000;
  const RECONNECT_MS = 1000;
  const MAX_SAMPLES = 20000;
  const MAX_PROBLEM_ROWS = 200;
  const ACTIVE = ['pending', 'running', 'paused'];

  const $ = (id) => document.getElementById(id);
  const S = { token: null, role: null, name: null, runs: [], runsDirty: false, run: null,
    dirty: false, redraws: 0, poll: null, draw: null, controlsKey: '' };

  class ApiError extends Error {
    constructor(status, msg) { super(msg); this.status = status; }
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  }
  const num = (x, d) => (x === null || x === undefined || Number.isNaN(x)) ? '–'
    : Number(x).toLocaleString('en-US', { maximumFractionDigits: d === undefined ? 0 : d });
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + S.token };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body) });
    let j = null;
    try { j = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) throw new ApiError(r.status, (j && j.error) || r.statusText);
    return j;
  }

  // ---- signing in and out -------------------------------------------------

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('token');
    const token = input.value.trim();
    input.value = '';
    $('login-error').textContent = '';
    S.token = token;
    let me;
    try {
      me = await api('GET', '/v1/whoami');
    } catch (e) {
      S.token = null;
      $('login-error').textContent = e.status === 401
        ? `The daemon refused this token (401: ${e.message}). Check it and enter it again.`
        : `The daemon did not answer as expected (${e.status || 'no answer'}: ${e.message}).`;
      return;
    }
    S.role = me.role;
    S.name = me.name;
    $('who').textContent = `${me.name} · ${me.role}`;
    $('login').hidden = true;
    $('app').hidden = false;
    $('signout').hidden = false;
    S.poll = setInterval(pollRuns, POLL_MS);
    S.draw = setInterval(redraw, REDRAW_MS);
    await pollRuns();
  });

  function signOut(why) {
    clearInterval(S.poll);
    clearInterval(S.draw);
    if (S.run) S.run.abort.abort();
    Object.assign(S, { token: null, role: null, name: null, runs: [], run: null, controlsKey: '' });
    $('app').hidden = true;
    $('run').hidden = true;
    $('signout').hidden = true;
    $('who').textContent = '';
    $('controls').replaceChildren();
    $('login').hidden = false;
    $('login-error').textContent = why || '';
  }
  $('signout').addEventListener('click', () => signOut(''));

  // ---- the runs ------------------------------------------------------------

  async function pollRuns() {
    if (!S.token) return;
    try {
      const j = await api('GET', '/v1/runs');
      S.runs = j.runs;
      S.runsDirty = true;
      S.dirty = true;
      if (!S.run) {
        const named = location.hash.slice(1);
        const pick = S.runs.find((r) => r.id === named)
          || [...S.runs].reverse().find((r) => ACTIVE.includes(r.state));
        if (pick) watch(pick.id);
      }
    } catch (e) {
      if (e.status === 401) signOut(`The daemon no longer accepts this token (401: ${e.message}).`);
      else say(`The runs could not be read (${e.status || 'no answer'}: ${e.message}).`, true);
    }
  }

  $('runs-body').addEventListener('click', (ev) => {
    const tr = ev.target.closest('tr');
    if (tr && tr.dataset.id) watch(tr.dataset.id);
  });

  function view() {
    return S.run ? S.runs.find((r) => r.id === S.run.id) : undefined;
  }

  // ---- one run: its model, fed by its events --------------------------------

  function newRun(id) {
    return { id, lastId: 0, outline: null, waves: [], groups: new Map(), restarts: 0, healthy: 0,
      failed: 0, problems: new Map(), samples: [], budget: null, ended: false, endState: null,
      result: null, error: null, conn: 'connecting', reconnects: 0, resent: 0,
      abort: new AbortController(), stream: null, wavesDirty: true, problemsDirty: true, halted: null };
  }

  function watch(id) {
    if (S.run && S.run.id === id) return;
    if (S.run) S.run.abort.abort();
    S.run = newRun(id);
    S.controlsKey = '';
    history.replaceState(null, '', '#' + encodeURIComponent(id));
    $('run').hidden = false;
    $('confirm').hidden = true;
    say('');
    S.runsDirty = true;
    S.dirty = true;
    follow(S.run);
  }

  async function follow(R) {
    while (!R.abort.signal.aborted && !R.ended) {
      // This connection's own abort: a dropped stream reconnects, a run
      // no longer watched does not.
      R.stream = new AbortController();
      const stop = () => R.stream.abort();
      R.abort.signal.addEventListener('abort', stop, { once: true });
      try {
        const headers = { Authorization: 'Bearer ' + S.token, Accept: 'text/event-stream' };
        if (R.lastId > 0) headers['Last-Event-ID'] = String(R.lastId);
        const r = await fetch(`/v1/runs/${encodeURIComponent(R.id)}/events`,
          { headers, signal: R.stream.signal, cache: 'no-store', credentials: 'omit' });
        if (r.status === 401) { signOut('The daemon no longer accepts this token (401).'); return; }
        if (!r.ok) {
          let m = r.statusText;
          try { m = (await r.json()).error; } catch (_) { /* not JSON */ }
          throw new Error(`${r.status}: ${m}`);
        }
        R.conn = 'live';
        S.dirty = true;
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            onBlock(R, buf.slice(0, i));
            buf = buf.slice(i + 2);
          }
        }
        if (!R.ended) R.conn = 'stream closed: reconnecting';
      } catch (e) {
        if (R.abort.signal.aborted) return;
        R.conn = `reconnecting (${e.message})`;
      } finally {
        R.abort.signal.removeEventListener('abort', stop);
      }
      if (R.ended) break;
      R.reconnects++;
      S.dirty = true;
      await sleep(RECONNECT_MS);
    }
    if (R.ended) R.conn = 'ended';
    S.dirty = true;
  }

  // One SSE block: `id:`, `event:`, `data:` lines. Events at or below the
  // last id seen are skipped (a reconnect never counts one twice).
  function onBlock(R, block) {
    let id = null;
    let kind = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line[0] === ':') continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'id') id = value;
      else if (field === 'event') kind = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return;
    if (id !== null) {
      const n = parseInt(id, 10);
      if (n <= R.lastId) { R.resent++; return; }
      R.lastId = n;
    }
    let e;
    try { e = JSON.parse(data.join('\n')); } catch (_) { return; }
    apply(R, kind, e);
    S.dirty = true;
  }

  function place(R, w) {
    if (!R.groups.has(w.group)) R.groups.set(w.group, []);
    R.groups.get(w.group).push(w.wave);
  }

  function wave(R, i) {
    let w = R.waves[i];
    if (!w) {
      w = R.waves[i] = { wave: i, role: '?', group: '?', containers: 0, canary: false,
        state: 'pending', healthy: 0, failed: 0 };
      place(R, w);
    }
    return w;
  }

  function apply(R, kind, e) {
    switch (kind) {
      case 'plan': {
        R.outline = e;
        if (R.waves.length !== e.waves.length) {
          R.waves = [];
          R.groups = new Map();
          for (const o of e.waves) {
            const w = Object.assign({ state: 'pending', healthy: 0, failed: 0 }, o);
            R.waves[o.wave] = w;
            place(R, w);
          }
        }
        R.budget = e.dns_budget_qps;
        R.wavesDirty = true;
        break;
      }
      case 'wave_started': {
        const w = wave(R, e.wave);
        if (w.role === '?') {
          Object.assign(w, { role: e.role, containers: e.containers });
          if (w.group !== e.group) {
            R.groups.get(w.group).splice(R.groups.get(w.group).indexOf(w.wave), 1);
            w.group = e.group;
            place(R, w);
          }
        }
        w.state = 'running';
        R.wavesDirty = true;
        break;
      }
      case 'wave_passed':
        Object.assign(wave(R, e.wave), { state: 'passed', healthy: e.healthy, failed: e.failed });
        R.wavesDirty = true;
        break;
      case 'wave_halted':
        wave(R, e.wave).state = 'halted';
        R.halted = e;
        R.wavesDirty = true;
        break;
      case 'restarting':
        R.restarts++;
        break;
      case 'healthy':
        R.healthy++;
        if (R.problems.delete(e.container)) R.problemsDirty = true;
        break;
      case 'stuck':
      case 'container_failed':
        R.problems.delete(e.container);
        R.problems.set(e.container, { wave: e.wave, state: kind === 'stuck' ? 'stuck: restarted again' : 'failed', reason: e.reason });
        if (kind === 'container_failed') R.failed++;
        R.problemsDirty = true;
        break;
      case 'retuned':
      case 'budget_adapted':
        R.budget = e.dns_budget_qps;
        break;
      case 'load':
        R.samples.push(e);
        if (R.samples.length > MAX_SAMPLES) R.samples.splice(0, R.samples.length - MAX_SAMPLES);
        R.budget = e.dns_budget_qps;
        break;
      case 'run_ended':
        R.ended = true;
        R.endState = e.state;
        R.result = e.result;
        R.error = e.error;
        break;
      default:
        break;
    }
  }

  // ---- drawing ---------------------------------------------------------------

  function say(text, bad) {
    const m = $('message');
    m.textContent = text;
    m.className = bad ? 'error' : '';
  }

  function redraw() {
    if (!S.dirty) return;
    S.dirty = false;
    S.redraws++;
    if (S.runsDirty) drawRuns();
    if (S.run) drawRun(S.run);
  }

  function drawRuns() {
    S.runsDirty = false;
    const rows = [...S.runs].reverse().map((r) => {
      const sel = S.run && S.run.id === r.id ? ' class="selected"' : '';
      return `<tr id="run-${esc(r.id)}" data-id="${esc(r.id)}"${sel}><td>${esc(r.id)}</td><td>${esc(r.playbook)}</td>`
        + `<td>${esc(r.mode)}${r.scenario ? ' · ' + esc(r.scenario) : ''}</td>`
        + `<td class="state-${esc(r.state)}">${esc(r.state)}</td><td>${esc(r.started_by || '')}</td><td>${esc(r.reason)}</td></tr>`;
    });
    $('runs-body').innerHTML = rows.join('');
    $('runs-empty').hidden = S.runs.length > 0;
  }

  function fact(name, value, id) {
    return `<div><dt>${esc(name)}</dt><dd${id ? ` id="${id}"` : ''}>${esc(value)}</dd></div>`;
  }

  function drawRun(R) {
    const v = view() || {};
    const state = R.ended ? R.endState : (v.state || '…');
    const last = R.samples.length ? R.samples[R.samples.length - 1] : null;
    const total = R.outline ? R.outline.containers : (v.status ? v.status.containers_total : 0);
    const healthy = last ? last.healthy : R.healthy;
    const passed = R.waves.filter((w) => w && w.state === 'passed').length;
    $('run-title').textContent = `Run ${R.id} · ${v.playbook || ''} · ${v.mode || ''}${v.scenario ? ' of ' + v.scenario : ''}`;
    const pacing = R.outline ? R.outline.pacing : '…';
    $('run-facts').innerHTML = [
      fact('state', state, 'run-state'),
      fact('healthy', `${num(healthy)} of ${num(total)}`),
      fact('failed', num(last ? last.failed : R.failed)),
      fact('restarts', num(R.restarts)),
      fact('waves passed', `${num(passed)} of ${num(R.waves.length)}`, 'waves-passed'),
      fact('DNS pacing', pacing + (R.budget ? ` · budget ${num(R.budget)} q/s` : '')),
      fact('run clock', last ? `${num(last.at_s, 1)} s` : '–'),
      v.speed ? fact('speed', `${num(v.speed)}× real time`) : '',
      fact('stream', R.conn + (R.reconnects ? ` · ${R.reconnects} reconnects` : ''), 'stream'),
      v.started_by ? fact('started by', v.started_by) : '',
    ].join('');
    if (R.ended && (R.error || (R.result && R.result.reason))) say(R.error || R.result.reason, true);
    drawControls(R, state);
    drawCharts(R, total);
    if (R.wavesDirty) drawWaves(R);
    if (R.problemsDirty) drawProblems(R);
  }

  function drawControls(R, state) {
    const active = ACTIVE.includes(state);
    const key = `${R.id}|${S.role}|${state}`;
    if (key === S.controlsKey) return;
    S.controlsKey = key;
    const box = $('controls');
    box.replaceChildren();
    if (S.role !== 'operator' || !active) return;
    const button = (id, text, on, cls) => {
      const b = document.createElement('button');
      b.id = id;
      b.type = 'button';
      b.textContent = text;
      if (cls) b.className = cls;
      b.addEventListener('click', on);
      box.append(b);
    };
    if (state === 'paused') button('resume', 'Resume', () => control(R, 'resume'));
    else button('pause', 'Pause', () => control(R, 'pause'));
    button('abort', 'Abort…', () => confirmAbort(R), 'danger');
    const input = (id, label) => {
      const l = document.createElement('label');
      l.textContent = label + ' ';
      const i = document.createElement('input');
      i.id = id;
      i.type = 'number';
      i.min = '0';
      i.step = 'any';
      l.append(i);
      box.append(l);
    };
    input('retune-dns', 'DNS ceiling (q/s)');
    input('retune-rate', 'restarts/s');
    button('retune', 'Retune', () => retune(R));
  }

  async function control(R, action) {
    try {
      const v = await api('POST', `/v1/runs/${encodeURIComponent(R.id)}/${action}`, { reason: 'from the live page' });
      say(`${action}: run ${R.id} is ${v.state}`);
    } catch (e) {
      say(`${action} refused (${e.status || 'no answer'}): ${e.message}`, true);
    }
    await pollRuns();
  }

  function confirmAbort(R) {
    $('confirm-text').textContent = `Abort run ${R.id}? No new restart starts; the restarts in flight finish and are watched to their end. An abort is final: only resuming the journal continues the run.`;
    $('confirm').hidden = false;
    $('confirm-yes').onclick = async () => { $('confirm').hidden = true; await control(R, 'abort'); };
    $('confirm-no').onclick = () => { $('confirm').hidden = true; };
  }

  async function retune(R) {
    const body = { reason: 'from the live page' };
    for (const [id, field] of [['retune-dns', 'dns_budget_qps'], ['retune-rate', 'restart_rate']]) {
      const raw = $(id).value.trim();
      if (raw === '') continue;
      const x = Number(raw);
      if (!(x >= 0)) { say(`${field}: expected a number of at least 0, found ${raw}`, true); return; }
      body[field] = x;
    }
    if (Object.keys(body).length === 1) { say('Retune: give a DNS ceiling, a restart rate, or both.', true); return; }
    try {
      await api('PATCH', `/v1/runs/${encodeURIComponent(R.id)}`, body);
      say(`retuned: ${JSON.stringify(body)}`);
    } catch (e) {
      say(`retune refused (${e.status || 'no answer'}): ${e.message}`, true);
    }
  }

  // A polyline of (t, y) over the chart's 600 × 170 box, at most 600 points.
  function path(points, tMax, yMax) {
    if (!points.length || !(yMax > 0)) return '';
    const step = Math.max(1, Math.ceil(points.length / 600));
    const out = [];
    for (let i = 0; i < points.length; i += step) {
      const [t, y] = points[i];
      if (y === null || y === undefined) continue;
      out.push(`${(t / tMax * 600).toFixed(1)},${(165 - Math.min(y, yMax * 1.05) / yMax * 155).toFixed(1)}`);
    }
    return out.length ? 'M' + out.join('L') : '';
  }

  function line(cls, d) {
    return d ? `<path class="${cls}" d="${d}"/>` : '';
  }

  function drawCharts(R, total) {
    const s = R.samples;
    const tMax = Math.max(10, s.length ? s[s.length - 1].at_s : 0);
    const healthy = s.map((x) => [x.at_s, x.healthy]);
    $('chart-healthy').innerHTML = `<line class="axis" x1="0" y1="10" x2="600" y2="10"/>`
      + line('healthy', path(healthy, tMax, Math.max(total, 1)));
    const last = s.length ? s[s.length - 1] : null;
    $('healthy-now').textContent = last ? `${num(last.healthy)} of ${num(total)} at ${num(last.at_s)} s` : '';
    const capacity = R.outline ? R.outline.dns_capacity_qps : 0;
    const peak = s.reduce((m, x) => Math.max(m, x.dns_granted_qps || 0, x.resolver_received_qps || 0, x.dns_budget_qps || 0), 0);
    const yMax = Math.max(capacity, peak, 1) * 1.1;
    const cap = capacity ? [[0, capacity], [tMax, capacity]] : [];
    $('chart-dns').innerHTML = line('capacity', path(cap, tMax, yMax))
      + line('budget', path(s.map((x) => [x.at_s, x.dns_budget_qps]), tMax, yMax))
      + line('granted', path(s.map((x) => [x.at_s, x.dns_granted_qps]), tMax, yMax))
      + line('received', path(s.filter((x) => x.resolver_received_qps !== null && x.resolver_received_qps !== undefined)
        .map((x) => [x.at_s, x.resolver_received_qps]), tMax, yMax));
    $('dns-now').textContent = last
      ? `granted ${num(last.dns_granted_qps)} · budget ${num(last.dns_budget_qps)}${capacity ? ` · capacity ${num(capacity)}` : ''}`
        + (last.resolver_received_qps !== null && last.resolver_received_qps !== undefined ? ` · received ${num(last.resolver_received_qps)}` : '')
        + (last.resolver_dropped_qps ? ` · dropped ${num(last.resolver_dropped_qps, 1)}` : '')
      : '';
  }

  function drawWaves(R) {
    R.wavesDirty = false;
    const groups = [...R.groups.keys()].sort();
    const html = [];
    for (const g of groups) {
      const boxes = R.groups.get(g).map((i) => {
        const w = R.waves[i];
        const title = `wave ${w.wave} · ${w.role} · ${w.containers} containers · ${w.state}`
          + (w.state === 'passed' ? ` (${w.healthy} healthy, ${w.failed} failed)` : '');
        return `<span class="w ${w.state}${w.canary ? ' canary' : ''}" title="${esc(title)}">${esc(w.role.slice(0, 1))}</span>`;
      });
      html.push(`<div class="g"><span class="group">${esc(g || '(no group)')}</span>${boxes.join('')}</div>`);
    }
    $('waves').innerHTML = html.join('');
    const count = (st) => R.waves.filter((w) => w && w.state === st).length;
    $('waves-summary').textContent = `${count('passed')} passed · ${count('running')} restarting · ${count('pending')} waiting`
      + (count('halted') ? ` · ${count('halted')} halted` : '') + ` · ${groups.length} groups`;
  }

  function drawProblems(R) {
    R.problemsDirty = false;
    const all = [...R.problems.entries()].reverse();
    $('problems-body').innerHTML = all.slice(0, MAX_PROBLEM_ROWS).map(([c, p]) =>
      `<tr><td>${esc(c)}</td><td>${esc(p.wave)}</td><td>${esc(p.state)}</td><td>${esc(p.reason)}</td></tr>`).join('');
    $('problems-summary').textContent = all.length
      ? `${all.length} now` + (all.length > MAX_PROBLEM_ROWS ? ` (the latest ${MAX_PROBLEM_ROWS} shown)` : '')
      : 'none';
  }

  // What a test (or a curious person in the console) may read.
  window.rekindle = {
    redraws: () => S.redraws,
    lastEventId: () => (S.run ? S.run.lastId : 0),
    reconnects: () => (S.run ? S.run.reconnects : 0),
    // Events the daemon sent again after a reconnect (0: it resumed after
    // Last-Event-ID), and the healthy events counted.
    resent: () => (S.run ? S.run.resent : 0),
    healthyEvents: () => (S.run ? S.run.healthy : 0),
    // Drops the current stream as a network would: the page reconnects.
    dropStream: () => { if (S.run && S.run.stream) S.run.stream.abort(); },
  };
}());
