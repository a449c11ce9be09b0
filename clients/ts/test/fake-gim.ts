// A scripted stand-in for gim's connect node, speaking the device protocol over a real
// WebSocket: it answers sync, sync_group, ack, heartbeat and send from an in-memory
// inbox and timelines, and lets a test push, duplicate, skip and close at will. It
// covers what a real server does only under races (gaps, duplicates, odd close codes).
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { WebSocketServer, type WebSocket } from "ws";

import {
  ClientFrameSchema,
  ConversationType,
  MessageSchema,
  ServerFrameSchema,
  textBody,
  type ClientFrame,
  type Message,
} from "../src/index.js";

type ResponseInit = MessageInitShape<typeof ServerFrameSchema>;

export interface Hooks {
  /** Called for each frame before the default answer; return true to answer it yourself. */
  frame?: (frame: ClientFrame, socket: WebSocket) => boolean | Promise<boolean>;
}

export class FakeGim {
  private readonly wss: WebSocketServer;
  readonly inbox: Message[] = [];
  readonly timelines = new Map<string, Message[]>();
  /** Every frame received, in order. */
  readonly frames: ClientFrame[] = [];
  readonly sockets: WebSocket[] = [];
  hooks: Hooks = {};
  port = 0;
  private nextId = 1000n;

  private constructor(wss: WebSocketServer) {
    this.wss = wss;
    wss.on("connection", (socket) => {
      this.sockets.push(socket);
      socket.on("message", (data: Buffer) => void this.received(socket, data));
    });
  }

  static async start(): Promise<FakeGim> {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: (protocols) => (protocols.has("gim.v1") ? "gim.v1" : false) });
    await new Promise<void>((done) => wss.once("listening", () => done()));
    const fake = new FakeGim(wss);
    const address = wss.address();
    fake.port = typeof address === "object" && address ? address.port : 0;
    return fake;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get socket(): WebSocket {
    return this.sockets.at(-1)!;
  }

  /** Adds a direct message to the inbox (the next seq) and returns it. */
  add(text = `m${this.inbox.length + 1}`): Message {
    const message = create(MessageSchema, {
      id: ++this.nextId,
      clientMsgId: text,
      senderUserId: "bob",
      conversationType: ConversationType.DIRECT,
      receiverId: "ann",
      body: textBody(text),
      seq: BigInt(this.inbox.length + 1),
    });
    this.inbox.push(message);
    return message;
  }

  /** Adds a message to a large group's timeline and returns it. */
  addGroup(groupId: string, text?: string): Message {
    const timeline = this.timelines.get(groupId) ?? [];
    this.timelines.set(groupId, timeline);
    const groupSeq = BigInt(timeline.length + 1);
    const message = create(MessageSchema, {
      id: ++this.nextId,
      clientMsgId: text ?? `${groupId}-${groupSeq}`,
      senderUserId: "bob",
      conversationType: ConversationType.GROUP,
      receiverId: groupId,
      body: textBody(text ?? `${groupId}-${groupSeq}`),
      groupSeq,
    });
    timeline.push(message);
    return message;
  }

  push(message: Message, socket = this.socket): void {
    this.write(socket, { payload: { case: "message", value: { message } } });
  }

  write(socket: WebSocket, frame: ResponseInit): void {
    socket.send(toBinary(ServerFrameSchema, create(ServerFrameSchema, frame)));
  }

  reply(socket: WebSocket, requestId: bigint, result: { case: string; value: unknown } | undefined, code = 0, message = ""): void {
    this.write(socket, {
      payload: { case: "response", value: { requestId, code, message, result: (result ?? { case: undefined }) as never } },
    });
  }

  /** The after_seq of every sync request so far. */
  get syncs(): bigint[] {
    return this.frames.flatMap((f) => (f.payload.case === "sync" ? [f.payload.value.afterSeq] : []));
  }

  get groupSyncs(): [string, bigint][] {
    return this.frames.flatMap((f) => (f.payload.case === "syncGroup" ? [[f.payload.value.groupId, f.payload.value.afterGroupSeq] as [string, bigint]] : []));
  }

  get acks(): bigint[] {
    return this.frames.flatMap((f) => (f.payload.case === "ack" ? [f.payload.value.seq] : []));
  }

  private async received(socket: WebSocket, data: Buffer): Promise<void> {
    const frame = fromBinary(ClientFrameSchema, new Uint8Array(data));
    this.frames.push(frame);
    if (this.hooks.frame && (await this.hooks.frame(frame, socket))) return;
    this.answer(socket, frame);
  }

  /** The default answer to a frame. */
  answer(socket: WebSocket, frame: ClientFrame): void {
    const id = frame.requestId;
    const payload = frame.payload;
    switch (payload.case) {
      case "auth":
        return this.reply(socket, id, { case: "auth", value: { appId: 1n, userId: "ann", deviceId: "phone" } });
      case "heartbeat":
        return this.reply(socket, id, { case: "heartbeat", value: { serverTimeMs: BigInt(Date.now()) } });
      case "ack":
        return this.reply(socket, id, { case: "ack", value: { ackedSeq: payload.value.seq } });
      case "sync": {
        const limit = payload.value.limit || 50;
        const after = payload.value.afterSeq;
        const messages = this.inbox.filter((m) => m.seq > after).slice(0, limit);
        const last = messages.at(-1)?.seq ?? 0n;
        const largeGroups = [...this.timelines].map(([groupId, t]) => ({ groupId, latestGroupSeq: BigInt(t.length) }));
        return this.reply(socket, id, {
          case: "sync",
          value: { messages, hasMore: last < BigInt(this.inbox.length) && messages.length > 0, latestSeq: BigInt(this.inbox.length), largeGroups },
        });
      }
      case "syncGroup": {
        const timeline = this.timelines.get(payload.value.groupId) ?? [];
        const messages = timeline.filter((m) => m.groupSeq > payload.value.afterGroupSeq).slice(0, payload.value.limit || 50);
        const last = messages.at(-1)?.groupSeq ?? 0n;
        return this.reply(socket, id, {
          case: "sync",
          value: { messages, hasMore: last < BigInt(timeline.length) && messages.length > 0, latestSeq: BigInt(timeline.length) },
        });
      }
      case "send": {
        const message = this.add(payload.value.body?.content.case === "text" ? payload.value.body.content.value.text : "sent");
        message.senderUserId = "ann";
        message.senderDeviceId = "phone";
        message.receiverId = payload.value.receiverUserId;
        return this.reply(socket, id, { case: "send", value: { messageId: message.id, seq: message.seq, sentAtMs: 1n } });
      }
      default:
        return this.reply(socket, id, undefined, 12, "not in the fake");
    }
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.terminate();
    await new Promise<void>((done) => this.wss.close(() => done()));
  }
}
