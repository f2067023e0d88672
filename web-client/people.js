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
 * @property {boolean} handRaised
 * @property {boolean} moderator
 * @property {boolean} [reconnecting]
 * @property {boolean} [live]  viewers of the broadcast see this person
 */

/**
 * What a moderator can do to someone else in the list.
 * @typedef {object} ModActions
 * @property {(id: string) => void} mute
 * @property {(id: string) => void} remove
 * @property {(ids: string[]) => void} setLive  who is live for the viewers, the main one first (empty: the default)
 * @property {string[]} live  who is live now
 */

/**
 * Redraw `list` (a `<ul>`) with `people`; with `actions` (we moderate),
 * everyone else gets Mute and Remove buttons.
 * @param {HTMLElement} list
 * @param {Person[]} people
 * @param {ModActions | null} [actions]
 */
export function renderPeopleList(list, people, actions = null) {
  list.replaceChildren(...people.map((p) => personItem(p, actions)));
}

/**
 * The waiting room, for moderators: a name with Admit and Deny.
 * @param {HTMLElement} list
 * @param {{id: string, name: string}[]} waiting
 * @param {{admit: (id: string) => void, deny: (id: string) => void}} actions
 */
export function renderLobbyList(list, waiting, actions) {
  list.replaceChildren(...waiting.map((w) => {
    const li = document.createElement('li');
    li.className = 'person';
    li.dataset.waiterId = w.id;
    const label = document.createElement('span');
    label.className = 'person-name';
    label.textContent = w.name;
    const acts = document.createElement('span');
    acts.className = 'person-actions';
    acts.append(
      actionButton(t('lobby.admit'), t('lobby.admitName', { name: w.name }), 'admit', () => actions.admit(w.id)),
      actionButton(t('lobby.deny'), t('lobby.denyName', { name: w.name }), 'deny', () => actions.deny(w.id)),
    );
    li.append(label, acts);
    return li;
  }));
}

/**
 * @param {string} text
 * @param {string} label  accessible name (says whom it acts on)
 * @param {string} action  `data-action`, for tests
 * @param {() => void} fn
 */
function actionButton(text, label, action, fn) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'btn btn-secondary';
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.dataset.action = action;
  b.addEventListener('click', fn);
  return b;
}

/**
 * @param {Person} p
 * @param {ModActions | null} actions
 */
function personItem(p, actions) {
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
  if (p.reconnecting) {
    const r = document.createElement('span');
    r.className = 'person-reconnecting';
    r.textContent = ` ${t('people.reconnecting')}`;
    label.append(r);
  }
  if (p.live) {
    const onAir = document.createElement('span');
    onAir.className = 'person-live';
    onAir.textContent = ` ${t('people.live')}`;
    label.append(onAir);
  }
  if (p.moderator) {
    const role = document.createElement('span');
    role.className = 'person-role';
    role.textContent = ` ${t('people.moderator')}`;
    label.append(role);
  }
  if (p.handRaised) {
    const hand = mark('hand', t('people.handRaised'));
    hand.classList.add('person-hand');
    marks.append(hand);
  }
  if (p.micMuted) marks.append(mark('micOff', t('people.micMuted')));
  if (p.camOff) marks.append(mark('camOff', t('people.camOff')));
  li.append(avatar, label, marks);
  if (actions) {
    const acts = document.createElement('span');
    acts.className = 'person-actions';
    const live = actions.live;
    if (p.live) {
      acts.append(actionButton(t('people.unsetLive'), t('people.unsetLiveName', { name: p.name }), 'unset-live', () => actions.setLive(live.filter((x) => x !== p.id))));
    } else if (p.id) {
      acts.append(actionButton(t('people.setLive'), t('people.setLiveName', { name: p.name }), 'set-live', () => actions.setLive([p.id])));
      if (live.length > 0) {
        acts.append(actionButton(t('people.addLive'), t('people.addLiveName', { name: p.name }), 'add-live', () => actions.setLive([...live, p.id])));
      }
    }
    if (!p.me && !p.micMuted) {
      acts.append(actionButton(t('people.mute'), t('people.muteName', { name: p.name }), 'mute', () => actions.mute(p.id)));
    }
    if (!p.me) {
      acts.append(actionButton(t('people.remove'), t('people.removeName', { name: p.name }), 'remove', () => actions.remove(p.id)));
    }
    li.append(acts);
  }
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
