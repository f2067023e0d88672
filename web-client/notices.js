// @ts-check
/**
 * Short messages over the page (toasts): information fades after a few
 * seconds, errors stay until closed. A notice keeps its string key, so a
 * language switch redraws it.
 * @module notices
 */

import { t } from './i18n.js';
import { setIcon } from './icons.js';

/** @typedef {import('./i18n.js').StringKey} StringKey */

const MAX_SHOWN = 4;
const FADE_MS = 5000;

export class Notices {
  #box;

  /** @param {HTMLElement} box  an `aria-live="polite"` container */
  constructor(box) {
    this.#box = box;
  }

  /**
   * @param {StringKey} key
   * @param {Record<string, string | number>} [params]
   * @param {{error?: boolean, details?: string, action?: () => void}} [opts]
   *   `details`: untranslated text added after the message (a server's reason);
   *   `action`: the message is a button that does this and closes the notice.
   */
  show(key, params = {}, opts = {}) {
    const el = document.createElement('div');
    el.className = opts.error ? 'notice notice-error' : 'notice';
    if (opts.error) el.setAttribute('role', 'alert');
    el.dataset.key = key;
    el.dataset.params = JSON.stringify(params);
    if (opts.details) el.dataset.details = opts.details;
    const action = opts.action;
    let text;
    if (action) {
      text = document.createElement('button');
      text.type = 'button';
      text.className = 'notice-text notice-action';
      text.addEventListener('click', () => { action(); el.remove(); });
    } else {
      text = document.createElement('span');
      text.className = 'notice-text';
    }
    el.append(text);
    if (opts.error || action) {
      const close = document.createElement('button');
      close.type = 'button';
      close.className = 'icon-btn notice-close';
      setIcon(close, 'close');
      close.addEventListener('click', () => el.remove());
      el.append(close);
    } else {
      setTimeout(() => el.remove(), FADE_MS);
    }
    this.#render(el);
    this.#box.append(el);
    while (this.#box.children.length > MAX_SHOWN) this.#box.firstElementChild?.remove();
  }

  /** Redraw every notice in the current language. */
  render() {
    for (const el of this.#box.querySelectorAll('[data-key]')) this.#render(/** @type {HTMLElement} */ (el));
  }

  /** Remove every notice. */
  clear() {
    this.#box.replaceChildren();
  }

  /** @param {string} key  whether a notice with this key is shown */
  has(key) {
    return [...this.#box.children].some((el) => /** @type {HTMLElement} */ (el).dataset.key === key);
  }

  /** @param {HTMLElement} el */
  #render(el) {
    const key = /** @type {StringKey} */ (el.dataset.key);
    const details = el.dataset.details;
    const text = t(key, JSON.parse(el.dataset.params ?? '{}'));
    /** @type {HTMLElement} */ (el.querySelector('.notice-text')).textContent =
      details ? `${text} ${t('error.details', { details })}` : text;
    el.querySelector('.notice-close')?.setAttribute('aria-label', t('notice.close'));
  }
}
