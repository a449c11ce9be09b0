import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";

import { messageTypeOf, newClientMsgId, textBody, type TextOptions } from "./bodies.js";
import { cloneCursor, emptyCursor, MemoryCursorStore, type Cursor, type CursorKey, type CursorStore } from "./cursor.js";
import { Emitter } from "./emitter.js";
import { GimError, StatusCode } from "./errors.js";
import { identityFromToken } from "./identity.js";
import {
  ClientFrameSchema,
  ServerFrameSchema,
  type ConversationEvent,
  type CustomEvent,
  type Kicked,
  type PresenceEvent,
  type ReactionEvent,
  type ReadEvent,
  type Response,
  type TypingEvent,
} from "./gen/gim/client/v1/client_pb.js";
import {
  ConversationType,
  MessageSchema,
  MessageStatus,
  type Message,
  type MessageBody,
} from "./gen/gim/common/v1/common_pb.js";
import type { ReadCursor } from "./gen/gim/logic/v1/device_pb.js";
import type { GroupSendResponse } from "./gen/gim/logic/v1/groups_pb.js";
import type { LargeGroupState, SendMessageResponse, SyncResponse } from "./gen/gim/logic/v1/messages_pb.js";
import {
  RoomEventKind,
  RoomEventSchema,
  RoomMessageSchema,
  type JoinRoomResponse,
  type RoomEvent,
  type RoomMessage,
  type RoomSendResponse,
} from "./gen/gim/logic/v1/rooms_pb.js";

/** The WebSocket API the session uses: the browser's, or `WebSocket` of the `ws` package. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  /* eslint-disable @typescript-eslint/no-explicit-any */
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  /* eslint-enable @typescript-eslint/no-explicit-any */
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Where the session is. */
export type SessionState = "idle" | "connecting" | "syncing" | "online" | "reconnecting" | "stopped";

export interface StateChange {
  state: SessionState;
  /** The close code that led here (`reconnecting`, `stopped`), when there was one. */
  code?: number;
  /** The close reason, or what went wrong. */
  reason?: string;
  /** `reconnecting`: the delay before the next attempt, in milliseconds. */
  retryInMs?: number;
}

/** The events of a {@link Session} and their argument. */
export interface SessionEvents {
  /** A message, once, in seq order (per large group: in group seq order). May return a promise. */
  message: Message;
  /** A read receipt, or a read cursor moved by another device of the user. */
  read: ReadEvent;
  /** A friend came online, went offline or changed devices. */
  presence: PresenceEvent;
  /** An event the business pushed (`Business.PushEvent`). */
  event: CustomEvent;
  /**
   * Another device of the user changed a conversation's settings: sync the list
   * (`conversations.syncConversations`) from the version you hold.
   */
  conversation: ConversationEvent;
  /** A reaction was added to or removed from a message of a direct conversation or small group. */
  reaction: ReactionEvent;
  /** Someone is typing in one of the user's conversations: show it for a few seconds. */
  typing: TypingEvent;
  /** A message in a live room the session is in, once per seq (the device's own included). */
  roomMessage: RoomMessage;
  /** The business put the session in a room, took it out or closed it, or pushed an event to it. */
  roomEvent: RoomEvent;
  /** The server is about to close the session (replaced, revoked, kicked). */
  kicked: Kicked;
  state: StateChange;
  /** Something went wrong that the session handles itself; for logging. */
  error: Error;
}

/** Where to start when no cursor is stored (or for a large group never seen). */
export type StartPoint = "beginning" | "latest";

export interface SessionOptions {
  /** The connect node's WebSocket URL, e.g. `ws://localhost:7080/ws`. */
  url: string;
  /** The device token, or a function returning a fresh one (asked before every connection). */
  token: string | (() => string | Promise<string>);
  /** Where the cursor is kept (default: a new {@link MemoryCursorStore}). */
  cursorStore?: CursorStore;
  /**
   * The app, user and device the token is for, naming the cursor. By default they are
   * read from the token; for a token that cannot be read, the session authenticates
   * with an `Auth` frame and takes them from its answer.
   */
  identity?: CursorKey;
  /** The WebSocket constructor (default `globalThis.WebSocket`; in Node.js 20 pass `WebSocket` of `ws`). */
  webSocket?: WebSocketConstructor;
  /** How often to send a heartbeat (default 30,000 ms). No frame for twice that: the socket is dead. */
  heartbeatMs?: number;
  /** Reconnection delays: exponential from `initialMs` up to `maxMs`, with full jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** How long a call over the session may wait for its response (default 15,000 ms). */
  requestTimeoutMs?: number;
  /** `limit` of sync pages (default 0: the server's default page size). */
  syncLimit?: number;
  /** A device with no stored cursor: read the inbox from the beginning (default) or only new messages. */
  newDeviceStart?: StartPoint;
  /** A large group with no stored group seq: read it from the beginning the server allows (default) or from its latest. */
  newGroupStart?: StartPoint;
  /** Acknowledge at most this often (default 1,000 ms); always once caught up. */
  ackIntervalMs?: number;
  /**
   * How the token travels: `frame` (the default: an `Auth` frame, the first after the
   * upgrade) or `query` (`?token=` in the URL, for a server or proxy that needs it
   * there). URLs are printed by browsers on connection errors and logged by proxies, so
   * the token stays out of them unless asked. With `query`, after a handshake that fails
   * without a known cause (browsers hide the HTTP status), the next attempt uses
   * `frame`, where an invalid token is told apart by close 4001.
   */
  auth?: "frame" | "query";
}

/** The largest u64: a sync after it reads nothing and says the latest seq. */
const MAX_SEQ = 18446744073709551615n;

/** Close codes after which the session does not reconnect. */
const STOP_CODES = new Set([1002, 1003, 1007, 1009, 4002, 4003]);

const WS_OPEN = 1;

type Payload = MessageInitShape<typeof ClientFrameSchema>["payload"];
type Result = Response["result"];
type ResultValue<C> = Extract<Result, { case: C }> extends { value: infer V } ? V : never;

interface Pending {
  resolve: (result: Result) => void;
  reject: (error: GimError) => void;
  timer: ReturnType<typeof setTimeout>;
  /** Runs synchronously when the response arrives, before any later frame is handled. */
  onOk: ((result: Result) => void) | undefined;
}

class Connection {
  readonly pending = new Map<bigint, Pending>();
  nextRequestId = 1n;
  opened = false;
  /** Authenticated: the app's calls and heartbeats may go. */
  ready = false;
  closed = false;
  lastFrameAt = Date.now();
  /** The HTTP status of a refused handshake, when the WebSocket implementation says it. */
  httpStatus: number | undefined;
  timers: ReturnType<typeof setInterval>[] = [];

  constructor(
    readonly ws: WebSocketLike,
    readonly frameAuth: boolean,
  ) {}
}

/**
 * The seqs of a room delivered lately. Messages of different senders may arrive out of
 * seq order, so a seq is a duplicate only if it was seen, not if it is lower.
 */
class RoomSeen {
  private static readonly KEEP = 2048;
  private readonly seen = new Set<bigint>();
  private readonly order: bigint[] = [];
  highest = 0n;
  /**
   * Seqs at or below this are not delivered: set when the session joins again after a
   * reconnection, so that the replay brings only what followed what it had.
   */
  floor = 0n;

  /** Records a seq; false if it was seen already (or is at or below the floor). */
  add(seq: bigint): boolean {
    if (seq <= this.floor || this.seen.has(seq)) return false;
    this.seen.add(seq);
    this.order.push(seq);
    if (this.order.length > RoomSeen.KEEP) this.seen.delete(this.order.shift()!);
    if (seq > this.highest) this.highest = seq;
    return true;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * One device's WebSocket session: it delivers every message of the inbox and of the
 * user's large groups to the `message` listeners exactly once and in order, across
 * reconnections, with the cursor kept in a {@link CursorStore}. See README.md.
 */
export class Session extends Emitter<SessionEvents> {
  private readonly options: SessionOptions;
  private readonly store: CursorStore;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly heartbeatMs: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly requestTimeoutMs: number;
  private readonly ackIntervalMs: number;

  private currentState: SessionState = "idle";
  private running = false;
  /** Set by stop(): nothing more is delivered. */
  private cancelled = false;
  private conn: Connection | undefined;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private authRetried = false;
  private frameAuthNext = false;
  /** Bumped by start() and stop(): a connection attempt of an earlier run gives up. */
  private run = 0;

  private key: CursorKey | undefined;
  private cursor: Cursor | undefined;
  private fresh = false;
  /** Messages this device sent whose inbox seq is beyond the cursor. */
  private readonly ownInbox = new Map<bigint, Message>();
  /** The same per large group, by group seq. */
  private readonly ownGroups = new Map<string, Map<bigint, Message>>();

  /** The live rooms the session is in, with the seqs delivered lately in each. */
  private readonly rooms = new Map<string, RoomSeen>();

  private queue: Promise<void> = Promise.resolve();
  private ackedSeq = 0n;
  private lastAckAt = 0;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: SessionOptions) {
    super();
    this.options = options;
    this.store = options.cursorStore ?? new MemoryCursorStore();
    const impl = options.webSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!impl) {
      throw new Error("Session: no WebSocket here; pass `webSocket` (in Node.js: WebSocket of the ws package)");
    }
    this.WebSocketImpl = impl;
    this.heartbeatMs = options.heartbeatMs ?? 30_000;
    this.backoffInitialMs = options.backoff?.initialMs ?? 1_000;
    this.backoffMaxMs = options.backoff?.maxMs ?? 30_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    this.ackIntervalMs = options.ackIntervalMs ?? 1_000;
  }

  /** Where the session is now. */
  get state(): SessionState {
    return this.currentState;
  }

  /** Whose session this is, once known (after the first connection). */
  get identity(): CursorKey | undefined {
    return this.key;
  }

  /** A copy of the cursor: what has been delivered so far. */
  get position(): Cursor | undefined {
    return this.cursor && cloneCursor(this.cursor);
  }

  /** Connects, syncs and keeps the session up until stop() or a close that ends it. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.run++;
    this.cancelled = false;
    this.attempt = 0;
    this.authRetried = false;
    void this.connect();
  }

  /**
   * Closes the session with 1000 and stops reconnecting; calls waiting for a response
   * reject with `CANCELLED`. Resolves once the messages being delivered are done and
   * the cursor is saved.
   */
  async stop(): Promise<void> {
    const wasRunning = this.running || this.currentState !== "stopped";
    this.running = false;
    this.run++;
    this.cancelled = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    const conn = this.conn;
    if (conn && !conn.closed) {
      this.closed(conn, 1000, "stopped by the app", StatusCode.CANCELLED);
      try {
        conn.ws.close(1000, "bye");
      } catch {
        // Already closing.
      }
    }
    await this.queue;
    if (wasRunning) this.setState({ state: "stopped", code: 1000, reason: "stopped by the app" });
  }

  /** Resolves when the session is next online (at once if it is); rejects if it stops first. */
  whenOnline(): Promise<void> {
    if (this.currentState === "online") return Promise.resolve();
    if (this.currentState === "stopped" && !this.running) {
      return Promise.reject(new GimError(StatusCode.UNAVAILABLE, "session stopped"));
    }
    return new Promise((resolve, reject) => {
      const off = this.on("state", (change) => {
        if (change.state === "online") {
          off();
          resolve();
        } else if (change.state === "stopped") {
          off();
          reject(new GimError(StatusCode.UNAVAILABLE, `session stopped: ${change.code ?? ""} ${change.reason ?? ""}`));
        }
      });
    });
  }

  // ---------------------------------------------------------------- calls

  /**
   * Sends a direct message. The message is also emitted as `message` on this device,
   * once, in seq order (the server does not push a device its own messages).
   */
  async send(receiverUserId: string, body: MessageBody, clientMsgId: string = newClientMsgId()): Promise<SendMessageResponse> {
    const result = await this.request(
      this.usable(),
      { case: "send", value: { receiverUserId, clientMsgId, body } },
      (result) => {
        if (result.case !== "send") return;
        this.recordOwn(ConversationType.DIRECT, receiverUserId, clientMsgId, body, result.value.messageId, result.value.sentAtMs, result.value.seq, 0n);
      },
    );
    return this.expect(result, "send");
  }

  /** Sends a text message to a user. */
  sendText(receiverUserId: string, text: string, options: TextOptions & { clientMsgId?: string } = {}): Promise<SendMessageResponse> {
    return this.send(receiverUserId, textBody(text, options), options.clientMsgId);
  }

  /**
   * Sends to a group. Like send(), the message is emitted as `message` on this device
   * too: with its inbox seq (small groups) or its group seq (large groups).
   */
  async sendGroup(groupId: string, body: MessageBody, clientMsgId: string = newClientMsgId()): Promise<GroupSendResponse> {
    const result = await this.request(
      this.usable(),
      { case: "groupSend", value: { groupId, clientMsgId, body } },
      (result) => {
        if (result.case !== "groupSend") return;
        const sent = result.value;
        this.recordOwn(ConversationType.GROUP, groupId, clientMsgId, body, sent.messageId, sent.sentAtMs, sent.seq, sent.groupSeq);
      },
    );
    return this.expect(result, "groupSend");
  }

  /** Sends a text message to a group. */
  sendGroupText(groupId: string, text: string, options: TextOptions & { clientMsgId?: string } = {}): Promise<GroupSendResponse> {
    return this.sendGroup(groupId, textBody(text, options), options.clientMsgId);
  }

  /**
   * Moves the user's read cursor of a conversation up to `seq`: the user's inbox seq of
   * the last message read, or for a large group that message's `groupSeq`. The user's
   * other devices, and the other user of a direct conversation, get a `read` event.
   */
  async markRead(conversationType: ConversationType, conversationId: string, seq: bigint): Promise<ReadCursor> {
    const result = await this.request(this.usable(), {
      case: "read",
      value: { conversationType, conversationId, seq },
    });
    return this.expect(result, "read");
  }

  /**
   * Tells the other side of a direct conversation, or a small group's other members, that
   * the user is typing. Call it when typing starts and every few seconds while it goes on
   * (the server allows `rates.typing_per_minute` per device).
   */
  async typing(conversationType: ConversationType, conversationId: string): Promise<void> {
    const result = await this.request(this.usable(), {
      case: "typing",
      value: { conversationType, conversationId },
    });
    this.expect(result, "typing");
  }

  /**
   * Enters a live room (docs/protocol.md, Live rooms): its messages are emitted as
   * `roomMessage`, each once; with `replay`, the room's last few come first. The session
   * stays in the room across reconnections (it joins again, with the replay to cover
   * the gap) until leaveRoom(), or until the business takes it out or closes the room.
   */
  async joinRoom(roomId: string, options: { replay?: boolean } = {}): Promise<JoinRoomResponse> {
    const replay = options.replay ?? false;
    const result = await this.request(this.usable(), { case: "joinRoom", value: { roomId, replay } }, (result) => {
      if (result.case === "joinRoom") this.enteredRoom(roomId, result.value.lastSeq);
    });
    return this.expect(result, "joinRoom");
  }

  /** Leaves a live room. */
  async leaveRoom(roomId: string): Promise<void> {
    this.rooms.delete(roomId);
    const result = await this.request(this.usable(), { case: "leaveRoom", value: { roomId } });
    this.expect(result, "leaveRoom");
  }

  /** The live rooms the session is in. */
  get joinedRooms(): string[] {
    return [...this.rooms.keys()];
  }

  /**
   * Sends to a live room the session is in. The message is emitted as `roomMessage` on
   * this device too (the server does not push a session its own). To retry a send whose
   * answer was lost, pass its `clientMsgId` again: within 5 minutes the server answers
   * the first one's seq, and nobody gets it twice.
   */
  async sendToRoom(roomId: string, body: MessageBody, clientMsgId: string = newClientMsgId()): Promise<RoomSendResponse> {
    const result = await this.request(this.usable(), { case: "roomSend", value: { roomId, clientMsgId, body } }, (result) => {
      if (result.case !== "roomSend") return;
      const own = create(RoomMessageSchema, {
        roomId,
        seq: result.value.seq,
        senderUserId: this.key?.userId ?? "",
        clientMsgId,
        body,
        sentAtMs: result.value.sentAtMs,
      });
      const conn = this.conn;
      if (conn) this.enqueue(conn, () => this.roomMessage(own));
    });
    return this.expect(result, "roomSend");
  }

  /** Sends a text message to a live room. */
  sendRoomText(roomId: string, text: string, options: TextOptions & { clientMsgId?: string } = {}): Promise<RoomSendResponse> {
    return this.sendToRoom(roomId, textBody(text, options), options.clientMsgId);
  }

  /** Sends a heartbeat now; resolves with the server's time (ms). */
  async heartbeat(): Promise<bigint> {
    const result = await this.request(this.usable(), { case: "heartbeat", value: {} });
    return this.expect(result, "heartbeat").serverTimeMs;
  }

  // ---------------------------------------------------------------- connection

  private async connect(): Promise<void> {
    if (!this.running) return;
    const run = this.run;
    this.setState({ state: "connecting" });
    let token: string;
    try {
      token = typeof this.options.token === "function" ? await this.options.token() : this.options.token;
    } catch (error) {
      this.report(new Error(`getting a token failed: ${asError(error).message}`));
      this.retry(undefined, "no token");
      return;
    }
    if (!this.running || run !== this.run) return;
    const identity = this.options.identity ?? identityFromToken(token);
    if (identity && !this.useIdentity(identity)) return;
    const frameAuth = this.options.auth !== "query" || this.frameAuthNext || !identity;
    let ws: WebSocketLike;
    try {
      const url = new URL(this.options.url);
      if (!frameAuth) url.searchParams.set("token", token);
      ws = new this.WebSocketImpl(url.toString(), "gim.v1");
      ws.binaryType = "arraybuffer";
    } catch (error) {
      this.report(asError(error));
      this.retry(undefined, asError(error).message);
      return;
    }
    const conn = new Connection(ws, frameAuth);
    this.conn = conn;
    ws.onopen = () => {
      if (conn.closed) return;
      conn.opened = true;
      conn.lastFrameAt = Date.now();
      conn.timers.push(
        setInterval(() => {
          if (!conn.closed && conn.ready) this.request(conn, { case: "heartbeat", value: {} }).catch(() => {});
        }, this.heartbeatMs),
      );
      void this.opened(conn, token);
    };
    ws.onmessage = (event: { data: unknown }) => this.frame(conn, event.data);
    ws.onerror = (event: { message?: unknown; error?: unknown }) => {
      const text = typeof event?.message === "string" ? event.message : event?.error instanceof Error ? event.error.message : "";
      const status = /Unexpected server response: (\d+)/.exec(text)?.[1];
      if (status) conn.httpStatus = Number(status);
    };
    ws.onclose = (event: { code?: number; reason?: string }) => {
      this.closed(conn, event?.code ?? 1006, event?.reason ?? "");
    };
    // A socket that neither opens nor speaks for twice the heartbeat interval is dead.
    conn.timers.push(
      setInterval(() => {
        if (!conn.closed && Date.now() - conn.lastFrameAt > 2 * this.heartbeatMs) {
          const reason = conn.opened ? `no frame from the server for ${2 * this.heartbeatMs} ms` : "the connection did not open in time";
          this.closed(conn, 1006, reason);
          const terminate = (ws as { terminate?: () => void }).terminate;
          try {
            if (typeof terminate === "function") terminate.call(ws);
            else ws.close(4000, "dead connection");
          } catch {
            // Nothing more to do with it.
          }
        }
      }, Math.max(50, Math.min(this.heartbeatMs / 2, 1_000))),
    );
  }

  /** Names the cursor; false (and stopped) if the identity changed under the session. */
  private useIdentity(identity: CursorKey): boolean {
    const key = { appId: String(identity.appId), userId: identity.userId, deviceId: identity.deviceId };
    if (this.key) {
      if (this.key.appId === key.appId && this.key.userId === key.userId && this.key.deviceId === key.deviceId) return true;
      this.report(new Error("the token is for another device than this session's; create another Session"));
      this.end(undefined, "the token is for another device");
      return false;
    }
    this.key = key;
    return true;
  }

  private async loadCursor(): Promise<void> {
    if (this.cursor || !this.key) return;
    const stored = await this.store.load(this.key);
    this.fresh = stored === undefined;
    this.cursor = stored ? cloneCursor(stored) : emptyCursor();
    this.ackedSeq = 0n;
  }

  private async opened(conn: Connection, token: string): Promise<void> {
    try {
      if (conn.frameAuth) {
        const result = await this.request(conn, { case: "auth", value: { token } });
        const caller = this.expect(result, "auth");
        if (!this.useIdentity({ appId: caller.appId.toString(), userId: caller.userId, deviceId: caller.deviceId })) return;
      }
      await this.loadCursor();
    } catch (error) {
      if (!conn.closed && conn.ws.readyState === WS_OPEN) {
        this.report(asError(error));
        this.drop(conn, "could not start the session");
      }
      return;
    }
    if (conn.closed || conn !== this.conn) return;
    conn.ready = true;
    this.setState({ state: "syncing" });
    this.enqueue(conn, async () => {
      await this.syncInbox(conn);
      if (conn.closed || !this.running) return;
      this.attempt = 0;
      this.authRetried = false;
      this.frameAuthNext = false;
      this.setState({ state: "online" });
      void this.ackNow();
      void this.rejoinRooms(conn);
    });
  }

  /** One frame from the server. */
  private frame(conn: Connection, data: unknown): void {
    if (conn.closed) return;
    conn.lastFrameAt = Date.now();
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else {
      this.report(new Error("the server sent a text frame; gim sends binary frames only"));
      return;
    }
    let frame;
    try {
      frame = fromBinary(ServerFrameSchema, bytes);
    } catch (error) {
      this.report(new Error(`a ServerFrame did not decode: ${asError(error).message}`));
      return;
    }
    const payload = frame.payload;
    switch (payload.case) {
      case "response":
        this.response(conn, payload.value);
        break;
      case "message": {
        const message = payload.value.message;
        if (message) this.enqueue(conn, () => this.pushed(conn, message));
        break;
      }
      case "event": {
        const event = payload.value.event;
        if (event.case === "read") this.enqueue(conn, () => this.emitSafe("read", event.value));
        else if (event.case === "presence") this.enqueue(conn, () => this.emitSafe("presence", event.value));
        else if (event.case === "custom") this.enqueue(conn, () => this.emitSafe("event", event.value));
        else if (event.case === "conversation") this.enqueue(conn, () => this.emitSafe("conversation", event.value));
        else if (event.case === "reaction") this.enqueue(conn, () => this.emitSafe("reaction", event.value));
        else if (event.case === "typing") this.enqueue(conn, () => this.emitSafe("typing", event.value));
        break;
      }
      case "roomMessage": {
        const message = payload.value;
        this.enqueue(conn, () => this.roomMessage(message));
        break;
      }
      case "roomEvent": {
        const event = payload.value;
        if (event.kind === RoomEventKind.JOINED) this.enteredRoom(event.roomId, 0n);
        else if (event.kind === RoomEventKind.LEFT || event.kind === RoomEventKind.CLOSED) this.rooms.delete(event.roomId);
        this.enqueue(conn, () => this.emitSafe("roomEvent", event));
        break;
      }
      case "kicked":
        void this.emitSafe("kicked", payload.value);
        break;
      default:
        break;
    }
  }

  private response(conn: Connection, response: Response): void {
    const pending = conn.pending.get(response.requestId);
    if (!pending) return; // Timed out already.
    conn.pending.delete(response.requestId);
    clearTimeout(pending.timer);
    if (response.code !== 0) {
      pending.reject(new GimError(response.code, response.message));
      return;
    }
    try {
      pending.onOk?.(response.result);
    } catch (error) {
      this.report(asError(error));
    }
    pending.resolve(response.result);
  }

  /**
   * The socket closed (or is taken for dead): pending calls fail now, and what follows
   * is decided after the frames already received are handled.
   */
  private closed(conn: Connection, code: number, reason: string, rejectWith: number = StatusCode.UNAVAILABLE): void {
    if (conn.closed) return;
    conn.closed = true;
    for (const timer of conn.timers) clearInterval(timer);
    conn.ws.onopen = conn.ws.onmessage = conn.ws.onerror = conn.ws.onclose = null;
    for (const pending of conn.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new GimError(rejectWith, rejectWith === StatusCode.CANCELLED ? "the session was stopped" : `the connection closed (${code} ${reason})`));
    }
    conn.pending.clear();
    if (!this.running || conn !== this.conn) return;
    this.enqueue(conn, async () => this.afterClose(conn, code, reason), true);
  }

  private afterClose(conn: Connection, code: number, reason: string): void {
    if (!this.running || conn !== this.conn) return;
    this.conn = undefined;
    if (!conn.opened && conn.httpStatus !== undefined) {
      // The upgrade was refused: 401 is a token the server will never take.
      if (conn.httpStatus === 401) {
        code = 4001;
        reason = reason || "HTTP 401: the token was refused";
      } else {
        reason = reason || `HTTP ${conn.httpStatus}`;
      }
    } else if (!conn.opened && !conn.frameAuth) {
      // Browsers hide why a handshake failed: authenticate with a frame next time, where
      // a refused token is close 4001.
      this.frameAuthNext = true;
    }
    if (code === 4001) {
      if (typeof this.options.token === "function" && !this.authRetried) {
        this.authRetried = true;
        this.setState({ state: "reconnecting", code, reason, retryInMs: 0 });
        void this.connect();
        return;
      }
      this.end(code, reason);
      return;
    }
    if (STOP_CODES.has(code)) {
      this.end(code, reason);
      return;
    }
    this.retry(code, reason);
  }

  /** Waits a backoff with full jitter, then connects again. */
  private retry(code: number | undefined, reason: string): void {
    if (!this.running) return;
    const ceiling = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** Math.min(this.attempt, 30));
    const delay = Math.floor(Math.random() * ceiling);
    this.attempt++;
    this.setState({ state: "reconnecting", ...(code !== undefined ? { code } : {}), reason, retryInMs: delay });
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  /** Stops for good after the server ended the session. */
  private end(code: number | undefined, reason: string): void {
    this.running = false;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    const conn = this.conn;
    this.conn = undefined;
    if (conn && !conn.closed) {
      this.closed(conn, code ?? 1000, reason);
      try {
        conn.ws.close(1000, "bye");
      } catch {
        // Already closing.
      }
    }
    this.setState({ state: "stopped", ...(code !== undefined ? { code } : {}), reason });
  }

  /** Closes a connection whose state the session no longer trusts, and reconnects. */
  private drop(conn: Connection, reason: string): void {
    if (conn.closed) return;
    this.closed(conn, 4000, reason);
    try {
      conn.ws.close(4000, "resync");
    } catch {
      // Already closing.
    }
  }

  /** The open connection, for the app's calls. */
  private usable(): Connection {
    const conn = this.conn;
    if (!conn || conn.closed || !conn.ready || (this.currentState !== "syncing" && this.currentState !== "online")) {
      throw new GimError(StatusCode.UNAVAILABLE, `the session is not connected (${this.currentState})`);
    }
    return conn;
  }

  private request(conn: Connection, payload: Payload, onOk?: (result: Result) => void): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      if (conn.closed || conn.ws.readyState !== WS_OPEN) {
        reject(new GimError(StatusCode.UNAVAILABLE, "the session is not connected"));
        return;
      }
      const requestId = conn.nextRequestId++;
      const bytes = toBinary(ClientFrameSchema, create(ClientFrameSchema, { requestId, payload }));
      const timer = setTimeout(() => {
        conn.pending.delete(requestId);
        reject(new GimError(StatusCode.DEADLINE_EXCEEDED, `no response in ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
      conn.pending.set(requestId, { resolve, reject, timer, onOk });
      try {
        conn.ws.send(bytes);
      } catch (error) {
        conn.pending.delete(requestId);
        clearTimeout(timer);
        reject(new GimError(StatusCode.UNAVAILABLE, `sending failed: ${asError(error).message}`));
      }
    });
  }

  /** A call the session makes itself: waits and tries again when the server asks it to slow down. */
  private async internalCall(conn: Connection, payload: Payload): Promise<Result> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.request(conn, payload);
      } catch (error) {
        if (error instanceof GimError && error.code === StatusCode.RESOURCE_EXHAUSTED && attempt < 50 && !conn.closed) {
          await sleep((error.retryAfterMs ?? 100) + Math.floor(Math.random() * 50));
          continue;
        }
        throw error;
      }
    }
  }

  private expect<C extends NonNullable<Result["case"]>>(result: Result, kind: C): ResultValue<C> {
    if (result.case !== kind) throw new GimError(StatusCode.INTERNAL, `expected a ${kind} response, got ${result.case ?? "none"}`);
    return (result as { value: unknown }).value as ResultValue<C>;
  }

  // ---------------------------------------------------------------- delivery

  /**
   * Runs `task` after everything received before it: frames are handled one at a time,
   * in the order they arrived. A task that fails other than by its connection closing
   * makes the session reconnect and sync.
   */
  private enqueue(conn: Connection, task: () => Promise<void> | void, always = false): void {
    this.queue = this.queue.then(async () => {
      if (this.cancelled && !always) return;
      try {
        await task();
      } catch (error) {
        // A connection that is closing: its close event decides what happens next.
        if (conn.closed || this.cancelled || conn.ws.readyState !== WS_OPEN) return;
        this.report(asError(error));
        this.drop(conn, `could not deliver: ${asError(error).message}`);
      }
    });
  }

  /**
   * The session is in the room from now on. A room whose last seq is below the highest
   * delivered started over (closed, or idle): its seqs count from the start again.
   */
  private enteredRoom(roomId: string, lastSeq: bigint): void {
    const known = this.rooms.get(roomId);
    if (!known || lastSeq < known.highest) this.rooms.set(roomId, new RoomSeen());
  }

  /** Emits a room message unless it was delivered already (a replay after a reconnection). */
  private roomMessage(message: RoomMessage): Promise<void> | void {
    const room = this.rooms.get(message.roomId);
    if (!room || !room.add(message.seq)) return;
    return this.emitSafe("roomMessage", message);
  }

  /**
   * Rooms end with the connection: after a reconnection the session joins its rooms
   * again, with the replay, of which it emits what it had not (by seq). A private room
   * cannot be joined again by the device: it is left, with a `roomEvent` LEFT.
   */
  private async rejoinRooms(conn: Connection): Promise<void> {
    for (const [roomId, seen] of [...this.rooms.entries()]) {
      seen.floor = seen.highest;
      try {
        const result = await this.internalCall(conn, { case: "joinRoom", value: { roomId, replay: true } });
        if (result.case === "joinRoom") this.enteredRoom(roomId, result.value.lastSeq);
      } catch (error) {
        if (conn.closed) return;
        if (error instanceof GimError && error.code === StatusCode.PERMISSION_DENIED) {
          this.rooms.delete(roomId);
          const reason = "reconnected: the app must put this session in the room again";
          const event = create(RoomEventSchema, { roomId, kind: RoomEventKind.LEFT, reason });
          this.enqueue(conn, () => this.emitSafe("roomEvent", event));
        } else {
          this.report(asError(error));
        }
      }
    }
  }

  /** Reads the inbox after the cursor until caught up, then the large groups behind. */
  private async syncInbox(conn: Connection): Promise<void> {
    const cursor = this.cursor!;
    let after = this.fresh && this.options.newDeviceStart === "latest" && cursor.seq === 0n ? MAX_SEQ : cursor.seq;
    for (;;) {
      const page = this.expect(
        await this.internalCall(conn, { case: "sync", value: { afterSeq: after, limit: this.options.syncLimit ?? 0 } }),
        "sync",
      );
      if (after === MAX_SEQ) {
        // A new device that wants no history starts at the latest seq.
        this.fresh = false;
        if (page.latestSeq > cursor.seq) {
          cursor.seq = page.latestSeq;
          await this.save();
        }
      }
      for (const message of page.messages) await this.deliverInbox(message);
      const last = page.messages.at(-1);
      if (!page.hasMore || !last) {
        await this.syncLargeGroups(conn, page);
        return;
      }
      after = last.seq;
    }
  }

  /** Reads each large group the server lists whose latest group seq is beyond the cursor's. */
  private async syncLargeGroups(conn: Connection, page: SyncResponse): Promise<void> {
    const cursor = this.cursor!;
    const listed = new Set(page.largeGroups.map((group: LargeGroupState) => group.groupId));
    // Groups the user is no longer in (or that stopped being listed) are forgotten.
    let pruned = false;
    for (const group of Object.keys(cursor.groups)) {
      if (!listed.has(group)) {
        delete cursor.groups[group];
        this.ownGroups.delete(group);
        pruned = true;
      }
    }
    if (pruned) await this.save();
    for (const { groupId, latestGroupSeq } of page.largeGroups) {
      const held = cursor.groups[groupId];
      if (held === undefined && this.options.newGroupStart === "latest") {
        cursor.groups[groupId] = latestGroupSeq;
        await this.save();
      } else if (latestGroupSeq > (held ?? 0n)) {
        await this.syncGroup(conn, groupId);
      }
    }
  }

  /** Reads a large group's timeline after the cursor's group seq; false if the user may no longer read it. */
  private async syncGroup(conn: Connection, groupId: string): Promise<boolean> {
    let after = this.cursor!.groups[groupId] ?? 0n;
    for (;;) {
      let result: Result;
      try {
        result = await this.internalCall(conn, {
          case: "syncGroup",
          value: { groupId, afterGroupSeq: after, limit: this.options.syncLimit ?? 0 },
        });
      } catch (error) {
        if (error instanceof GimError && (error.code === StatusCode.PERMISSION_DENIED || error.code === StatusCode.NOT_FOUND)) {
          // No longer a member (or the group is gone): nothing more to read there.
          delete this.cursor!.groups[groupId];
          this.ownGroups.delete(groupId);
          await this.save();
          return false;
        }
        throw error;
      }
      const page = this.expect(result, "sync");
      for (const message of page.messages) await this.deliverGroup(groupId, message);
      const last = page.messages.at(-1);
      if (!page.hasMore || !last) return true;
      after = last.groupSeq;
    }
  }

  /** A message push: delivered if it is next, dropped if delivered already, after a sync if one is missing. */
  private async pushed(conn: Connection, message: Message): Promise<void> {
    const cursor = this.cursor;
    if (!cursor) return;
    if (message.groupSeq > 0n && message.seq === 0n) {
      const groupId = message.receiverId;
      let held = cursor.groups[groupId];
      if (held === undefined && this.options.newGroupStart === "latest") {
        held = cursor.groups[groupId] = message.groupSeq - 1n;
      }
      const from = held ?? 0n;
      if (message.groupSeq <= from) return;
      if (message.groupSeq > from + 1n) {
        // No longer a member: the server stops its pushes there too.
        if (!(await this.syncGroup(conn, groupId))) return;
        if (message.groupSeq <= (cursor.groups[groupId] ?? 0n)) return;
        // What comes before it is not readable (e.g. before this member joined): take it.
      }
      await this.deliverGroup(groupId, message);
      return;
    }
    if (message.seq <= cursor.seq) return;
    if (message.seq > cursor.seq + 1n) {
      await this.syncInbox(conn);
      if (message.seq <= cursor.seq) return;
      this.report(new Error(`inbox seq ${message.seq} came after ${cursor.seq} and a sync did not fill the gap`));
    }
    await this.deliverInbox(message);
  }

  private async deliverInbox(message: Message): Promise<void> {
    const cursor = this.cursor!;
    if (message.seq <= cursor.seq) return;
    await this.emitMessage(message);
    cursor.seq = message.seq;
    for (const seq of this.ownInbox.keys()) if (seq <= cursor.seq) this.ownInbox.delete(seq);
    await this.save();
    await this.absorbOwn();
    this.scheduleAck();
  }

  private async deliverGroup(groupId: string, message: Message): Promise<void> {
    const cursor = this.cursor!;
    const held = cursor.groups[groupId] ?? 0n;
    if (message.groupSeq <= held) return;
    await this.emitMessage(message);
    cursor.groups[groupId] = message.groupSeq;
    const own = this.ownGroups.get(groupId);
    if (own) for (const seq of own.keys()) if (seq <= message.groupSeq) own.delete(seq);
    await this.save();
    await this.absorbOwn(groupId);
  }

  /** Delivers this device's own messages that are next in line. */
  private async absorbOwn(groupId?: string): Promise<void> {
    const cursor = this.cursor;
    if (!cursor) return;
    if (groupId === undefined) {
      for (let next = this.ownInbox.get(cursor.seq + 1n); next; next = this.ownInbox.get(cursor.seq + 1n)) {
        this.ownInbox.delete(next.seq);
        await this.emitMessage(next);
        cursor.seq = next.seq;
        await this.save();
        this.scheduleAck();
      }
      return;
    }
    const own = this.ownGroups.get(groupId);
    const held = cursor.groups[groupId];
    if (!own || held === undefined) return;
    for (let next = own.get(held + 1n); next; next = own.get((cursor.groups[groupId] ?? 0n) + 1n)) {
      own.delete(next.groupSeq);
      await this.emitMessage(next);
      cursor.groups[groupId] = next.groupSeq;
      await this.save();
    }
  }

  /** A send's response: the message is this device's at that seq (the server will not push it here). */
  private recordOwn(
    conversationType: ConversationType,
    receiverId: string,
    clientMsgId: string,
    body: MessageBody,
    id: bigint,
    sentAtMs: bigint,
    seq: bigint,
    groupSeq: bigint,
  ): void {
    const cursor = this.cursor;
    const key = this.key;
    const conn = this.conn;
    if (!cursor || !key || !conn) return;
    const message = create(MessageSchema, {
      id,
      clientMsgId,
      senderUserId: key.userId,
      senderDeviceId: key.deviceId,
      conversationType,
      receiverId,
      type: messageTypeOf(body),
      body,
      sentAtMs,
      status: MessageStatus.NORMAL,
      seq,
      groupSeq: seq > 0n ? 0n : groupSeq,
    });
    if (seq > 0n) {
      if (seq <= cursor.seq) return;
      this.ownInbox.set(seq, message);
      this.enqueue(conn, () => this.absorbOwn());
    } else if (groupSeq > 0n) {
      const held = cursor.groups[receiverId];
      if (held !== undefined && groupSeq <= held) return;
      let own = this.ownGroups.get(receiverId);
      if (!own) this.ownGroups.set(receiverId, (own = new Map()));
      own.set(groupSeq, message);
      // A large group first heard of through this device's own send starts there
      // (when new groups start at their latest).
      if (held === undefined && this.options.newGroupStart === "latest") cursor.groups[receiverId] = groupSeq - 1n;
      this.enqueue(conn, () => this.absorbOwn(receiverId));
    }
  }

  private async emitMessage(message: Message): Promise<void> {
    if (this.cancelled) throw new GimError(StatusCode.CANCELLED, "the session was stopped");
    const pending = this.dispatch("message", message, (error) => this.report(asError(error)));
    if (pending) await pending;
  }

  private async emitSafe<K extends keyof SessionEvents>(name: K, value: SessionEvents[K]): Promise<void> {
    const pending = this.dispatch(name, value, (error) => this.report(asError(error)));
    if (pending) await pending;
  }

  private async save(): Promise<void> {
    if (!this.key || !this.cursor) return;
    await this.store.save(this.key, cloneCursor(this.cursor));
  }

  // ---------------------------------------------------------------- acks and state

  private scheduleAck(): void {
    if (this.ackTimer || this.currentState !== "online") return;
    const wait = Math.max(0, this.lastAckAt + this.ackIntervalMs - Date.now());
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      void this.ackNow();
    }, wait);
  }

  /** Tells the server the highest seq delivered (never more often than ackIntervalMs). */
  private async ackNow(): Promise<void> {
    const conn = this.conn;
    const cursor = this.cursor;
    if (!conn || conn.closed || !cursor || cursor.seq <= this.ackedSeq) return;
    const seq = cursor.seq;
    this.lastAckAt = Date.now();
    try {
      const result = await this.request(conn, { case: "ack", value: { seq } });
      const acked = this.expect(result, "ack").ackedSeq;
      if (acked > this.ackedSeq) this.ackedSeq = acked;
    } catch (error) {
      if (conn.closed) return;
      if (error instanceof GimError && error.code === StatusCode.RESOURCE_EXHAUSTED) {
        this.scheduleAck();
        return;
      }
      this.report(asError(error));
    }
    if (cursor.seq > this.ackedSeq) this.scheduleAck();
  }

  private setState(change: StateChange): void {
    if (change.state === this.currentState && change.code === undefined && change.reason === undefined) return;
    this.currentState = change.state;
    void this.emitSafe("state", change);
  }

  private report(error: Error): void {
    this.dispatch("error", error, () => {});
  }
}
