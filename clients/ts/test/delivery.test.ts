// Exactly once, in order: several devices of two users, a socket broken mid-burst, a
// device that was offline, and messages a device sent itself.
import { afterEach, describe, expect, test } from "vitest";

import { createClients, MemoryCursorStore, textBody, textOf, type Message } from "../src/index.js";
import { gim, newApp, range, Recorder, sleep, socketOf, waitFor, type App, start, stopStarted } from "./helpers.js";

afterEach(stopStarted);

/** The user's whole inbox, as the server has it. */
async function inbox(app: App, userId: string): Promise<Message[]> {
  const all: Message[] = [];
  let after = 0n;
  for (;;) {
    const page = await app.clients.business.sync({ userId, afterSeq: after, limit: 200 });
    all.push(...page.messages);
    if (!page.hasMore || page.messages.length === 0) return all;
    after = page.messages.at(-1)!.seq;
  }
}

describe("delivery", () => {
  test("two users, five devices, both directions: every device gets its user's inbox once, in order", async () => {
    const app = await newApp("both-ways");
    const ann = await app.user("ann", ["a1", "a2", "a3"]);
    const bob = await app.user("bob", ["b1", "b2"]);
    const sessions = {
      a1: app.session(ann.a1!),
      a2: app.session(ann.a2!),
      a3: app.session(ann.a3!),
      b1: app.session(bob.b1!),
      b2: app.session(bob.b2!),
    };
    const rec = Object.fromEntries(Object.entries(sessions).map(([name, s]) => [name, start(s)])) as Record<keyof typeof sessions, Recorder>;
    await Promise.all(Object.values(sessions).map((s) => s.whenOnline()));

    // Every device sends, in parallel, and the business writes too.
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < 8; i++) {
      sends.push(sessions.a1.sendText("bob", `a1-${i}`));
      sends.push(sessions.a2.sendText("bob", `a2-${i}`));
      sends.push(sessions.a3.sendText("bob", `a3-${i}`));
      sends.push(sessions.b1.sendText("ann", `b1-${i}`));
      sends.push(sessions.b2.sendText("ann", `b2-${i}`));
      sends.push(app.clients.business.sendMessage({ senderUserId: "bob", receiverUserId: "ann", clientMsgId: `biz-${i}`, body: textBody(`biz-${i}`) }));
    }
    await Promise.all(sends);
    const annInbox = await inbox(app, "ann");
    const bobInbox = await inbox(app, "bob");
    expect(annInbox).toHaveLength(48);
    // Bob's inbox has his own messages too: those his devices sent and those the business sent as him.
    expect(bobInbox).toHaveLength(48);

    for (const name of ["a1", "a2", "a3"] as const) {
      await waitFor(`${name} to get ann's inbox`, () => rec[name].messages.length >= annInbox.length);
    }
    for (const name of ["b1", "b2"] as const) {
      await waitFor(`${name} to get bob's inbox`, () => rec[name].messages.length >= bobInbox.length);
    }
    await sleep(200); // Anything extra would show up now.
    const expected = (all: Message[]) => all.map((m) => [m.seq, m.id]);
    for (const name of ["a1", "a2", "a3"] as const) {
      expect(rec[name].messages.map((m) => [m.seq, m.id]), name).toEqual(expected(annInbox));
    }
    for (const name of ["b1", "b2"] as const) {
      expect(rec[name].messages.map((m) => [m.seq, m.id]), name).toEqual(expected(bobInbox));
    }
    // A device's own messages are emitted as the server stores them.
    const fields = (m: Message) => ({
      id: m.id,
      seq: m.seq,
      groupSeq: m.groupSeq,
      clientMsgId: m.clientMsgId,
      senderUserId: m.senderUserId,
      senderDeviceId: m.senderDeviceId,
      conversationType: m.conversationType,
      receiverId: m.receiverId,
      type: m.type,
      text: textOf(m.body),
      sentAtMs: m.sentAtMs,
      status: m.status,
    });
    const own = rec.a2.messages.filter((m) => m.senderDeviceId === "a2");
    expect(own).toHaveLength(8);
    expect(own.map(fields)).toEqual(annInbox.filter((m) => m.senderDeviceId === "a2").map(fields));
    for (const recorder of Object.values(rec)) expect(recorder.errors).toEqual([]);
  });

  test("a socket broken twice during a 200-message burst: still every message once, in order", async () => {
    const app = await newApp("broken");
    const ann = await app.user("ann", ["phone"]);
    await app.user("bob", ["laptop"]);
    const session = app.session(ann.phone!);
    const rec = start(session);
    await session.whenOnline();

    let sent = 0;
    const burst = (async () => {
      for (let i = 0; i < 200; i += 10) {
        await Promise.all(
          range(BigInt(i), BigInt(i + 9)).map((n) =>
            app.clients.business.sendMessage({ senderUserId: "bob", receiverUserId: "ann", clientMsgId: `burst-${n}`, body: textBody(`m${n}`) }),
          ),
        );
        sent += 10;
      }
    })();
    const sentAtBreaks: number[] = [];
    await waitFor("some messages", () => rec.messages.length >= 40);
    sentAtBreaks.push(sent);
    socketOf(ann.phone!).terminate();
    await waitFor("more messages after the reconnect", () => rec.messages.length >= 120);
    sentAtBreaks.push(sent);
    socketOf(ann.phone!).terminate();
    await burst;
    await waitFor("all 200", () => rec.messages.length >= 200);
    await sleep(200);
    expect(rec.seqs).toEqual(range(1n, 200n));
    expect(rec.ids()).toEqual((await inbox(app, "ann")).map((m) => m.id));
    expect(rec.states.filter((s) => s.state === "reconnecting").length).toBeGreaterThanOrEqual(2);
    expect(rec.states.at(-1)?.state).toBe("online");
    expect(session.position?.seq).toBe(200n);
    // The sockets broke while bob was still sending.
    expect(sentAtBreaks.every((n) => n < 200), `sent at the breaks: ${sentAtBreaks}`).toBe(true);
  });

  test("a device that was offline catches up from its cursor, and only from there", async () => {
    const app = await newApp("offline");
    const ann = await app.user("ann", ["phone", "tablet", "new"]);
    await app.user("bob", []);
    const store = new MemoryCursorStore();
    const send = (n: number) =>
      app.clients.business.sendMessage({ senderUserId: "bob", receiverUserId: "ann", clientMsgId: `c${n}`, body: textBody(`m${n}`) });

    for (let n = 1; n <= 5; n++) await send(n);
    const first = app.session(ann.tablet!, { cursorStore: store });
    const firstRec = start(first);
    await first.whenOnline();
    await waitFor("five", () => firstRec.messages.length === 5);
    await first.stop();
    expect(firstRec.states.at(-1)).toMatchObject({ state: "stopped", code: 1000 });
    const saved = await store.load({ appId: String(app.appId), userId: "ann", deviceId: "tablet" });
    expect(saved?.seq).toBe(5n);

    for (let n = 6; n <= 15; n++) await send(n);
    // The phone (another device) reads from the beginning; the tablet from its cursor.
    const again = app.session(ann.tablet!, { cursorStore: store });
    const againRec = start(again);
    const phoneRec = start(app.session(ann.phone!));
    // A new device that wants no history gets only what comes next.
    const fresh = app.session(ann.new!, { newDeviceStart: "latest" });
    const freshRec = start(fresh);
    await Promise.all([again.whenOnline(), fresh.whenOnline()]);
    await send(16);
    await waitFor("the tablet", () => againRec.messages.length === 11);
    await waitFor("the phone", () => phoneRec.messages.length === 16);
    await waitFor("the new device", () => freshRec.messages.length === 1);
    await sleep(200);
    expect(againRec.seqs).toEqual(range(6n, 16n));
    expect(phoneRec.seqs).toEqual(range(1n, 16n));
    expect(freshRec.seqs).toEqual([16n]);

    // What the tablet acknowledged reached the server.
    await waitFor("the ack", () => false, 1_200).catch(() => {});
    const devices = await app.clients.business.listDevices({ userId: "ann" });
    expect(devices.devices.find((d) => d.deviceId === "tablet")?.ackedSeq).toBe(16n);
  });

  test("a message the device sent over gRPC while online is delivered once (from a sync)", async () => {
    const app = await newApp("grpc-own");
    const ann = await app.user("ann", ["phone"]);
    await app.user("bob", []);
    const session = app.session(ann.phone!);
    const rec = start(session);
    await session.whenOnline();
    const device = createClients({ baseUrl: gim().logicUrl, token: ann.phone! }).device;
    await session.sendText("bob", "over the session");
    await device.sendMessage({ receiverUserId: "bob", clientMsgId: "grpc-1", body: textBody("over gRPC") });
    await app.clients.business.sendMessage({ senderUserId: "bob", receiverUserId: "ann", clientMsgId: "reply", body: textBody("reply") });
    await waitFor("three", () => rec.messages.length === 3);
    await sleep(200);
    expect(rec.seqs).toEqual([1n, 2n, 3n]);
    expect(rec.messages.map((m) => textOf(m.body))).toEqual(["over the session", "over gRPC", "reply"]);
    // The same client_msg_id again is idempotent: nothing new is delivered.
    const again = await session.send("bob", textBody("dup"), rec.messages[0]!.clientMsgId);
    expect(again.seq).toBe(1n);
    await sleep(100);
    expect(rec.messages).toHaveLength(3);
  });
});
