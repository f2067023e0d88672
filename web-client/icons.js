// @ts-check
/**
 * The client's icons, as inline SVG (24×24, drawn with currentColor). Icons
 * are decoration only: the control that carries one has its own text.
 * @module icons
 */

const A = 'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false"';

const ICONS = {
  mic: `<svg ${A}><rect x="9" y="2.5" width="6" height="12" rx="3"/><path d="M5 11a7 7 0 0 0 14 0"/><path d="M12 18v3.5"/><path d="M8.5 21.5h7"/></svg>`,
  micOff: `<svg ${A}><path d="M15 9.3V5.5a3 3 0 0 0-5.7-1.3"/><path d="M9 9v2.5a3 3 0 0 0 5.1 2.1"/><path d="M19 11a7 7 0 0 1-1 3.6"/><path d="M5 11a7 7 0 0 0 11.3 5.5"/><path d="M12 18v3.5"/><path d="M8.5 21.5h7"/><path d="M3 3l18 18"/></svg>`,
  cam: `<svg ${A}><rect x="2.5" y="6" width="13" height="12" rx="2"/><path d="M15.5 10.5l6-3.5v10l-6-3.5z"/></svg>`,
  camOff: `<svg ${A}><path d="M10 6h3.5a2 2 0 0 1 2 2v3.5l6-4.5v10"/><path d="M15.5 15.5V16a2 2 0 0 1-2 2h-9a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h1"/><path d="M3 3l18 18"/></svg>`,
  leave: `<svg ${A.replace('viewBox="0 0 24 24"', 'viewBox="1 5 22 14"')}><path d="M2 13.6c5.5-4.8 14.5-4.8 20 0 .4.4.5 1 .1 1.5l-1.6 2a1.1 1.1 0 0 1-1.4.3l-2.9-1.4a1.1 1.1 0 0 1-.6-1v-2.3a12 12 0 0 0-7.2 0V15a1.1 1.1 0 0 1-.6 1l-2.9 1.4a1.1 1.1 0 0 1-1.4-.3l-1.6-2a1.1 1.1 0 0 1 .1-1.5z" fill="currentColor" stroke="none"/></svg>`,
  people: `<svg ${A}><circle cx="9" cy="8" r="3.5"/><path d="M2.5 20c.6-3.7 3.2-6 6.5-6s5.9 2.3 6.5 6"/><path d="M15.5 4.8a3.5 3.5 0 0 1 0 6.4"/><path d="M18 14.4c2 .8 3.2 2.8 3.5 5.6"/></svg>`,
  link: `<svg ${A}><path d="M10 14a4.5 4.5 0 0 0 6.4 0l3-3a4.5 4.5 0 0 0-6.4-6.4l-1.2 1.2"/><path d="M14 10a4.5 4.5 0 0 0-6.4 0l-3 3a4.5 4.5 0 0 0 6.4 6.4l1.2-1.2"/></svg>`,
  close: `<svg ${A}><path d="M6 6l12 12"/><path d="M18 6L6 18"/></svg>`,
  plus: `<svg ${A}><path d="M12 5v14"/><path d="M5 12h14"/></svg>`,
  enter: `<svg ${A}><path d="M14 4h4a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2h-4"/><path d="M10 16l4-4-4-4"/><path d="M14 12H3.5"/></svg>`,
  speaker: `<svg ${A}><path d="M4 9.5h3.5L12 5.5v13l-4.5-4H4z"/><path d="M16 9a4 4 0 0 1 0 6"/><path d="M18.5 6.5a7.5 7.5 0 0 1 0 11"/></svg>`,
  chat: `<svg ${A}><path d="M4 5h16a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H9l-5 4v-4a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1z"/><path d="M8 10h8"/><path d="M8 13h5"/></svg>`,
  screen: `<svg ${A}><rect x="2.5" y="4" width="19" height="13" rx="1.5"/><path d="M8 21h8"/><path d="M12 17v4"/><path d="M12 13.5V8"/><path d="M9.5 10.5L12 8l2.5 2.5"/></svg>`,
  settings: `<svg ${A}><circle cx="12" cy="12" r="3"/><path d="M19.4 15a1.7 1.7 0 0 0 .3 1.8l.1.1a2 2 0 1 1-2.8 2.8l-.1-.1a1.7 1.7 0 0 0-1.8-.3 1.7 1.7 0 0 0-1 1.5V21a2 2 0 1 1-4 0v-.1a1.7 1.7 0 0 0-1.1-1.5 1.7 1.7 0 0 0-1.8.3l-.1.1a2 2 0 1 1-2.8-2.8l.1-.1a1.7 1.7 0 0 0 .3-1.8 1.7 1.7 0 0 0-1.5-1H3a2 2 0 1 1 0-4h.1a1.7 1.7 0 0 0 1.5-1.1 1.7 1.7 0 0 0-.3-1.8l-.1-.1a2 2 0 1 1 2.8-2.8l.1.1a1.7 1.7 0 0 0 1.8.3H9a1.7 1.7 0 0 0 1-1.5V3a2 2 0 1 1 4 0v.1a1.7 1.7 0 0 0 1 1.5 1.7 1.7 0 0 0 1.8-.3l.1-.1a2 2 0 1 1 2.8 2.8l-.1.1a1.7 1.7 0 0 0-.3 1.8V9a1.7 1.7 0 0 0 1.5 1H21a2 2 0 1 1 0 4h-.1a1.7 1.7 0 0 0-1.5 1z"/></svg>`,
  hand: `<svg ${A}><path d="M8 13V5.5a1.5 1.5 0 0 1 3 0V11"/><path d="M11 10V4a1.5 1.5 0 0 1 3 0v6"/><path d="M14 10V5.5a1.5 1.5 0 0 1 3 0V14"/><path d="M8 12.5l-1.6-1.7a1.5 1.5 0 0 0-2.2 2l3.3 4.2A6 6 0 0 0 12.2 19H13a4 4 0 0 0 4-4v-1"/></svg>`,
  alert: `<svg ${A}><circle cx="12" cy="12" r="9.5"/><path d="M12 7.5v5.5"/><path d="M12 16.5v.01"/></svg>`,
  fullscreen: `<svg ${A}><path d="M4 9V4h5"/><path d="M20 9V4h-5"/><path d="M4 15v5h5"/><path d="M20 15v5h-5"/></svg>`,
  speakerOff: `<svg ${A}><path d="M4 9.5h3.5L12 5.5v13l-4.5-4H4z"/><path d="M16 9.5l5 5"/><path d="M21 9.5l-5 5"/></svg>`,
};

/** @typedef {keyof typeof ICONS} IconName */

/**
 * Put icon `name` into `el` (replacing what was there).
 * @param {Element} el
 * @param {IconName} name
 */
export function setIcon(el, name) {
  if (el.getAttribute('data-icon-now') === name) return;
  el.innerHTML = ICONS[name];
  el.setAttribute('data-icon-now', name);
}

/** Fill every `[data-icon]` element under `root` with its icon. @param {ParentNode} [root] */
export function applyIcons(root = document) {
  for (const el of root.querySelectorAll('[data-icon]')) {
    const name = el.getAttribute('data-icon');
    if (name && name in ICONS) setIcon(el, /** @type {IconName} */ (name));
  }
}
