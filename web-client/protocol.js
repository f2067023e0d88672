// @ts-check
/**
 * The kaigi signaling protocol, version 1 (docs/protocol.md), as a browser
 * library: one WebSocket and the two RTCPeerConnections of a participant.
 *
 * It owns the socket, the `publish` connection (the client offers its own
 * microphone and camera, sendonly) and the `subscribe` connection (the
 * server offers everybody else's tracks; created on the first
 * `subscribe_offer`). It does not touch the DOM and holds no strings: it
 * reports what happens as events on the session object, in the order the
 * server sent them, and the page decides what to show.
 *
 * Events (all `CustomEvent`s; see {@link SessionEvents} for the details):
 * `welcome`, `participantjoined`, `participantleft`, `participantupdated`,
 * `media` (a participant's remote stream gained or lost tracks),
 * `servererror`, `failure` (a local WebRTC step failed), `connectionstate`,
 * `closed`; and for the meeting's features `chat`, `roomstate`, `live`, `self` (our
 * own moderator / hand state changed), `mutedbymoderator`, `lobbywaiting`,
 * `lobbyrequest`, `lobbyleft` and `ended` (removed, meeting ended, or not
 * admitted: the server closes the session).
 * @module protocol
 */

export const PROTOCOL_VERSION = 1;

/** RTCPeerConnection configuration: no STUN or TURN at all (closed networks). */
const PC_CONFIG = /** @type {RTCConfiguration} */ ({ iceServers: [] });

/** Seconds between keep-alive pings. */
const PING_INTERVAL_MS = 25_000;

/**
 * The camera's simulcast layers, low to high (docs/protocol.md, "Simulcast
 * and layer selection"): the server forwards to each subscriber the one that
 * fits its tile and its bandwidth, and tells us with `video_layers` which of
 * them anybody needs. Modest bit rates: intranet WAN links are weak.
 */
export const CAMERA_LAYERS = /** @type {const} */ ([
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000, maxFramerate: 15 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000, maxFramerate: 30 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_200_000, maxFramerate: 30 },
]);

/** The highest layer index. */
const TOP_LAYER = CAMERA_LAYERS.length - 1;

/**
 * @typedef {object} Participant
 * @property {string} id
 * @property {string} name
 * @property {boolean} audio_muted
 * @property {boolean} video_muted
 * @property {boolean} hand_raised
 * @property {boolean} moderator
 * @property {boolean} sharing  its screen share arrives in the stream `<id>-screen`
 * @property {boolean} reconnecting  its connection dropped; it may come back
 */

/**
 * @typedef {object} ChatEntry
 * @property {number} id
 * @property {string} from  sender's participant id
 * @property {string} name  sender's name
 * @property {string} text  plain text: show with textContent, never as HTML
 * @property {number} ts  server time, ms since the epoch
 */

/**
 * @typedef {object} RoomState
 * @property {boolean} locked
 * @property {boolean} lobby
 * @property {boolean} multiple_shares
 */

/** @typedef {{id: string, name: string}} Waiter */

/**
 * @typedef {'publish' | 'subscribe'} PcName
 */

/**
 * @typedef {object} SessionEvents
 * @property {{participantId: string, participants: Participant[], resumed: boolean}} welcome
 *   `resumed`: an earlier session came back as the same participant
 * @property {{participant: Participant}} participantjoined
 * @property {{id: string, participant: Participant | undefined}} participantleft
 * @property {{participant: Participant}} participantupdated
 * @property {{id: string}} media  the remote stream of participant `id` changed
 * @property {{code: string, message: string, fatal: boolean}} servererror
 *   `fatal` is true for an error that arrives before `welcome`: the join
 *   failed and the session is closed.
 * @property {{pc: PcName, error: unknown}} failure
 * @property {{pc: PcName, state: RTCPeerConnectionState}} connectionstate
 * @property {{code: number, reason: string, joined: boolean}} closed
 *   the socket closed without `leave()`/`close()` having been called;
 *   `joined` tells whether `welcome` had arrived.
 * @property {{wanted: boolean}} videowanted  whether anyone shows our camera (we stop encoding it when nobody does)
 * @property {{max: number}} videolayers  the camera layers anybody needs: 0..=max are encoded
 * @property {{id: string, recent: string[]}} activespeaker  who speaks now; recent speakers, most recent first
 * @property {{entry: ChatEntry}} chat
 * @property {{state: RoomState}} roomstate
 * @property {{ids: string[]}} live  whom the broadcast's viewers see, the main one first (empty: the first publisher)
 * @property {{moderator: boolean, handRaised: boolean, sharing: boolean}} self
 * @property {{kind: 'audio' | 'video', by: string}} mutedbymoderator
 *   a moderator muted us: the track is disabled; only we can unmute
 * @property {{}} lobbywaiting  we wait for a moderator to admit us
 * @property {{waiter: Waiter}} lobbyrequest  (moderators) someone waits
 * @property {{id: string}} lobbyleft  (moderators) someone left the waiting room
 * @property {{reason: 'removed' | 'meeting_ended' | 'lobby_denied', by: string}} ended
 * @property {{url: string}} redirect  the room lives on another server of the cluster: join there
 */

/**
 * The WebSocket address for the page's host: `wss://host/ws`, or `ws:`
 * when the page itself came over plain http.
 * @param {Location} loc
 * @returns {string}
 */
export function signalingUrl(loc) {
  return `${loc.protocol === 'http:' ? 'ws:' : 'wss:'}//${loc.host}/ws`;
}

/**
 * Whether a room name follows the protocol's rules: 1–64 characters from
 * `A–Z a–z 0–9 - _ .`, not starting with `.`.
 * @param {string} room
 * @returns {boolean}
 */
export function isValidRoomName(room) {
  return /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/.test(room);
}

/**
 * One participant's session: join, publish, subscribe, mute, leave.
 */
export class KaigiSession extends EventTarget {
  /** @type {WebSocket | null} */
  ws = null;
  /** @type {RTCPeerConnection | null} */
  publishPc = null;
  /** @type {RTCPeerConnection | null} */
  subscribePc = null;
  /** Our own id, set by `welcome`. @type {string | null} */
  participantId = null;
  /** The other participants, by id, in the order they became known. @type {Map<string, Participant>} */
  participants = new Map();
  /** Remote streams by participant id (the stream id is the participant id). @type {Map<string, MediaStream>} */
  streams = new Map();
  /** `welcome` has arrived and the session is not closed. */
  joined = false;
  /** `close()` or `leave()` was called, or a fatal error closed the session. */
  closed = false;
  /** We moderate the room. */
  moderator = false;
  /** Our hand is raised. */
  handRaised = false;
  /** @type {RoomState} */
  roomState = { locked: false, lobby: false, multiple_shares: false };
  /** Whom a moderator put live for the broadcast's viewers, the main one first (empty: the first publisher). @type {string[]} */
  live = [];
  /** The screen (window, tab) we share, while we do. @type {MediaStreamTrack | null} */
  screenTrack = null;
  /** The server granted our share. */
  sharing = false;
  /** Sent as `resume` by the next session after a dropped connection. @type {string | null} */
  resumeToken = null;
  /** Cluster mode: the other nodes' URLs, where the page rejoins if this one is gone. @type {string[]} */
  nodes = [];
  /** Recent speakers, the active one first. @type {string[]} */
  speakers = [];
  /** Chat so far (the server's recent history, then what arrives). @type {ChatEntry[]} */
  chat = [];
  /** (Moderators) who waits to be admitted, by waiting-room id. @type {Map<string, Waiter>} */
  lobby = new Map();

  /** @type {{audio: boolean, video: boolean}} */
  #muted = { audio: false, video: false };
  /** The publish transceiver of the screen share, kept for the next share. @type {RTCRtpTransceiver | null} */
  #screenTx = null;
  /** Track sources declared with every publish offer. @type {Record<string, string>} */
  #sources = {};
  /** Waiting for the server to grant or refuse a share. @type {((granted: boolean) => void) | null} */
  #shareAnswer = null;
  /** A pending "stop encoding the camera". @type {ReturnType<typeof setTimeout> | undefined} */
  #wantedTimer;
  /** The publish transceiver of the camera. @type {RTCRtpTransceiver | null} */
  #cameraTx = null;
  /** Whether anybody shows our camera (`video_wanted`, after its 2 s delay when false). */
  #cameraWanted = true;
  /** The highest camera layer anybody needs (`video_layers`). */
  #cameraMaxLayer = TOP_LAYER;
  /** Camera parameter changes, one after the other. */
  #cameraQueue = Promise.resolve();
  /** Messages are handled one after the other, SDP steps included. */
  #queue = Promise.resolve();
  /** Candidates gathered before their description was sent. @type {Record<PcName, RTCIceCandidate[] | null>} */
  #pendingCandidates = { publish: [], subscribe: [] };
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #pingTimer;
  /** @type {WeakSet<MediaStreamTrack>} */
  #watchedTracks = new WeakSet();
  #opts;

  /**
   * @param {object} opts
   * @param {string} opts.url  WebSocket URL (see {@link signalingUrl})
   * @param {string} opts.room
   * @param {string} opts.name  display name
   * @param {string} [opts.token]  join token, when the server requires one
   * @param {string} [opts.password]  the room's password, for a room that has one
   * @param {MediaStream | null} [opts.stream]  local microphone/camera to publish
   * @param {string} [opts.resume]  the resume token of a session whose connection dropped
   */
  constructor(opts) {
    super();
    this.#opts = opts;
  }

  /** The local stream being published, if any. */
  get localStream() { return this.#opts.stream ?? null; }

  /**
   * What the server asked of our camera: `wanted` (anybody shows it) and
   * `max`, the highest simulcast layer encoded (0 = `q` … 2 = `f`).
   * @returns {{wanted: boolean, max: number}}
   */
  get cameraLayers() { return { wanted: this.#cameraWanted, max: this.#cameraMaxLayer }; }

  /** Open the socket and send `join`. */
  connect() {
    if (this.ws) throw new Error('connect() called twice');
    const ws = new WebSocket(this.#opts.url);
    this.ws = ws;
    ws.addEventListener('open', () => {
      /** @type {Record<string, unknown>} */
      const join = { type: 'join', v: PROTOCOL_VERSION, room: this.#opts.room, name: this.#opts.name };
      if (this.#opts.token) join.token = this.#opts.token;
      if (this.#opts.password) join.password = this.#opts.password;
      if (this.#opts.resume) join.resume = this.#opts.resume;
      this.#send(join);
      this.#pingTimer = setInterval(() => this.#send({ type: 'ping' }), PING_INTERVAL_MS);
    });
    ws.addEventListener('message', (ev) => {
      /** @type {any} */
      let msg;
      try {
        msg = JSON.parse(typeof ev.data === 'string' ? ev.data : '');
      } catch {
        console.warn('kaigi: ignoring a message that is not JSON');
        return;
      }
      if (!msg || typeof msg.type !== 'string') return;
      this.#queue = this.#queue.then(() => this.#handle(msg)).catch((err) => {
        console.error('kaigi: handling', msg.type, err);
      });
    });
    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws) return;
      const wasJoined = this.joined;
      const wasClosed = this.closed;
      this.#teardown();
      if (!wasClosed) this.#emit('closed', { code: ev.code, reason: ev.reason, joined: wasJoined });
    });
  }

  /**
   * Mute or unmute our microphone or camera: the local track is disabled
   * (silence / black frames go out) and the others are told with `mute`.
   * Can be called before `welcome`; the state is sent once joined.
   * @param {'audio' | 'video'} kind
   * @param {boolean} muted
   */
  setMuted(kind, muted) {
    this.#muted[kind] = muted;
    for (const track of this.localStream?.getTracks() ?? []) {
      if (track.kind === kind) track.enabled = !muted;
    }
    if (this.joined) this.#send({ type: 'mute', kind, muted });
  }

  /** @param {'audio' | 'video'} kind */
  isMuted(kind) { return this.#muted[kind]; }

  /**
   * Send a chat message to everyone (the server echoes it back as `chat`).
   * @param {string} text
   */
  sendChat(text) {
    if (this.joined) this.#send({ type: 'chat', text });
  }

  /**
   * Share a screen, window or tab (a track from getDisplayMedia). The server
   * is asked first (one share at a time unless a moderator allows more); a
   * refusal arrives as `servererror` `share_busy` and resolves false, with
   * the track stopped. Ending the track (the browser's own "stop sharing")
   * stops the share.
   * @param {MediaStreamTrack} track
   * @returns {Promise<boolean>}
   */
  async startShare(track) {
    if (!this.joined || this.screenTrack) { track.stop(); return false; }
    const granted = await new Promise((resolve) => {
      this.#shareAnswer = resolve;
      this.#send({ type: 'share', on: true });
      setTimeout(() => resolve(false), 10_000);
    });
    this.#shareAnswer = null;
    if (!granted || this.closed) { track.stop(); return false; }
    // Text stays sharp: encoders keep resolution and drop frame rate instead.
    track.contentHint = 'detail';
    this.screenTrack = track;
    track.addEventListener('ended', () => { if (this.screenTrack === track) void this.stopShare(); });
    if (this.#screenTx) {
      await this.#screenTx.sender.replaceTrack(track);
      return true;
    }
    let pc = this.publishPc;
    if (!pc) {
      pc = this.#newPc('publish');
      this.publishPc = pc;
    }
    this.#screenTx = pc.addTransceiver(track, { direction: 'sendonly', streams: [new MediaStream([track])] });
    this.#sources[track.id] = 'screen';
    await this.#offerPublish(pc);
    return true;
  }

  /**
   * Switch our camera or microphone during the call: the new track replaces
   * the old one on the same sender (no renegotiation) and in the local
   * stream; the old one is stopped. The mute state carries over.
   * @param {MediaStreamTrack} track
   */
  async replaceTrack(track) {
    const kind = /** @type {'audio' | 'video'} */ (track.kind);
    track.enabled = !this.#muted[kind];
    const stream = this.localStream;
    const old = stream?.getTracks().find((t) => t.kind === kind) ?? null;
    // The sender keeps its parameters: the camera stays simulcast, its layers as they were.
    const tx = kind === 'video' && this.#cameraTx ? this.#cameraTx : this.publishPc?.getTransceivers()
      .find((t) => t !== this.#screenTx && (t.sender.track === old || t.receiver.track.kind === kind));
    if (tx) await tx.sender.replaceTrack(track);
    if (stream) {
      if (old) stream.removeTrack(old);
      stream.addTrack(track);
    }
    old?.stop();
  }

  /**
   * Tell the server whose video we do not show (off our grid page, or the
   * tab hidden): their camera video is not sent to us. Empty: everyone's.
   * `sizes`: the device-pixel size of what shows each participant's camera
   * (key: the id) or screen share (key: `<id>-screen`), at most 256 entries;
   * the server picks the simulcast layer that fits.
   * @param {string[]} hidden
   * @param {Record<string, [number, number]>} [sizes]
   */
  setView(hidden, sizes = {}) {
    if (this.joined) this.#send({ type: 'view', hidden, sizes });
  }

  /**
   * Brings the camera's encodings in line with what the server asked: none
   * while nobody shows it (`video_wanted`), else layers 0..=max
   * (`video_layers`). Only `active` changes; the other parameters stay. Runs
   * on #cameraQueue, so that two setParameters never race.
   */
  async #applyCameraLayers() {
    const sender = this.#cameraTx?.sender;
    if (!sender || !this.publishPc || this.closed) return;
    // Read and write in one go (no await between): the parameters carry a
    // transaction id that a later read invalidates.
    for (let attempt = 0; attempt < 2; attempt++) {
      const params = sender.getParameters();
      const encodings = params.encodings ?? [];
      if (encodings.length === 0) return; // not negotiated yet: applied after the answer
      let changed = false;
      if (encodings.length === 1 && (encodings[0].scaleResolutionDownBy ?? 1) !== 1) {
        // The answer refused simulcast and left only the first (lowest) layer: send one full one.
        const top = CAMERA_LAYERS[TOP_LAYER];
        encodings[0].scaleResolutionDownBy = 1;
        encodings[0].maxBitrate = top.maxBitrate;
        encodings[0].maxFramerate = top.maxFramerate;
        changed = true;
      }
      encodings.forEach((e, i) => {
        const layer = CAMERA_LAYERS.findIndex((l) => l.rid === e.rid);
        const active = this.#cameraWanted && (encodings.length === 1 || (layer < 0 ? i : layer) <= this.#cameraMaxLayer);
        if (e.active !== active) { e.active = active; changed = true; }
      });
      if (!changed) return;
      try {
        await sender.setParameters(params);
        return;
      } catch (err) {
        console.warn('kaigi: setParameters', err);
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  }

  /** Queues #applyCameraLayers behind the camera changes before it. */
  #queueCameraLayers() {
    this.#cameraQueue = this.#cameraQueue.then(() => this.#applyCameraLayers())
      .catch((err) => console.warn('kaigi: camera layers', err));
  }

  /** Stop sharing (the transceiver stays, for the next share). */
  async stopShare() {
    const track = this.screenTrack;
    this.screenTrack = null;
    track?.stop();
    await this.#screenTx?.sender.replaceTrack(null).catch(() => {});
    this.#send({ type: 'share', on: false });
  }

  /** @param {boolean} raised */
  setHand(raised) {
    this.handRaised = raised;
    if (this.joined) this.#send({ type: 'hand', raised });
  }

  /**
   * A moderator action (docs/protocol.md, "Moderation").
   * @param {'mute' | 'remove' | 'lock' | 'lobby' | 'admit' | 'deny' | 'promote' | 'allow_shares' | 'set_live' | 'end'} action
   * @param {Record<string, unknown>} [fields]  `target`, `kind`, `locked`, `enabled`
   */
  moderate(action, fields = {}) {
    if (this.joined) this.#send({ type: 'moderate', action, ...fields });
  }

  /** Tell the server we leave, then close everything. Local tracks are left to the caller. */
  leave() {
    if (this.closed) return;
    if (this.ws?.readyState === WebSocket.OPEN) this.#send({ type: 'leave' });
    this.close();
  }

  /**
   * Close the socket and both connections without a `leave` message. With
   * the default code the server ends the participation at once; any other
   * code (4000–4999) leaves it a grace period for a resuming session.
   * @param {number} [code]
   */
  close(code = 1000) {
    if (this.closed) return;
    this.closed = true;
    const ws = this.ws;
    this.#teardown();
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) {
      ws.close(code, code === 1000 ? 'bye' : 'reconnecting');
    }
  }

  /**
   * The live tracks received from participant `id` whose transceiver is
   * currently receiving (inactive m-sections are left out).
   * @param {string} id
   * @returns {MediaStreamTrack[]}
   */
  activeTracks(id) {
    const stream = this.streams.get(id);
    const pc = this.subscribePc;
    if (!stream || !pc) return [];
    const receiving = new Set();
    for (const tr of pc.getTransceivers()) {
      const dir = tr.currentDirection;
      if (dir === 'recvonly' || dir === 'sendrecv') receiving.add(tr.receiver.track);
    }
    return stream.getTracks().filter((t) => t.readyState === 'live' && receiving.has(t));
  }

  // ----- internals -----

  /**
   * @template {keyof SessionEvents} K
   * @param {K} type
   * @param {SessionEvents[K]} detail
   */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {Record<string, unknown>} msg */
  #send(msg) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  #teardown() {
    clearInterval(this.#pingTimer);
    clearTimeout(this.#wantedTimer);
    this.screenTrack?.stop();
    this.screenTrack = null;
    this.#shareAnswer?.(false);
    this.joined = false;
    this.publishPc?.close();
    this.subscribePc?.close();
  }

  /** @param {any} msg */
  async #handle(msg) {
    if (this.closed) return;
    switch (msg.type) {
      case 'welcome': return this.#onWelcome(msg);
      case 'publish_answer': return this.#onPublishAnswer(String(msg.sdp ?? ''));
      case 'subscribe_offer': return this.#onSubscribeOffer(String(msg.sdp ?? ''));
      case 'participant_joined': return this.#onParticipantJoined(msg.participant);
      case 'participant_left': return this.#onParticipantLeft(String(msg.id));
      case 'participant_updated': return this.#onParticipantUpdated(msg.participant);
      case 'error': return this.#onError(String(msg.code ?? ''), String(msg.message ?? ''));
      case 'video_wanted': {
        const wanted = msg.wanted !== false;
        // Stopping waits 2 s (paging, joins and leaves flap it); starting is at once.
        clearTimeout(this.#wantedTimer);
        if (wanted) {
          this.#cameraWanted = true;
          this.#queueCameraLayers();
        } else {
          this.#wantedTimer = setTimeout(() => {
            this.#cameraWanted = false;
            this.#queueCameraLayers();
          }, 2000);
        }
        return this.#emit('videowanted', { wanted });
      }
      case 'video_layers': {
        // Layers nobody needs are not encoded (the uplink is spared); at once, both ways.
        const max = Number(msg.max);
        if (!Number.isInteger(max)) return;
        this.#cameraMaxLayer = Math.min(Math.max(max, 0), TOP_LAYER);
        this.#queueCameraLayers();
        return this.#emit('videolayers', { max: this.#cameraMaxLayer });
      }
      case 'active_speaker':
        this.speakers = Array.isArray(msg.recent) ? msg.recent.map(String) : [String(msg.id)];
        return this.#emit('activespeaker', { id: String(msg.id), recent: this.speakers });
      case 'chat': return this.#onChat(msg);
      case 'live':
        this.live = Array.isArray(msg.ids) ? msg.ids.map(String) : [];
        return this.#emit('live', { ids: this.live });
      case 'room_state': return this.#onRoomState(msg);
      case 'muted_by_moderator': return this.#onMutedByModerator(msg);
      case 'lobby_waiting': return this.#emit('lobbywaiting', {});
      case 'lobby_request': {
        const w = toWaiter(msg);
        if (w) { this.lobby.set(w.id, w); this.#emit('lobbyrequest', { waiter: w }); }
        return;
      }
      case 'lobby_left':
        this.lobby.delete(String(msg.id));
        return this.#emit('lobbyleft', { id: String(msg.id) });
      case 'removed':
      case 'meeting_ended':
      case 'lobby_denied': {
        // The server closes the socket next: this is the end, not a lost connection.
        const by = typeof msg.by === 'string' ? msg.by : '';
        this.close();
        return this.#emit('ended', { reason: msg.type, by });
      }
      case 'redirect': {
        // The server closes the socket next; the page goes to the room's home node.
        this.close();
        return this.#emit('redirect', { url: String(msg.url ?? '') });
      }
      case 'pong': return;
      default:
        console.warn('kaigi: ignoring unknown message type', msg.type);
    }
  }

  /** @param {any} msg */
  async #onWelcome(msg) {
    if (msg.v !== undefined && msg.v !== PROTOCOL_VERSION) {
      this.#onError('unsupported_version', `server speaks version ${msg.v}`);
      return;
    }
    this.participantId = String(msg.participant_id);
    this.joined = true;
    this.resumeToken = typeof msg.resume_token === 'string' ? msg.resume_token : null;
    this.nodes = Array.isArray(msg.nodes) ? msg.nodes.map(String) : [];
    this.speakers = Array.isArray(msg.speakers) ? msg.speakers.map(String) : [];
    this.moderator = msg.moderator === true;
    this.roomState = toRoomState(msg.room_state);
    this.chat = [];
    for (const raw of Array.isArray(msg.chat) ? msg.chat : []) {
      const c = toChat(raw);
      if (c) this.chat.push(c);
    }
    this.lobby.clear();
    for (const raw of Array.isArray(msg.lobby) ? msg.lobby : []) {
      const w = toWaiter(raw);
      if (w) this.lobby.set(w.id, w);
    }
    this.participants.clear();
    for (const p of Array.isArray(msg.participants) ? msg.participants : []) {
      const part = toParticipant(p);
      if (part && part.id !== this.participantId) this.participants.set(part.id, part);
    }
    this.#emit('welcome', { participantId: this.participantId, participants: [...this.participants.values()], resumed: msg.resumed === true });
    for (const kind of /** @type {const} */ (['audio', 'video'])) {
      if (this.#muted[kind]) this.#send({ type: 'mute', kind, muted: true });
    }
    if (this.handRaised) this.#send({ type: 'hand', raised: true });
    await this.#startPublishing();
  }

  async #startPublishing() {
    const stream = this.localStream;
    const tracks = stream ? [...stream.getAudioTracks(), ...stream.getVideoTracks()] : [];
    if (!stream || tracks.length === 0) return; // receive only
    const pc = this.#newPc('publish');
    this.publishPc = pc;
    for (const track of tracks) {
      // Audio wins over video when the uplink is short (RTCRtpEncodingParameters.priority);
      // the camera goes out in three simulcast layers.
      /** @type {RTCRtpEncodingParameters[]} */
      const sendEncodings = track.kind === 'audio'
        ? [/** @type {RTCRtpEncodingParameters} */ ({ priority: 'high', networkPriority: 'high' })]
        : CAMERA_LAYERS.map((l) => ({ ...l, active: true }));
      const tx = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream], sendEncodings });
      if (track.kind === 'video') this.#cameraTx = tx;
    }
    await this.#offerPublish(pc);
  }

  /**
   * Sends an offer for the publish connection (first or again), with the
   * track sources; waits for a pending one to be answered first.
   * @param {RTCPeerConnection} pc
   */
  async #offerPublish(pc) {
    for (let i = 0; i < 100 && pc.signalingState === 'have-local-offer'; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (this.closed || this.publishPc !== pc) return;
      this.#send({ type: 'publish_offer', sdp: pc.localDescription?.sdp ?? offer.sdp, sources: this.#sources });
      this.#flushCandidates('publish');
    } catch (error) {
      this.#emit('failure', { pc: 'publish', error });
    }
  }

  /** @param {string} sdp */
  async #onPublishAnswer(sdp) {
    const pc = this.publishPc;
    if (!pc || pc.signalingState !== 'have-local-offer') {
      console.warn('kaigi: publish_answer without a pending offer');
      return;
    }
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp });
    } catch (error) {
      this.#emit('failure', { pc: 'publish', error });
      return;
    }
    // What the server asked before the answer (or a refused simulcast) applies now.
    this.#queueCameraLayers();
  }

  /** @param {string} sdp */
  async #onSubscribeOffer(sdp) {
    let pc = this.subscribePc;
    if (!pc) {
      pc = this.#newPc('subscribe');
      pc.addEventListener('track', (ev) => this.#onTrack(ev));
      this.subscribePc = pc;
    }
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      if (this.closed || this.subscribePc !== pc) return;
      this.#send({ type: 'subscribe_answer', sdp: pc.localDescription?.sdp ?? answer.sdp });
      this.#flushCandidates('subscribe');
    } catch (error) {
      this.#emit('failure', { pc: 'subscribe', error });
      return;
    }
    // Tracks of m-sections that went inactive have left their streams by now.
    for (const id of this.streams.keys()) this.#emit('media', { id });
  }

  /** @param {RTCTrackEvent} ev */
  #onTrack(ev) {
    const stream = ev.streams[0];
    if (!stream) {
      console.warn('kaigi: a received track has no stream id; cannot tell whose it is');
      return;
    }
    const id = stream.id;
    if (this.streams.get(id) !== stream) {
      this.streams.set(id, stream);
      const changed = () => { if (this.streams.get(id) === stream) this.#emit('media', { id }); };
      stream.addEventListener('addtrack', changed);
      stream.addEventListener('removetrack', changed);
    }
    const track = ev.track;
    if (!this.#watchedTracks.has(track)) {
      // A receiver keeps its track when its m-section is reused for someone
      // else, so look up the owner when the event fires.
      this.#watchedTracks.add(track);
      const changed = () => {
        for (const [owner, s] of this.streams) {
          if (s.getTracks().includes(track)) this.#emit('media', { id: owner });
        }
      };
      for (const type of ['ended', 'mute', 'unmute']) track.addEventListener(type, changed);
    }
    this.#emit('media', { id });
  }

  /** @param {unknown} raw */
  #onParticipantJoined(raw) {
    const p = toParticipant(raw);
    if (!p || p.id === this.participantId) return;
    this.participants.set(p.id, p);
    this.#emit('participantjoined', { participant: p });
  }

  /** @param {string} id */
  #onParticipantLeft(id) {
    const participant = this.participants.get(id);
    this.participants.delete(id);
    this.streams.delete(id);
    this.streams.delete(`${id}-screen`);
    this.#emit('participantleft', { id, participant });
  }

  /** @param {any} msg */
  #onChat(msg) {
    const entry = toChat(msg);
    if (!entry) return;
    this.chat.push(entry);
    // The server keeps 100; a long meeting's page need not keep more than a few hundred.
    if (this.chat.length > 500) this.chat.splice(0, this.chat.length - 500);
    this.#emit('chat', { entry });
  }

  /** @param {any} msg */
  #onRoomState(msg) {
    this.roomState = toRoomState(msg);
    this.#emit('roomstate', { state: this.roomState });
  }

  /** @param {any} msg */
  #onMutedByModerator(msg) {
    const kind = msg.kind === 'video' ? 'video' : 'audio';
    // Silence the track here too: the server already stopped forwarding it.
    this.#muted[kind] = true;
    for (const track of this.localStream?.getTracks() ?? []) {
      if (track.kind === kind) track.enabled = false;
    }
    this.#emit('mutedbymoderator', { kind, by: typeof msg.by === 'string' ? msg.by : '' });
  }

  /** @param {unknown} raw */
  #onParticipantUpdated(raw) {
    const p = toParticipant(raw);
    if (!p) return;
    if (p.id === this.participantId) {
      this.moderator = p.moderator;
      this.handRaised = p.hand_raised;
      this.sharing = p.sharing;
      if (p.sharing) this.#shareAnswer?.(true);
      this.#emit('self', { moderator: p.moderator, handRaised: p.hand_raised, sharing: p.sharing });
      return;
    }
    this.participants.set(p.id, p);
    this.#emit('participantupdated', { participant: p });
  }

  /**
   * @param {string} code
   * @param {string} message
   */
  #onError(code, message) {
    if (code === 'share_busy') this.#shareAnswer?.(false);
    const fatal = !this.joined;
    this.#emit('servererror', { code, message, fatal });
    if (fatal) this.close();
  }

  /** @param {PcName} name */
  #newPc(name) {
    const pc = new RTCPeerConnection(PC_CONFIG);
    this.#pendingCandidates[name] = [];
    pc.addEventListener('icecandidate', (ev) => {
      if (!ev.candidate || !ev.candidate.candidate) return; // end of candidates
      const pending = this.#pendingCandidates[name];
      if (pending) pending.push(ev.candidate);
      else this.#sendCandidate(name, ev.candidate);
    });
    pc.addEventListener('connectionstatechange', () => {
      if (this.closed) return;
      this.#emit('connectionstate', { pc: name, state: pc.connectionState });
    });
    return pc;
  }

  /** @param {PcName} name */
  #flushCandidates(name) {
    const pending = this.#pendingCandidates[name];
    this.#pendingCandidates[name] = null;
    for (const c of pending ?? []) this.#sendCandidate(name, c);
  }

  /**
   * @param {PcName} pc
   * @param {RTCIceCandidate} c
   */
  #sendCandidate(pc, c) {
    this.#send({
      type: 'candidate',
      pc,
      candidate: { candidate: c.candidate, sdp_mid: c.sdpMid, sdp_mline_index: c.sdpMLineIndex },
    });
  }
}

/**
 * A participant object from the server, checked.
 * @param {unknown} raw
 * @returns {Participant | null}
 */
function toParticipant(raw) {
  if (!raw || typeof raw !== 'object') return null;
  const p = /** @type {Record<string, unknown>} */ (raw);
  if (typeof p.id !== 'string' || !p.id) return null;
  return {
    id: p.id,
    name: typeof p.name === 'string' ? p.name : '',
    audio_muted: p.audio_muted === true,
    video_muted: p.video_muted === true,
    hand_raised: p.hand_raised === true,
    moderator: p.moderator === true,
    sharing: p.sharing === true,
    reconnecting: p.reconnecting === true,
  };
}

/**
 * @param {any} raw
 * @returns {ChatEntry | null}
 */
function toChat(raw) {
  if (!raw || typeof raw.text !== 'string') return null;
  return {
    id: Number(raw.id) || 0,
    from: String(raw.from ?? ''),
    name: String(raw.name ?? ''),
    text: raw.text,
    ts: Number(raw.ts) || Date.now(),
  };
}

/**
 * @param {any} raw
 * @returns {RoomState}
 */
function toRoomState(raw) {
  return { locked: raw?.locked === true, lobby: raw?.lobby === true, multiple_shares: raw?.multiple_shares === true };
}

/**
 * @param {any} raw
 * @returns {Waiter | null}
 */
function toWaiter(raw) {
  if (!raw || typeof raw.id !== 'string') return null;
  return { id: raw.id, name: String(raw.name ?? '') };
}
