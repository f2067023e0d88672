// @ts-check
/**
 * The admin page, `/admin`: server health, rooms and who is in them
 * (remove someone, end a room, start or stop a recording), recordings with
 * their download links. Everything goes through the admin API with the key
 * typed here; the key is kept for this browser tab only (sessionStorage).
 * @module admin
 */

import { t, initStrings, bindLanguageSelect } from './i18n.js';

const KEY_STORE = 'kaigi.adminKey';
const REFRESH_MS = 5000;

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const ui = {
  keyForm: /** @type {HTMLFormElement} */ ($('key-form')),
  keyInput: /** @type {HTMLInputElement} */ ($('key-input')),
  keyError: $('key-error'),
  lockBtn: $('lock-btn'),
  panels: $('panels'),
  health: $('health'),
  rooms: /** @type {HTMLTableElement} */ ($('rooms')),
  roomsEmpty: $('rooms-empty'),
  roomPanel: $('room-panel'),
  roomHeading: $('room-heading'),
  roomPeople: $('room-people'),
  recordings: /** @type {HTMLTableElement} */ ($('recordings')),
  recEmpty: $('rec-empty'),
  status: $('status'),
};

/** @type {{key: string | null, room: string | null, timer: ReturnType<typeof setInterval> | undefined}} */
const app = { key: sessionStorage.getItem(KEY_STORE), room: null, timer: undefined };

/**
 * One admin API call: JSON back, or an Error with the server's message.
 * @param {string} method
 * @param {string} path
 */
async function api(method, path) {
  const res = await fetch(path, { method, headers: { Authorization: `Bearer ${app.key ?? ''}` }, cache: 'no-store' });
  if (res.status === 401 || res.status === 403) {
    const body = await res.json().catch(() => ({}));
    throw Object.assign(new Error(String(body.message || res.status)), { auth: true });
  }
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new Error(String(body.message || `${res.status}`));
  }
  return res.status === 204 ? null : res.json();
}

/** @param {string} text @param {string} [cls] */
function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

/** @param {...string} texts  column headings */
function head(...texts) {
  const tr = document.createElement('tr');
  for (const x of texts) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = x;
    tr.append(th);
  }
  const thead = document.createElement('thead');
  thead.append(tr);
  return thead;
}

/**
 * @param {string} text
 * @param {string} action  `data-action`, for tests
 * @param {() => Promise<unknown>} fn
 * @param {string} [confirmText]
 */
function button(text, action, fn, confirmText) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'btn btn-secondary btn-small';
  b.textContent = text;
  b.dataset.action = action;
  b.addEventListener('click', async () => {
    if (confirmText && !window.confirm(confirmText)) return;
    b.disabled = true;
    try {
      await fn();
      ui.status.textContent = t('admin.done');
    } catch (err) {
      ui.status.textContent = t('admin.failed', { why: String(/** @type {Error} */ (err).message) });
    }
    b.disabled = false;
    refresh();
  });
  return b;
}

/** @param {number} bytes */
function size(bytes) {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(1)} GiB`;
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  return `${Math.ceil(bytes / 1024)} KiB`;
}

/** @param {any} h */
function renderHealth(h) {
  const rows = [
    [t('admin.status'), h.status === 'ok' ? t('admin.statusOk') : t('admin.statusDraining')],
    [t('admin.version'), String(h.version)],
    [t('admin.uptime'), t('admin.minutes', { n: Math.floor(Number(h.uptime_seconds) / 60) })],
    [t('admin.roomsCount'), String(h.rooms)],
    [t('admin.participants'), String(h.participants)],
    [t('admin.viewers'), String(h.viewers)],
    [t('admin.workers'), (h.worker_participants || []).join(' / ')],
  ];
  ui.health.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    return [dt, dd];
  }));
}

/** @param {any[]} rooms */
function renderRooms(rooms) {
  ui.roomsEmpty.hidden = rooms.length > 0;
  ui.rooms.hidden = rooms.length === 0;
  const body = document.createElement('tbody');
  for (const r of rooms) {
    const tr = document.createElement('tr');
    tr.dataset.room = r.name;
    const acts = document.createElement('td');
    acts.className = 'admin-actions';
    acts.append(
      button(t('admin.show'), 'show', async () => { app.room = r.name; }),
      r.recording
        ? button(t('admin.stopRecording'), 'stop-recording', () => api('DELETE', `/api/rooms/${encodeURIComponent(r.name)}/recording`))
        : button(t('admin.record'), 'record', () => api('POST', `/api/rooms/${encodeURIComponent(r.name)}/recording`)),
      button(t('admin.end'), 'end-room', () => api('DELETE', `/api/rooms/${encodeURIComponent(r.name)}`), t('admin.endConfirm', { room: r.name })),
    );
    tr.append(
      cell(r.name, 'admin-name'),
      cell(String(r.participants)),
      cell(String(r.viewers)),
      cell(r.live.length ? r.live.join(', ') : '—'),
      cell(r.recording ? t('admin.yes') : '—'),
      acts,
    );
    body.append(tr);
  }
  ui.rooms.replaceChildren(
    head(t('admin.room'), t('admin.participants'), t('admin.viewers'), t('admin.onAir'), t('admin.recordingNow'), ''),
    body,
  );
}

/** @param {any} room */
function renderRoom(room) {
  ui.roomPanel.hidden = false;
  ui.roomHeading.textContent = t('admin.roomHeading', { room: room.name, viewers: room.viewers });
  ui.roomPeople.replaceChildren(...room.participants.map((/** @type {any} */ p) => {
    const li = document.createElement('li');
    li.dataset.participantId = p.id;
    const name = document.createElement('span');
    name.textContent = `${p.name} (${p.id})${p.moderator ? ` — ${t('people.moderator')}` : ''}`;
    li.append(name, button(t('admin.remove'), 'remove', () => api('DELETE', `/api/rooms/${encodeURIComponent(room.name)}/participants/${p.id}`), t('admin.removeConfirm', { name: p.name })));
    return li;
  }));
}

/** @param {any[]} recs */
function renderRecordings(recs) {
  ui.recEmpty.hidden = recs.length > 0;
  ui.recordings.hidden = recs.length === 0;
  const body = document.createElement('tbody');
  for (const r of recs) {
    const tr = document.createElement('tr');
    const link = document.createElement('a');
    link.href = r.download;
    link.textContent = t('admin.download');
    link.setAttribute('download', r.name);
    const dl = document.createElement('td');
    dl.append(link);
    tr.append(
      cell(r.name, 'admin-name'),
      cell(r.state === 'recording' ? t('admin.recordingNow') : t('admin.complete')),
      cell(size(Number(r.bytes))),
      cell(new Date(Number(r.started) * 1000).toLocaleString()),
      dl,
    );
    body.append(tr);
  }
  ui.recordings.replaceChildren(head(t('admin.file'), t('admin.state'), t('admin.size'), t('admin.started'), ''), body);
}

async function refresh() {
  if (!app.key) return;
  try {
    const [health, rooms, recs] = await Promise.all([
      api('GET', '/api/health'), api('GET', '/api/rooms'), api('GET', '/api/recordings'),
    ]);
    renderHealth(health);
    renderRooms(rooms.rooms);
    renderRecordings(recs.recordings);
    if (app.room && rooms.rooms.some((/** @type {any} */ r) => r.name === app.room)) {
      renderRoom(await api('GET', `/api/rooms/${encodeURIComponent(app.room)}`));
    } else {
      app.room = null;
      ui.roomPanel.hidden = true;
    }
    setUnlocked(true);
  } catch (err) {
    if (/** @type {any} */ (err).auth) {
      lock(String(/** @type {Error} */ (err).message));
    } else {
      ui.status.textContent = t('admin.failed', { why: String(/** @type {Error} */ (err).message) });
    }
  }
}

/** @param {boolean} on */
function setUnlocked(on) {
  document.body.dataset.state = on ? 'unlocked' : 'locked';
  ui.panels.hidden = !on;
  ui.keyForm.hidden = on;
  ui.lockBtn.hidden = !on;
}

/** @param {string} [why] */
function lock(why) {
  app.key = null;
  sessionStorage.removeItem(KEY_STORE);
  clearInterval(app.timer);
  setUnlocked(false);
  ui.keyError.hidden = !why;
  ui.keyError.textContent = why ? t('admin.keyRefused', { why }) : '';
}

ui.keyForm.addEventListener('submit', (e) => {
  e.preventDefault();
  app.key = ui.keyInput.value.trim();
  ui.keyInput.value = '';
  if (!app.key) return;
  sessionStorage.setItem(KEY_STORE, app.key);
  start();
});
ui.lockBtn.addEventListener('click', () => lock());
document.addEventListener('langchange', () => refresh());

function start() {
  clearInterval(app.timer);
  refresh();
  app.timer = setInterval(refresh, REFRESH_MS);
}

initStrings();
bindLanguageSelect(/** @type {HTMLSelectElement} */ ($('lang')));
document.title = t('admin.title');
if (app.key) start();
else setUnlocked(false);
