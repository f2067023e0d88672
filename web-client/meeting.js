// @ts-check
/**
 * The meeting page (`/r/{room}`): pre-join screen, the meeting itself,
 * the "you left" and error screens. It drives a {@link KaigiSession}
 * (protocol.js) and draws what it reports; every string comes from i18n.js.
 *
 * Test hooks: `window.kaigi = {publishPc, subscribePc, participantId, ws, setTilesPerPage(n),
 * view, cameraLayers, localPort(pc), receivedVideo(id)}` (getters, always current; see
 * web-client/README.md) and `document.body.dataset.state`, one of
 * `prejoin`, `joining`, `waiting` (in the waiting room), `joined`, `left`, `error`.
 * @module meeting
 */

import { t, hasKey, initStrings, bindLanguageSelect } from './i18n.js';
import { KaigiSession, signalingUrl, isValidRoomName } from './protocol.js';
import { openLocalMedia, stopStream, LevelMeter, openDevice, listDevices } from './media.js';
import { Grid, deviceSize, containedSize } from './grid.js';
import { Notices } from './notices.js';
import { renderPeopleList, renderLobbyList } from './people.js';
import { applyIcons, setIcon } from './icons.js';
import { QualityMonitor, selectedLocalPort, receivedVideo } from './quality.js';

/** @typedef {import('./i18n.js').StringKey} StringKey */
/** @typedef {'prejoin' | 'joining' | 'waiting' | 'joined' | 'left' | 'error'} PageState */
/**
 * @typedef {object} ErrorView
 * @property {StringKey} heading
 * @property {StringKey} text
 * @property {StringKey | null} [extra]  a second sentence (why the socket closed)
 * @property {string} [details]  untranslated detail (server message, close code)
 * @property {'retry' | 'reconnect' | 'signin'} action
 */

const NAME_KEY = 'kaigi.name';
const LAYOUT_KEY = 'kaigi.layout';

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from room.html`);
  return /** @type {T} */ (el);
}

const ui = {
  roomName: $('room-name'),
  peopleCount: $('people-count'),
  copyLink: /** @type {HTMLButtonElement} */ ($('copy-link')),
  lang: /** @type {HTMLSelectElement} */ ($('lang')),
  previewVideo: /** @type {HTMLVideoElement} */ ($('preview-video')),
  previewOffText: $('preview-off-text'),
  preMic: /** @type {HTMLButtonElement} */ ($('pre-mic')),
  preCam: /** @type {HTMLButtonElement} */ ($('pre-cam')),
  meter: $('mic-meter'),
  mediaProblem: $('media-problem'),
  joinForm: /** @type {HTMLFormElement} */ ($('join-form')),
  nameInput: /** @type {HTMLInputElement} */ ($('name-input')),
  nameError: $('name-error'),
  signedInAs: $('signed-in-as'),
  passwordRow: $('password-row'),
  passwordInput: /** @type {HTMLInputElement} */ ($('password-input')),
  passwordError: $('password-error'),
  joinBtn: /** @type {HTMLButtonElement} */ ($('join-btn')),
  joinStatus: $('join-status'),
  stage: $('stage'),
  grid: $('grid'),
  peoplePanel: $('people-panel'),
  peopleHeading: $('people-heading'),
  peopleList: $('people-list'),
  peopleClose: /** @type {HTMLButtonElement} */ ($('people-close')),
  micBtn: /** @type {HTMLButtonElement} */ ($('mic-btn')),
  camBtn: /** @type {HTMLButtonElement} */ ($('cam-btn')),
  peopleBtn: /** @type {HTMLButtonElement} */ ($('people-btn')),
  peopleBadge: $('people-badge'),
  leaveBtn: /** @type {HTMLButtonElement} */ ($('leave-btn')),
  leftHeading: $('left-heading'),
  leftText: $('left-text'),
  waitingHeading: $('waiting-heading'),
  waitingLeave: /** @type {HTMLButtonElement} */ ($('waiting-leave')),
  handBtn: /** @type {HTMLButtonElement} */ ($('hand-btn')),
  shareBtn: /** @type {HTMLButtonElement} */ ($('share-btn')),
  presentation: $('presentation'),
  presentationVideo: /** @type {HTMLVideoElement} */ ($('presentation-video')),
  presentationLabel: $('presentation-label'),
  gridArea: $('grid-area'),
  reconnectBanner: $('reconnect-banner'),
  modShares: /** @type {HTMLInputElement} */ ($('mod-shares')),
  devicesBtn: /** @type {HTMLButtonElement} */ ($('devices-btn')),
  devicesDialog: /** @type {HTMLDialogElement} */ ($('devices-dialog')),
  devCamera: /** @type {HTMLSelectElement} */ ($('dev-camera')),
  devMic: /** @type {HTMLSelectElement} */ ($('dev-mic')),
  devSpeaker: /** @type {HTMLSelectElement} */ ($('dev-speaker')),
  devLayout: /** @type {HTMLSelectElement} */ ($('dev-layout')),
  devicesProblem: $('devices-problem'),
  pager: $('pager'),
  pagePrev: /** @type {HTMLButtonElement} */ ($('page-prev')),
  pageNext: /** @type {HTMLButtonElement} */ ($('page-next')),
  pageInfo: $('page-info'),
  chatBtn: /** @type {HTMLButtonElement} */ ($('chat-btn')),
  chatBadge: $('chat-badge'),
  chatPanel: $('chat-panel'),
  chatClose: /** @type {HTMLButtonElement} */ ($('chat-close')),
  chatList: $('chat-list'),
  chatEmpty: $('chat-empty'),
  chatForm: /** @type {HTMLFormElement} */ ($('chat-form')),
  chatInput: /** @type {HTMLTextAreaElement} */ ($('chat-input')),
  lobbySection: $('lobby-section'),
  lobbyList: $('lobby-list'),
  modSection: $('mod-section'),
  modLock: /** @type {HTMLInputElement} */ ($('mod-lock')),
  modLobby: /** @type {HTMLInputElement} */ ($('mod-lobby')),
  modEnd: /** @type {HTMLButtonElement} */ ($('mod-end')),
  rejoinBtn: /** @type {HTMLButtonElement} */ ($('rejoin-btn')),
  errorHeading: $('error-heading'),
  errorText: $('error-text'),
  errorDetails: $('error-details'),
  errorAction: /** @type {HTMLButtonElement} */ ($('error-action')),
  notices: $('notices'),
};

const room = roomFromPath(location.pathname);
const token = tokenFromUrl();
/** Arrived from a node that stopped answering (`#rejoin=<name>&from=<origin>`): join at once. */
const failedOver = (() => {
  const h = new URLSearchParams(location.hash.slice(1));
  const name = h.get('rejoin');
  return name ? { name, from: h.get('from') ?? '', at: Date.now() } : null;
})();

const app = {
  /** @type {KaigiSession | null} */
  session: null,
  /** @type {MediaStream | null} */
  stream: null,
  /** @type {StringKey | null} */
  mediaProblem: null,
  /** @type {Promise<void>} */
  mediaReady: Promise.resolve(),
  mediaStarting: false,
  /** @type {LevelMeter | null} */
  meter: null,
  micMuted: false,
  camMuted: false,
  name: '',
  /** The room's password, once the server asked for it. */
  password: '',
  /** Why the password field shows. @type {StringKey | null} */
  passwordAsk: null,
  /** The directory name of a signed-in member of staff (the server uses it). @type {string | null} */
  staffName: null,
  /** @type {ErrorView | null} */
  error: null,
  /** Why the session ended, when the server ended it. @type {{reason: string, by: string} | null} */
  ended: null,
  /** Chat messages that arrived while the chat was closed. */
  unread: 0,
  /** Whether we moderated at the last update (to announce a hand-over once). */
  wasModerator: false,
  /** Tiles side by side, or the active speaker large. @type {'grid' | 'speaker'} */
  layout: /** @type {'grid' | 'speaker'} */ ((() => {
    try { return localStorage.getItem('kaigi.layout') === 'speaker' ? 'speaker' : 'grid'; } catch { return 'grid'; }
  })()),
  /** While the connection is being restored: the token to resume with, the last moment to try, since when, the other nodes. @type {{token: string, until: number, since: number, nodes: string[], timer?: ReturnType<typeof setTimeout>} | null} */
  reconnect: null,
  /** A peer connection went `disconnected`: reconnect if it is still so then. @type {ReturnType<typeof setTimeout> | undefined} */
  stallTimer: undefined,
};

/** How long a dropped participant keeps trying to come back (the server waits 30 s). */
const RECONNECT_FOR_MS = 28_000;
/** Between attempts. */
const RECONNECT_EVERY_MS = 1_500;
/** Cluster mode: how long this node may stay unreachable before the page rejoins on another. */
const FAILOVER_AFTER_MS = 3_000;
/** How long a rejoin waits for the cluster to give up on the node it left. */
const REJOIN_FOR_MS = 30_000;
/** A peer connection `disconnected` this long is given up and the session resumed afresh. */
const STALL_MS = 6_000;

/** Connection quality per remote participant, and ours. */
const quality = {
  /** @type {Map<string, import('./quality.js').RemoteQuality>} */
  remote: new Map(),
  /** @type {import('./quality.js').Quality | null} */
  own: null,
};
const monitor = new QualityMonitor(() => app.session, (remote, own) => {
  const wasPoor = quality.own === 'poor';
  quality.remote = remote;
  quality.own = own;
  if (own === 'poor' && !wasPoor && !notices.has('notice.ownPoor')) notices.show('notice.ownPoor');
  renderLocalTile();
  for (const id of remote.keys()) renderTile(id);
});

const grid = new Grid(ui.grid, ui.gridArea, onAutoplayBlocked, new URLSearchParams(location.search).get('tiles'));
const notices = new Notices(ui.notices);

/** The hooks end-to-end tests read. */
const hooks = {};
Object.defineProperties(hooks, {
  publishPc: { enumerable: true, get: () => app.session?.publishPc ?? null },
  subscribePc: { enumerable: true, get: () => app.session?.subscribePc ?? null },
  participantId: { enumerable: true, get: () => app.session?.participantId ?? null },
  ws: { enumerable: true, get: () => app.session?.ws ?? null },
  // Benchmarks change the page size without reloading.
  setTilesPerPage: { enumerable: true, value: (/** @type {number} */ n) => grid.setPageSize(n) },
  // The last `view` sent: {hidden, sizes}.
  view: { enumerable: true, get: () => lastView },
  // What the server asks of our camera: {wanted, max} (video_wanted, video_layers).
  cameraLayers: { enumerable: true, get: () => app.session?.cameraLayers ?? null },
  // The local port of a connection's selected candidate pair ('publish' or 'subscribe').
  localPort: {
    enumerable: true,
    value: (/** @type {'publish' | 'subscribe'} */ which) => selectedLocalPort(which === 'publish' ? app.session?.publishPc ?? null : app.session?.subscribePc ?? null),
  },
  // What arrives of participant `id`'s camera: {frameWidth, frameHeight, framesDecoded} or null.
  receivedVideo: { enumerable: true, value: (/** @type {string} */ id) => (app.session ? receivedVideo(app.session, id) : Promise.resolve(null)) },
});
/** @type {any} */ (window).kaigi = hooks;

// ----- start-up -----

initStrings();
bindLanguageSelect(ui.lang);
applyIcons();
ui.roomName.textContent = room;
try { ui.nameInput.value = localStorage.getItem(NAME_KEY) ?? ''; } catch { /* storage disabled */ }

ui.joinForm.addEventListener('submit', (ev) => { ev.preventDefault(); join(); });
ui.nameInput.addEventListener('input', () => { ui.nameError.hidden = true; ui.nameInput.removeAttribute('aria-invalid'); });
ui.preMic.addEventListener('click', () => toggleMute('audio'));
ui.preCam.addEventListener('click', () => toggleMute('video'));
ui.micBtn.addEventListener('click', () => toggleMute('audio'));
ui.camBtn.addEventListener('click', () => toggleMute('video'));
ui.leaveBtn.addEventListener('click', leave);
ui.rejoinBtn.addEventListener('click', rejoin);
ui.errorAction.addEventListener('click', () => {
  if (app.error?.action === 'signin') location.assign(`/?next=${encodeURIComponent(location.pathname)}`);
  else void retry();
});
ui.copyLink.addEventListener('click', copyLink);
ui.peopleBtn.addEventListener('click', () => setPeopleOpen(ui.peopleBtn.getAttribute('aria-expanded') !== 'true'));
ui.peopleClose.addEventListener('click', () => { setPeopleOpen(false); ui.peopleBtn.focus(); });
ui.chatBtn.addEventListener('click', () => setChatOpen(ui.chatBtn.getAttribute('aria-expanded') !== 'true'));
ui.chatClose.addEventListener('click', () => { setChatOpen(false); ui.chatBtn.focus(); });
ui.chatForm.addEventListener('submit', (ev) => { ev.preventDefault(); sendChat(); });
ui.chatInput.addEventListener('keydown', (ev) => {
  // Enter sends, Shift+Enter breaks the line; never while an IME is composing (Japanese input).
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); sendChat(); }
});
ui.handBtn.addEventListener('click', () => {
  const s = app.session;
  if (!s) return;
  s.setHand(!s.handRaised);
  renderControls();
  renderPeople();
});
ui.waitingLeave.addEventListener('click', leave);
ui.devicesBtn.addEventListener('click', () => { void openDevices(); });
ui.devCamera.addEventListener('change', () => { void switchDevice('video', ui.devCamera.value); });
ui.devMic.addEventListener('change', () => { void switchDevice('audio', ui.devMic.value); });
ui.devSpeaker.addEventListener('change', () => { void grid.setSinkId(ui.devSpeaker.value); });
ui.devLayout.addEventListener('change', () => {
  app.layout = ui.devLayout.value === 'speaker' ? 'speaker' : 'grid';
  try { localStorage.setItem(LAYOUT_KEY, app.layout); } catch { /* storage disabled */ }
  renderPresentation();
});
ui.pagePrev.addEventListener('click', () => grid.showPage(grid.paging.page - 1));
ui.pageNext.addEventListener('click', () => grid.showPage(grid.paging.page + 1));
grid.onView((visible, page, pages) => {
  ui.pager.hidden = pages <= 1;
  ui.pageInfo.textContent = t('grid.page', { page: page + 1, pages });
  ui.pagePrev.disabled = page === 0;
  ui.pageNext.disabled = page >= pages - 1;
  sendView();
});
// Tile sizes choose the layer the server sends: tell it when they change.
grid.onLayout(() => sendView());
new ResizeObserver(() => sendView()).observe(ui.presentation);
ui.presentationVideo.addEventListener('resize', () => sendView());
// A hidden tab shows no video at all.
document.addEventListener('visibilitychange', () => sendView());
// Phones have no screen to share: the button goes.
ui.shareBtn.hidden = !navigator.mediaDevices?.getDisplayMedia;
ui.shareBtn.addEventListener('click', () => { void toggleShare(); });
ui.modShares.addEventListener('change', () => app.session?.moderate('allow_shares', { allowed: ui.modShares.checked }));
ui.modLock.addEventListener('change', () => app.session?.moderate('lock', { locked: ui.modLock.checked }));
ui.modLobby.addEventListener('change', () => app.session?.moderate('lobby', { enabled: ui.modLobby.checked }));
ui.modEnd.addEventListener('click', () => {
  if (window.confirm(t('mod.endConfirm'))) app.session?.moderate('end');
});
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && !ui.peoplePanel.hidden && window.innerWidth < 900) {
    setPeopleOpen(false);
    ui.peopleBtn.focus();
  }
});
document.addEventListener('langchange', renderAll);
window.addEventListener('pagehide', () => app.session?.leave());
// Back from the back/forward cache the session is gone: start afresh.
window.addEventListener('pageshow', (ev) => { if (ev.persisted) location.reload(); });

if (isValidRoomName(room)) {
  setState('prejoin');
  startPreview();
  void loadStaff();
  if (failedOver) {
    const q = new URLSearchParams(location.search);
    q.delete('failover');
    history.replaceState(null, '', location.pathname + (q.size ? `?${q}` : ''));
    ui.nameInput.value = failedOver.name;
    join();
  }
} else {
  showError({ heading: 'error.heading', text: 'error.code.invalid_room', action: 'retry' });
}
renderAll();

// ----- state -----

/** @param {PageState} state */
function setState(state) {
  document.body.dataset.state = state;
  const joining = state === 'joining';
  ui.joinBtn.disabled = joining;
  ui.joinBtn.setAttribute('aria-busy', String(joining));
  ui.joinStatus.textContent = joining ? t('prejoin.joining') : '';
}

/** @returns {PageState} */
function state() {
  return /** @type {PageState} */ (document.body.dataset.state);
}

// ----- pre-join -----

function startPreview() {
  app.mediaStarting = true;
  app.mediaReady = acquireMedia().then(() => {
    app.mediaStarting = false;
    ui.previewVideo.srcObject = app.stream;
    startMeter();
    renderPrejoin();
    renderControls();
  });
}

async function acquireMedia() {
  const { stream, problem } = await openLocalMedia();
  app.stream = stream;
  app.mediaProblem = problem;
  for (const track of stream?.getTracks() ?? []) {
    track.enabled = !(track.kind === 'audio' ? app.micMuted : app.camMuted);
  }
}

function startMeter() {
  app.meter?.stop();
  app.meter = null;
  const fill = /** @type {HTMLElement} */ (ui.meter.querySelector('.meter-fill'));
  if (!app.stream || app.stream.getAudioTracks().length === 0) {
    fill.style.setProperty('--level', '0');
    return;
  }
  let lastAria = 0;
  app.meter = new LevelMeter(app.stream, (level) => {
    fill.style.setProperty('--level', app.micMuted ? '0' : level.toFixed(3));
    const now = performance.now();
    if (now - lastAria > 500) {
      lastAria = now;
      ui.meter.setAttribute('aria-valuenow', String(app.micMuted ? 0 : Math.round(level * 100)));
    }
  });
}

function stopMeter() {
  app.meter?.stop();
  app.meter = null;
}

async function join() {
  if (state() !== 'prejoin') return;
  const name = ui.nameInput.value.trim();
  if (!name) {
    ui.nameError.textContent = t('prejoin.nameRequired');
    ui.nameError.hidden = false;
    ui.nameInput.setAttribute('aria-invalid', 'true');
    ui.nameInput.focus();
    return;
  }
  if (app.passwordAsk) {
    const password = ui.passwordInput.value;
    if (!password) {
      ui.passwordInput.focus();
      return;
    }
    app.password = password;
  }
  app.name = name;
  if (!app.staffName) {
    try { localStorage.setItem(NAME_KEY, name); } catch { /* ignore */ }
  }
  setState('joining');
  await app.mediaReady;
  stopMeter();
  connect();
}

// ----- the session -----

/** @param {string} [resume]  resume token of the session that dropped */
function connect(resume) {
  app.session?.close(resume ? 4001 : 1000);
  app.error = null;
  if (!resume) grid.clear();
  const session = new KaigiSession({ url: signalingUrl(location), room, name: app.name, token, password: app.password || undefined, stream: app.stream, resume });
  app.session = session;
  session.setMuted('audio', app.micMuted);
  session.setMuted('video', app.camMuted);

  /**
   * @template {keyof import('./protocol.js').SessionEvents} K
   * @param {K} type
   * @param {(detail: import('./protocol.js').SessionEvents[K]) => void} fn
   */
  const on = (type, fn) => session.addEventListener(type, (ev) => {
    if (app.session === session) fn(/** @type {CustomEvent} */ (ev).detail);
  });

  on('welcome', ({ participants, resumed }) => {
    sentView = ''; // a new session shows everyone until told otherwise
    monitor.start();
    if (app.reconnect) {
      clearTimeout(app.reconnect.timer);
      app.reconnect = null;
      ui.reconnectBanner.hidden = true;
      notices.show('notice.reconnected');
      // Tiles of people who left meanwhile go; the rest are redrawn below.
      for (const id of grid.keys()) if (id !== session.participantId && !participants.some((p) => p.id === id)) grid.remove(id);
    }
    document.body.dataset.resumed = String(resumed);
    setState('joined');
    app.unread = 0;
    renderChat(true);
    sharers.clear();
    for (const p of participants) if (p.sharing) sharers.add(p.id);
    grid.clear();
    renderLocalTile();
    for (const p of participants) renderTile(p.id);
    renderPeople();
    renderControls();
    renderPresentation();
    renderSpeakers();
    sendView();
    setPeopleOpen(window.innerWidth >= 1200);
    if (document.activeElement === document.body || document.activeElement === ui.joinBtn) ui.micBtn.focus();
  });
  on('participantjoined', ({ participant }) => {
    renderTile(participant.id);
    renderSpeakers();
    renderPeople();
    notices.show('notice.joined', { name: participant.name });
  });
  on('participantleft', ({ id, participant }) => {
    grid.remove(id);
    sharers.delete(id);
    renderPresentation();
    renderPeople();
    if (participant) notices.show('notice.left', { name: participant.name });
  });
  on('participantupdated', ({ participant }) => {
    const wasSharing = sharers.has(participant.id);
    if (participant.sharing && !wasSharing) notices.show('notice.sharing', { name: participant.name });
    if (participant.sharing) sharers.add(participant.id); else sharers.delete(participant.id);
    renderPresentation();
    const before = shownHands.has(participant.id);
    if (participant.hand_raised && !before) notices.show('notice.handRaised', { name: participant.name });
    if (participant.hand_raised) shownHands.add(participant.id); else shownHands.delete(participant.id);
    renderTile(participant.id);
    renderPeople();
  });
  on('self', ({ moderator }) => {
    renderPresentation();
    if (moderator && !app.wasModerator) notices.show('notice.moderator');
    app.wasModerator = moderator;
    renderControls();
    renderPeople();
  });
  on('activespeaker', () => { renderSpeakers(); renderPresentation(); });
  on('chat', () => {
    if (ui.chatPanel.hidden) app.unread += 1;
    renderChat(false);
  });
  on('live', () => renderPeople());
  on('roomstate', ({ state: rs }) => {
    notices.show(rs.locked ? 'notice.locked' : 'notice.unlocked');
    renderPeople();
  });
  on('mutedbymoderator', ({ kind, by }) => {
    if (kind === 'audio') app.micMuted = true; else app.camMuted = true;
    notices.show(kind === 'audio' ? 'notice.mutedByModerator' : 'notice.videoOffByModerator', { by });
    renderControls();
    renderLocalTile();
    renderPeople();
  });
  on('lobbywaiting', () => {
    setState('waiting');
    ui.waitingHeading.focus();
  });
  on('lobbyrequest', ({ waiter }) => {
    notices.show('notice.lobbyRequest', { name: waiter.name });
    renderPeople();
  });
  on('lobbyleft', () => renderPeople());
  on('redirect', ({ url }) => {
    // Another node of the cluster hosts the room: the same page there (its
    // link, token included); only a kaigi page path is followed.
    let to;
    try { to = new URL(url); } catch { return; }
    if (!/^https?:$/.test(to.protocol) || !to.pathname.startsWith('/r/')) return;
    if (failedOver && to.origin === failedOver.from && Date.now() - failedOver.at < REJOIN_FOR_MS) {
      // Sent back to the node we fled: the cluster has not noticed yet. Ask again.
      setTimeout(() => { if (state() === 'joining') connect(); }, 1_000);
      return;
    }
    to.search = location.search;
    to.hash = location.hash;
    location.assign(to.href);
  });
  on('ended', ({ reason, by }) => {
    app.ended = { reason, by };
    endLocal();
  });
  on('media', ({ id }) => (id.endsWith('-screen') ? renderPresentation() : renderTile(id)));
  on('servererror', ({ code, message, fatal }) => {
    const text = errorKey(code);
    if (fatal && (code === 'password_required' || code === 'wrong_password' || (code === 'rate_limited' && app.passwordAsk))) {
      askPassword(code === 'password_required' ? 'prejoin.passwordNeeded'
        : code === 'wrong_password' ? 'prejoin.passwordWrong' : 'prejoin.passwordTooMany');
    } else if (fatal && code === 'sign_in_required') {
      showError({ heading: 'error.heading', text, action: 'signin' });
    } else if (fatal) {
      showError({ heading: 'error.heading', text, details: message || code, action: 'retry' });
    } else {
      notices.show(text, {}, { error: true, details: message });
    }
  });
  on('failure', ({ error }) => {
    notices.show('error.mediaFailed', {}, { error: true, details: error instanceof Error ? error.message : String(error) });
  });
  on('connectionstate', ({ state: s }) => {
    // Media lost: resume on a fresh connection (the server keeps our place).
    clearTimeout(app.stallTimer);
    if (s === 'failed') startReconnect();
    else if (s === 'disconnected') {
      app.stallTimer = setTimeout(() => {
        const pcs = [session.publishPc, session.subscribePc].filter((pc) => pc !== null);
        if (app.session === session && pcs.some((pc) => pc.connectionState === 'disconnected' || pc.connectionState === 'failed')) startReconnect();
      }, STALL_MS);
    }
  });
  on('closed', ({ code, reason, joined }) => {
    if (app.reconnect || (joined && session.resumeToken)) {
      startReconnect();
      return;
    }
    const closeKey = `error.close.${code}`;
    const details = [reason, `(${code})`].filter(Boolean).join(' ');
    const text = hasKey(closeKey) ? closeKey : null;
    if (joined) {
      showError({ heading: 'error.lostHeading', text: 'error.lost', extra: text, details, action: 'reconnect' });
    } else {
      showError({ heading: 'error.heading', text: 'error.unreachable', extra: text, details, action: 'retry' });
    }
  });

  session.connect();
}

/**
 * The connection dropped while in the meeting: try to come back as the same
 * participant, every 1.5 s, for up to 28 s; others see us as reconnecting.
 */
function startReconnect() {
  const session = app.session;
  if (!app.reconnect) {
    const token = session?.resumeToken;
    if (!token) return;
    app.reconnect = { token, until: Date.now() + RECONNECT_FOR_MS, since: Date.now(), nodes: session?.nodes ?? [] };
    ui.reconnectBanner.hidden = false;
    connect(token);
    return;
  }
  // An attempt failed: try again shortly, rejoin on another node, or give up.
  const r = app.reconnect;
  clearTimeout(r.timer);
  if (r.nodes.length > 0 && Date.now() - r.since > FAILOVER_AFTER_MS) {
    failover(r.nodes[0]);
    return;
  }
  if (Date.now() > r.until) {
    app.reconnect = null;
    ui.reconnectBanner.hidden = true;
    showError({ heading: 'error.lostHeading', text: 'error.lost', action: 'reconnect' });
    return;
  }
  session?.close(4001);
  r.timer = setTimeout(() => { if (app.reconnect === r) connect(r.token); }, RECONNECT_EVERY_MS);
}

/**
 * This node is gone (cluster mode): the same meeting on another node, which
 * takes the room over; the page there joins by itself (`#rejoin`).
 * @param {string} node  its base URL
 */
function failover(node) {
  app.reconnect = null;
  let to;
  try { to = new URL(`/r/${encodeURIComponent(room)}`, node); } catch { return; }
  to.search = location.search;
  // The node there would send the page back to the room's recorded home (this
  // one) until the cluster notices it is gone: `failover` asks it not to.
  to.searchParams.set('failover', '1');
  to.hash = new URLSearchParams({ rejoin: app.name, from: location.origin }).toString();
  location.assign(to.href);
}

/**
 * Back to the join form, with the password field: the room has a password.
 * The camera and microphone stay on.
 * @param {StringKey} why
 */
function askPassword(why) {
  app.session?.close();
  app.session = null;
  app.password = '';
  app.passwordAsk = why;
  setState('prejoin');
  renderPrejoin();
  startMeter();
  ui.passwordInput.value = '';
  ui.passwordInput.focus();
}

/** @param {ErrorView} view */
function showError(view) {
  if (app.reconnect) clearTimeout(app.reconnect.timer);
  app.reconnect = null;
  ui.reconnectBanner.hidden = true;
  app.session?.close();
  monitor.stop();
  app.session = null;
  app.error = view;
  sharers.clear();
  renderPresentation();
  grid.clear();
  setPeopleOpen(false);
  setState('error');
  renderError();
  ui.errorHeading.focus();
}

/** Join again after an error, with the media we still hold. */
async function retry() {
  if (!isValidRoomName(room)) {
    location.assign('/');
    return;
  }
  if (!app.name) {
    setState('prejoin');
    startPreview();
    return;
  }
  setState('joining');
  await app.mediaReady;
  connect();
}

function leave() {
  if (app.reconnect) clearTimeout(app.reconnect.timer);
  app.reconnect = null;
  ui.reconnectBanner.hidden = true;
  app.session?.leave();
  app.ended = null;
  endLocal();
}

/** Stops everything local and shows the "left" screen (why: `app.ended`). */
function endLocal() {
  monitor.stop();
  app.session = null;
  sharers.clear();
  renderPresentation();
  setChatOpen(false);
  stopMeter();
  stopStream(app.stream);
  app.stream = null;
  ui.previewVideo.srcObject = null;
  grid.clear();
  setPeopleOpen(false);
  notices.clear();
  setState('left');
  renderLeft();
  ui.leftHeading.focus();
}

function renderLeft() {
  const e = app.ended;
  /** @type {[StringKey, StringKey]} */
  const [h, x] = e?.reason === 'removed' ? ['left.removedHeading', 'left.removedText']
    : e?.reason === 'meeting_ended' ? ['left.endedHeading', 'left.endedText']
      : e?.reason === 'lobby_denied' ? ['left.deniedHeading', 'left.deniedText']
        : ['left.heading', 'left.text'];
  ui.leftHeading.textContent = t(h);
  ui.leftText.textContent = t(x, { by: e?.by ?? '' });
}

async function rejoin() {
  setState('joining');
  app.mediaReady = acquireMedia();
  await app.mediaReady;
  ui.previewVideo.srcObject = app.stream;
  if (app.mediaProblem) notices.show(app.mediaProblem, {}, { error: true });
  if (state() === 'joining') connect();
}

/** @param {'audio' | 'video'} kind */
function toggleMute(kind) {
  const muted = kind === 'audio' ? (app.micMuted = !app.micMuted) : (app.camMuted = !app.camMuted);
  if (app.session) {
    app.session.setMuted(kind, muted);
  } else {
    for (const track of app.stream?.getTracks() ?? []) if (track.kind === kind) track.enabled = !muted;
  }
  renderControls();
  renderPrejoin();
  if (app.session?.joined) { renderLocalTile(); renderPeople(); }
}

// ----- rendering -----

function renderAll() {
  document.title = t('room.title', { room });
  renderControls();
  renderPrejoin();
  if (app.session?.joined) {
    renderLocalTile();
    for (const id of grid.keys()) if (id !== app.session.participantId) renderTile(id);
    renderPeople();
  }
  if (app.error) renderError();
  if (state() === 'left') renderLeft();
  if (app.session?.joined) renderChat(true);
  notices.render();
}

function renderPrejoin() {
  const hasVideo = !!app.stream && app.stream.getVideoTracks().length > 0;
  const preview = /** @type {HTMLElement} */ (ui.previewVideo.parentElement);
  preview.dataset.video = hasVideo && !app.camMuted ? 'on' : 'off';
  ui.previewOffText.textContent = t(app.mediaStarting ? 'prejoin.starting' : 'prejoin.previewOff');
  if (app.mediaProblem) {
    ui.mediaProblem.textContent = t(app.mediaProblem) + (app.stream ? '' : t('sentence.sep') + t('prejoin.receiveOnly'));
    ui.mediaProblem.hidden = false;
  } else {
    ui.mediaProblem.hidden = true;
  }
  if (state() === 'joining') ui.joinStatus.textContent = t('prejoin.joining');
  if (!ui.nameError.hidden) ui.nameError.textContent = t('prejoin.nameRequired');
  ui.passwordRow.hidden = !app.passwordAsk;
  ui.passwordError.textContent = app.passwordAsk ? t(app.passwordAsk) : '';
  ui.signedInAs.hidden = !app.staffName;
  if (app.staffName) ui.signedInAs.textContent = t('prejoin.signedInAs', { name: app.staffName });
}

/** A signed-in member of staff joins under their directory name: show it. */
async function loadStaff() {
  try {
    const res = await fetch('/api/me', { cache: 'no-store' });
    if (!res.ok) return;
    const me = await res.json();
    if (typeof me.name !== 'string') return;
    app.staffName = me.name;
    ui.nameInput.value = me.name;
    ui.nameInput.readOnly = true;
    renderPrejoin();
  } catch { /* no directory, or offline: the typed name is used */ }
}

function renderControls() {
  const hasAudio = !!app.stream && app.stream.getAudioTracks().length > 0;
  const hasVideo = !!app.stream && app.stream.getVideoTracks().length > 0;
  for (const btn of [ui.preMic, ui.micBtn]) {
    setToggle(btn, hasAudio, app.micMuted,
      app.micMuted ? 'ctl.micUnmute' : 'ctl.micMute', app.micMuted ? 'micOff' : 'mic', 'ctl.noMic');
  }
  for (const btn of [ui.preCam, ui.camBtn]) {
    setToggle(btn, hasVideo, app.camMuted,
      app.camMuted ? 'ctl.camOn' : 'ctl.camOff', app.camMuted ? 'camOff' : 'cam', 'ctl.noCam');
  }
  const sharing = !!app.session?.screenTrack;
  ui.shareBtn.setAttribute('aria-pressed', String(sharing));
  ui.shareBtn.classList.toggle('is-active', sharing);
  ui.shareBtn.disabled = !app.session?.joined;
  /** @type {HTMLElement} */ (ui.shareBtn.querySelector('.label')).textContent = t(sharing ? 'ctl.stopShare' : 'ctl.share');
  const raised = !!app.session?.handRaised;
  ui.handBtn.setAttribute('aria-pressed', String(raised));
  ui.handBtn.classList.toggle('is-active', raised);
  /** @type {HTMLElement} */ (ui.handBtn.querySelector('.label')).textContent = t(raised ? 'ctl.lowerHand' : 'ctl.raiseHand');
}

/**
 * @param {HTMLButtonElement} btn
 * @param {boolean} available
 * @param {boolean} off
 * @param {StringKey} label
 * @param {import('./icons.js').IconName} icon
 * @param {StringKey} unavailableLabel
 */
function setToggle(btn, available, off, label, icon, unavailableLabel) {
  btn.disabled = !available;
  btn.classList.toggle('is-off', off || !available);
  const text = t(available ? label : unavailableLabel);
  /** @type {HTMLElement} */ (btn.querySelector('.label')).textContent = text;
  btn.title = text;
  setIcon(/** @type {HTMLElement} */ (btn.querySelector('.icon')), available ? icon : (icon.startsWith('mic') ? 'micOff' : 'camOff'));
}

function renderLocalTile() {
  const id = app.session?.participantId;
  if (!id) return;
  const hasVideo = !!app.stream && app.stream.getVideoTracks().length > 0;
  grid.upsert(id, {
    name: app.name,
    label: `${app.name} ${t('people.you')}`,
    stream: app.stream,
    showVideo: hasVideo && !app.camMuted,
    audioMuted: app.micMuted || !app.stream || app.stream.getAudioTracks().length === 0,
    micMutedText: t('people.micMuted'),
    quality: quality.own,
    qualityText: quality.own ? t(`quality.${quality.own}`) : '',
  }, { local: true });
}

/**
 * Draw (or remove) the tile of remote participant `id`.
 * @param {string} id
 */
function renderTile(id) {
  const session = app.session;
  if (!session || !session.joined || id === session.participantId) return;
  const p = session.participants.get(id);
  const tracks = session.activeTracks(id);
  if (!p && tracks.length === 0) {
    grid.remove(id); // media of someone we do not know (any more)
    return;
  }
  const name = p?.name ?? '';
  const video = tracks.some((tr) => tr.kind === 'video' && !tr.muted);
  const q = quality.remote.get(id);
  grid.upsert(id, {
    name,
    label: p?.reconnecting ? `${name} (${t('people.reconnecting')})` : name,
    stream: session.streams.get(id) ?? null,
    showVideo: video && !p?.video_muted,
    audioMuted: !!p?.audio_muted,
    micMutedText: t('people.micMuted'),
    quality: q?.quality ?? null,
    qualityText: q ? t(`quality.${q.quality}`) : '',
    stalledText: q?.videoStalled && video && !p?.video_muted ? t('quality.stalled') : null,
  });
}

function renderPeople() {
  const session = app.session;
  const joined = !!session?.joined;
  const n = joined && session ? session.participants.size + 1 : 0;
  ui.peopleCount.hidden = !joined;
  ui.peopleCount.textContent = t('room.count', { n });
  ui.peopleBadge.textContent = String(n);
  ui.peopleHeading.textContent = `${t('people.heading')} (${n})`;
  if (!session || !joined) {
    ui.peopleList.replaceChildren();
    return;
  }
  const mod = session.moderator;
  /** @type {import('./people.js').Person[]} */
  const people = [{
    id: session.participantId ?? '',
    name: app.name,
    me: true,
    micMuted: app.micMuted || !app.stream?.getAudioTracks().length,
    camOff: app.camMuted || !app.stream?.getVideoTracks().length,
    handRaised: session.handRaised,
    moderator: mod,
    live: session.participantId !== null && session.live.includes(session.participantId),
  }];
  for (const p of session.participants.values()) {
    people.push({
      id: p.id, name: p.name, me: false, micMuted: p.audio_muted, camOff: p.video_muted,
      handRaised: p.hand_raised, moderator: p.moderator, reconnecting: p.reconnecting,
      live: session.live.includes(p.id),
    });
  }
  // Raised hands first (in the order they became known), then everyone else.
  people.sort((a, b) => Number(b.me) - Number(a.me) || Number(b.handRaised) - Number(a.handRaised));
  renderPeopleList(ui.peopleList, people, mod ? {
    mute: (id) => session.moderate('mute', { target: id, kind: 'audio' }),
    remove: (id) => session.moderate('remove', { target: id }),
    setLive: (ids) => session.moderate('set_live', { targets: ids }),
    live: session.live,
  } : null);
  ui.modSection.hidden = !mod;
  ui.modLock.checked = session.roomState.locked;
  ui.modLobby.checked = session.roomState.lobby;
  ui.modShares.checked = session.roomState.multiple_shares;
  const waiting = [...session.lobby.values()];
  ui.lobbySection.hidden = !mod || waiting.length === 0;
  renderLobbyList(ui.lobbyList, mod ? waiting : [], {
    admit: (id) => session.moderate('admit', { target: id }),
    deny: (id) => session.moderate('deny', { target: id }),
  });
}

function renderError() {
  const view = app.error;
  if (!view) return;
  ui.errorHeading.textContent = t(view.heading);
  ui.errorText.textContent = t(view.text) + (view.extra ? t('sentence.sep') + t(view.extra) : '');
  ui.errorDetails.hidden = !view.details;
  ui.errorDetails.textContent = view.details ? t('error.details', { details: view.details }) : '';
  ui.errorAction.textContent = t(view.action === 'reconnect' ? 'error.reconnect' : view.action === 'signin' ? 'error.signIn' : 'error.retry');
  ui.errorAction.hidden = view.text === 'error.code.invalid_room';
}

/**
 * The active speaker's tile is outlined; we come first, then recent
 * speakers, so that in a big room they stay in view.
 */
function renderSpeakers() {
  const session = app.session;
  if (!session?.joined) return;
  const active = session.speakers[0] ?? null;
  grid.setSpeaker(active);
  grid.setOrder([session.participantId ?? '', ...session.speakers]);
  document.body.dataset.activeSpeaker = active ?? '';
}

/** Fills the device dialog from the browser's device list and opens it. */
async function openDevices() {
  const { audioinput, videoinput, audiooutput } = await listDevices();
  /**
   * @param {HTMLSelectElement} select
   * @param {MediaDeviceInfo[]} devices
   * @param {string} current
   * @param {string} [fallback]  label of the default entry when there is no device id
   */
  const fill = (select, devices, current, fallback) => {
    select.replaceChildren(...devices.map((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || (fallback && d.deviceId === 'default' ? fallback : `${i + 1}`);
      return o;
    }));
    select.value = current;
    select.disabled = devices.length === 0;
  };
  /** @param {string} kind */
  const track = (kind) => app.stream?.getTracks().find((t) => t.kind === kind);
  fill(ui.devCamera, videoinput, track('video')?.getSettings().deviceId ?? '');
  fill(ui.devMic, audioinput, track('audio')?.getSettings().deviceId ?? '');
  const canSink = typeof (/** @type {any} */ (HTMLMediaElement.prototype)).setSinkId === 'function';
  fill(ui.devSpeaker, canSink ? audiooutput : [], '', t('devices.speakerDefault'));
  ui.devLayout.value = app.layout;
  ui.devicesProblem.hidden = true;
  ui.devicesDialog.showModal();
}

/**
 * Switches camera or microphone during the call.
 * @param {'audio' | 'video'} kind
 * @param {string} deviceId
 */
async function switchDevice(kind, deviceId) {
  try {
    const track = await openDevice(kind, deviceId);
    if (app.session) await app.session.replaceTrack(track);
    else if (app.stream) {
      const old = app.stream.getTracks().find((t) => t.kind === kind);
      if (old) { app.stream.removeTrack(old); old.stop(); }
      app.stream.addTrack(track);
    }
    renderLocalTile();
    ui.devicesProblem.hidden = true;
  } catch (err) {
    ui.devicesProblem.hidden = false;
    ui.devicesProblem.textContent = `${t('devices.failed')} ${err instanceof Error ? err.message : ''}`;
  }
}

/** What the server last heard of our view (to send only changes). */
let sentView = '';
/** The last view sent (a test hook). @type {{hidden: string[], sizes: Record<string, [number, number]>} | null} */
let lastView = null;
/** Pending view message (changes within 150 ms are sent once). @type {ReturnType<typeof setTimeout> | undefined} */
let viewTimer;
/** At most this many `sizes` entries in `view` (the protocol's limit). */
const MAX_VIEW_SIZES = 256;

/**
 * Tells the server whose video is off our page (everyone's while the tab is
 * hidden), and how large the others' are shown: the tiles on the page and
 * the presentation (a screen share, or the speaker in the speaker layout).
 */
function sendView() {
  clearTimeout(viewTimer);
  viewTimer = setTimeout(() => {
    const session = app.session;
    if (!session?.joined) return;
    /** @type {Record<string, [number, number]>} */
    const sizes = {};
    /** @type {string[]} */
    let hidden;
    if (document.hidden) {
      hidden = [...session.participants.keys()];
    } else {
      const dpr = window.devicePixelRatio || 1;
      /** @type {(key: string, w: number, h: number) => void} */
      const put = (key, w, h) => {
        const [dw, dh] = deviceSize(w, h, dpr);
        const old = sizes[key];
        if (dw > 0 && (!old || dw * dh > old[0] * old[1])) sizes[key] = [dw, dh];
      };
      for (const { key, width, height } of grid.shownSizes()) put(key, width, height);
      if (presented && !ui.presentation.hidden) {
        const v = ui.presentationVideo;
        const r = v.getBoundingClientRect();
        const aspect = v.videoWidth > 0 && v.videoHeight > 0 ? v.videoWidth / v.videoHeight : 16 / 9;
        put(presented, ...containedSize(r.width, r.height, aspect));
      }
      // A speaker shown large is not hidden, whichever page its tile is on.
      hidden = [...document.querySelectorAll('#grid .tile[hidden]')]
        .map((el) => /** @type {HTMLElement} */ (el).dataset.participantId ?? '')
        .filter((id) => id && id !== session.participantId && id !== presented);
    }
    hidden.sort();
    const entries = Object.entries(sizes).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).slice(0, MAX_VIEW_SIZES);
    const key = `${hidden.join(',')}|${entries.map(([k, [w, h]]) => `${k}:${w}x${h}`).join(',')}`;
    if (key === sentView) return;
    sentView = key;
    lastView = { hidden, sizes: Object.fromEntries(entries) };
    session.setView(lastView.hidden, lastView.sizes);
    document.body.dataset.hiddenVideo = hidden.join(',');
  }, 150);
}

/** People whose raised hand was announced already. */
const shownHands = new Set();
/** People sharing, in the order they started (the last one is shown). */
const sharers = new Set();

async function toggleShare() {
  const session = app.session;
  if (!session?.joined) return;
  if (session.screenTrack) {
    await session.stopShare();
  } else {
    /** @type {MediaStream} */
    let display;
    try {
      display = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
    } catch {
      return; // the user cancelled the picker
    }
    const track = display.getVideoTracks()[0];
    if (!track) return;
    const ok = await session.startShare(track);
    if (ok) track.addEventListener('ended', () => { renderControls(); renderPresentation(); });
  }
  renderControls();
  renderPresentation();
}

/** Whose video the presentation shows: a participant id (speaker layout), `<id>-screen`, or null. @type {string | null} */
let presented = null;

/** Shows the latest share large above the grid (our own while we share). */
function renderPresentation() {
  const session = app.session;
  /** @type {MediaStream | null} */
  let stream = null;
  let label = '';
  presented = null;
  if (session?.joined) {
    for (const id of [...sharers].reverse()) {
      const s = session.streams.get(`${id}-screen`);
      const p = session.participants.get(id);
      if (s && p?.sharing && session.activeTracks(`${id}-screen`).some((tr) => tr.kind === 'video')) {
        stream = s;
        label = t('share.by', { name: p.name });
        presented = `${id}-screen`;
        break;
      }
    }
    if (!stream && session.screenTrack) {
      stream = new MediaStream([session.screenTrack]);
      label = t('share.mine');
    }
    // Speaker layout: the active speaker (not us) large, when nobody shares.
    const speaker = session.speakers.find((id) => id !== session.participantId);
    if (!stream && app.layout === 'speaker' && speaker) {
      const p = session.participants.get(speaker);
      const s = session.streams.get(speaker);
      if (p && s && !p.video_muted) {
        stream = s;
        label = p.name;
        presented = speaker;
      }
    }
  }
  const shown = !!stream;
  if (ui.presentationVideo.srcObject !== stream) {
    const same = stream && ui.presentationVideo.srcObject instanceof MediaStream
      && ui.presentationVideo.srcObject.getTracks()[0] === stream.getTracks()[0];
    if (!same) {
      ui.presentationVideo.srcObject = stream;
      if (stream) ui.presentationVideo.play().catch(() => {});
    }
  }
  ui.presentationLabel.textContent = label;
  ui.presentation.hidden = !shown;
  ui.stage.classList.toggle('has-presentation', shown);
  grid.layout();
}

function sendChat() {
  const text = ui.chatInput.value.trim();
  if (!text || !app.session?.joined) return;
  app.session.sendChat(text);
  ui.chatInput.value = '';
  ui.chatInput.focus();
}

/**
 * Draws the chat: everything on `full`, else only what is new. Text goes in
 * with textContent: a message is never HTML.
 * @param {boolean} full
 */
function renderChat(full) {
  const chat = app.session?.chat ?? [];
  if (full) ui.chatList.replaceChildren();
  const shown = ui.chatList.children.length;
  const atBottom = ui.chatList.scrollTop + ui.chatList.clientHeight >= ui.chatList.scrollHeight - 8;
  for (const m of chat.slice(shown)) {
    const li = document.createElement('li');
    li.className = 'chat-msg';
    li.dataset.from = m.from;
    const meta = document.createElement('div');
    meta.className = 'chat-meta';
    const name = document.createElement('span');
    name.className = 'chat-name';
    name.textContent = m.name;
    const time = document.createElement('time');
    const d = new Date(m.ts);
    time.dateTime = d.toISOString();
    time.textContent = d.toLocaleTimeString(document.documentElement.lang || undefined, { hour: '2-digit', minute: '2-digit' });
    meta.append(name, time);
    const text = document.createElement('div');
    text.className = 'chat-text';
    text.textContent = m.text;
    li.append(meta, text);
    ui.chatList.append(li);
  }
  ui.chatEmpty.hidden = chat.length > 0;
  if (atBottom || full) ui.chatList.scrollTop = ui.chatList.scrollHeight;
  ui.chatBadge.hidden = app.unread === 0;
  ui.chatBadge.textContent = String(app.unread);
}

/** @param {boolean} open */
function setChatOpen(open) {
  ui.chatPanel.hidden = !open;
  ui.chatBtn.setAttribute('aria-expanded', String(open));
  ui.chatBtn.classList.toggle('is-active', open);
  if (open) {
    app.unread = 0;
    renderChat(false);
    ui.chatInput.focus();
    if (window.innerWidth < 900) setPeopleOpen(false);
  }
  grid.layout();
}

/** @param {boolean} open */
function setPeopleOpen(open) {
  if (open && window.innerWidth < 900 && !ui.chatPanel.hidden) setChatOpen(false);
  ui.peoplePanel.hidden = !open;
  ui.peopleBtn.setAttribute('aria-expanded', String(open));
  ui.peopleBtn.classList.toggle('is-active', open);
  grid.layout();
}

// ----- notices -----

function onAutoplayBlocked() {
  if (notices.has('notice.enableSound')) return;
  notices.show('notice.enableSound', {}, { action: () => grid.unmuteAll() });
}

// ----- header -----

async function copyLink() {
  const link = `${location.origin}/r/${encodeURIComponent(room)}`;
  try {
    await navigator.clipboard.writeText(link);
    notices.show('room.linkCopied');
    return;
  } catch { /* fall back below */ }
  const input = document.createElement('input');
  input.value = link;
  input.className = 'visually-hidden';
  document.body.append(input);
  input.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  input.remove();
  ui.copyLink.focus();
  if (ok) notices.show('room.linkCopied');
  else notices.show('room.linkCopyFailed', { link }, { error: true });
}

// ----- helpers -----

/**
 * @param {string} code
 * @returns {StringKey}
 */
function errorKey(code) {
  const key = `error.code.${code}`;
  return hasKey(key) ? key : 'error.code.unknown';
}

/**
 * The room name: the last path segment, URL-decoded.
 * @param {string} path
 */
function roomFromPath(path) {
  const seg = path.split('/').filter(Boolean).pop() ?? '';
  try { return decodeURIComponent(seg); } catch { return seg; }
}

/** A join token from `?token=` or `#token=`, if the link carries one. */
function tokenFromUrl() {
  const q = new URLSearchParams(location.search).get('token');
  const h = new URLSearchParams(location.hash.slice(1)).get('token');
  return q || h || undefined;
}
