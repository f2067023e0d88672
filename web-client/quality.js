// @ts-check
/**
 * Connection quality, from the browser's own WebRTC statistics: for each
 * remote participant (what reaches us from them: loss, jitter, frames) and
 * for ourselves (what the server reports back about our sending: round-trip
 * time and loss). Sampled every two seconds; no DOM, no strings.
 *
 * A remote video that should play (its track is live and unmuted, the
 * participant's audio still arrives) but decodes no frame for two samples
 * is "stalled": the page says so instead of showing a frozen picture.
 * @module quality
 */

/** @typedef {'good' | 'fair' | 'poor'} Quality */

/**
 * @typedef {object} RemoteQuality
 * @property {Quality} quality
 * @property {boolean} videoStalled  video expected but no new frame decoded
 * @property {number} lossPct  packets lost, % of expected, over the last interval
 */

/**
 * Grades a link from loss (%) and round-trip time (ms; unknown: null).
 * @param {number} lossPct
 * @param {number | null} rttMs
 * @returns {Quality}
 */
export function grade(lossPct, rttMs) {
  if (lossPct >= 8 || (rttMs !== null && rttMs >= 400)) return 'poor';
  if (lossPct >= 2 || (rttMs !== null && rttMs >= 150)) return 'fair';
  return 'good';
}

/**
 * Loss in % between two cumulative samples of packets received and lost.
 * @param {{received: number, lost: number} | undefined} before
 * @param {{received: number, lost: number}} now
 */
export function lossBetween(before, now) {
  if (!before) return 0;
  const received = now.received - before.received;
  const lost = Math.max(0, now.lost - before.lost);
  const expected = received + lost;
  return expected > 0 ? (100 * lost) / expected : 0;
}

/** Seconds between samples. */
const INTERVAL_MS = 2000;

export class QualityMonitor {
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #timer;
  /** Per participant: the last cumulative counters. @type {Map<string, {received: number, lost: number, frames: number, audio: number}>} */
  #last = new Map();
  /** Per participant: samples in a row with no new frame. @type {Map<string, number>} */
  #still = new Map();
  /** @type {{received: number, lost: number} | undefined} */
  #lastOwn;
  #getSession;
  #onUpdate;

  /**
   * @param {() => import('./protocol.js').KaigiSession | null} getSession
   * @param {(remote: Map<string, RemoteQuality>, own: Quality | null) => void} onUpdate
   */
  constructor(getSession, onUpdate) {
    this.#getSession = getSession;
    this.#onUpdate = onUpdate;
  }

  start() {
    this.stop();
    this.#timer = setInterval(() => { void this.#sample(); }, INTERVAL_MS);
  }

  stop() {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#last.clear();
    this.#still.clear();
    this.#lastOwn = undefined;
  }

  async #sample() {
    const session = this.#getSession();
    if (!session?.joined) return;
    /** @type {Map<string, RemoteQuality>} */
    const remote = new Map();
    const sub = session.subscribePc;
    if (sub) {
      // Which participant a received track belongs to: its stream id.
      /** @type {Map<string, string>} */
      const owner = new Map();
      for (const [id, stream] of session.streams) {
        const who = id.endsWith('-screen') ? id.slice(0, -'-screen'.length) : id;
        for (const tr of stream.getTracks()) owner.set(tr.id, who);
      }
      /** @type {Map<string, {received: number, lost: number, frames: number, audio: number, videoLive: boolean}>} */
      const now = new Map();
      const stats = await sub.getStats();
      stats.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        const who = owner.get(s.trackIdentifier);
        if (!who) return;
        const e = now.get(who) ?? { received: 0, lost: 0, frames: 0, audio: 0, videoLive: false };
        e.received += s.packetsReceived ?? 0;
        e.lost += s.packetsLost ?? 0;
        if (s.kind === 'video') e.frames += s.framesDecoded ?? 0;
        else e.audio += s.packetsReceived ?? 0;
        now.set(who, e);
      });
      for (const [who, e] of now) {
        const p = session.participants.get(who);
        const tracks = session.activeTracks(who);
        e.videoLive = !!p && !p.video_muted && tracks.some((t) => t.kind === 'video' && !t.muted);
        const before = this.#last.get(who);
        const lossPct = lossBetween(before, e);
        // Stalled: video should play, audio still arrives, yet no new frame.
        const noFrames = !!before && e.frames === before.frames && e.audio > before.audio && e.videoLive;
        const still = noFrames ? (this.#still.get(who) ?? 0) + 1 : 0;
        this.#still.set(who, still);
        this.#last.set(who, e);
        remote.set(who, { quality: grade(lossPct, null), videoStalled: still >= 2, lossPct });
      }
    }
    /** @type {Quality | null} */
    let own = null;
    const pub = session.publishPc;
    if (pub) {
      /** @type {number | null} */
      let rtt = null;
      let lost = 0;
      let sent = 0;
      const stats = await pub.getStats();
      stats.forEach((s) => {
        // What the server reports about our sending (RTCP receiver reports).
        if (s.type === 'remote-inbound-rtp') {
          lost += s.packetsLost ?? 0;
          if (typeof s.roundTripTime === 'number') rtt = Math.max(rtt ?? 0, s.roundTripTime * 1000);
        }
        if (s.type === 'outbound-rtp') sent += s.packetsSent ?? 0;
      });
      const before = this.#lastOwn;
      const dSent = before ? sent - before.received : 0;
      const dLost = before ? Math.max(0, lost - before.lost) : 0;
      own = grade(dSent > 0 ? (100 * dLost) / dSent : 0, rtt);
      this.#lastOwn = { received: sent, lost };
    }
    this.#onUpdate(remote, own);
  }
}

/**
 * The local port of a connection's selected candidate pair (which port the
 * media of that connection arrives on), or null before one is selected.
 * @param {RTCPeerConnection | null} pc
 * @returns {Promise<number | null>}
 */
export async function selectedLocalPort(pc) {
  if (!pc) return null;
  const stats = await pc.getStats();
  /** @type {string | null} */
  let pairId = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  const pair = pairId ? stats.get(pairId) : null;
  const local = pair ? stats.get(pair.localCandidateId) : null;
  return typeof local?.port === 'number' ? local.port : null;
}

/**
 * What arrives of participant `id`'s camera: the size of the last decoded
 * frame (which simulcast layer the server forwards) and the frames decoded
 * so far; null when nothing of it is received.
 * @param {import('./protocol.js').KaigiSession} session
 * @param {string} id
 * @returns {Promise<{frameWidth: number, frameHeight: number, framesDecoded: number} | null>}
 */
export async function receivedVideo(session, id) {
  const pc = session.subscribePc;
  const track = session.activeTracks(id).find((t) => t.kind === 'video');
  if (!pc || !track) return null;
  /** @type {{frameWidth: number, frameHeight: number, framesDecoded: number} | null} */
  let out = null;
  let newest = -Infinity;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.kind !== 'video' || s.trackIdentifier !== track.id) return;
    const e = out ?? { frameWidth: 0, frameHeight: 0, framesDecoded: 0 };
    e.framesDecoded += s.framesDecoded ?? 0;
    // The receive stream that got a packet last is the one playing now.
    const at = s.lastPacketReceivedTimestamp ?? 0;
    if (at >= newest && s.frameHeight) {
      newest = at;
      e.frameWidth = s.frameWidth ?? 0;
      e.frameHeight = s.frameHeight;
    }
    out = e;
  });
  return out;
}
