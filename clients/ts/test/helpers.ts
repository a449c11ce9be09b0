// Fixtures shared by the tests: an app of their own in the test server, users with
// devices and tokens, sessions over the `ws` package, and waiting helpers.
import { createServer, connect } from "node:net";

import { fromBinary } from "@bufbuild/protobuf";
import { inject } from "vitest";
import WebSocket from "ws";

import {
  ClientFrameSchema,
  createClients,
  DeviceType,
  MemoryCursorStore,
  Session,
  type CursorStore,
  type GimClients,
  type Message,
  type SessionOptions,
  type StateChange,
  type WebSocketConstructor,
} from "../src/index.js";

export function gim() {
  return inject("gim");
}

/** Every socket the tests' sessions opened, newest last, so that a test can break one. */
export const sockets: TrackedWebSocket[] = [];

class TrackedWebSocket extends WebSocket {
  /** The code this side closed with, if it did. */
  closedWith: number | undefined;
  /** The token the session presented: in the URL's query, or in its first frame. */
  token: string | undefined;
  /** Whether the token came in the first frame. */
  tokenInFrame = false;
  private sentFrames = 0;

  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols);
    this.token = new URL(url).searchParams.get("token") ?? undefined;
    sockets.push(this);
  }

  override send(data: Uint8Array, ...rest: unknown[]): void {
    if (this.sentFrames++ === 0) {
      const payload = fromBinary(ClientFrameSchema, data).payload;
      if (payload.case === "auth") {
        this.token = payload.value.token;
        this.tokenInFrame = true;
      }
    }
    (super.send as (data: Uint8Array, ...rest: unknown[]) => void)(data, ...rest);
  }

  override close(code?: number, reason?: string | Buffer): void {
    this.closedWith ??= code;
    super.close(code, reason);
  }
}

export const NodeWebSocket = TrackedWebSocket as unknown as WebSocketConstructor;

/** The newest socket that presented `token`. */
export function socketOf(token: string): TrackedWebSocket {
  const socket = sockets.filter((s) => s.token === token).at(-1);
  if (!socket) throw new Error("no socket presented that token");
  return socket;
}

/** Like a browser's WebSocket: an error event says nothing about why (no HTTP status). */
class QuietWebSocket extends TrackedWebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols);
    const inherited = Object.getOwnPropertyDescriptor(WebSocket.prototype, "onerror")!;
    Object.defineProperty(this, "onerror", {
      configurable: true,
      get: () => inherited.get!.call(this),
      set: (listener: ((event: unknown) => void) | null) =>
        inherited.set!.call(this, listener && (() => listener({ type: "error" }))),
    });
  }
}

export const BrowserLikeWebSocket = QuietWebSocket as unknown as WebSocketConstructor;

export interface App {
  appId: bigint;
  secret: string;
  /** Business, Groups, ... as the app itself. */
  clients: GimClients;
  /** Creates a user with devices; returns a token per device. */
  user(userId: string, deviceIds: string[]): Promise<Record<string, string>>;
  token(userId: string, deviceId: string): Promise<string>;
  session(token: string | (() => Promise<string>), options?: Partial<SessionOptions>): Session;
}

let apps = 0;

export async function newApp(name = "test"): Promise<App> {
  const { logicUrl, wsUrl, adminToken } = gim();
  const admin = createClients({ baseUrl: logicUrl, adminToken });
  const created = await admin.appAdmin.createApp({ name: `${name}-${++apps}-${process.pid}` });
  const appId = created.app!.appId;
  const clients = createClients({ baseUrl: logicUrl, appId, appSecret: created.secret });
  const token = async (userId: string, deviceId: string) =>
    (await clients.business.issueToken({ userId, deviceId, ttlSeconds: 3600 })).token;
  return {
    appId,
    secret: created.secret,
    clients,
    token,
    async user(userId, deviceIds) {
      await clients.business.createUser({ userId, nickname: userId });
      const tokens: Record<string, string> = {};
      for (const deviceId of deviceIds) {
        await clients.business.registerDevice({ userId, deviceId, type: DeviceType.DESKTOP, model: "test" });
        tokens[deviceId] = await token(userId, deviceId);
      }
      return tokens;
    },
    session(sessionToken, options = {}) {
      return new Session({
        url: wsUrl,
        token: sessionToken,
        webSocket: NodeWebSocket,
        backoff: { initialMs: 50, maxMs: 500 },
        ...options,
      });
    },
  };
}

/** What a session delivered: messages, states and errors, in order. */
export class Recorder {
  readonly messages: Message[] = [];
  readonly states: StateChange[] = [];
  readonly errors: Error[] = [];

  constructor(readonly session: Session) {
    session.on("message", (message) => {
      this.messages.push(message);
    });
    session.on("state", (state) => {
      this.states.push(state);
    });
    session.on("error", (error) => {
      this.errors.push(error);
    });
  }

  /** Inbox seqs delivered, in delivery order. */
  get seqs(): bigint[] {
    return this.messages.filter((m) => m.seq > 0n).map((m) => m.seq);
  }

  ids(filter: (m: Message) => boolean = () => true): bigint[] {
    return this.messages.filter(filter).map((m) => m.id);
  }
}

export async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** 1..n as bigints. */
export function range(from: bigint, to: bigint): bigint[] {
  const out: bigint[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

export function memoryStore(): CursorStore {
  return new MemoryCursorStore();
}

/**
 * A TCP proxy in front of the connect port whose connections can be frozen: a frozen
 * one stays open but carries nothing, like a connection whose peer vanished.
 */
export class FreezingProxy {
  private readonly server;
  private readonly connections: { frozen: boolean; client: import("node:net").Socket; upstream: import("node:net").Socket }[] = [];
  port = 0;

  constructor(private readonly target: number) {
    this.server = createServer((client) => {
      const upstream = connect({ host: "127.0.0.1", port: this.target });
      const entry = { frozen: false, client, upstream };
      this.connections.push(entry);
      client.on("data", (chunk) => {
        if (!entry.frozen) upstream.write(chunk);
      });
      upstream.on("data", (chunk) => {
        if (!entry.frozen) client.write(chunk);
      });
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", end).on("close", end);
      upstream.on("error", end).on("close", end);
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((done) => this.server.listen(0, "127.0.0.1", () => done()));
    const address = this.server.address();
    this.port = typeof address === "object" && address ? address.port : 0;
    return this;
  }

  /** Freezes every connection open now; later ones carry data as usual. */
  freezeAll(): number {
    let n = 0;
    for (const c of this.connections) {
      if (!c.frozen && !c.client.destroyed) {
        c.frozen = true;
        n++;
      }
    }
    return n;
  }

  get count(): number {
    return this.connections.length;
  }

  async close(): Promise<void> {
    for (const c of this.connections) {
      c.client.destroy();
      c.upstream.destroy();
    }
    await new Promise<void>((done) => this.server.close(() => done()));
  }
}

/** Sessions the running test started; `stopStarted` (each file's afterEach) stops them. */
const started: Session[] = [];

/** Starts a session and records what it delivers; `stopStarted` stops it after the test. */
export function start(session: Session): Recorder {
  const recorder = new Recorder(session);
  started.push(session);
  session.start();
  return recorder;
}

export async function stopStarted(): Promise<void> {
  for (const session of started.splice(0)) await session.stop();
}
