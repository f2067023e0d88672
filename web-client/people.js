// @ts-check
/**
 * The participant list: one row per person (ourselves first) with an
 * initials avatar, the name and marks for a muted microphone or a camera
 * that is off.
 * @module people
 */

import { t } from './i18n.js';
import { setIcon } from './icons.js';
import { initials, avatarColor } from './grid.js';

/**
 * @typedef {object} Person
 * @property {string} id
 * @property {string} name
 * @property {boolean} me
 * @property {boolean} micMuted
 * @property {boolean} camOff
 */

/**
 * Redraw `list` (a `<ul>`) with `people`.
 * @param {HTMLElement} list
 * @param {Person[]} people
 */
export function renderPeopleList(list, people) {
  list.replaceChildren(...people.map(personItem));
}

/** @param {Person} p */
function personItem(p) {
  const li = document.createElement('li');
  li.className = 'person';
  li.dataset.participantId = p.id;
  const avatar = document.createElement('span');
  avatar.className = 'person-avatar';
  avatar.setAttribute('aria-hidden', 'true');
  avatar.style.setProperty('--avatar-bg', avatarColor(p.id));
  avatar.textContent = initials(p.name);
  const label = document.createElement('span');
  label.className = 'person-name';
  label.textContent = p.name;
  if (p.me) {
    const you = document.createElement('span');
    you.className = 'person-you';
    you.textContent = ` ${t('people.you')}`;
    label.append(you);
  }
  const marks = document.createElement('span');
  marks.className = 'person-marks';
  if (p.micMuted) marks.append(mark('micOff', t('people.micMuted')));
  if (p.camOff) marks.append(mark('camOff', t('people.camOff')));
  li.append(avatar, label, marks);
  return li;
}

/**
 * @param {import('./icons.js').IconName} icon
 * @param {string} text
 */
function mark(icon, text) {
  const span = document.createElement('span');
  span.className = 'icon person-mark';
  span.title = text;
  setIcon(span, icon);
  const hidden = document.createElement('span');
  hidden.className = 'visually-hidden';
  hidden.textContent = text;
  span.append(hidden);
  return span;
}
