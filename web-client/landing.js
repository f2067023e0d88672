// @ts-check
/**
 * The landing page (`/`): create a meeting with a random readable name, or
 * go to one by name or link. Both lead to `/r/{room}`. Where the server has
 * a staff directory, staff sign in here (`?next=` brings them back to the
 * meeting that asked), and members of the publisher group get a token for
 * their encoder.
 * @module landing
 */

import { t, initStrings, bindLanguageSelect } from './i18n.js';
import { isValidRoomName } from './protocol.js';
import { applyIcons } from './icons.js';

/** @typedef {import('./i18n.js').StringKey} StringKey */

// Short romaji words, easy to read out over the phone.
const FIRST = ['aoi', 'akai', 'shiroi', 'midori', 'hayai', 'shizuka', 'atarashii', 'akarui', 'yasashii', 'tsuyoi',
  'ookii', 'chiisai', 'takai', 'nagai', 'marui', 'atatakai'];
const SECOND = ['yama', 'kawa', 'umi', 'sora', 'mori', 'hana', 'kaze', 'hoshi', 'tsuki', 'kumo', 'nami', 'sakura',
  'matsu', 'take', 'ume', 'tori', 'shima', 'hikari', 'ishi', 'momiji'];

/**
 * A random readable room name such as `aoi-sakura-4821`.
 * @returns {string}
 */
export function randomRoomName() {
  const r = new Uint32Array(3);
  crypto.getRandomValues(r);
  const num = String(r[2] % 10000).padStart(4, '0');
  return `${FIRST[r[0] % FIRST.length]}-${SECOND[r[1] % SECOND.length]}-${num}`;
}

/**
 * The room a user typed: a bare name, or a meeting link (`…/r/{room}`).
 * @param {string} input
 * @returns {string}
 */
export function roomFromInput(input) {
  const s = input.trim();
  const m = /\/r\/([^/?#]+)/.exec(s);
  if (!m) return s;
  try { return decodeURIComponent(m[1]); } catch { return m[1]; }
}

/**
 * What is wrong with a room name, if anything.
 * @param {string} room
 * @returns {StringKey | null}
 */
function roomProblem(room) {
  if (!room) return 'landing.invalid.empty';
  if (room.length > 64) return 'landing.invalid.length';
  return isValidRoomName(room) ? null : 'landing.invalid.chars';
}

/** @param {string} room */
function go(room) {
  location.assign(`/r/${encodeURIComponent(room)}`);
}

initStrings();
applyIcons();
bindLanguageSelect(/** @type {HTMLSelectElement} */ (document.getElementById('lang')));
document.title = t('landing.title');

const form = /** @type {HTMLFormElement} */ (document.getElementById('join-room-form'));
const input = /** @type {HTMLInputElement} */ (document.getElementById('room-input'));
const error = /** @type {HTMLElement} */ (document.getElementById('room-error'));
/** @type {StringKey | null} */
let shownProblem = null;

function renderError() {
  error.hidden = !shownProblem;
  error.textContent = shownProblem ? t(shownProblem) : '';
  if (shownProblem) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

document.getElementById('create-btn')?.addEventListener('click', () => go(randomRoomName()));
form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const room = roomFromInput(input.value);
  shownProblem = roomProblem(room);
  renderError();
  if (shownProblem) input.focus();
  else go(room);
});
input.addEventListener('input', () => { shownProblem = null; renderError(); });
document.addEventListener('langchange', () => {
  document.title = t('landing.title');
  renderError();
  renderSignIn();
});

// ----- staff sign-in -----

/** @typedef {{user: string, name: string, moderator: boolean, publisher: boolean}} Me */

/** @param {string} id */
const el = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const signin = {
  card: el('signin-card'),
  form: /** @type {HTMLFormElement} */ (el('signin-form')),
  user: /** @type {HTMLInputElement} */ (el('signin-user')),
  password: /** @type {HTMLInputElement} */ (el('signin-password')),
  error: el('signin-error'),
  button: /** @type {HTMLButtonElement} */ (el('signin-btn')),
  signedIn: el('signed-in'),
  as: el('signin-as'),
  out: el('signout-btn'),
  bForm: /** @type {HTMLFormElement} */ (el('broadcast-form')),
  bRoom: /** @type {HTMLInputElement} */ (el('broadcast-room')),
  bError: el('broadcast-error'),
  bOut: el('broadcast-out'),
  bUrl: /** @type {HTMLInputElement} */ (el('broadcast-url')),
  bToken: /** @type {HTMLInputElement} */ (el('broadcast-token')),
  bExpires: el('broadcast-expires'),
};
/** @type {{available: boolean, me: Me | null, error: StringKey | null, busy: boolean, expires: number | null, bError: StringKey | null}} */
const auth = { available: false, me: null, error: null, busy: false, expires: null, bError: null };

/** Where to go after signing in: a meeting or viewer page of this server only. */
function nextPage() {
  const next = new URLSearchParams(location.search).get('next') ?? '';
  return /^\/(r|watch)\/[^/?#]+$/.test(next) ? next : null;
}

function renderSignIn() {
  signin.card.hidden = !auth.available;
  const me = auth.me;
  signin.form.hidden = Boolean(me);
  signin.signedIn.hidden = !me;
  signin.error.hidden = !auth.error;
  signin.error.textContent = auth.error ? t(auth.error) : '';
  signin.button.disabled = auth.busy;
  signin.button.textContent = t(auth.busy ? 'signin.busy' : 'signin.button');
  if (me) {
    signin.as.textContent = t('signin.as', { name: me.name }) + (me.moderator ? t('sentence.sep') + t('signin.moderator') : '');
  }
  signin.bForm.hidden = !me?.publisher;
  signin.bError.hidden = !auth.bError;
  signin.bError.textContent = auth.bError ? t(auth.bError) : '';
  signin.bOut.hidden = auth.expires === null;
  if (auth.expires !== null) {
    signin.bExpires.textContent = t('broadcast.expires', { time: new Date(auth.expires * 1000).toLocaleString() });
  }
}

async function loadMe() {
  try {
    const res = await fetch('/api/me', { cache: 'no-store' });
    auth.available = res.status !== 404;
    auth.me = res.ok ? /** @type {Me} */ (await res.json()) : null;
  } catch {
    auth.available = false;
  }
  renderSignIn();
}

signin.form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = signin.user.value.trim();
  const password = signin.password.value;
  if (!user || !password) {
    (user ? signin.password : signin.user).focus();
    return;
  }
  auth.busy = true;
  auth.error = null;
  renderSignIn();
  try {
    const res = await fetch('/api/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user, password }),
    });
    if (res.ok) {
      auth.me = /** @type {Me} */ (await res.json());
      signin.password.value = '';
      const next = nextPage();
      if (next) location.assign(next);
    } else {
      auth.error = res.status === 401 ? 'signin.wrong'
        : res.status === 429 ? 'signin.tooMany'
          : res.status === 503 ? 'signin.unavailable' : 'signin.failed';
    }
  } catch {
    auth.error = 'signin.unavailable';
  }
  auth.busy = false;
  renderSignIn();
  if (auth.error) signin.password.focus();
});

signin.out.addEventListener('click', async () => {
  await fetch('/api/logout', { method: 'POST' }).catch(() => undefined);
  auth.me = null;
  auth.expires = null;
  signin.bToken.value = '';
  renderSignIn();
  signin.user.focus();
});

signin.bForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const room = roomFromInput(signin.bRoom.value);
  auth.bError = roomProblem(room);
  auth.expires = null;
  if (!auth.bError) {
    try {
      const res = await fetch('/api/me/publisher-token', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ room }),
      });
      if (!res.ok) throw new Error(String(res.status));
      const body = await res.json();
      signin.bUrl.value = new URL(`/whip/${encodeURIComponent(room)}`, location.href).href;
      signin.bToken.value = String(body.token);
      auth.expires = Number(body.expires);
    } catch {
      auth.bError = 'broadcast.failed';
    }
  }
  renderSignIn();
});

if (nextPage()) signin.user.focus();
void loadMe();
