// @ts-check
/**
 * The local microphone and camera: opening them with fallbacks (both, then
 * microphone only, then camera only), naming what went wrong as a string
 * key for the page to show, and a microphone level meter (WebAudio
 * AnalyserNode). No strings and no layout here.
 * @module media
 */

/** @typedef {import('./i18n.js').StringKey} StringKey */

/**
 * @typedef {object} LocalMedia
 * @property {MediaStream | null} stream  null when neither device could be opened
 * @property {StringKey | null} problem  what to tell the user, if anything went wrong
 */

const VIDEO_CONSTRAINTS = /** @type {MediaTrackConstraints} */ ({
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 30 },
});

const AUDIO_CONSTRAINTS = /** @type {MediaTrackConstraints} */ ({
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
});

/**
 * Open the microphone and camera. Never throws: when nothing can be opened
 * the result has no stream and says why, and the user can still join to
 * watch and listen.
 * @returns {Promise<LocalMedia>}
 */
export async function openLocalMedia() {
  const md = navigator.mediaDevices;
  if (!md || typeof md.getUserMedia !== 'function') {
    return { stream: null, problem: window.isSecureContext ? 'media.failed' : 'media.insecure' };
  }
  /** @type {unknown} */
  let firstError;
  try {
    return { stream: await md.getUserMedia({ audio: AUDIO_CONSTRAINTS, video: VIDEO_CONSTRAINTS }), problem: null };
  } catch (err) {
    firstError = err;
  }
  const name = errorName(firstError);
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return { stream: null, problem: 'media.denied' };
  }
  try {
    return { stream: await md.getUserMedia({ audio: AUDIO_CONSTRAINTS }), problem: 'media.noVideo' };
  } catch { /* try the camera alone */ }
  try {
    return { stream: await md.getUserMedia({ video: VIDEO_CONSTRAINTS }), problem: 'media.noAudio' };
  } catch { /* report the first error */ }
  return { stream: null, problem: problemFor(name) };
}

/**
 * @param {unknown} err
 * @returns {string}
 */
function errorName(err) {
  return err && typeof err === 'object' && 'name' in err ? String(err.name) : '';
}

/**
 * @param {string} name  a DOMException name from getUserMedia
 * @returns {StringKey}
 */
function problemFor(name) {
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'media.denied';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'media.notFound';
    case 'NotReadableError':
    case 'AbortError':
      return 'media.inUse';
    default:
      return 'media.failed';
  }
}

/**
 * Opens one device (a camera or a microphone by id) with the usual
 * constraints; rejects if it cannot be opened.
 * @param {'audio' | 'video'} kind
 * @param {string} deviceId
 * @returns {Promise<MediaStreamTrack>}
 */
export async function openDevice(kind, deviceId) {
  const base = kind === 'audio' ? AUDIO_CONSTRAINTS : VIDEO_CONSTRAINTS;
  const stream = await navigator.mediaDevices.getUserMedia({ [kind]: { ...base, deviceId: { exact: deviceId } } });
  const track = kind === 'audio' ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
  if (!track) throw new Error(`no ${kind} track from ${deviceId}`);
  return track;
}

/**
 * The devices the browser lists (names only once the page has permission).
 * @returns {Promise<{audioinput: MediaDeviceInfo[], videoinput: MediaDeviceInfo[], audiooutput: MediaDeviceInfo[]}>}
 */
export async function listDevices() {
  const all = await navigator.mediaDevices?.enumerateDevices?.() ?? [];
  return {
    audioinput: all.filter((d) => d.kind === 'audioinput'),
    videoinput: all.filter((d) => d.kind === 'videoinput'),
    audiooutput: all.filter((d) => d.kind === 'audiooutput'),
  };
}

/** Stop every track of a stream (turns the camera light off). @param {MediaStream | null | undefined} stream */
export function stopStream(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

/**
 * A live microphone level, 0..1, computed from the RMS of the signal on a
 * logarithmic scale (-60 dBFS → 0, 0 dBFS → 1), reported about 30 times a
 * second.
 *
 * An AudioContext created before any user gesture may start suspended; the
 * meter resumes it on the first click or key press on the page.
 */
export class LevelMeter {
  /** @type {AudioContext | null} */
  #ctx = null;
  /** @type {number | undefined} */
  #timer;
  #resume = () => { this.#ctx?.resume().catch(() => {}); };

  /**
   * @param {MediaStream} stream  must have an audio track
   * @param {(level: number) => void} onLevel
   */
  constructor(stream, onLevel) {
    const Ctx = window.AudioContext;
    if (!Ctx || stream.getAudioTracks().length === 0) return;
    const ctx = new Ctx();
    this.#ctx = ctx;
    const source = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    analyser.smoothingTimeConstant = 0.3;
    source.connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    let shown = 0;
    this.#timer = window.setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
      const rms = Math.sqrt(sum / buf.length);
      const db = rms > 0 ? 20 * Math.log10(rms) : -100;
      const level = Math.min(1, Math.max(0, (db + 60) / 60));
      // Fast attack, slow release: easier to read.
      shown = level > shown ? level : shown * 0.85 + level * 0.15;
      onLevel(shown);
    }, 33);
    ctx.resume().catch(() => {});
    document.addEventListener('pointerdown', this.#resume);
    document.addEventListener('keydown', this.#resume);
  }

  /** Stop measuring and release the audio context. */
  stop() {
    clearInterval(this.#timer);
    document.removeEventListener('pointerdown', this.#resume);
    document.removeEventListener('keydown', this.#resume);
    this.#ctx?.close().catch(() => {});
    this.#ctx = null;
  }
}
