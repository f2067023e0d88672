// @ts-check
/**
 * The broadcast viewer page, `/watch/<room>`: one button, then the room's
 * broadcast over WHEP (`POST /whep/<room>`), with sub-second latency.
 * Says in words whether the broadcast has not started, plays, or has
 * ended; starts by itself when it starts (once Watch was pressed);
 * reconnects by itself with a growing pause. Volume, mute and full screen;
 * made for phones as well as desktops.
 *
 * Cheap for the server: a viewer polls `/watch/<room>/status` every few
 * seconds (with jitter) and holds one receive-only connection that is never
 * renegotiated.
 * @module watch
 */

import { t, initStrings, bindLanguageSelect } from './i18n.js';
import { applyIcons, setIcon } from './icons.js';

/** How often the status is asked while waiting for the broadcast, and while playing. */
const POLL_WAITING_MS = 3000;
const POLL_PLAYING_MS = 5000;
/** No new picture or sound for this long: the connection is checked. */
const STALL_MS = 5000;
/** Reconnection pauses grow from the first to the last. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 10000;
/** How long ICE gathering is waited for (loopback and LAN hosts gather at once). */
const ICE_WAIT_MS = 2000;
/** The second picture goes after this long without a new frame. */
const SECOND_STALL_MS = 2000;
/** A connection that stays "disconnected" this long is replaced. */
const DISCONNECTED_MS = 5000;
/** In cluster mode: no new picture or sound for this long, and the node does not
 * answer within FAILOVER_ASK_MS either: the page goes on at another node. */
const FAILOVER_STALL_MS = 1500;
const FAILOVER_ASK_MS = 1000;

/** @typedef {'idle' | 'waiting' | 'connecting' | 'playing' | 'ended' | 'retrying' | 'unauthorized'} State */

const room = decodeURIComponent(location.pathname.split('/')[2] || '');
const token = tokenFromUrl();
/** This page fled a dead node: its requests say so, so that this node serves them (and does
 * not send them to a node of the viewer's site the registry may still name). */
const failoverQuery = new URLSearchParams(location.search).get('failover') === '1' ? '?failover=1' : '';

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const ui = {
  roomName: $('room-name'),
  liveBadge: $('live-badge'),
  player: $('player'),
  video: /** @type {HTMLVideoElement} */ ($('video')),
  video2: /** @type {HTMLVideoElement} */ ($('video2')),
  overlay: $('overlay'),
  status: $('status'),
  watchBtn: /** @type {HTMLButtonElement} */ ($('watch-btn')),
  controls: $('controls'),
  muteBtn: /** @type {HTMLButtonElement} */ ($('mute-btn')),
  volume: /** @type {HTMLInputElement} */ ($('volume')),
  fullscreenBtn: /** @type {HTMLButtonElement} */ ($('fullscreen-btn')),
  passwordRow: $('password-row'),
  passwordInput: /** @type {HTMLInputElement} */ ($('password-input')),
};

const app = {
  /** @type {State} */
  state: 'idle',
  /** @type {import('./i18n.js').StringKey} */
  statusKey: 'watch.checking',
  /** The user pressed Watch: play whenever there is something to play. */
  wanted: false,
  /** @type {RTCPeerConnection | null} */
  pc: null,
  /** The WHEP session's URL, to DELETE. @type {string | null} */
  resource: null,
  retryMs: RETRY_FIRST_MS,
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  timer: undefined,
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  disconnectTimer: undefined,
  /** Media progress (packets received) at the last check, and when it last grew. */
  progress: 0,
  progressAt: 0,
  /** The room has a password (the status says so): it goes as the bearer. */
  needsPassword: false,
  /** Cluster mode: where to go on watching if this node stops answering (its site's first). @type {string[]} */
  nodes: [],
  /** A failover is under way (the page is being replaced). */
  leaving: false,
};

/** A token from `?token=` or `#token=`, if the link carries one. */
function tokenFromUrl() {
  const q = new URLSearchParams(location.search).get('token');
  const h = new URLSearchParams(location.hash.slice(1)).get('token');
  return q || h || undefined;
}

/** @returns {Record<string, string>} */
function authHeaders() {
  const bearer = token ?? (app.needsPassword ? ui.passwordInput.value : '');
  return bearer ? { Authorization: `Bearer ${bearer}` } : {};
}

/**
 * @param {State} state
 * @param {import('./i18n.js').StringKey} key
 */
function setState(state, key) {
  app.state = state;
  app.statusKey = key;
  document.body.dataset.state = state;
  render();
}

function render() {
  const playing = app.state === 'playing';
  ui.status.textContent = t(app.statusKey);
  ui.watchBtn.hidden = app.wanted || app.state === 'unauthorized';
  ui.overlay.hidden = playing;
  ui.controls.hidden = !playing;
  ui.liveBadge.hidden = !playing;
  const muted = ui.video.muted || ui.video.volume === 0;
  setIcon(/** @type {Element} */ (ui.muteBtn.querySelector('.icon')), muted ? 'speakerOff' : 'speaker');
  /** @type {HTMLElement} */ (ui.muteBtn.querySelector('.label')).textContent = t(muted ? 'watch.unmute' : 'watch.mute');
  ui.muteBtn.setAttribute('aria-pressed', String(muted));
  ui.volume.setAttribute('aria-label', t('watch.volume'));
  document.title = t('watch.title', { room });
  updateSecond();
}

/**
 * Runs `fn` after about `ms` (±20%: thousands of viewers do not poll in step).
 * @param {number} ms
 * @param {() => unknown} [fn]
 */
function schedule(ms, fn = tick) {
  clearTimeout(app.timer);
  app.timer = setTimeout(fn, ms * (0.8 + Math.random() * 0.4));
}

/** @returns {Promise<'live' | 'off' | 'unauthorized'>} */
async function fetchStatus(timeoutMs = 0) {
  const res = await fetch(`/watch/${encodeURIComponent(room)}/status${failoverQuery}`, {
    headers: authHeaders(),
    cache: 'no-store',
    signal: timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined,
  });
  if (res.status === 401) return 'unauthorized';
  if (!res.ok) throw new Error(`status ${res.status}`);
  const body = await res.json();
  if (Array.isArray(body?.nodes)) app.nodes = body.nodes.filter((/** @type {unknown} */ n) => typeof n === 'string');
  app.needsPassword = !token && body?.access === 'password';
  ui.passwordRow.hidden = !app.needsPassword || app.state === 'playing';
  return body && body.live ? 'live' : 'off';
}

/** The periodic check: what the broadcast is doing, and what the page should do about it. */
async function tick() {
  let status;
  try {
    status = await fetchStatus();
  } catch {
    // The server is unreachable: say so only if we were playing (and go on at another
    // node, in cluster mode).
    if (app.state === 'playing') return failover() || retry();
    return schedule(POLL_WAITING_MS);
  }
  if (status === 'unauthorized') {
    teardown();
    app.wanted = false;
    return setState('unauthorized', 'watch.unauthorized');
  }
  switch (app.state) {
    case 'idle':
      // A wrong-password message stays until the next try.
      if (app.statusKey !== 'watch.passwordWrong' && app.statusKey !== 'watch.tooMany') {
        setState('idle', app.needsPassword ? 'watch.passwordNeeded' : status === 'live' ? 'watch.ready' : 'watch.notStarted');
      }
      return schedule(POLL_WAITING_MS);
    case 'waiting':
    case 'ended':
      if (status === 'live' && app.wanted) return connect();
      return schedule(POLL_WAITING_MS);
    case 'playing':
    case 'connecting': {
      if (status === 'off') {
        teardown();
        setState('ended', 'watch.ended');
        return schedule(POLL_WAITING_MS);
      }
      if (app.state === 'playing' && await stalled()) return retry();
      return schedule(POLL_PLAYING_MS);
    }
    default:
      return undefined;
  }
}

/** How long nothing new has arrived (ms); `Infinity` without a connection. */
async function sinceProgress() {
  const pc = app.pc;
  if (!pc) return Infinity;
  let progress = 0;
  const stats = await pc.getStats();
  stats.forEach((s) => {
    // Packets, not samples: a silent link still "receives" concealment samples.
    if (s.type === 'inbound-rtp') progress += s.packetsReceived || 0;
  });
  const now = Date.now();
  if (progress > app.progress) {
    app.progress = progress;
    app.progressAt = now;
  }
  return now - app.progressAt;
}

/** Whether nothing new was decoded for a while. */
async function stalled() {
  return (await sinceProgress()) > STALL_MS;
}

/** Waits until ICE gathering completes, or `ms` passed. */
function iceGathered(/** @type {RTCPeerConnection} */ pc, /** @type {number} */ ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener('icegatheringstatechange', check); resolve(undefined); };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    pc.addEventListener('icegatheringstatechange', check);
    setTimeout(done, ms);
  });
}

/** Asks the receiver for as little buffering as it will take: this is live. */
function lowLatency(/** @type {RTCRtpReceiver} */ receiver) {
  const r = /** @type {any} */ (receiver);
  try {
    if ('jitterBufferTarget' in r) r.jitterBufferTarget = 0;
    else if ('playoutDelayHint' in r) r.playoutDelayHint = 0;
  } catch { /* not supported: the default buffering */ }
}

/** Opens a WHEP session and plays what it brings. */
async function connect() {
  teardown();
  setState('connecting', 'watch.connecting');
  const pc = new RTCPeerConnection();
  app.pc = pc;
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  // A second picture (a sign-language interpreter, say), shown small when a moderator adds one.
  const secondPicture = pc.addTransceiver('video', { direction: 'recvonly' });
  // One stream for both tracks, set once: a new srcObject would abort the play() under way.
  const stream = new MediaStream();
  const secondStream = new MediaStream();
  ui.video.srcObject = stream;
  ui.video2.srcObject = secondStream;
  pc.addEventListener('track', (e) => {
    lowLatency(e.receiver);
    if (e.transceiver === secondPicture) {
      secondStream.addTrack(e.track);
      ui.video2.play().catch(() => {});
      return;
    }
    stream.addTrack(e.track);
    play();
  });
  pc.addEventListener('connectionstatechange', () => {
    if (app.pc !== pc) return;
    clearTimeout(app.disconnectTimer);
    if (pc.connectionState === 'failed') {
      fetchStatus(FAILOVER_ASK_MS).then(() => retry(), () => failover() || retry());
      return;
    }
    if (pc.connectionState === 'disconnected') {
      app.disconnectTimer = setTimeout(() => {
        if (app.pc === pc && pc.connectionState !== 'connected') retry();
      }, DISCONNECTED_MS);
    }
  });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, ICE_WAIT_MS);
    const res = await fetch(`/whep/${encodeURIComponent(room)}${failoverQuery}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', ...authHeaders() },
      body: pc.localDescription?.sdp ?? '',
    });
    if (app.pc !== pc) return;
    if (res.status === 404) {
      teardown();
      setState('waiting', 'watch.notStarted');
      return schedule(POLL_WAITING_MS);
    }
    if (app.needsPassword && (res.status === 401 || res.status === 429)) {
      // Wrong (or too many) passwords: ask again; nothing is final.
      teardown();
      app.wanted = false;
      ui.passwordInput.value = '';
      ui.passwordRow.hidden = false;
      setState('idle', res.status === 429 ? 'watch.tooMany' : 'watch.passwordWrong');
      ui.passwordInput.focus();
      return schedule(POLL_WAITING_MS);
    }
    if (res.status === 401 || res.status === 403) {
      teardown();
      app.wanted = false;
      return setState('unauthorized', 'watch.unauthorized');
    }
    if (res.status !== 201) throw new Error(`WHEP answered ${res.status}: ${await res.text()}`);
    const location_ = res.headers.get('Location');
    app.resource = location_ ? new URL(location_, location.href).href : null;
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    app.progress = 0;
    app.progressAt = Date.now();
    schedule(POLL_PLAYING_MS);
  } catch (err) {
    console.warn('watch: connecting failed', err);
    if (app.pc === pc) retry();
  }
}

/** Frames the second picture had decoded at the last look, and when that last grew. */
const second = { frames: 0, at: 0 };

/**
 * The second picture is shown while it has one: while its frames keep
 * coming (a presenter taken off air just stops sending; browsers do not
 * always mute the track for that).
 */
function updateSecond() {
  const frames = ui.video2.getVideoPlaybackQuality ? ui.video2.getVideoPlaybackQuality().totalVideoFrames : 0;
  const now = Date.now();
  if (frames > second.frames) {
    second.at = now;
  }
  second.frames = frames;
  const flowing = now - second.at < SECOND_STALL_MS;
  ui.video2.hidden = !(app.state === 'playing' && ui.video2.videoWidth > 0 && flowing);
}

/** Starts playback; a browser that refuses sound without a gesture gets it muted (the mute button says so). */
function play() {
  ui.video.play().catch((/** @type {unknown} */ err) => {
    if (!(err instanceof DOMException) || err.name !== 'NotAllowedError') return;
    ui.video.muted = true;
    ui.video.play().catch(() => { /* nothing to play yet */ });
    render();
  });
}

/** The connection is gone: try again after a pause that grows each time. */
function retry() {
  teardown();
  setState('retrying', 'watch.retrying');
  const wait = app.retryMs;
  app.retryMs = Math.min(app.retryMs * 2, RETRY_MAX_MS);
  schedule(wait, async () => {
    try {
      const status = await fetchStatus();
      if (status === 'live') return connect();
      if (status === 'unauthorized') {
        app.wanted = false;
        return setState('unauthorized', 'watch.unauthorized');
      }
      setState('ended', 'watch.ended');
      return schedule(POLL_WAITING_MS);
    } catch {
      if (failover()) return undefined;
      return retry();
    }
  });
}

/**
 * Cluster mode, this node unreachable: the page goes on at the next node
 * (its site's first), which relays the broadcast or is its origin; the
 * token and a typed password go along, in the fragment (never sent). Whether
 * it left.
 */
function failover() {
  const next = app.nodes[0];
  if (!next || app.leaving) return app.leaving;
  app.leaving = true;
  teardown();
  setState('retrying', 'watch.retrying');
  const url = new URL(`/watch/${encodeURIComponent(room)}`, next);
  url.searchParams.set('failover', '1');
  const carry = new URLSearchParams({ play: '1' });
  if (token) carry.set('token', token);
  if (app.needsPassword && ui.passwordInput.value) carry.set('password', ui.passwordInput.value);
  url.hash = carry.toString();
  location.replace(url.href);
  return true;
}

/** While playing (cluster mode): no progress for a moment and the node silent → failover. */
async function watchdog() {
  if (app.state !== 'playing' || !app.nodes.length || app.leaving || !app.pc) return;
  if ((await sinceProgress()) < FAILOVER_STALL_MS) return;
  try {
    await fetchStatus(FAILOVER_ASK_MS);
  } catch {
    failover();
  }
}

/** Closes the connection and ends the WHEP session. */
function teardown() {
  clearTimeout(app.disconnectTimer);
  if (app.pc) {
    app.pc.close();
    app.pc = null;
  }
  if (app.resource) {
    // keepalive: also sent while the page is being closed.
    fetch(app.resource, { method: 'DELETE', headers: authHeaders(), keepalive: true }).catch(() => {});
    app.resource = null;
  }
  ui.video.srcObject = null;
  ui.video2.srcObject = null;
  ui.video2.hidden = true;
}

function start() {
  if (app.needsPassword && !ui.passwordInput.value) {
    setState(app.state, 'watch.passwordNeeded');
    ui.passwordInput.focus();
    return;
  }
  app.wanted = true;
  ui.video.muted = false;
  // Within the click: the browser then lets this page play sound later.
  ui.video.play().catch(() => {});
  setState('waiting', 'watch.checking');
  clearTimeout(app.timer);
  fetchStatus().then((s) => {
    if (s === 'live') return connect();
    if (s === 'unauthorized') {
      app.wanted = false;
      return setState('unauthorized', 'watch.unauthorized');
    }
    setState('waiting', 'watch.notStarted');
    return schedule(POLL_WAITING_MS);
  }).catch(() => retry());
}

function toggleFullscreen() {
  if (document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
    return;
  }
  if (ui.player.requestFullscreen) {
    ui.player.requestFullscreen().catch(() => {});
    return;
  }
  // iOS Safari: only the video element itself goes full screen.
  const v = /** @type {any} */ (ui.video);
  if (typeof v.webkitEnterFullscreen === 'function') v.webkitEnterFullscreen();
}

ui.video.addEventListener('playing', () => {
  if (app.state === 'connecting' || app.state === 'retrying') {
    app.retryMs = RETRY_FIRST_MS;
    setState('playing', 'watch.playing');
  }
});
ui.video2.addEventListener('resize', updateSecond);
setInterval(updateSecond, 500);
ui.watchBtn.addEventListener('click', start);
ui.passwordInput.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.isComposing) { ev.preventDefault(); start(); }
});
ui.muteBtn.addEventListener('click', () => {
  ui.video.muted = !ui.video.muted;
  if (!ui.video.muted && ui.video.volume === 0) {
    ui.video.volume = 0.5;
    ui.volume.value = '0.5';
  }
  render();
});
ui.volume.addEventListener('input', () => {
  ui.video.volume = Number(ui.volume.value);
  ui.video.muted = ui.video.volume === 0;
  render();
});
ui.fullscreenBtn.addEventListener('click', toggleFullscreen);
ui.player.addEventListener('dblclick', toggleFullscreen);
window.addEventListener('pagehide', teardown);
document.addEventListener('langchange', render);

initStrings();
bindLanguageSelect(/** @type {HTMLSelectElement} */ ($('lang')));
applyIcons();
ui.roomName.textContent = room;
setState('idle', 'watch.checking');
setInterval(() => { watchdog().catch(() => {}); }, 500);
{
  // A page that fled a dead node goes on playing here (sound may need a click: the
  // browser's autoplay rule; the mute button says so).
  const carried = new URLSearchParams(location.hash.slice(1));
  if (carried.get('play') === '1') {
    const password = carried.get('password');
    if (password) {
      app.needsPassword = true;
      ui.passwordInput.value = password;
    }
    // The password leaves the address bar; the token stays where links put it.
    history.replaceState(null, '', location.pathname + location.search + (token ? `#token=${encodeURIComponent(token)}` : ''));
    start();
  } else {
    tick();
  }
}

// For tests and for people debugging a viewer in the browser console.
Object.defineProperty(window, 'kaigiWatch', {
  value: Object.freeze({
    get pc() { return app.pc; },
    get state() { return app.state; },
    get secondShown() { return !ui.video2.hidden; },
  }),
});
