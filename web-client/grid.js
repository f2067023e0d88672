// @ts-check
/**
 * The video grid: one tile per participant (the local one included), laid
 * out as a CSS grid whose column count depends on the number of tiles, with
 * 16:9 tiles as large as the stage allows and no scrolling.
 *
 * A tile is `<div class="tile" data-participant-id="…">` holding a
 * `<video autoplay playsinline>` (remote tiles are not muted: the video
 * element plays the participant's audio too), an initials avatar shown when
 * there is no video, and a name plate. The local tile has
 * `data-local="true"`, a muted, mirrored video.
 * @module grid
 */

import { setIcon } from './icons.js';

/**
 * Columns for `n` tiles on a landscape stage: 1→1, 2→2, 3–4→2, 5–9→3,
 * 10–16→4, 17–25→5, then as square as possible.
 * @param {number} n
 * @returns {number}
 */
export function columnsFor(n) {
  if (n <= 1) return 1;
  if (n <= 4) return 2;
  if (n <= 9) return 3;
  if (n <= 16) return 4;
  if (n <= 25) return 5;
  return Math.ceil(Math.sqrt(n));
}

/**
 * Columns that give the largest 16:9 tiles on a stage of `w`×`h` (used on
 * tall, narrow screens, where the landscape rule makes tiny tiles).
 * @param {number} n
 * @param {number} w
 * @param {number} h
 * @param {number} gap
 * @returns {number}
 */
export function bestColumns(n, w, h, gap) {
  let best = 1;
  let bestWidth = 0;
  for (let cols = 1; cols <= Math.max(1, n); cols++) {
    const rows = Math.ceil(n / cols);
    const width = Math.min((w - gap * (cols - 1)) / cols, ((h - gap * (rows - 1)) / rows) * 16 / 9);
    if (width > bestWidth + 0.5) { best = cols; bestWidth = width; }
  }
  return best;
}

/**
 * Up to two characters standing for a name: the first two characters of a
 * Japanese or Chinese name's first word (山田 太郎 → 山田), or the initials
 * of the first two words otherwise (Taro Yamada → TY).
 * @param {string} name
 * @returns {string}
 */
export function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return '?';
  const first = Array.from(words[0]);
  if (/[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]/.test(words[0])) return first.slice(0, 2).join('');
  const second = words.length > 1 ? Array.from(words[1])[0] : (first[1] ?? '');
  return (first[0] + second).toUpperCase();
}

const AVATAR_COLORS = ['#3b5b86', '#4a6f5c', '#6f5a86', '#86643b', '#3b7386', '#86493b', '#56608a', '#5c7a3b'];

/**
 * A calm background colour for a participant's initials, the same for the
 * same id everywhere on the page.
 * @param {string} id
 * @returns {string}
 */
export function avatarColor(id) {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return AVATAR_COLORS[h % AVATAR_COLORS.length];
}

/**
 * @typedef {object} TileState
 * @property {string} name
 * @property {string} label  what the name plate says (the name, or "You")
 * @property {MediaStream | null} stream
 * @property {boolean} showVideo  false: show the initials
 * @property {boolean} audioMuted
 * @property {string} micMutedText  accessible text of the muted-microphone mark
 * @property {'good' | 'fair' | 'poor' | null} [quality]  connection quality, when known
 * @property {string} [qualityText]  its accessible text
 * @property {string | null} [stalledText]  video expected but stalled: this is said instead of a frozen picture
 */

const GAP_PX = 8;

/** Sizes sent in `view` are multiples of this many device pixels (small resizes change nothing). */
const SIZE_STEP = 16;

/**
 * A size as `view` sends it: CSS pixels × devicePixelRatio, rounded to a
 * multiple of 16 device pixels; [0, 0] for something too small to see.
 * @param {number} cssW
 * @param {number} cssH
 * @param {number} dpr  window.devicePixelRatio
 * @returns {[number, number]}
 */
export function deviceSize(cssW, cssH, dpr) {
  const q = (/** @type {number} */ v) => Math.max(0, Math.round((v * (dpr > 0 ? dpr : 1)) / SIZE_STEP) * SIZE_STEP);
  const w = q(cssW);
  const h = q(cssH);
  return w > 0 && h > 0 ? [w, h] : [0, 0];
}

/**
 * The part of a `w`×`h` box that a picture of aspect ratio `aspect` covers
 * when it is fitted whole (`object-fit: contain`).
 * @param {number} w
 * @param {number} h
 * @param {number} aspect  width / height
 * @returns {[number, number]}
 */
export function containedSize(w, h, aspect) {
  if (!(aspect > 0) || w <= 0 || h <= 0) return [Math.max(0, w), Math.max(0, h)];
  return w / h > aspect ? [h * aspect, h] : [w, w / aspect];
}

/**
 * Tiles per page: 9 on ordinary screens, 16 on large ones, 4 on phones;
 * `?tiles=N` (1–49) in the page address overrides it.
 * @param {number} width  of the window
 * @param {string | null} override
 * @returns {number}
 */
export function pageSizeFor(width, override) {
  const n = Number(override);
  if (Number.isInteger(n) && n >= 1 && n <= 49) return n;
  if (width < 600) return 4;
  if (width >= 1600) return 16;
  return 9;
}

export class Grid {
  /** @type {Map<string, HTMLElement>} */
  #tiles = new Map();
  #grid;
  #stage;
  #onAutoplayBlocked;
  #page = 0;
  #pages = 1;
  /** @type {string | null} */
  #override;
  /** @type {(visible: string[], page: number, pages: number) => void} */
  #onView = () => {};
  /** @type {() => void} */
  #onLayout = () => {};
  #lastView = '';
  /** The speaker remote audio plays on (`setSinkId`); '' is the default. */
  #sinkId = '';
  /** Tiles are numbered as they come: the order of those nobody ranks. */
  #seq = 0;
  /** Keys ranked first by the last setOrder. @type {string[]} */
  #first = [];

  /**
   * @param {HTMLElement} grid  the `#grid` element
   * @param {HTMLElement} stage  the element the grid must fit in
   * @param {() => void} onAutoplayBlocked  a remote video could only start muted
   * @param {string | null} [pageSizeOverride]  `?tiles=` of the page address
   */
  constructor(grid, stage, onAutoplayBlocked, pageSizeOverride = null) {
    this.#grid = grid;
    this.#stage = stage;
    this.#onAutoplayBlocked = onAutoplayBlocked;
    this.#override = pageSizeOverride;
    new ResizeObserver(() => this.layout()).observe(stage);
  }

  /**
   * Called with the keys of the tiles on the page shown whenever they change
   * (and with the page number and count).
   * @param {(visible: string[], page: number, pages: number) => void} fn
   */
  onView(fn) { this.#onView = fn; }

  /**
   * Called after every layout (tile sizes may have changed: a resize, a tile
   * more or less, another page).
   * @param {() => void} fn
   */
  onLayout(fn) { this.#onLayout = fn; }

  /**
   * The remote tiles on the page shown, with their size in CSS pixels.
   * @returns {{key: string, width: number, height: number}[]}
   */
  shownSizes() {
    const out = [];
    for (const [key, tile] of this.#tiles) {
      if (tile.hidden || tile.dataset.local === 'true') continue;
      const r = tile.getBoundingClientRect();
      out.push({ key, width: r.width, height: r.height });
    }
    return out;
  }

  /**
   * Plays remote audio on output device `sinkId` (where the browser can).
   * @param {string} sinkId
   */
  async setSinkId(sinkId) {
    this.#sinkId = sinkId;
    for (const tile of this.#tiles.values()) {
      if (tile.dataset.local === 'true') continue;
      await this.#applySink(/** @type {HTMLVideoElement} */ (tile.querySelector('video')));
    }
  }

  /** @param {HTMLVideoElement} video */
  async #applySink(video) {
    const v = /** @type {HTMLVideoElement & {setSinkId?: (id: string) => Promise<void>, sinkId?: string}} */ (video);
    if (typeof v.setSinkId !== 'function' || v.sinkId === this.#sinkId) return;
    await v.setSinkId(this.#sinkId).catch((err) => console.warn('kaigi: setSinkId', err));
  }

  /**
   * Tiles per page from now on (1–49; other values: the screen's default).
   * @param {number} n
   */
  setPageSize(n) {
    this.#override = String(n);
    this.layout();
  }

  /** Shows page `page` (clamped). @param {number} page */
  showPage(page) {
    this.#page = page;
    this.layout();
  }

  /** @returns {{page: number, pages: number}} */
  get paging() { return { page: this.#page, pages: this.#pages }; }

  /** @returns {number} */
  get size() { return this.#tiles.size; }

  /**
   * Add the tile of `key` or update it.
   * @param {string} key  the participant id
   * @param {TileState} state
   * @param {{local?: boolean}} [opts]
   */
  upsert(key, state, opts = {}) {
    let tile = this.#tiles.get(key);
    if (!tile) {
      tile = this.#createTile(key, !!opts.local);
      tile.dataset.seq = String(this.#seq++);
      this.#tiles.set(key, tile);
      this.#grid.append(tile);
      this.#applyOrder();
      this.layout();
    }
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    if (video.srcObject !== state.stream) {
      video.srcObject = state.stream;
      if (state.stream) this.#play(video);
      if (!opts.local) void this.#applySink(video);
    }
    tile.dataset.video = state.stalledText ? 'stalled' : state.showVideo ? 'on' : 'off';
    const q = /** @type {HTMLElement} */ (tile.querySelector('.quality'));
    q.hidden = !state.quality;
    q.dataset.quality = state.quality ?? '';
    q.title = state.qualityText ?? '';
    /** @type {HTMLElement} */ (q.querySelector('.visually-hidden')).textContent = state.qualityText ?? '';
    /** @type {HTMLElement} */ (tile.querySelector('.stalled')).textContent = state.stalledText ?? '';
    tile.setAttribute('aria-label', state.label);
    const avatar = /** @type {HTMLElement} */ (tile.querySelector('.avatar span'));
    avatar.textContent = initials(state.name);
    /** @type {HTMLElement} */ (tile.querySelector('.name')).textContent = state.label;
    const mic = /** @type {HTMLElement} */ (tile.querySelector('.mic-state'));
    mic.hidden = !state.audioMuted;
    mic.title = state.micMutedText;
    /** @type {HTMLElement} */ (mic.querySelector('.visually-hidden')).textContent = state.micMutedText;
  }

  /**
   * Marks the tile of the active speaker (none: `null`).
   * @param {string | null} key
   */
  setSpeaker(key) {
    for (const [k, tile] of this.#tiles) tile.classList.toggle('is-speaking', k === key);
  }

  /**
   * Tiles of `first` come first, in that order; the others keep theirs after.
   * @param {string[]} first
   */
  setOrder(first) {
    this.#first = first;
    this.#applyOrder();
    this.layout();
  }

  /** Ranked keys first, then every other tile in the order it came. */
  #applyOrder() {
    const rank = new Map(this.#first.map((k, i) => [k, i]));
    const rest = [...this.#tiles.entries()]
      .filter(([k]) => !rank.has(k))
      .sort((a, b) => Number(a[1].dataset.seq) - Number(b[1].dataset.seq));
    let next = this.#first.length;
    for (const [k, tile] of this.#tiles) if (rank.has(k)) tile.style.order = String(rank.get(k));
    for (const [, tile] of rest) tile.style.order = String(next++);
  }

  /** @param {string} key */
  remove(key) {
    const tile = this.#tiles.get(key);
    if (!tile) return;
    const video = tile.querySelector('video');
    if (video) video.srcObject = null;
    tile.remove();
    this.#tiles.delete(key);
    this.layout();
  }

  /** Remove every tile. */
  clear() {
    for (const key of [...this.#tiles.keys()]) this.remove(key);
  }

  /** @returns {string[]} */
  keys() { return [...this.#tiles.keys()]; }

  /** Start remote videos with sound after the user allowed it with a click. */
  unmuteAll() {
    for (const tile of this.#tiles.values()) {
      if (tile.dataset.local === 'true') continue;
      const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
      video.muted = false;
      video.play().catch(() => {});
    }
  }

  /** Recompute the page, columns, rows and tile size for the current count and stage size. */
  layout() {
    // Tiles in their order (see setOrder), then paged.
    const ordered = [...this.#tiles.entries()]
      .sort((a, b) => (Number(a[1].style.order) || 0) - (Number(b[1].style.order) || 0));
    const size = pageSizeFor(window.innerWidth, this.#override);
    this.#pages = Math.max(1, Math.ceil(ordered.length / size));
    this.#page = Math.min(Math.max(0, this.#page), this.#pages - 1);
    const shown = ordered.slice(this.#page * size, (this.#page + 1) * size);
    const shownKeys = new Set(shown.map(([k]) => k));
    for (const [k, tile] of ordered) tile.hidden = !shownKeys.has(k);
    const view = `${[...shownKeys].join(',')}|${this.#page}|${this.#pages}`;
    if (view !== this.#lastView) {
      this.#lastView = view;
      this.#onView([...shownKeys], this.#page, this.#pages);
    }
    const n = Math.max(1, shown.length);
    const w = this.#stage.clientWidth;
    const h = this.#stage.clientHeight;
    const cols = w > 0 && h > w ? bestColumns(n, w, h, GAP_PX) : Math.min(columnsFor(n), n);
    const rows = Math.ceil(n / cols);
    const style = this.#grid.style;
    style.setProperty('--cols', String(cols));
    style.setProperty('--rows', String(rows));
    if (w > 0 && h > 0) {
      const tileW = Math.floor(Math.min(
        (w - GAP_PX * (cols - 1)) / cols,
        ((h - GAP_PX * (rows - 1)) / rows) * 16 / 9,
      ));
      style.setProperty('--tile-w', `${Math.max(0, tileW)}px`);
    }
    this.#grid.dataset.count = String(shown.length);
    this.#grid.dataset.cols = String(cols);
    this.#onLayout();
  }

  /**
   * @param {string} key
   * @param {boolean} local
   * @returns {HTMLElement}
   */
  #createTile(key, local) {
    const tile = document.createElement('div');
    tile.className = 'tile';
    tile.dataset.participantId = key;
    tile.setAttribute('role', 'group');
    tile.style.setProperty('--avatar-bg', avatarColor(key));
    if (local) tile.dataset.local = 'true';

    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.setAttribute('playsinline', '');
    if (local) {
      video.muted = true;
      video.setAttribute('muted', '');
    }

    const avatar = document.createElement('div');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    avatar.append(document.createElement('span'));

    const plate = document.createElement('div');
    plate.className = 'nameplate';
    const mic = document.createElement('span');
    mic.className = 'mic-state';
    mic.hidden = true;
    const micIcon = document.createElement('span');
    micIcon.className = 'icon';
    setIcon(micIcon, 'micOff');
    const micText = document.createElement('span');
    micText.className = 'visually-hidden';
    mic.append(micIcon, micText);
    const name = document.createElement('span');
    name.className = 'name';
    const quality = document.createElement('span');
    quality.className = 'quality';
    quality.hidden = true;
    for (let i = 1; i <= 3; i++) {
      const bar = document.createElement('span');
      bar.className = `bar bar-${i}`;
      bar.setAttribute('aria-hidden', 'true');
      quality.append(bar);
    }
    const qualityText = document.createElement('span');
    qualityText.className = 'visually-hidden';
    quality.append(qualityText);
    plate.append(mic, name, quality);

    const stalled = document.createElement('div');
    stalled.className = 'stalled';
    stalled.setAttribute('role', 'status');

    tile.append(video, avatar, stalled, plate);
    return tile;
  }

  /** @param {HTMLVideoElement} video */
  #play(video) {
    video.play().catch((err) => {
      if (err && err.name === 'NotAllowedError' && !video.muted) {
        // Autoplay with sound refused: play muted and ask for a click.
        video.muted = true;
        video.play().catch(() => {});
        this.#onAutoplayBlocked();
      }
    });
  }
}
