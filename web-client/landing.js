// @ts-check
/**
 * The landing page (`/`): create a meeting with a random readable name, or
 * go to one by name or link. Both lead to `/r/{room}`.
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
});
