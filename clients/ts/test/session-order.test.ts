// The session's ordering rules against a scripted server: gaps, duplicates, pushes
// during a sync, own sends ahead of pushes, large-group gaps, rate limits, close codes.
import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { MemoryCursorStore, Session, type SessionOptions } from "../src/index.js";
import { FakeGim } from "./fake-gim.js";
import { NodeWebSocket, Recorder, sleep, waitFor } from "./helpers.js";

let fake: FakeGim;
const running: Session[] = [];

beforeEach(async () => {
  fake = await FakeGim.start();
});
afterEach(async () => {
  for (const session of running.splice(0)) await session.stop();
  await fake.close();
});

function open(options: Partial<SessionOptions> = {}): Recorder {
  const session = new Session({
    url: fake.url,
    token: "fake-token",
    identity: { appId: "1", userId: "ann", deviceId: "phone" },
    webSocket: NodeWebSocket,
    backoff: { initialMs: 20, maxMs: 100 },
    ...options,
  });
  const recorder = new Recorder(session);
  running.push(session);
  session.start();
  return recorder;
}

describe("session ordering", () => {
  test("duplicates are dropped; a gap is filled by a sync before later pushes, which wait", async () => {
    for (let i = 0; i < 3; i++) fake.add();
    const rec = open();
    await rec.session.whenOnline();
    expect(rec.seqs).toEqual([1n, 2n, 3n]);

    fake.push(fake.add()); // 4
    fake.push(fake.inbox[3]!); // 4 again
    fake.add(); // 5, 6: never pushed
    fake.add();
    const seven = fake.add();
    const eight = fake.add();
    // While the gap's sync is answered, 8 is pushed first: it must wait for 5, 6, 7.
    fake.hooks.frame = (frame, socket) => {
      if (frame.payload.case === "sync" && frame.payload.value.afterSeq === 4n) {
        fake.push(eight, socket);
        setTimeout(() => fake.answer(socket, frame), 50);
        return true;
      }
      return false;
    };
    fake.push(seven);
    await waitFor("eight", () => rec.messages.length === 8);
    fake.push(fake.inbox[5]!); // 6 again
    await sleep(100);
    expect(rec.seqs).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n]);
    expect(fake.syncs).toEqual([0n, 4n]);
    expect(rec.errors).toEqual([]);
  });

  test("an own send whose seq is ahead of a push still in flight is emitted after it, once", async () => {
    fake.add();
    const rec = open();
    await rec.session.whenOnline();
    // The server stores bob's message 2 but pushes it only after answering ann's send (3).
    const two = fake.add();
    const sent = await rec.session.sendText("bob", "mine");
    expect(sent.seq).toBe(3n);
    await sleep(50);
    expect(rec.seqs).toEqual([1n]);
    fake.push(two);
    fake.push(fake.add()); // 4
    await waitFor("four", () => rec.messages.length === 4);
    await sleep(50);
    expect(rec.seqs).toEqual([1n, 2n, 3n, 4n]);
    expect(rec.messages[2]).toMatchObject({ senderUserId: "ann", senderDeviceId: "phone", receiverId: "bob", id: sent.messageId });
    expect(fake.syncs).toEqual([0n]);
  });

  test("large groups: a new group from its beginning, a gap synced, and the sync's list read after a reconnect", async () => {
    const rec = open();
    await rec.session.whenOnline();
    fake.push(fake.addGroup("g")); // 1
    fake.push(fake.addGroup("g")); // 2
    fake.addGroup("g");
    fake.addGroup("g");
    fake.push(fake.addGroup("g")); // 5: 3 and 4 are missing
    fake.push(fake.timelines.get("g")![3]!); // 4 again
    await waitFor("five", () => rec.messages.length === 5);
    expect(rec.messages.map((m) => m.groupSeq)).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(fake.groupSyncs).toEqual([["g", 2n]]);

    // A group first heard of at group seq 3 is read from its beginning first.
    fake.addGroup("h");
    fake.addGroup("h");
    fake.push(fake.addGroup("h"));
    await waitFor("h", () => rec.messages.filter((m) => m.receiverId === "h").length === 3);

    // Offline: two more in g. The next sync lists g at 7, and the session reads it.
    fake.socket.terminate();
    fake.addGroup("g");
    fake.addGroup("g");
    await waitFor("g at 7", () => rec.messages.filter((m) => m.receiverId === "g").length === 7);
    await sleep(50);
    expect(rec.messages.filter((m) => m.receiverId === "g").map((m) => m.groupSeq)).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n]);
    expect(rec.messages.filter((m) => m.receiverId === "h").map((m) => m.groupSeq)).toEqual([1n, 2n, 3n]);
    expect(fake.groupSyncs).toEqual([
      ["g", 2n],
      ["h", 0n],
      ["g", 5n],
    ]);
    expect(rec.session.position?.groups).toEqual({ g: 7n, h: 3n });
  });

  test("a sync refused with RESOURCE_EXHAUSTED is tried again after the time the server asks", async () => {
    for (let i = 0; i < 2; i++) fake.add();
    let refused = 0;
    fake.hooks.frame = (frame, socket) => {
      if (frame.payload.case === "sync" && refused < 2) {
        refused++;
        fake.reply(socket, frame.requestId, undefined, 8, "too many calls from this device; retry in 30 ms");
        return true;
      }
      return false;
    };
    const rec = open();
    await rec.session.whenOnline();
    expect(rec.seqs).toEqual([1n, 2n]);
    expect(refused).toBe(2);
    expect(rec.states.filter((s) => s.state === "reconnecting")).toEqual([]);
  });

  test("acks are debounced: a burst is acknowledged a few times, ending at the last seq", async () => {
    const rec = open({ ackIntervalMs: 200 });
    await rec.session.whenOnline();
    for (let i = 0; i < 100; i++) fake.push(fake.add());
    await waitFor("100", () => rec.messages.length === 100);
    await waitFor("the last ack", () => fake.acks.at(-1) === 100n, 2_000);
    expect(fake.acks.length).toBeLessThanOrEqual(3);
  });

  test("close codes: reconnect on 1001, 1011, 1013, 4004 and 4008; stop on 4002, 4003, and on 4001 with a fixed token", async () => {
    const store = new MemoryCursorStore();
    fake.add();
    const rec = open({ cursorStore: store });
    await rec.session.whenOnline();
    for (const code of [1001, 1011, 1013, 4004, 4008]) {
      const before = fake.sockets.length;
      fake.socket.close(code, `closing with ${code}`);
      await waitFor(`a reconnection after ${code}`, () => fake.sockets.length === before + 1 && rec.session.state === "online");
      expect(rec.states.filter((s) => s.state === "reconnecting").at(-1)).toMatchObject({ code, reason: `closing with ${code}` });
    }
    // Reconnections read from the cursor: nothing twice.
    expect(rec.seqs).toEqual([1n]);
    expect(fake.syncs).toEqual([0n, 1n, 1n, 1n, 1n, 1n]);

    for (const code of [4001, 4002, 4003]) {
      const other = open({ cursorStore: store });
      await other.session.whenOnline();
      const count = fake.sockets.length;
      fake.socket.close(code, "go away");
      await waitFor(`stopped after ${code}`, () => other.session.state === "stopped");
      expect(other.states.at(-1)).toMatchObject({ state: "stopped", code });
      await sleep(100);
      expect(fake.sockets.length).toBe(count);
    }
  });

  test("backoff grows with full jitter while the server is away, and resets after a sync", async () => {
    const rec = open({ backoff: { initialMs: 10, maxMs: 80 } });
    await rec.session.whenOnline();
    await fake.close();
    await waitFor("several attempts", () => rec.states.filter((s) => s.state === "reconnecting").length >= 6, 5_000);
    const delays = rec.states.filter((s) => s.state === "reconnecting").map((s) => s.retryInMs!);
    delays.forEach((delay, i) => expect(delay).toBeLessThan(Math.min(80, 10 * 2 ** i)));
    expect(delays.every((d) => d >= 0)).toBe(true);
  });
});
