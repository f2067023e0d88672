// End-to-end meeting test: three headless Chromium participants against a running kaigi.
//
// Starts nothing itself: tests/e2e/run.sh starts kaigi inside a private network namespace and
// runs this file with `node --test`. Environment:
//   KAIGI_URL               base URL of the server (required), e.g. https://127.0.0.1:18443
//   KAIGI_EXPECT_TRANSPORT  udp | tcp: protocol every selected ICE candidate pair must use (optional)
//   KAIGI_E2E_OUT           where to write the results as JSON (optional)
//   KAIGI_E2E_ARTIFACTS     folder for failure dumps: page logs, getStats, screenshots (optional)
//   KAIGI_PID               kaigi's pid: its CPU use is sampled while the 3-way meeting runs (optional)
//   KAIGI_CLK_TCK           clock ticks per second of /proc/<pid>/stat (default 100)
//   KAIGI_E2E_MODE          label written into the results (optional)
//   KAIGI_CHROMIUM          browser binary (default /usr/bin/chromium)
//   KAIGI_E2E_TIMEOUT_SCALE multiply every timeout by this (default 1)
//
// Everything is polled with generous timeouts; no assertion depends on a fixed sleep.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileSync } from 'node:child_process';
import https from 'node:https';
import dgram from 'node:dgram';
import net from 'node:net';
import { chromium } from 'playwright-core';

const BASE = (process.env.KAIGI_URL || '').replace(/\/+$/, '');
const CHROMIUM = process.env.KAIGI_CHROMIUM || '/usr/bin/chromium';
const EXPECT_TRANSPORT = (process.env.KAIGI_EXPECT_TRANSPORT || '').toLowerCase();
const OUT = process.env.KAIGI_E2E_OUT || '';
const ARTIFACTS = process.env.KAIGI_E2E_ARTIFACTS || '';
const KAIGI_PID = process.env.KAIGI_PID || '';
const CLK_TCK = Number(process.env.KAIGI_CLK_TCK || 100);
const MODE = process.env.KAIGI_E2E_MODE || EXPECT_TRANSPORT || 'default';
const SCALE = Number(process.env.KAIGI_E2E_TIMEOUT_SCALE || 1);
const ms = (n) => Math.round(n * SCALE);

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  // Without this a loopback-only network namespace gathers no ICE candidates at all.
  '--allow-loopback-in-peer-connection',
];

const JOIN_NAME = /^\s*(Join|参加)\s*$/;
const LEAVE_NAME = /^\s*(Leave|退出)\s*$/;
const CPU_WINDOW_MS = 10_000;

const results = {
  mode: MODE,
  url: BASE,
  expectTransport: EXPECT_TRANSPORT || null,
  startedAt: new Date().toISOString(),
  ok: false,
  tests: {},
};

function log(...a) {
  console.log('[e2e]', ...a);
}

// ---------------------------------------------------------------------------------------------
// In-page probe. Runs inside the page (no closures): reads both RTCPeerConnections' getStats,
// maps subscribe m-sections to publishing participants (msid stream id) and lists the tiles.
async function pageProbe() {
  const k = window.kaigi || {};
  const midToStream = (sdp) => {
    const map = {};
    for (const section of (sdp || '').split(/\r?\nm=/).slice(1)) {
      const mid = /\r?\na=mid:(\S+)/.exec(section);
      const msid = /\r?\na=msid:(\S+)/.exec(section);
      if (mid && msid) map[mid[1]] = msid[1];
    }
    return map;
  };
  const cand = (c) => c && {
    address: c.address ?? c.ip, port: c.port, protocol: c.protocol,
    candidateType: c.candidateType, tcpType: c.tcpType, relayProtocol: c.relayProtocol,
  };
  const one = async (pc) => {
    if (!pc || typeof pc.getStats !== 'function') return null;
    const out = {
      connectionState: pc.connectionState, iceConnectionState: pc.iceConnectionState,
      iceGatheringState: pc.iceGatheringState, signalingState: pc.signalingState,
      inbound: [], outbound: [], pair: null, pairs: [],
    };
    const streams = midToStream(pc.remoteDescription && pc.remoteDescription.sdp);
    const st = await pc.getStats();
    const byId = new Map();
    st.forEach((s) => byId.set(s.id, s));
    let selectedId = null;
    st.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) selectedId = s.selectedCandidatePairId;
    });
    st.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        out.inbound.push({
          id: s.id, kind: s.kind, ssrc: s.ssrc, mid: s.mid, source: s.mid != null ? streams[s.mid] : undefined,
          trackIdentifier: s.trackIdentifier, packetsReceived: s.packetsReceived || 0,
          packetsLost: s.packetsLost, bytesReceived: s.bytesReceived || 0,
          framesReceived: s.framesReceived, framesDecoded: s.framesDecoded || 0,
          keyFramesDecoded: s.keyFramesDecoded, framesDropped: s.framesDropped,
          frameWidth: s.frameWidth, frameHeight: s.frameHeight,
          totalSamplesReceived: s.totalSamplesReceived || 0, concealedSamples: s.concealedSamples,
          jitter: s.jitter, nackCount: s.nackCount, pliCount: s.pliCount, firCount: s.firCount,
          codec: byId.get(s.codecId)?.mimeType, decoderImplementation: s.decoderImplementation,
        });
      } else if (s.type === 'outbound-rtp') {
        out.outbound.push({
          id: s.id, kind: s.kind, ssrc: s.ssrc, mid: s.mid, rid: s.rid, active: s.active,
          packetsSent: s.packetsSent, bytesSent: s.bytesSent, framesEncoded: s.framesEncoded,
          frameWidth: s.frameWidth, frameHeight: s.frameHeight, nackCount: s.nackCount, pliCount: s.pliCount,
          qualityLimitationReason: s.qualityLimitationReason,
          codec: byId.get(s.codecId)?.mimeType, encoderImplementation: s.encoderImplementation,
        });
      } else if (s.type === 'candidate-pair') {
        const p = {
          id: s.id, state: s.state, nominated: s.nominated, bytesSent: s.bytesSent, bytesReceived: s.bytesReceived,
          currentRoundTripTime: s.currentRoundTripTime,
          local: cand(byId.get(s.localCandidateId)), remote: cand(byId.get(s.remoteCandidateId)),
        };
        out.pairs.push(p);
        if (s.id === selectedId) out.pair = p;
      }
    });
    if (!out.pair) out.pair = out.pairs.find((p) => p.nominated && p.state === 'succeeded') || null;
    return out;
  };
  const tiles = [...document.querySelectorAll('#grid .tile[data-participant-id]')].map((t) => {
    const v = t.querySelector('video');
    return {
      id: t.dataset.participantId, local: t.dataset.local === 'true', hasVideo: !!v,
      videoWidth: v ? v.videoWidth : 0, videoHeight: v ? v.videoHeight : 0,
      readyState: v ? v.readyState : -1, paused: v ? v.paused : null,
    };
  });
  return {
    at: Date.now(),
    state: document.body ? document.body.dataset.state : undefined,
    participantId: k.participantId,
    lang: document.documentElement.lang,
    alerts: [...document.querySelectorAll('[role=alert],[role=status]')].map((e) => e.textContent.trim()).filter(Boolean),
    tiles,
    publish: await one(k.publishPc),
    subscribe: await one(k.subscribePc),
  };
}

// Cheap in-page probe for the join→first-frame timer: total frames decoded on subscribePc.
async function framesDecodedProbe() {
  const pc = window.kaigi && window.kaigi.subscribePc;
  if (!pc || typeof pc.getStats !== 'function') return 0;
  let n = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0;
  });
  return n;
}

// ---------------------------------------------------------------------------------------------
// Helpers

async function until(what, fn, { timeout = ms(30_000), interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last && last.ok) return last;
    } catch (e) {
      last = { ok: false, error: String(e && e.message ? e.message : e) };
    }
    if (last && last.fatal) throw new Error(`while waiting for ${what}: ${last.fatal}`);
    if (Date.now() >= deadline) {
      const detail = JSON.stringify(last, null, 1) || String(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last check: ${detail.slice(0, 6000)}`);
    }
    await sleep(interval);
  }
}

function cpuTicks(pid) {
  // /proc/<pid>/stat: the command name (field 2) may hold spaces; count fields after the last ')'.
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state); utime is field 14, stime field 15.
  return Number(f[11]) + Number(f[12]);
}

const byKind = (snap, kind) => (snap && snap.subscribe ? snap.subscribe.inbound.filter((s) => s.kind === kind) : []);
const audioProgress = (s) => Math.max(s.packetsReceived || 0, 0) + (s.totalSamplesReceived || 0);

// Streams of `kind` in `now` whose counter grew since `base` (matched by stats id).
function growing(now, base, kind) {
  const prev = new Map(byKind(base, kind).map((s) => [s.id, s]));
  return byKind(now, kind).filter((s) => {
    const p = prev.get(s.id);
    if (!p) return false;
    return kind === 'video' ? s.framesDecoded > p.framesDecoded : audioProgress(s) > audioProgress(p);
  });
}

function summarize(snap) {
  if (!snap) return null;
  const brief = (s) => ({
    kind: s.kind, ssrc: s.ssrc, mid: s.mid, source: s.source, codec: s.codec,
    framesDecoded: s.framesDecoded, packetsReceived: s.packetsReceived, packetsLost: s.packetsLost,
    size: s.frameWidth ? `${s.frameWidth}x${s.frameHeight}` : undefined,
  });
  const pair = (pc) => pc && pc.pair && {
    local: `${pc.pair.local?.address}:${pc.pair.local?.port} ${pc.pair.local?.protocol} ${pc.pair.local?.candidateType}`,
    remote: `${pc.pair.remote?.address}:${pc.pair.remote?.port} ${pc.pair.remote?.protocol} ${pc.pair.remote?.candidateType}`,
  };
  return {
    state: snap.state, participantId: snap.participantId, alerts: snap.alerts,
    tiles: snap.tiles.map((t) => `${t.id}${t.local ? '(local)' : ''}:${t.videoWidth}x${t.videoHeight}`),
    publish: snap.publish && { conn: snap.publish.connectionState, ice: snap.publish.iceConnectionState,
      pair: pair(snap.publish), outbound: snap.publish.outbound.map((o) => ({ kind: o.kind, rid: o.rid,
        packetsSent: o.packetsSent, framesEncoded: o.framesEncoded, codec: o.codec })) },
    subscribe: snap.subscribe && { conn: snap.subscribe.connectionState, ice: snap.subscribe.iceConnectionState,
      signaling: snap.subscribe.signalingState, pair: pair(snap.subscribe), inbound: snap.subscribe.inbound.map(brief) },
  };
}

/**
 * A WAV file of speech-like sound at speaking level (a 220 Hz tone at about
 * -12 dBFS, in syllables of 4 per second) for Chromium's fake microphone:
 * its default beep is far below speech (-70 dBov and quieter), so it would
 * never count as speaking.
 */
function speechWav(dir, gain = 0.25) {
  const rate = 48_000;
  const secs = 6;
  const n = rate * secs;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0); buf.writeUInt32LE(36 + n * 2, 4); buf.write('WAVE', 8);
  buf.write('fmt ', 12); buf.writeUInt32LE(16, 16); buf.writeUInt16LE(1, 20); buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24); buf.writeUInt32LE(rate * 2, 28); buf.writeUInt16LE(2, 32); buf.writeUInt16LE(16, 34);
  buf.write('data', 36); buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const envelope = 0.35 + 0.65 * Math.abs(Math.sin(Math.PI * 4 * t));
    const v = gain * envelope * (Math.sin(2 * Math.PI * 220 * t) + 0.5 * Math.sin(2 * Math.PI * 440 * t));
    buf.writeInt16LE(Math.round(v * 32767), 44 + i * 2);
  }
  const path = join(dir, gain > 0 ? 'speech.wav' : 'silence.wav');
  writeFileSync(path, buf);
  return path;
}

// ---------------------------------------------------------------------------------------------
// A participant: one persistent Chromium context with a fresh profile.

const everyone = new Set();

class Participant {
  constructor(label, { locale = 'en-US', lang = 'en-US', args = [], phone = false, viewport = { width: 1280, height: 720 } } = {}) {
    this.label = label;
    this.locale = locale;
    this.lang = lang;
    this.args = args;
    this.phone = phone;
    this.viewport = viewport;
    this.lines = [];
    this.id = null;
  }

  note(line) {
    this.lines.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
    if (this.lines.length > 600) this.lines.splice(0, this.lines.length - 500);
  }

  async launch() {
    this.dir = mkdtempSync(join(tmpdir(), `kaigi-e2e-${this.label}-`));
    everyone.add(this);
    this.ctx = await chromium.launchPersistentContext(this.dir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_FLAGS, `--lang=${this.lang}`, ...this.args],
      ignoreHTTPSErrors: true,
      locale: this.locale,
      // A phone: an iPhone-sized touch screen (the page must not need a desktop).
      ...(this.phone
        ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }
        : { viewport: this.viewport }),
      timeout: ms(60_000),
    });
    if (BASE) {
      await this.ctx.grantPermissions(['camera', 'microphone'], { origin: BASE }).catch(() => {});
    }
    this.page = this.ctx.pages()[0] || (await this.ctx.newPage());
    const page = this.page;
    page.on('console', (m) => this.note(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => this.note(`pageerror: ${e && e.stack ? e.stack : e}`));
    page.on('requestfailed', (r) => this.note(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => { if (r.status() >= 400) this.note(`http ${r.status()} ${r.url()}`); });
    page.on('websocket', (ws) => {
      this.note(`ws open ${ws.url()}`);
      const cut = (p) => { const s = typeof p === 'string' ? p : `<${p.length} bytes>`; return s.length > 400 ? `${s.slice(0, 400)}…(${s.length})` : s; };
      ws.on('framesent', (f) => this.note(`ws > ${cut(f.payload)}`));
      ws.on('framereceived', (f) => this.note(`ws < ${cut(f.payload)}`));
      ws.on('socketerror', (e) => this.note(`ws error ${e}`));
      ws.on('close', () => this.note('ws closed'));
    });
    return this;
  }

  async open(room) {
    await this.page.goto(`${BASE}/r/${room}`, { waitUntil: 'load', timeout: ms(30_000) });
  }

  joinButton() {
    return this.page.getByRole('button', { name: JOIN_NAME });
  }

  async fillName(name) {
    const input = this.page.getByRole('textbox').first();
    await input.waitFor({ state: 'visible', timeout: ms(30_000) });
    await input.fill(name);
  }

  async state() {
    return this.page.evaluate(() => document.body && document.body.dataset.state);
  }

  /** Types `name`, presses Join (a tap on a phone), waits to be in; sets `id`. */
  async join(name = this.label) {
    await this.fillName(name);
    if (this.phone) await this.joinButton().tap();
    else await this.joinButton().click();
    await this.waitState('joined');
    this.id = await this.page.evaluate(() => window.kaigi.participantId);
  }

  async waitState(want, timeout = ms(30_000)) {
    return until(`${this.label}: body[data-state] = ${want}`, async () => {
      const state = await this.state();
      if (state === 'error' && want !== 'error') {
        const alerts = await this.page.evaluate(() => [...document.querySelectorAll('[role=alert],[role=status]')]
          .map((e) => e.textContent.trim()).filter(Boolean)).catch(() => []);
        return { ok: false, state, fatal: `${this.label} page went to state "error" (page says: ${JSON.stringify(alerts)})` };
      }
      return { ok: state === want, state };
    }, { timeout, interval: 100 });
  }

  probe() {
    return this.page.evaluate(pageProbe);
  }

  framesDecoded() {
    return this.page.evaluate(framesDecodedProbe);
  }

  async dump(dir, tag) {
    const out = { label: this.label, id: this.id };
    try { out.snapshot = await this.probe(); } catch (e) { out.snapshotError = String(e); }
    try {
      out.subscribeSdp = await this.page.evaluate(() => window.kaigi?.subscribePc?.remoteDescription?.sdp);
      out.publishSdp = await this.page.evaluate(() => window.kaigi?.publishPc?.localDescription?.sdp);
    } catch { /* page gone */ }
    out.log = this.lines;
    if (dir) {
      writeFileSync(join(dir, `${tag}-${this.label}.json`), JSON.stringify(out, null, 1));
      await this.page.screenshot({ path: join(dir, `${tag}-${this.label}.png`), timeout: 5000 }).catch(() => {});
    }
    return out;
  }

  async close() {
    everyone.delete(this);
    if (ARTIFACTS && this.lines.length) {
      try {
        mkdirSync(ARTIFACTS, { recursive: true });
        writeFileSync(join(ARTIFACTS, `page-${this.label}.log`), this.lines.join('\n') + '\n');
      } catch { /* best effort */ }
    }
    if (this.ctx) await this.ctx.close().catch(() => {});
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.ctx = null;
  }
}

async function dumpAll(tag, participants, err) {
  let dir = '';
  if (ARTIFACTS) {
    dir = ARTIFACTS;
    mkdirSync(dir, { recursive: true });
  }
  console.error(`[e2e] ${tag} FAILED: ${err && err.message ? err.message : err}`);
  for (const p of participants) {
    if (!p.ctx) continue;
    const d = await p.dump(dir, tag);
    console.error(`[e2e] --- ${p.label} (${p.id ?? '?'}) ---`);
    console.error(JSON.stringify(summarize(d.snapshot) ?? d.snapshotError ?? null, null, 1));
    console.error(d.log.slice(-40).map((l) => `  ${l}`).join('\n'));
  }
  if (dir) console.error(`[e2e] full page logs, getStats dumps, SDPs and screenshots in ${dir}`);
}

function writeResults() {
  results.finishedAt = new Date().toISOString();
  if (OUT) writeFileSync(OUT, JSON.stringify(results, null, 1) + '\n');
}

after(async () => {
  for (const p of [...everyone]) await p.close();
  results.ok = Object.keys(results.tests).length > 0 && Object.values(results.tests).every((t) => t.ok);
  writeResults();
});

function roomName(tag) {
  return `e2e-${tag}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

// ---------------------------------------------------------------------------------------------

test('the pre-join screen follows the browser language (ja-JP: 参加, en-US: Join)', { timeout: ms(120_000) }, async () => {
  assert.ok(BASE, 'KAIGI_URL is not set (run tests/e2e/run.sh, which starts kaigi)');
  const ja = new Participant('lang-ja', { locale: 'ja-JP', lang: 'ja' });
  const en = new Participant('lang-en', { locale: 'en-US', lang: 'en-US' });
  const room = roomName('lang');
  try {
    await Promise.all([ja.launch(), en.launch()]);
    await Promise.all([ja.open(room), en.open(room)]);
    const jaJoin = ja.page.getByRole('button', { name: '参加', exact: true });
    const enJoin = en.page.getByRole('button', { name: 'Join', exact: true });
    await jaJoin.waitFor({ state: 'visible', timeout: ms(30_000) });
    await enJoin.waitFor({ state: 'visible', timeout: ms(30_000) });
    assert.equal(await ja.page.getByRole('button', { name: 'Join', exact: true }).count(), 0,
      'ja-JP page also shows an English "Join" button');
    assert.equal(await en.page.getByRole('button', { name: '参加', exact: true }).count(), 0,
      'en-US page also shows a Japanese "参加" button');
    results.tests.language = { ok: true, ja: '参加', en: 'Join' };
  } catch (e) {
    results.tests.language = { ok: false, error: String(e && e.message ? e.message : e) };
    await dumpAll('language', [ja, en], e);
    throw e;
  } finally {
    await ja.close();
    await en.close();
  }
});

test('three participants see and hear each other; one leaves, two keep going', { timeout: ms(300_000) }, async () => {
  assert.ok(BASE, 'KAIGI_URL is not set (run tests/e2e/run.sh, which starts kaigi)');
  const room = roomName(MODE);
  const ps = [new Participant('p1'), new Participant('p2'), new Participant('p3')];
  const r = (results.tests.meeting = { ok: false, room, participants: {} });
  let phase = 'launch';
  try {
    const t0 = Date.now();
    await Promise.all(ps.map((p) => p.launch()));
    r.chromium = ps[0].ctx.browser()?.version?.() ?? null;
    log(`launched 3 Chromium ${r.chromium ?? ''} contexts in ${Date.now() - t0} ms; room ${room}`);
    await Promise.all(ps.map((p) => p.open(room)));

    // --- join one after the other; time join click -> first remote video frame decoded ---------
    for (const [i, p] of ps.entries()) {
      phase = `join ${p.label}`;
      await p.fillName(`E2E ${p.label} 参加者`);
      const button = p.joinButton();
      await button.waitFor({ state: 'visible', timeout: ms(30_000) });
      const clicked = Date.now();
      await button.click();
      // The first participant has nobody to receive from yet.
      const firstFrame = i === 0 ? null : until(`${p.label}: first remote video frame`,
        async () => ({ ok: (await p.framesDecoded()) > 0 }), { timeout: ms(30_000), interval: 100 })
        .then(() => Date.now() - clicked);
      firstFrame?.catch(() => {}); // awaited below; keep a failed join from reporting it as unhandled
      await p.waitState('joined');
      const joinedMs = Date.now() - clicked;
      p.id = await until(`${p.label}: window.kaigi.participantId`, async () => {
        const id = await p.page.evaluate(() => window.kaigi && window.kaigi.participantId);
        return { ok: !!id, id };
      }).then((x) => String(x.id));
      const entry = (r.participants[p.label] = { id: p.id, joinToJoinedMs: joinedMs });
      if (firstFrame) {
        entry.joinToFirstFrameMs = await firstFrame;
        log(`${p.label} (${p.id}): joined after ${joinedMs} ms, first remote frame decoded ${entry.joinToFirstFrameMs} ms after clicking Join`);
      } else {
        log(`${p.label} (${p.id}): joined after ${joinedMs} ms`);
      }
    }
    const ids = ps.map((p) => p.id);
    assert.equal(new Set(ids).size, 3, `participant ids are not distinct: ${ids}`);
    const firsts = ps.slice(1).map((p) => r.participants[p.label].joinToFirstFrameMs);
    r.joinToFirstFrameMs = { p2: firsts[0], p3: firsts[1], max: Math.max(...firsts) };

    // --- everybody decodes video and receives audio from the two others --------------------------
    phase = 'media from the two others';
    const check3 = async (p) => {
      const snap = await p.probe();
      const others = ids.filter((id) => id !== p.id);
      const video = byKind(snap, 'video').filter((s) => s.framesDecoded > 10);
      const audio = byKind(snap, 'audio').filter((s) => s.packetsReceived > 20 || s.totalSamplesReceived > 48_000);
      return { snap, others, video, audio, ok: video.length >= 2 && audio.length >= 2 };
    };
    const base = await until('every participant decoding ≥2 video (>10 frames) and receiving ≥2 audio (>20 packets) streams',
      async () => {
        const all = await Promise.all(ps.map(check3));
        return { ok: all.every((x) => x.ok), all: all.map((x) => x.ok ? x : { ...summarize(x.snap), ok: false }) };
      }, { timeout: ms(30_000), interval: 250 }).then((x) => x.all.map((a) => a.snap));

    phase = 'media keeps flowing (3 participants)';
    const flowing3 = await until('framesDecoded and audio packets still growing on ≥2 streams for every participant', async () => {
      const now = await Promise.all(ps.map((p) => p.probe()));
      const per = now.map((snap, i) => {
        const v = growing(snap, base[i], 'video');
        const a = growing(snap, base[i], 'audio');
        const others = ids.filter((id) => id !== ps[i].id);
        // Where the msid of the subscribe SDP names the sender (protocol.md), both others must be there.
        const sources = new Set(v.map((s) => s.source).filter(Boolean));
        const sourcesOk = sources.size === 0 || others.every((id) => sources.has(id));
        return { ok: v.length >= 2 && a.length >= 2 && sourcesOk, video: v.length, audio: a.length,
          sources: [...sources], expected: others };
      });
      return { ok: per.every((x) => x.ok), per, now };
    }, { timeout: ms(15_000), interval: 250 });

    // --- grid shows 3 tiles, one of them local ----------------------------------------------------
    phase = 'grid with 3 tiles';
    await until('every grid to show 3 tiles (exactly one local)', async () => {
      const snaps = await Promise.all(ps.map((p) => p.probe()));
      const per = snaps.map((s, i) => {
        const local = s.tiles.filter((t) => t.local);
        const remote = new Set(s.tiles.filter((t) => !t.local).map((t) => t.id));
        const others = ids.filter((id) => id !== ps[i].id);
        return { ok: s.tiles.length === 3 && local.length === 1 && s.tiles.every((t) => t.hasVideo)
          && others.every((id) => remote.has(id)), tiles: s.tiles, expectedRemote: others };
      });
      return { ok: per.every((x) => x.ok), per };
    }, { timeout: ms(30_000), interval: 250 });
    // Remote <video> elements that never got a frame show black: report it (not asserted; autoplay rules vary).
    for (const [i, p] of ps.entries()) {
      const snap = await p.probe();
      const dark = snap.tiles.filter((t) => !t.local && !(t.videoWidth > 0));
      if (dark.length) log(`warning: ${p.label}: remote tiles without a video frame: ${JSON.stringify(dark)}`);
      r.participants[ps[i].label].tiles3 = snap.tiles;
    }

    // --- transport ----------------------------------------------------------------------------------
    const snaps3 = flowing3.now;
    for (const [i, p] of ps.entries()) {
      const e = r.participants[p.label];
      const sum = summarize(snaps3[i]);
      e.publishPair = sum.publish?.pair ?? null;
      e.subscribePair = sum.subscribe?.pair ?? null;
      e.inbound = sum.subscribe?.inbound ?? [];
      e.outbound = sum.publish?.outbound ?? [];
      log(`${p.label}: publish ${e.publishPair?.local} -> ${e.publishPair?.remote}; subscribe ${e.subscribePair?.local} -> ${e.subscribePair?.remote}`);
    }
    if (EXPECT_TRANSPORT) {
      phase = `transport ${EXPECT_TRANSPORT}`;
      for (const [i, p] of ps.entries()) {
        for (const which of ['publish', 'subscribe']) {
          const pc = snaps3[i][which];
          assert.ok(pc && pc.pair, `${p.label} ${which}: no selected candidate pair in getStats`);
          assert.equal(pc.pair.local.protocol, EXPECT_TRANSPORT,
            `${p.label} ${which}: selected pair uses ${pc.pair.local.protocol}, expected ${EXPECT_TRANSPORT}: ${JSON.stringify(pc.pair)}`);
        }
      }
      log(`all 6 selected candidate pairs use ${EXPECT_TRANSPORT}`);
    }

    // --- a 10 s window with all three joined: kaigi CPU, receive rates, media still flowing -----
    phase = 'measurement window';
    const w0 = await Promise.all(ps.map((p) => p.probe()));
    const c0 = KAIGI_PID ? cpuTicks(KAIGI_PID) : null;
    const tw0 = process.hrtime.bigint();
    await sleep(CPU_WINDOW_MS); // a measurement window, not a timing assertion
    const c1 = KAIGI_PID ? cpuTicks(KAIGI_PID) : null;
    const wallS = Number(process.hrtime.bigint() - tw0) / 1e9;
    const w1 = await Promise.all(ps.map((p) => p.probe()));
    if (KAIGI_PID) {
      const cpuS = (c1 - c0) / CLK_TCK;
      r.kaigiCpu = { percentOfOneCore: Math.round((cpuS / wallS) * 1000) / 10, cpuSeconds: cpuS, windowSeconds: Math.round(wallS * 100) / 100 };
      results.kaigiCpuPercent = r.kaigiCpu.percentOfOneCore;
      log(`kaigi CPU with 3 participants: ${r.kaigiCpu.percentOfOneCore}% of one core (${cpuS.toFixed(2)} s CPU over ${wallS.toFixed(1)} s)`);
    }
    for (const [i, p] of ps.entries()) {
      const prev = new Map(byKind(w0[i], 'video').concat(byKind(w0[i], 'audio')).map((s) => [s.id, s]));
      const rates = w1[i].subscribe.inbound.filter((s) => prev.has(s.id)).map((s) => {
        const q = prev.get(s.id);
        return {
          kind: s.kind, source: s.source, codec: s.codec,
          kbps: Math.round(((s.bytesReceived - q.bytesReceived) * 8) / wallS / 1000),
          fps: s.kind === 'video' ? Math.round(((s.framesDecoded - q.framesDecoded) / wallS) * 10) / 10 : undefined,
          size: s.frameWidth ? `${s.frameWidth}x${s.frameHeight}` : undefined,
          lost: (s.packetsLost ?? 0) - (q.packetsLost ?? 0),
        };
      }).filter((x) => x.kbps > 0);
      r.participants[p.label].receiveRates = rates;
      log(`${p.label} receives: ${rates.map((x) => `${x.kind}${x.source ? ` from ${x.source}` : ''} ${x.kbps} kbit/s${x.fps != null ? ` ${x.fps} fps ${x.size ?? ''}` : ''}`).join('; ')}`);
      const v = growing(w1[i], w0[i], 'video');
      const a = growing(w1[i], w0[i], 'audio');
      assert.ok(v.length >= 2 && a.length >= 2,
        `${p.label}: over the ${CPU_WINDOW_MS / 1000} s window only ${v.length} video / ${a.length} audio streams progressed: ${JSON.stringify(summarize(w1[i]))}`);
    }

    // --- p3 leaves ------------------------------------------------------------------------------
    phase = 'p3 leaves';
    const [p1, p2, p3] = ps;
    const leaveButton = p3.page.getByRole('button', { name: LEAVE_NAME });
    await leaveButton.waitFor({ state: 'visible', timeout: ms(10_000) });
    const leftAt = Date.now();
    await leaveButton.click();
    await p3.waitState('left', ms(10_000));
    const stay = [p1, p2];
    const two = await until('the two remaining grids to show exactly 2 tiles (p1, p2)', async () => {
      const snaps = await Promise.all(stay.map((p) => p.probe()));
      const per = snaps.map((s) => ({
        ok: s.tiles.length === 2 && s.tiles.every((t) => t.id !== p3.id) && s.state === 'joined', tiles: s.tiles, state: s.state,
      }));
      return { ok: per.every((x) => x.ok), per };
    }, { timeout: ms(10_000), interval: 100 });
    r.leaveToTwoTilesMs = Date.now() - leftAt;
    log(`p3 left; both remaining grids show 2 tiles ${r.leaveToTwoTilesMs} ms after clicking Leave`);
    void two;

    phase = 'media keeps flowing (2 participants)';
    const b2 = await Promise.all(stay.map((p) => p.probe()));
    const since = Date.now();
    const flowing2 = await until('p1 and p2 still decoding each other (video frames and audio growing over ≥3 s)', async () => {
      const now = await Promise.all(stay.map((p) => p.probe()));
      const per = now.map((snap, i) => {
        const other = stay[1 - i].id;
        const v = growing(snap, b2[i], 'video');
        const a = growing(snap, b2[i], 'audio');
        const sources = new Set(v.map((s) => s.source).filter(Boolean));
        const fromOther = sources.size === 0 ? v.length >= 1 : sources.has(other);
        return { ok: fromOther && a.length >= 1, video: v.length, audio: a.length, sources: [...sources], expected: other,
          pc: snap.subscribe && { conn: snap.subscribe.connectionState, signaling: snap.subscribe.signalingState } };
      });
      return { ok: Date.now() - since >= 3000 && per.every((x) => x.ok), per };
    }, { timeout: ms(15_000), interval: 250 });
    // Informational: does anybody still receive p3's stream?
    const stale = flowing2.per.flatMap((x, i) => x.sources.includes(p3.id) ? [stay[i].label] : []);
    if (stale.length) log(`note: ${stale.join(', ')} still decode frames attributed to ${p3.id} after it left`);
    r.afterLeave = flowing2.per;

    r.ok = true;
    if (r.joinToFirstFrameMs) {
      log(`join→first remote frame: p2 ${r.joinToFirstFrameMs.p2} ms, p3 ${r.joinToFirstFrameMs.p3} ms`);
    }
  } catch (e) {
    r.error = `${phase}: ${e && e.message ? e.message : e}`;
    await dumpAll(`meeting-${MODE}`, ps, e);
    throw e;
  } finally {
    for (const p of ps) await p.close();
  }
});

// ---------------------------------------------------------------------------------------------

test('chat is delivered as text, a moderator mute is enforced, a raised hand and a screen share are shown', { timeout: ms(240_000), skip: MODE === 'tcp' && 'covered by the udp run' }, async () => {
  assert.ok(BASE, 'KAIGI_URL is not set (run tests/e2e/run.sh, which starts kaigi)');
  const room = roomName(`features-${MODE}`);
  const wavDir = mkdtempSync(join(tmpdir(), 'kaigi-e2e-wav-'));
  const voice = [`--use-file-for-fake-audio-capture=${speechWav(wavDir)}`];
  const mod = new Participant('mod', { locale: 'ja-JP', lang: 'ja-JP', args: voice });
  // Three fake cameras for the guest, to switch between.
  const guest = new Participant('guest', { args: [...voice, '--use-fake-device-for-media-stream=device-count=3'] });
  const ps = [mod, guest];
  const r = (results.tests.features = { ok: false, room });
  let phase = 'launch';
  try {
    await Promise.all(ps.map((p) => p.launch()));
    await Promise.all(ps.map((p) => p.open(room)));
    for (const p of ps) {
      phase = `join ${p.label}`;
      await p.join(p === mod ? '司会 太郎' : 'Guest');
    }

    // --- chat: typed by the guest, shown to the moderator as plain text ------------------------
    phase = 'chat';
    const text = '<b id="injected">hello</b> 会議の資料です';
    const t0 = Date.now();
    await guest.page.getByRole('button', { name: /^\s*Chat/ }).click();
    const input = guest.page.getByRole('textbox', { name: 'Message' });
    await input.fill(text);
    await input.press('Enter');
    await until('the moderator sees the chat badge', async () => ({
      ok: await mod.page.evaluate(() => !document.getElementById('chat-badge').hidden),
    }));
    await mod.page.getByRole('button', { name: /^\s*チャット/ }).click();
    const shown = await until('the moderator sees the message', async () => {
      const got = await mod.page.evaluate(() => [...document.querySelectorAll('#chat-list .chat-msg')].map((li) => ({
        name: li.querySelector('.chat-name')?.textContent, text: li.querySelector('.chat-text')?.textContent,
      })));
      return { ok: got.some((m) => m.text === text), got };
    });
    r.chatDeliveredMs = Date.now() - t0;
    assert.deepEqual(shown.got.find((m) => m.text === text), { name: 'Guest', text });
    assert.equal(await mod.page.evaluate(() => document.getElementById('injected')), null, 'chat text was parsed as HTML');

    // --- moderator mutes the guest: the guest is told, and the SFU stops the audio --------------
    phase = 'moderator mute';
    const guestAudio = async () => byKind(await mod.probe(), 'audio').reduce((n, s) => n + (s.packetsReceived || 0), 0);
    const a0 = await guestAudio();
    await until('guest audio reaches the moderator', async () => ({ ok: (await guestAudio()) > a0 + 20 }));
    await mod.page.getByRole('button', { name: 'Guestさんのマイクをミュート' }).click();
    await until('the guest is told and its microphone is off', async () => {
      const s = await guest.page.evaluate(() => ({
        notice: document.getElementById('notices').textContent,
        mic: document.getElementById('mic-btn').textContent,
        enabled: window.kaigi.publishPc?.getSenders().find((x) => x.track?.kind === 'audio')?.track?.enabled,
      }));
      return { ok: /muted your microphone/.test(s.notice) && /Unmute/.test(s.mic) && s.enabled === false, s };
    });
    // Forwarding stops even though the guest's browser still sends (silence) packets.
    await sleep(1000);
    const held0 = await guestAudio();
    await sleep(2000);
    const held = (await guestAudio()) - held0;
    r.audioPacketsWhileMuted = held;
    assert.ok(held <= 3, `the moderator still received ${held} guest audio packets in 2 s while muted`);

    // --- only the guest can unmute; audio flows again -------------------------------------------
    phase = 'self unmute';
    await guest.page.getByRole('button', { name: /Unmute microphone/ }).click();
    const u0 = await guestAudio();
    await until('guest audio flows again after the guest unmuted', async () => ({ ok: (await guestAudio()) > u0 + 20 }));

    // --- raised hand shows in the moderator's participant list ----------------------------------
    phase = 'hand';
    await guest.page.getByRole('button', { name: /Raise hand/ }).click();
    await until('the moderator sees the raised hand', async () => ({
      ok: await mod.page.evaluate(() => !!document.querySelector('#people-list .person-hand')),
    }));
    // --- screen share: shown large to the other, one at a time, gone when stopped ---------------
    phase = 'screen share';
    const s0 = Date.now();
    await guest.page.getByRole('button', { name: /Share screen/ }).click();
    const pres = () => mod.page.evaluate(() => {
      const el = document.getElementById('presentation');
      const v = document.getElementById('presentation-video');
      return {
        shown: !el.hidden, label: document.getElementById('presentation-label').textContent,
        w: v.videoWidth, frames: v.getVideoPlaybackQuality().totalVideoFrames,
        tileW: document.querySelector('.tile')?.clientWidth ?? 0, presW: el.clientWidth,
      };
    });
    const first = await until('the moderator sees the guest screen, large and playing', async () => {
      const p = await pres();
      return { ok: p.shown && p.w > 0 && p.frames > 5 && /Guest/.test(p.label), p };
    });
    r.screenShownMs = Date.now() - s0;
    assert.ok(first.p.presW > first.p.tileW, `the share is larger than a tile: ${JSON.stringify(first.p)}`);
    await until('screen frames keep coming', async () => ({ ok: (await pres()).frames > first.p.frames + 10 }));
    // Only one share at a time: the moderator's attempt is refused with a reason.
    await mod.page.getByRole('button', { name: /画面共有/ }).click();
    await until('the moderator is told someone else shares', async () => ({
      ok: /他の人が画面を共有中/.test(await mod.page.evaluate(() => document.getElementById('notices').textContent)),
    }));
    await guest.page.getByRole('button', { name: /Stop sharing/ }).click();
    await until('the share disappears for the moderator', async () => ({ ok: !(await pres()).shown }));

    // --- active speaker: whoever's microphone is on is the active speaker for both ---------------
    phase = 'active speaker';
    const ids = { mod: await mod.page.evaluate(() => window.kaigi.participantId), guest: await guest.page.evaluate(() => window.kaigi.participantId) };
    const speakerOn = (p) => p.page.evaluate(() => ({
      id: document.body.dataset.activeSpeaker,
      outlined: document.querySelector('.tile.is-speaking')?.dataset.participantId ?? null,
    }));
    // The moderator mutes: the guest (fake microphone on) speaks.
    await mod.page.locator('#mic-btn').click();
    const sp0 = Date.now();
    for (const p of ps) {
      await until(`${p.label}: the guest is the active speaker`, async () => {
        const s = await speakerOn(p);
        return { ok: s.id === ids.guest && s.outlined === ids.guest, s };
      });
    }
    // The other way round.
    await guest.page.locator('#mic-btn').click();
    await mod.page.locator('#mic-btn').click();
    const a1 = Date.now();
    for (const p of ps) {
      await until(`${p.label}: the moderator is the active speaker`, async () => {
        const s = await speakerOn(p);
        return { ok: s.id === ids.mod && s.outlined === ids.mod, s };
      });
    }
    r.speakerSwitchMs = Date.now() - a1;
    r.firstSpeakerMs = a1 - sp0;

    // --- device switching during the call, and the speaker layout ------------------------------
    phase = 'devices';
    await guest.page.getByRole('button', { name: /^\s*Settings/ }).click();
    const dialog = guest.page.getByRole('dialog');
    await dialog.waitFor({ state: 'visible', timeout: ms(10_000) });
    // Chromium's fake_device_1 is a depth camera (Y16) no encoder takes; fake_device_2 is MJPEG.
    await guest.page.locator('#dev-camera').selectOption({ label: 'fake_device_2' });
    await until('the guest sends from another camera', async () => ({
      ok: await guest.page.evaluate(() => window.kaigi.publishPc.getSenders()
        .some((x) => x.track?.kind === 'video' && x.track.label === 'fake_device_2' && x.track.readyState === 'live')),
    }));
    const guestFrames = () => mod.page.evaluate((pid) => document.querySelector(`.tile[data-participant-id="${pid}"] video`)?.getVideoPlaybackQuality().totalVideoFrames ?? 0, ids.guest);
    const gf = await guestFrames();
    await until('the moderator keeps decoding the guest after the switch', async () => ({
      ok: (await guestFrames()) > gf + 20,
      sending: await guest.page.evaluate(async () => {
        const out = [];
        (await window.kaigi.publishPc.getStats()).forEach((x) => {
          if (x.type === 'outbound-rtp' && x.kind === 'video') out.push({ mid: x.mid, frames: x.framesEncoded, why: x.qualityLimitationReason, w: x.frameWidth, fps: x.framesPerSecond, target: x.targetBitrate });
          if (x.type === 'candidate-pair' && x.nominated) out.push({ bwe: x.availableOutgoingBitrate, rtt: x.currentRoundTripTime });
        });
        return out;
      }),
    }));
    // Speaker layout: the active speaker (the moderator) large on the guest's page.
    await guest.page.locator('#dev-layout').selectOption('speaker');
    await until('the guest sees the speaker large', async () => {
      const st = await guest.page.evaluate(() => ({
        shown: !document.getElementById('presentation').hidden,
        label: document.getElementById('presentation-label').textContent,
      }));
      return { ok: st.shown && st.label.includes('司会'), st };
    });
    await dialog.getByRole('button', { name: 'Close' }).click();

    r.ok = true;
    log(`features: chat delivered in ${r.chatDeliveredMs} ms; ${held} guest audio packets while muted; screen shown after ${r.screenShownMs} ms; active speaker switched in ${r.speakerSwitchMs} ms`);
  } catch (err) {
    await dumpAll(`features-${phase.replace(/\W+/g, '-')}`, ps, err);
    throw err;
  } finally {
    for (const p of ps) await p.close();
    rmSync(wavDir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------

/** @param {'-I' | '-D'} op  insert or delete the rule that drops 25% of UDP */
const LOSS_RULE = (op) => [op, 'INPUT', '-p', 'udp', '-m', 'statistic', '--mode', 'random', '--probability', '0.25', '-j', 'DROP'];

test('a dropped connection comes back as the same participant; others see "reconnecting", not a leave', { timeout: ms(240_000), skip: MODE === 'tcp' && 'covered by the udp run' }, async () => {
  assert.ok(BASE, 'KAIGI_URL is not set (run tests/e2e/run.sh, which starts kaigi)');
  const room = roomName(`reconnect-${MODE}`);
  const a = new Participant('ra');
  const b = new Participant('rb');
  const ps = [a, b];
  const r = (results.tests.reconnect = { ok: false, room });
  let phase = 'launch';
  // The last remote frame count, and "growing again" after a disruption.
  const framesGrowing = async (p, what) => {
    const f0 = await p.framesDecoded();
    return until(`${p.label}: ${what}`, async () => ({ ok: (await p.framesDecoded()) > f0 + 15 }), { timeout: ms(40_000), interval: 250 });
  };
  const idOf = (p) => p.page.evaluate(() => window.kaigi.participantId);
  const sawLeave = (p) => p.lines.some((l) => l.includes('"participant_left"'));
  try {
    await Promise.all(ps.map((p) => p.launch()));
    await Promise.all(ps.map((p) => p.open(room)));
    for (const p of ps) {
      phase = `join ${p.label}`;
      await p.join();
    }
    phase = 'media before';
    await Promise.all(ps.map((p) => framesGrowing(p, 'decoding the other')));

    // --- the signaling connection drops (closed without a clean code) ---------------------------
    phase = 'websocket drop';
    let t0 = Date.now();
    await b.page.evaluate(() => window.kaigi.ws.close(4000, 'test: connection lost'));
    await until('a sees b reconnecting or back', async () => ({
      ok: a.lines.some((l) => l.includes('"reconnecting":true')),
    }));
    await until('b resumed', async () => ({ ok: await b.page.evaluate(() => document.body.dataset.resumed === 'true') }));
    r.resumeMs = Date.now() - t0;
    assert.equal(await idOf(b), b.id, 'b kept its participant id');
    await Promise.all([framesGrowing(a, 'decoding b again'), framesGrowing(b, 'decoding a again')]);
    r.mediaBackAfterResumeMs = Date.now() - t0;
    assert.ok(!sawLeave(a), 'a never saw b leave');

    // --- connection quality: good on a clean link, poor with 25% loss, good again ------------
    // (25% of UDP dropped at random by the namespace's firewall: this kernel has no netem.)
    phase = 'quality';
    const qualityOf = (p, id) => p.page.evaluate((pid) => document.querySelector(`.tile[data-participant-id="${pid}"] .quality`)?.dataset.quality ?? null, id);
    await until('a grades b good', async () => ({ ok: (await qualityOf(a, b.id)) === 'good' }));
    execFileSync('iptables', ['-w', ...LOSS_RULE('-I')]);
    try {
      await until('a grades b poor under 25% loss', async () => ({ ok: (await qualityOf(a, b.id)) === 'poor' }), { timeout: ms(20_000) });
    } finally {
      execFileSync('iptables', ['-w', ...LOSS_RULE('-D')]);
    }
    await until('a grades b good again', async () => ({ ok: (await qualityOf(a, b.id)) === 'good' }), { timeout: ms(20_000) });

    // --- the whole network is cut for 5 s ------------------------------------------------------
    phase = 'link cut';
    t0 = Date.now();
    execFileSync('ip', ['link', 'set', 'lo', 'down']);
    await sleep(5000);
    execFileSync('ip', ['link', 'set', 'lo', 'up']);
    await Promise.all([framesGrowing(a, 'decoding b after the outage'), framesGrowing(b, 'decoding a after the outage')]);
    r.mediaBackAfterOutageMs = Date.now() - t0 - 5000;
    for (const p of ps) assert.equal(await idOf(p), p.id, `${p.label} kept its participant id`);
    assert.ok(!sawLeave(a) && !sawLeave(b), 'nobody saw the other leave');
    assert.equal(await a.state(), 'joined');
    assert.equal(await b.state(), 'joined');

    // --- closing the tab: gone for the other within 5 s -----------------------------------------
    phase = 'tab closed';
    t0 = Date.now();
    await b.page.close({ runBeforeUnload: true });
    await until('a sees b leave', async () => ({ ok: sawLeave(a) }), { timeout: ms(5_000) });
    r.goneAfterTabCloseMs = Date.now() - t0;
    r.ok = true;
    log(`reconnect: resumed in ${r.resumeMs} ms (media back ${r.mediaBackAfterResumeMs} ms); media back ${r.mediaBackAfterOutageMs} ms after a 5 s outage; closed tab gone in ${r.goneAfterTabCloseMs} ms`);
  } catch (err) {
    try { execFileSync('ip', ['link', 'set', 'lo', 'up']); } catch { /* best effort */ }
    try { execFileSync('iptables', ['-w', ...LOSS_RULE('-D')]); } catch { /* none left */ }
    await dumpAll(`reconnect-${phase.replace(/\W+/g, '-')}`, ps, err);
    throw err;
  } finally {
    for (const p of ps) await p.close();
  }
});

// ---------------------------------------------------------------------------------------------

test('video off the page is not forwarded, and comes back when paged to', { timeout: ms(240_000), skip: MODE === 'tcp' && 'covered by the udp run' }, async () => {
  assert.ok(BASE, 'KAIGI_URL is not set (run tests/e2e/run.sh, which starts kaigi)');
  const room = roomName(`paging-${MODE}`);
  // Silent microphones: nobody becomes the active speaker and moves to the front of the page.
  const wavDir = mkdtempSync(join(tmpdir(), 'kaigi-e2e-wav-'));
  const quiet = { args: [`--use-file-for-fake-audio-capture=${speechWav(wavDir, 0)}`] };
  const ps = [new Participant('pg1', quiet), new Participant('pg2', quiet), new Participant('pg3', quiet)];
  const r = (results.tests.paging = { ok: false, room });
  let phase = 'launch';
  const tileFrames = (p, id) => p.page.evaluate((pid) => {
    const v = document.querySelector(`.tile[data-participant-id="${pid}"] video`);
    return v ? v.getVideoPlaybackQuality().totalVideoFrames : -1;
  }, id);
  const pausedMetric = async () => {
    const text = await new Promise((resolve, reject) => {
      https.get(`${BASE}/metrics`, { rejectUnauthorized: false }, (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
    const line = text.split('\n').find((l) => l.startsWith('kaigi_rtp_paused_total'));
    return Number(line?.split(' ')[1] ?? 0);
  };
  try {
    await Promise.all(ps.map((p) => p.launch()));
    // pg1 shows two tiles per page: itself and one other.
    await ps[0].page.goto(`${BASE}/r/${room}?tiles=2`, { waitUntil: 'load', timeout: ms(30_000) });
    await Promise.all(ps.slice(1).map((p) => p.open(room)));
    for (const p of ps) {
      phase = `join ${p.label}`;
      await p.join();
    }
    const [a, b, c] = ps;
    phase = 'one remote off the page';
    const split = await until('pg1 shows one remote tile and hides the other', async () => {
      const s = await a.page.evaluate(() => ({
        shown: [...document.querySelectorAll('#grid .tile:not([hidden])')].map((t) => t.dataset.participantId),
        hidden: [...document.querySelectorAll('#grid .tile[hidden]')].map((t) => t.dataset.participantId),
        pager: !document.getElementById('pager').hidden,
      }));
      return { ok: s.shown.length === 2 && s.hidden.length === 1 && s.pager, s };
    });
    // Settled: the same one still off the page a second later.
    await sleep(1000);
    const settled = await a.page.evaluate(() => [...document.querySelectorAll('#grid .tile[hidden]')].map((t) => t.dataset.participantId));
    assert.deepEqual(settled, split.s.hidden, 'the page does not reshuffle by itself');
    const offPage = split.s.hidden[0];
    const onPage = split.s.shown.find((id) => id !== a.id);
    assert.ok([b.id, c.id].includes(offPage) && [b.id, c.id].includes(onPage));
    await until('pg1 decodes the on-page participant', async () => ({ ok: (await tileFrames(a, onPage)) > 20 }));
    // The off-page participant does send: pg2 decodes it (pausing is per subscriber).
    await until('pg2 decodes both others', async () => ({
      ok: (await tileFrames(b, a.id)) > 20 && (await tileFrames(b, c.id)) > 20,
    }));
    // ...but its video does not reach pg1 (counted as paused at the SFU).
    await sleep(1000);
    const m0 = await pausedMetric();
    const f0 = await tileFrames(a, offPage);
    await sleep(2000);
    const f1 = await tileFrames(a, offPage);
    const m1 = await pausedMetric();
    r.framesWhileOffPage = f1 - f0;
    r.pausedPacketsIn2s = m1 - m0;
    assert.ok(f1 - f0 <= 2, `off-page video still decoded: ${f1 - f0} frames in 2 s`);
    assert.ok(m1 - m0 > 10, `the SFU counted paused packets: ${m1 - m0}`);

    phase = 'paged to';
    const t0 = Date.now();
    await a.page.getByRole('button', { name: 'Next page' }).click();
    const g0 = await tileFrames(a, offPage);
    await until('the paged-to participant is decoded again', async () => ({ ok: (await tileFrames(a, offPage)) > g0 + 10 }));
    r.resumeMs = Date.now() - t0;
    r.ok = true;
    log(`paging: off-page video ${r.framesWhileOffPage} frames / ${r.pausedPacketsIn2s} packets paused in 2 s; back ${r.resumeMs} ms after paging`);
  } catch (err) {
    await dumpAll(`paging-${phase.replace(/\W+/g, '-')}`, ps, err);
    throw err;
  } finally {
    for (const p of ps) await p.close();
    rmSync(wavDir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------

test('the meeting is usable on a phone screen', { timeout: ms(180_000), skip: MODE === 'tcp' && 'covered by the udp run' }, async () => {
  assert.ok(BASE, 'KAIGI_URL is not set (run tests/e2e/run.sh, which starts kaigi)');
  const room = roomName(`phone-${MODE}`);
  const phone = new Participant('phone', { locale: 'ja-JP', lang: 'ja-JP', phone: true });
  const desk = new Participant('desk');
  const ps = [phone, desk];
  const r = (results.tests.phone = { ok: false, room });
  let phase = 'launch';
  try {
    await Promise.all(ps.map((p) => p.launch()));
    await Promise.all(ps.map((p) => p.open(room)));
    for (const p of ps) {
      phase = `join ${p.label}`;
      await p.join();
    }
    phase = 'phone decodes';
    await until('the phone decodes the desktop participant', async () => ({ ok: (await phone.framesDecoded()) > 20 }));
    const layout = await phone.page.evaluate(() => {
      const vw = window.innerWidth;
      const controls = [...document.querySelectorAll('#controls button')].filter((b) => !b.hidden && b.offsetParent !== null);
      return {
        vw,
        scrollW: document.documentElement.scrollWidth,
        controls: controls.map((b) => {
          const rc = b.getBoundingClientRect();
          return { id: b.id, left: rc.left, right: rc.right, top: rc.top, bottom: rc.bottom, w: rc.width, h: rc.height };
        }),
        shareShown: !document.getElementById('share-btn').hidden,
        tiles: [...document.querySelectorAll('#grid .tile:not([hidden])')].map((t) => t.getBoundingClientRect().width),
        vh: window.innerHeight,
      };
    });
    r.layout = layout;
    assert.ok(layout.scrollW <= layout.vw + 1, `no sideways scrolling: ${layout.scrollW} > ${layout.vw}`);
    for (const c of layout.controls) {
      assert.ok(c.left >= 0 && c.right <= layout.vw + 1 && c.bottom <= layout.vh + 1, `${c.id} is on screen: ${JSON.stringify(c)}`);
      assert.ok(c.w >= 40 && c.h >= 40, `${c.id} is big enough to tap: ${c.w}x${c.h}`);
    }
    assert.ok(layout.tiles.length === 2 && layout.tiles.every((w) => w > 100), `two visible tiles: ${layout.tiles}`);
    // Leave works by touch.
    await phone.page.getByRole('button', { name: /退出/ }).tap();
    await phone.waitState('left');
    r.ok = true;
    log(`phone: ${layout.controls.length} controls within ${layout.vw}px, tiles ${layout.tiles.map(Math.round)}`);
  } catch (err) {
    await dumpAll(`phone-${phase.replace(/\W+/g, '-')}`, ps, err);
    throw err;
  } finally {
    for (const p of ps) await p.close();
  }
});

// ---------------------------------------------------------------------------------------------

/** kaigi's resident memory, KiB (VmRSS), or 0 without its pid. */
function rssKiB() {
  if (!KAIGI_PID) return 0;
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${KAIGI_PID}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** One HTTPS request to kaigi (self-signed: not verified); resolves to the status, never rejects. */
function httpsStatus(method, path, body, headers = {}) {
  return new Promise((resolve) => {
    const u = new URL(path, BASE);
    const req = https.request({ method, hostname: u.hostname, port: u.port, path: u.pathname + u.search, rejectUnauthorized: false, headers: { 'content-length': Buffer.byteLength(body), ...headers }, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => { req.destroy(); resolve(0); });
    req.end(body);
  });
}

/** Random bytes of a random length up to `max`. */
function junk(max) {
  const n = Math.floor(Math.random() * max);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(Math.random() * 256);
  return b;
}

test('hostile input at every port and endpoint does not disturb a 3-party meeting', { timeout: ms(180_000), skip: MODE === 'tcp' && 'covered by the udp run' }, async () => {
  assert.ok(BASE, 'KAIGI_URL is not set (run tests/e2e/run.sh, which starts kaigi)');
  const mediaPort = Number(process.env.KAIGI_MEDIA_PORT || 0);
  assert.ok(mediaPort, 'KAIGI_MEDIA_PORT is not set');
  const room = roomName(`hostile-${MODE}`);
  const a = new Participant('ha');
  const b = new Participant('hb');
  const c = new Participant('hc');
  const attacker = new Participant('attacker');
  const ps = [a, b, c, attacker];
  const r = (results.tests.hostile = { ok: false, room });
  let phase = 'launch';
  try {
    await Promise.all(ps.map((p) => p.launch()));
    for (const p of [a, b, c]) {
      await p.open(room);
      await p.join();
    }
    await until('b decodes a', async () => ({ ok: (await b.framesDecoded()) > 20 }));
    await until('c decodes a and b', async () => ({ ok: (await c.framesDecoded()) > 40 }));
    const cBefore = await c.framesDecoded();
    const rssBefore = rssKiB();
    const framesBefore = await b.framesDecoded();
    phase = 'attack';
    const ATTACK_MS = ms(12_000);
    const until_ = Date.now() + ATTACK_MS;
    const counts = { udp: 0, tcp: 0, http: 0, ws: 0 };
    // UDP at the media port: random bytes, truncated STUN, DTLS-looking and RTP-looking junk.
    const udp = dgram.createSocket('udp4');
    const stunHead = Buffer.from([0x00, 0x01, 0x00, 0x50, 0x21, 0x12, 0xa4, 0x42]);
    const udpFlood = (async () => {
      while (Date.now() < until_) {
        for (let i = 0; i < 50; i++) {
          const kind = i % 4;
          const body = junk(1400);
          const pkt = kind === 0 ? body
            : kind === 1 ? Buffer.concat([stunHead, body.subarray(0, 12)])
              : kind === 2 ? Buffer.concat([Buffer.from([0x16, 0xfe, 0xfd]), body])
                : Buffer.concat([Buffer.from([0x80, 0x60]), body]);
          udp.send(pkt, mediaPort, '127.0.0.1');
          counts.udp++;
        }
        await sleep(10);
      }
    })();
    // ICE-TCP at the media port: framed and unframed junk, connections opened and dropped.
    const tcpFlood = (async () => {
      while (Date.now() < until_) {
        await new Promise((resolve) => {
          const sock = net.connect(mediaPort, '127.0.0.1', () => {
            sock.write(Buffer.concat([Buffer.from([0xff, 0xff]), junk(3000)]));
            sock.end();
          });
          sock.on('error', resolve);
          sock.on('close', resolve);
          setTimeout(() => { sock.destroy(); resolve(); }, 300);
        });
        counts.tcp++;
      }
    })();
    // WHIP/WHEP: malformed SDP, bad tokens, oversized bodies, wrong types.
    const httpFlood = (async () => {
      const bodies = [
        ['POST', `/whip/${room}`, 'v=0\r\nm=video 9 junk', { 'content-type': 'application/sdp', authorization: 'Bearer nope' }],
        ['POST', `/whep/${room}`, junk(2000).toString('latin1'), { 'content-type': 'application/sdp' }],
        ['POST', `/whep/${room}`, 'x'.repeat(70_000), { 'content-type': 'application/sdp' }],
        ['POST', `/whip/${room}`, '{}', { 'content-type': 'application/json' }],
        ['PATCH', `/whep/${room}/nothing`, 'a=candidate:1', { 'content-type': 'application/trickle-ice-sdpfrag' }],
        ['GET', '/api/rooms', '', { authorization: 'Bearer guess' }],
        ['GET', `/watch/${room}/status`, '', {}],
        ['GET', '/assets/..%2f..%2fetc%2fpasswd', '', {}],
        ['POST', '/api/login', junk(600).toString('latin1'), { 'content-type': 'application/json' }],
        ['GET', '/api/me', '', { cookie: `kaigi_staff=${junk(200).toString('base64url')}` }],
        ['POST', '/api/me/publisher-token', '{"room":"x"}', { cookie: 'kaigi_staff=a.b.c' }],
      ];
      while (Date.now() < until_) {
        await Promise.all(bodies.map(([m, p, body, h]) => httpsStatus(m, p, body, h)));
        counts.http += bodies.length;
      }
    })();
    // WebSockets from a page: garbage, oversized messages, joins with bad names and tokens, floods.
    await attacker.page.goto(`${BASE}/`, { waitUntil: 'load', timeout: ms(30_000) });
    const wsFlood = attacker.page.evaluate(async ({ url, room: target, millis }) => {
      const end = Date.now() + millis;
      let sent = 0;
      const one = () => new Promise((resolve) => {
        const ws = new WebSocket(url);
        ws.onopen = () => {
          const msgs = [
            'not json', '{"type":"nope"}', '{"type":"join","v":1}', JSON.stringify({ type: 'join', v: 1, room: '../../x', name: 'x' }),
            JSON.stringify({ type: 'join', v: 1, room: target, name: 'x', token: 'a.b.c' }),
            // An EdDSA header with no key behind it, and alg none.
            JSON.stringify({ type: 'join', v: 1, room: target, name: 'x', token: 'eyJhbGciOiJFZERTQSJ9.e30.AAAA' }),
            JSON.stringify({ type: 'join', v: 1, room: target, name: 'x', token: 'eyJhbGciOiJub25lIn0.e30.' }),
            'x'.repeat(100_000), JSON.stringify({ type: 'chat', text: 'before join' }),
            JSON.stringify({ type: 'publish_offer', sdp: 'v=0' }),
          ];
          for (let i = 0; i < 60; i++) ws.send(msgs[i % msgs.length]);
          sent += 60;
          setTimeout(() => { ws.close(); resolve(); }, 100);
        };
        ws.onerror = () => resolve();
      });
      while (Date.now() < end) await Promise.all([one(), one(), one(), one()]);
      return sent;
    }, { url: `${BASE.replace('https', 'wss')}/ws`, room, millis: ATTACK_MS });
    // Meanwhile the meeting keeps going: b decodes a all along.
    const samples = [];
    let last = framesBefore;
    while (Date.now() < until_) {
      await sleep(2000);
      const f = await b.framesDecoded();
      samples.push(f - last);
      last = f;
    }
    counts.ws = await wsFlood;
    await Promise.all([udpFlood, tcpFlood, httpFlood]);
    udp.close();
    phase = 'after';
    const framesDuring = last - framesBefore;
    const rssAfter = rssKiB();
    r.counts = counts;
    r.framesDuring = framesDuring;
    r.frameSamples = samples;
    r.rssBeforeKiB = rssBefore;
    r.rssAfterKiB = rssAfter;
    assert.ok(samples.every((n) => n > 5), `b decoded a in every 2 s of the attack: ${samples}`);
    const cDuring = (await c.framesDecoded()) - cBefore;
    r.thirdFramesDuring = cDuring;
    assert.ok(cDuring > samples.length * 2 * 5 * 2, `c decoded a and b during the attack: ${cDuring} frames`);
    await until('all three still decode each other after the attack', async () => ({
      ok: (await b.framesDecoded()) > last + 20 && (await a.framesDecoded()) > 20 && (await c.framesDecoded()) > cBefore + cDuring + 40,
    }));
    if (rssBefore) assert.ok(rssAfter - rssBefore < 64 * 1024, `memory stays bounded: ${rssBefore} → ${rssAfter} KiB`);
    const metrics = await new Promise((resolve) => {
      https.get(`${BASE}/metrics`, { rejectUnauthorized: false }, (res) => {
        let text = '';
        res.on('data', (c) => { text += c; });
        res.on('end', () => resolve(text));
      }).on('error', () => resolve(''));
    });
    const garbage = Number((/kaigi_packets_dropped_total\{reason="garbage"\} (\d+)/.exec(metrics) || [])[1] || 0);
    const rejectedWs = [...metrics.matchAll(/kaigi_ws_rejected_total\{reason="[^"]+"\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    r.garbageDropped = garbage;
    r.wsRejected = rejectedWs;
    assert.ok(garbage > 0, 'garbage datagrams were counted');
    assert.ok(rejectedWs > 0, 'bad signaling messages were counted');
    r.ok = true;
    log(`hostile: ${counts.udp} datagrams, ${counts.tcp} TCP connections, ${counts.http} HTTP requests, ${counts.ws} WebSocket messages in ${ATTACK_MS / 1000} s; b decoded ${framesDuring} frames of a and c meanwhile (per 2 s: ${samples}), c ${cDuring} frames of a and b; RSS ${Math.round(rssBefore / 1024)} → ${Math.round(rssAfter / 1024)} MiB; counted: ${garbage} garbage datagrams, ${rejectedWs} refused messages`);
  } catch (err) {
    await dumpAll(`hostile-${phase.replace(/\W+/g, '-')}`, ps, err);
    throw err;
  } finally {
    for (const p of ps) await p.close();
  }
});

test('the admin page: key, rooms, a participant, end the room', { timeout: ms(120_000), skip: (MODE === 'tcp' && 'covered by the udp run') || (!process.env.KAIGI_ADMIN_KEY && 'no admin key (run.sh sets one)') }, async () => {
  assert.ok(BASE, 'KAIGI_URL is not set (run tests/e2e/run.sh, which starts kaigi)');
  const room = roomName(`admin-${MODE}`);
  const member = new Participant('member');
  const admin = new Participant('admin', { locale: 'ja-JP', lang: 'ja-JP' });
  const ps = [member, admin];
  const r = (results.tests.admin = { ok: false, room });
  let phase = 'launch';
  try {
    await Promise.all(ps.map((p) => p.launch()));
    await member.open(room);
    await member.join();
    phase = 'sign in';
    await admin.page.goto(`${BASE}/admin`, { waitUntil: 'load', timeout: ms(30_000) });
    // A wrong key is refused with a message.
    await admin.page.getByLabel('管理 API キー').fill('wrong-key');
    await admin.page.getByRole('button', { name: '開く' }).click();
    await until('a wrong key is refused', async () => {
      const text = await admin.page.evaluate(() => document.getElementById('key-error').hidden ? '' : document.getElementById('key-error').textContent);
      return { ok: text.includes('受け付けられませんでした'), text };
    });
    await admin.page.getByLabel('管理 API キー').fill(process.env.KAIGI_ADMIN_KEY);
    await admin.page.getByRole('button', { name: '開く' }).click();
    phase = 'rooms';
    await until('the admin page lists the room with its participant', async () => {
      const row = await admin.page.evaluate((name) => {
        const tr = document.querySelector(`#rooms tr[data-room="${name}"]`);
        return tr ? [...tr.querySelectorAll('td')].map((td) => td.textContent) : null;
      }, room);
      return { ok: !!row && row[1] === '1', row };
    });
    await admin.page.locator(`#rooms tr[data-room="${room}"] [data-action="show"]`).click();
    await until('the room shows its participant', async () => {
      const people = await admin.page.evaluate(() => [...document.querySelectorAll('#room-people li')].map((li) => li.textContent));
      return { ok: people.some((t) => t.includes('member')), people };
    });
    phase = 'end';
    admin.page.on('dialog', (d) => d.accept());
    await admin.page.locator(`#rooms tr[data-room="${room}"] [data-action="end-room"]`).click();
    await member.waitState('left');
    const said = await member.page.evaluate(() => document.body.textContent);
    await until('the room is gone from the list', async () => {
      const gone = await admin.page.evaluate((name) => !document.querySelector(`#rooms tr[data-room="${name}"]`), room);
      return { ok: gone };
    });
    r.ok = true;
    log(`admin: room listed, participant shown, ended (member page: ${said.includes('ended') || said.includes('終了') ? 'told' : 'left'})`);
  } catch (err) {
    await dumpAll(`admin-${phase.replace(/\W+/g, '-')}`, ps, err);
    throw err;
  } finally {
    for (const p of ps) await p.close();
  }
});

test('room doors: a password room asks for its password (meeting and viewer page); staff sign in on the landing page and meet under their directory names', { timeout: ms(240_000), skip: MODE === 'tcp' && 'covered by the udp run' }, async () => {
  assert.ok(BASE, 'KAIGI_URL is not set (run tests/e2e/run.sh, which starts kaigi)');
  // run.sh: e2e-pw-* rooms have the password "e2e-room-password"; e2e-staff-* rooms are for
  // staff signed in with the test directory (tests/ldap/directory.ldif).
  const pwRoom = roomName('pw');
  const staffRoom = roomName('staff');
  const guest = new Participant('guest', { locale: 'ja-JP', lang: 'ja-JP' });
  const watcher = new Participant('pw-viewer');
  const yamada = new Participant('yamada', { locale: 'ja-JP', lang: 'ja-JP' });
  const suzuki = new Participant('suzuki');
  const ps = [guest, watcher, yamada, suzuki];
  const r = (results.tests.doors = { ok: false, pwRoom, staffRoom });
  let phase = 'launch';
  const visibleText = (page, id) => page.evaluate((i) => {
    const e = document.getElementById(i);
    return e && !e.closest('[hidden]') ? e.textContent : '';
  }, id);
  try {
    await Promise.all(ps.map((p) => p.launch()));

    phase = 'password';
    await guest.open(pwRoom);
    await guest.fillName('来客');
    await guest.joinButton().click();
    const password = guest.page.getByLabel('パスワード');
    await password.waitFor({ state: 'visible', timeout: ms(30_000) });
    assert.equal(await guest.state(), 'prejoin');
    await password.fill('not-the-password');
    await guest.joinButton().click();
    await until('a wrong password is said so', async () => {
      const text = await visibleText(guest.page, 'password-error');
      return { ok: text.includes('パスワードが違います'), text };
    });
    await password.fill('e2e-room-password');
    await guest.joinButton().click();
    await guest.waitState('joined');

    phase = 'viewer password';
    await watcher.page.goto(`${BASE}/watch/${pwRoom}`, { waitUntil: 'load', timeout: ms(30_000) });
    const wpw = watcher.page.getByLabel('Password');
    await wpw.waitFor({ state: 'visible', timeout: ms(30_000) });
    await wpw.fill('e2e-room-password');
    await watcher.page.getByRole('button', { name: 'Watch' }).click();
    await until('the viewer page plays the password room', async () => {
      const w = await watcher.page.evaluate(watchProbe);
      return { ok: w.frames > 5, w };
    }, { timeout: ms(60_000) });

    phase = 'sign-in required';
    await suzuki.open(staffRoom);
    await suzuki.fillName('Someone');
    await suzuki.joinButton().click();
    await suzuki.waitState('error');
    const signIn = suzuki.page.getByRole('button', { name: 'Sign in' });
    await signIn.click();
    await suzuki.page.waitForURL(/\/\?next=/, { timeout: ms(30_000) });
    phase = 'sign in';
    await suzuki.page.getByLabel('Staff ID', { exact: true }).fill('k.suzuki');
    await suzuki.page.getByLabel('Password', { exact: true }).fill('wrong-password');
    await suzuki.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await until('a wrong sign-in is said so', async () => {
      const text = await visibleText(suzuki.page, 'signin-error');
      return { ok: text.includes('Wrong staff ID or password'), text };
    });
    await suzuki.page.getByLabel('Password', { exact: true }).fill('suzuki-pass-3');
    await suzuki.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    // ?next= brings him back to the meeting, his directory name filled in.
    await suzuki.page.waitForURL(new RegExp(`/r/${staffRoom}$`), { timeout: ms(30_000) });
    await until('the name comes from the directory', async () => {
      const name = await suzuki.page.evaluate(() => {
        const i = document.getElementById('name-input');
        return { value: i.value, readOnly: i.readOnly };
      });
      return { ok: name.value === '鈴木 一郎' && name.readOnly, name };
    });
    await suzuki.joinButton().click();
    await suzuki.waitState('joined');

    phase = 'moderator from the directory';
    await yamada.page.goto(`${BASE}/`, { waitUntil: 'load', timeout: ms(30_000) });
    await yamada.page.getByLabel('職員ID', { exact: true }).fill('t.yamada');
    await yamada.page.getByLabel('パスワード', { exact: true }).fill('yamada-pass-1');
    await yamada.page.getByRole('button', { name: 'サインイン', exact: true }).click();
    await until('the landing page says who is signed in', async () => {
      const text = await visibleText(yamada.page, 'signin-as');
      return { ok: text.includes('山田 太郎') && text.includes('司会者'), text };
    });
    await yamada.open(staffRoom);
    await yamada.joinButton().click();
    await yamada.waitState('joined');
    await until('each sees the other under the directory name', async () => {
      const [a, b] = await Promise.all([
        suzuki.page.evaluate(() => document.getElementById('people-list')?.textContent || ''),
        yamada.page.evaluate(() => document.getElementById('people-list')?.textContent || ''),
      ]);
      return { ok: a.includes('山田 太郎') && b.includes('鈴木 一郎'), a, b };
    });
    r.ok = true;
    log(`doors: password room joined after a wrong try, its broadcast watched with the password, directory sign-in (wrong, then right), names from the directory`);
  } catch (err) {
    await dumpAll(`doors-${phase.replace(/\W+/g, '-')}`, ps, err);
    throw err;
  } finally {
    for (const p of ps) await p.close();
  }
});

// ---------------------------------------------------------------------------------------------

/** What the viewer page shows and receives (runs in the page). */
async function watchProbe() {
  const v = document.getElementById('video');
  const out = {
    state: document.body.dataset.state,
    status: document.getElementById('status')?.textContent || '',
    videoWidth: v ? v.videoWidth : 0,
    frames: 0,
    audioPackets: 0,
    live: !document.getElementById('live-badge').hidden,
  };
  const pc = window.kaigiWatch && window.kaigiWatch.pc;
  if (pc) {
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') out.frames += s.framesDecoded || 0;
      if (s.kind === 'audio') out.audioPackets += s.packetsReceived || 0;
    });
  }
  return out;
}

test('the viewer page: not started, one click, plays the broadcast, a second picture, says when it ended; fits a phone', { timeout: ms(240_000), skip: MODE === 'tcp' && 'covered by the udp run' }, async () => {
  assert.ok(BASE, 'KAIGI_URL is not set (run tests/e2e/run.sh, which starts kaigi)');
  const room = roomName(`watch-${MODE}`);
  const viewer = new Participant('viewer', { locale: 'ja-JP', lang: 'ja-JP' });
  const presenter = new Participant('presenter');
  const phone = new Participant('watch-phone', { locale: 'en-US', lang: 'en-US', phone: true });
  const ps = [viewer, presenter, phone];
  const r = (results.tests.watch = { ok: false, room });
  let phase = 'launch';
  try {
    await Promise.all(ps.map((p) => p.launch()));
    phase = 'not started';
    await viewer.page.goto(`${BASE}/watch/${room}`, { waitUntil: 'load', timeout: ms(30_000) });
    await until('the viewer page says the broadcast has not started', async () => {
      const w = await viewer.page.evaluate(watchProbe);
      return { ok: w.status.includes('まだ始まっていません'), status: w.status };
    });
    await viewer.page.getByRole('button', { name: /視聴する/ }).click();
    await until('the viewer waits for the broadcast', async () => {
      const w = await viewer.page.evaluate(watchProbe);
      return { ok: w.state === 'waiting' && w.status.includes('まだ始まっていません'), w };
    });

    phase = 'broadcast starts';
    await presenter.open(room);
    await presenter.join();
    const joinedAt = Date.now();
    let firstFrameAt = 0;
    await until('the viewer decodes the presenter\'s video and receives its audio', async () => {
      const w = await viewer.page.evaluate(watchProbe);
      if (!firstFrameAt && w.frames > 0) firstFrameAt = Date.now();
      return { ok: w.state === 'playing' && w.frames > 30 && w.videoWidth > 0 && w.audioPackets > 50 && w.live, w };
    }, { timeout: ms(45_000) });
    r.joinToFirstFrameMs = firstFrameAt - joinedAt;
    const playing = await viewer.page.evaluate(() => ({
      controls: !document.getElementById('controls').hidden,
      overlay: !document.getElementById('overlay').hidden,
    }));
    assert.ok(playing.controls && !playing.overlay, `controls shown while playing: ${JSON.stringify(playing)}`);

    phase = 'volume';
    // The click on Watch let the page play sound: not muted; the button mutes and unmutes.
    const muted = () => viewer.page.evaluate(() => document.getElementById('video').muted);
    assert.equal(await muted(), false, 'sound plays after the click');
    await viewer.page.locator('#mute-btn').click();
    assert.equal(await muted(), true);
    await viewer.page.locator('#mute-btn').click();
    assert.equal(await muted(), false);
    await viewer.page.locator('#volume').fill('0.3');
    assert.equal(await viewer.page.evaluate(() => document.getElementById('video').volume), 0.3);

    phase = 'phone';
    await phone.page.goto(`${BASE}/watch/${room}`, { waitUntil: 'load', timeout: ms(30_000) });
    await phone.page.getByRole('button', { name: /Watch/ }).waitFor({ state: 'visible', timeout: ms(10_000) });
    const layout = await phone.page.evaluate(() => {
      const b = document.getElementById('watch-btn').getBoundingClientRect();
      return { vw: window.innerWidth, scrollW: document.documentElement.scrollWidth, w: b.width, h: b.height, right: b.right };
    });
    r.phone = layout;
    assert.ok(layout.scrollW <= layout.vw + 1, `no sideways scrolling on a phone: ${JSON.stringify(layout)}`);
    assert.ok(layout.w >= 40 && layout.h >= 40 && layout.right <= layout.vw, `the Watch button fits and can be tapped: ${JSON.stringify(layout)}`);
    await phone.page.getByRole('button', { name: /Watch/ }).tap();
    await until('the phone plays the broadcast too', async () => {
      const w = await phone.page.evaluate(watchProbe);
      return { ok: w.state === 'playing' && w.frames > 10, w };
    }, { timeout: ms(45_000) });

    phase = 'second picture';
    // A sign-language interpreter joins; the moderator (the presenter) puts itself on air and
    // the interpreter beside it: the viewer, connected before, shows a second picture.
    const interp = new Participant('interpreter');
    ps.push(interp);
    await interp.launch();
    await interp.open(room);
    await interp.join();
    const clickAction = (page, id, action) => page.evaluate(([pid, act]) => {
      const b = document.querySelector(`#people-list li[data-participant-id="${pid}"] [data-action="${act}"]`);
      if (!b) return false;
      b.click();
      return true;
    }, [id, action]);
    await until('the presenter puts itself on air', async () => ({ ok: await clickAction(presenter.page, presenter.id, 'set-live') }));
    await until('and adds the interpreter beside it', async () => ({ ok: await clickAction(presenter.page, interp.id, 'add-live') }));
    const addedAt = Date.now();
    let secondFrames = 0;
    await until('the viewer shows the interpreter as a second picture', async () => {
      const w = await viewer.page.evaluate(() => {
        const v2 = document.getElementById('video2');
        return { shown: window.kaigiWatch.secondShown, width: v2.videoWidth, frames: v2.getVideoPlaybackQuality().totalVideoFrames };
      });
      secondFrames = w.frames;
      return { ok: w.shown && w.width > 0 && w.frames > 15, w };
    }, { timeout: ms(30_000) });
    r.secondPictureMs = Date.now() - addedAt;
    await interp.page.getByRole('button', { name: LEAVE_NAME }).click();
    await until('the second picture goes when the interpreter leaves', async () => {
      const shown = await viewer.page.evaluate(() => window.kaigiWatch.secondShown);
      return { ok: !shown, shown };
    }, { timeout: ms(30_000) });
    log(`watch: second picture ${r.secondPictureMs} ms after it was added (${secondFrames} frames)`);

    phase = 'broadcast ends';
    await presenter.page.getByRole('button', { name: LEAVE_NAME }).click();
    const leftAt = Date.now();
    await until('the viewer page says the broadcast has ended', async () => {
      const w = await viewer.page.evaluate(watchProbe);
      return { ok: w.state === 'ended' && w.status.includes('終了'), w };
    }, { timeout: ms(20_000) });
    r.endedShownMs = Date.now() - leftAt;
    r.ok = true;
    log(`watch: first frame ${r.joinToFirstFrameMs} ms after the presenter joined; "ended" shown ${r.endedShownMs} ms after it left`);
  } catch (err) {
    await dumpAll(`watch-${phase.replace(/\W+/g, '-')}`, ps, err);
    throw err;
  } finally {
    for (const p of ps) await p.close();
  }
});

// ---------------------------------------------------------------------------------------------

/**
 * Limits what reaches local UDP/TCP port `port` on `lo` to `rate` (htb, with a short pfifo
 * queue that builds delay and then drops: a slow WAN link); everything else on `lo` is
 * unlimited. netem is not available here; htb is.
 */
function limitPort(port, rate) {
  const tc = (...args) => execFileSync('tc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  tc('qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '10');
  tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '10gbit');
  tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', rate, 'ceil', rate);
  tc('qdisc', 'add', 'dev', 'lo', 'parent', '1:20', 'handle', '20:', 'pfifo', 'limit', '30');
  tc('filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32',
    'match', 'ip', 'dport', String(port), '0xffff', 'flowid', '1:20');
  tc('filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ipv6', 'prio', '2', 'u32',
    'match', 'ip6', 'dport', String(port), '0xffff', 'flowid', '1:20');
}

/** Removes what limitPort installed (nothing there: nothing happens). */
function unlimit() {
  try {
    execFileSync('tc', ['qdisc', 'del', 'dev', 'lo', 'root'], { stdio: 'ignore' });
  } catch { /* no root qdisc of ours */ }
}

/** The limited class's counters (sent, dropped, overlimits), for the log. */
function limitStats() {
  try {
    const out = execFileSync('tc', ['-s', 'class', 'show', 'dev', 'lo', 'classid', '1:20'], { encoding: 'utf8' });
    return out.replace(/\s+/g, ' ').trim();
  } catch (e) {
    return `tc -s class show failed: ${e && e.message ? e.message : e}`;
  }
}

test('simulcast: a subscriber on a slow link gets the low layer, and the high one back when the link recovers', { timeout: ms(300_000), skip: MODE === 'tcp' && 'covered by the udp run' }, async () => {
  assert.ok(BASE, 'KAIGI_URL is not set (run tests/e2e/run.sh, which starts kaigi)');
  const room = roomName(`simulcast-${MODE}`);
  // Silent microphones: nobody becomes the active speaker and reorders the page.
  const wavDir = mkdtempSync(join(tmpdir(), 'kaigi-e2e-wav-'));
  const quiet = [`--use-file-for-fake-audio-capture=${speechWav(wavDir, 0)}`];
  const a = new Participant('sa', { args: quiet });
  // sb shows sa alone, large (one tile per page on a 1920×1080 window): the 720p layer fits.
  const b = new Participant('sb', { args: quiet, viewport: { width: 1920, height: 1080 } });
  const ps = [a, b];
  const r = (results.tests.simulcast = { ok: false, room });
  let phase = 'launch';
  const seen = () => b.page.evaluate((pid) => window.kaigi.receivedVideo(pid), a.id);
  const sending = () => a.page.evaluate(async () => {
    const out = [];
    (await window.kaigi.publishPc.getStats()).forEach((x) => {
      if (x.type === 'outbound-rtp' && x.kind === 'video') {
        out.push({ rid: x.rid, active: x.active, size: `${x.frameWidth}x${x.frameHeight}`, fps: x.framesPerSecond, kbps: x.targetBitrate && Math.round(x.targetBitrate / 1000), why: x.qualityLimitationReason });
      }
    });
    return { layers: window.kaigi.cameraLayers, out };
  });
  // Samples what sb receives of sa every 250 ms until `ok(sample)`; `at` is the sample's time
  // since `t0` (ms); the samples (at:frameHeight/framesDecoded) go to the log.
  const watch = async (what, ok, timeout, t0 = Date.now()) => {
    const samples = [];
    return until(what, async () => {
      const v = await seen();
      const at = Date.now() - t0;
      samples.push(v ? `${at}:${v.frameHeight}/${v.framesDecoded}` : `${at}:-`);
      if (samples.length > 80) samples.shift();
      return { ok: !!v && ok(v), at, v, samples: samples.join(' ') };
    }, { timeout, interval: 250 });
  };
  try {
    await Promise.all(ps.map((p) => p.launch()));
    await a.open(room);
    await b.page.goto(`${BASE}/r/${room}?tiles=1`, { waitUntil: 'load', timeout: ms(30_000) });
    phase = 'join';
    await a.join();
    await b.join();

    phase = 'sb shows sa';
    // sb's own tile comes first: sa is on the next page.
    await until('sb has two pages', async () => ({ ok: await b.page.evaluate(() => !document.getElementById('pager').hidden) }));
    await b.page.getByRole('button', { name: 'Next page' }).click();
    const view = await until('sb tells the server it shows sa large', async () => {
      const v = await b.page.evaluate(() => window.kaigi.view);
      const size = v?.sizes?.[a.id];
      return { ok: !!size && size[1] >= 720 && !v.hidden.includes(a.id), v };
    });
    r.tileSize = view.v.sizes[a.id];

    phase = 'high layer';
    const up0 = Date.now();
    await watch('sb decodes sa at the f layer (frameHeight ≥ 700)', (v) => v.frameHeight >= 700, ms(90_000))
      .catch(async (e) => { throw new Error(`${e.message}; sa sends: ${JSON.stringify(await sending())}`); });
    r.firstHighMs = Date.now() - up0;
    log(`simulcast: sb shows sa at ${r.tileSize.join('x')} device px and decodes the f layer ${r.firstHighMs} ms after paging to it`);

    phase = 'slow link';
    const port = await b.page.evaluate(() => window.kaigi.localPort('subscribe'));
    assert.ok(Number.isInteger(port) && port > 0, `sb's subscribe connection has a selected local port: ${port}`);
    r.limitedPort = port;
    const t0 = Date.now();
    limitPort(port, '250kbit');
    const down = await watch('sb gets the q layer of sa (frameHeight ≤ 200) on a 250 kbit/s link', (v) => v.frameHeight <= 200, ms(15_000), t0)
      .catch(async (e) => { throw new Error(`${e.message}; sa sends: ${JSON.stringify(await sending())}; ${limitStats()}`); });
    r.downMs = down.at;
    log(`simulcast: q layer ${r.downMs} ms after the limit (${down.samples})`);

    // Still moving at the low layer, not frozen.
    phase = 'low layer keeps playing';
    const f0 = down.v.framesDecoded;
    const heights = [];
    const window = [];
    // The longest time without a new frame (a freeze), from the samples.
    let stallFrom = Date.now();
    let lastFrames = f0;
    let longestStallMs = 0;
    const w0 = Date.now();
    while (Date.now() - w0 < 5000) {
      await sleep(250); // sampling a 5 s window, not a timing assertion
      const v = await seen();
      if (v) {
        heights.push(v.frameHeight);
        window.push(`${Date.now() - w0}:${v.frameHeight}/${v.framesDecoded}`);
        if (v.framesDecoded > lastFrames) {
          lastFrames = v.framesDecoded;
          stallFrom = Date.now();
        }
        longestStallMs = Math.max(longestStallMs, Date.now() - stallFrom);
      }
    }
    const last = await seen();
    r.lowWindow = { frames: (last?.framesDecoded ?? 0) - f0, maxHeight: Math.max(...heights), longestStallMs, samples: window.join(' ') };
    log(`simulcast: on the slow link sb decoded ${r.lowWindow.frames} frames of sa in 5 s, longest stall ${longestStallMs} ms (${r.lowWindow.samples}); ${limitStats()}`);
    // Decoding goes on (at least 2 frames a second); smoothness on a link this short, with two
    // browsers encoding 720p simulcast on a 2-core CI machine, is not what this test measures.
    assert.ok(r.lowWindow.frames >= 10, `sa's video froze on the slow link: ${r.lowWindow.frames} frames in 5 s`);
    assert.ok(last && last.frameHeight <= 200, `sb left the q layer on the slow link: ${JSON.stringify(r.lowWindow)}`);

    phase = 'link recovers';
    const t1 = Date.now();
    unlimit();
    const upAgain = await watch('sb decodes sa at the f layer again (frameHeight ≥ 700)', (v) => v.frameHeight >= 700, ms(30_000), t1)
      .catch(async (e) => { throw new Error(`${e.message}; sa sends: ${JSON.stringify(await sending())}`); });
    r.upMs = upAgain.at;
    log(`simulcast: f layer ${r.upMs} ms after the limit went (${upAgain.samples})`);
    log(`simulcast figures: down_ms=${r.downMs} up_ms=${r.upMs}`);
    r.ok = true;
  } catch (err) {
    await dumpAll(`simulcast-${phase.replace(/\W+/g, '-')}`, ps, err);
    throw err;
  } finally {
    unlimit();
    for (const p of ps) await p.close();
    rmSync(wavDir, { recursive: true, force: true });
  }
});

test('cluster: a meeting on a node that dies moves to another node by itself; its broadcast viewers too', { timeout: ms(240_000), skip: (MODE === 'tcp' && 'covered by the udp run') || (!process.env.KAIGI_URL_B && 'no second node (run.sh starts one over UDP)') }, async () => {
  // run.sh: this server (node A) and node B share Redis; heartbeats every second, so a node is
  // taken for dead 3 s after its last one. A broadcast homed on A is watched through B (B
  // relays it); when B dies its viewer goes on through A.
  const B = process.env.KAIGI_URL_B;
  const room = roomName('cluster');
  const bRoom = roomName('relay');
  const x = new Participant('cx');
  const y = new Participant('cy');
  const z = new Participant('cz');
  const v = new Participant('cv');
  const meet = [x, y];
  const ps = [x, y, z, v];
  const r = (results.tests.cluster = { ok: false, room });
  let phase = 'launch';
  try {
    await Promise.all(ps.map((p) => p.launch()));
    phase = 'meet on B';
    for (const p of meet) {
      await p.page.goto(`${B}/r/${room}`, { waitUntil: 'load', timeout: ms(30_000) });
      await p.join();
    }
    await until('they see each other on B', async () => ({ ok: (await x.framesDecoded()) > 20 && (await y.framesDecoded()) > 20 }));
    // Through node A the room is found on B: the page is sent there.
    const viaA = await new Promise((resolve) => {
      https.get(`${BASE}/r/${room}`, { rejectUnauthorized: false }, (res) => { res.resume(); resolve([res.statusCode, res.headers.location]); })
        .on('error', (e) => resolve([0, String(e)]));
    });
    assert.deepEqual(viaA, [307, `${B}/r/${room}`], 'node A sends the meeting page to its home, B');
    phase = 'a broadcast on A, watched through B';
    await z.open(bRoom);
    await z.join();
    await v.page.goto(`${B}/watch/${bRoom}`, { waitUntil: 'load', timeout: ms(30_000) });
    await v.page.getByRole('button', { name: /視聴する|Watch/ }).click();
    await until('the viewer at B plays the broadcast relayed from A', async () => {
      const w = await v.page.evaluate(watchProbe);
      return { ok: w.state === 'playing' && w.frames > 30 && w.audioPackets > 50, w, at: v.page.url() };
    }, { timeout: ms(45_000) });
    assert.equal(new URL(v.page.url()).origin, new URL(B).origin, 'the viewer is served by B, not sent to A');
    phase = 'kill B';
    process.kill(Number(process.env.KAIGI_PID_B), 'SIGKILL');
    const killed = Date.now();
    phase = 'rejoin on A';
    const origin = new URL(BASE).origin;
    const vFrames = (await v.page.evaluate(watchProbe).catch(() => ({ frames: 0 }))).frames;
    const viewerBack = until('the viewer watches again, through A', async () => {
      const at = new URL(v.page.url()).origin;
      const w = await v.page.evaluate(watchProbe).catch(() => null);
      return { ok: at === origin && !!w && w.state === 'playing' && w.frames > 10, at, w, before: vFrames };
    }, { timeout: ms(40_000), interval: 100 }).then(() => Date.now() - killed);
    await until('both pages are back in the meeting on node A', async () => {
      const at = await Promise.all(meet.map(async (p) => ({ origin: new URL(p.page.url()).origin, state: await p.state().catch(() => null) })));
      return { ok: at.every((a) => a.origin === origin && a.state === 'joined'), at };
    }, { timeout: ms(40_000), interval: 200 });
    const rejoinedMs = Date.now() - killed;
    const base = await Promise.all(meet.map((p) => p.framesDecoded()));
    await until('they see each other again, through A', async () => {
      const f = await Promise.all(meet.map((p) => p.framesDecoded()));
      return { ok: f[0] > base[0] + 20 && f[1] > base[1] + 20, f };
    }, { timeout: ms(30_000) });
    const mediaMs = Date.now() - killed;
    r.rejoinedMs = rejoinedMs;
    r.mediaMs = mediaMs;
    r.viewerMs = await viewerBack;
    r.ok = true;
    log(`cluster: node B killed; both pages rejoined on node A after ${(rejoinedMs / 1000).toFixed(1)} s, video again after ${(mediaMs / 1000).toFixed(1)} s (heartbeat 1 s, time to live 3 s); the broadcast viewer watched again through A after ${(r.viewerMs / 1000).toFixed(1)} s`);
  } catch (err) {
    await dumpAll(`cluster-${phase.replace(/\W+/g, '-')}`, ps, err);
    throw err;
  } finally {
    for (const p of ps) await p.close();
  }
});
