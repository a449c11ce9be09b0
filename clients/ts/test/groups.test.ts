// Large groups (past GIM_GROUPS__LARGE_THRESHOLD=3 members in the test server): one
// timeline with group seqs, delivered once and in group seq order, across reconnections
// and offline periods; small groups go through the inbox.
import { afterEach, describe, expect, test } from "vitest";

import { MemoryCursorStore, textBody, textOf, type Message } from "../src/index.js";
import { newApp, Recorder, sleep, socketOf, waitFor, type App, start, stopStarted } from "./helpers.js";

afterEach(stopStarted);

/** The group's timeline as `userId` may read it. */
async function timeline(app: App, userId: string, groupId: string): Promise<Message[]> {
  const groups = app.clients.actingAs(userId).groups;
  const all: Message[] = [];
  let after = 0n;
  for (;;) {
    const page = await groups.syncGroup({ groupId, afterGroupSeq: after, limit: 200 });
    all.push(...page.messages);
    if (!page.hasMore || page.messages.length === 0) return all;
    after = page.messages.at(-1)!.groupSeq;
  }
}

const inGroup = (groupId: string) => (m: Message) => m.groupSeq > 0n && m.receiverId === groupId;
const groupSeqs = (rec: Recorder, groupId: string) => rec.messages.filter(inGroup(groupId)).map((m) => m.groupSeq);

async function bigGroup(app: App, groupId: string) {
  const ann = await app.user("ann", ["a1", "a2", "a3"]);
  for (const user of ["bob", "carl", "dan", "eve"]) await app.user(user, []);
  const group = await app.clients.groups.createGroup({ groupId, name: "big", ownerId: "ann", memberIds: ["bob", "carl", "dan", "eve"] });
  expect(group.large).toBe(true);
  return ann;
}

function send(app: App, userId: string, groupId: string, text: string) {
  return app.clients.actingAs(userId).groups.sendMessage({ groupId, clientMsgId: text, body: textBody(text) });
}

describe("large groups", () => {
  test("every device gets the timeline once, in group seq order, its own sends included", async () => {
    const app = await newApp("large");
    const ann = await bigGroup(app, "big");
    const a1 = app.session(ann.a1!);
    const a2 = app.session(ann.a2!);
    const r1 = start(a1);
    const r2 = start(a2);
    await Promise.all([a1.whenOnline(), a2.whenOnline()]);
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < 10; i++) {
      sends.push(send(app, "bob", "big", `bob-${i}`));
      sends.push(send(app, "carl", "big", `carl-${i}`));
      sends.push(a1.sendGroupText("big", `a1-${i}`));
    }
    await Promise.all(sends);
    const all = await timeline(app, "ann", "big");
    expect(all.length).toBeGreaterThanOrEqual(30);
    await waitFor("a1", () => groupSeqs(r1, "big").length >= all.length);
    await waitFor("a2", () => groupSeqs(r2, "big").length >= all.length);
    await sleep(300);
    const expected = all.map((m) => [m.groupSeq, m.id]);
    expect(r1.messages.filter(inGroup("big")).map((m) => [m.groupSeq, m.id])).toEqual(expected);
    expect(r2.messages.filter(inGroup("big")).map((m) => [m.groupSeq, m.id])).toEqual(expected);
    // a1's own sends were emitted from their responses, with their group seqs.
    const own = r1.messages.filter((m) => m.senderDeviceId === "a1");
    expect(own.map((m) => textOf(m.body))).toEqual(Array.from({ length: 10 }, (_, i) => `a1-${i}`));
    expect(own.every((m) => m.seq === 0n && m.groupSeq > 0n)).toBe(true);
    expect(a1.position?.groups.big).toBe(all.at(-1)!.groupSeq);
    expect([...r1.errors, ...r2.errors]).toEqual([]);
  });

  test("a socket broken mid-burst, a device offline, a new device: still once and in order", async () => {
    const app = await newApp("large-reconnect");
    const ann = await bigGroup(app, "big");
    const store = new MemoryCursorStore();
    const a1 = app.session(ann.a1!);
    const a2 = app.session(ann.a2!, { cursorStore: store });
    const r1 = start(a1);
    const r2 = start(a2);
    await Promise.all([a1.whenOnline(), a2.whenOnline()]);

    let sent = 0;
    const burst = (async () => {
      for (let i = 0; i < 60; i += 6) {
        await Promise.all(Array.from({ length: 6 }, (_, k) => send(app, k % 2 ? "bob" : "carl", "big", `m${i + k}`)));
        sent += 6;
      }
    })();
    await waitFor("a first part", () => groupSeqs(r1, "big").length >= 15);
    const sentAtBreak = sent;
    socketOf(ann.a1!).terminate();
    // a2 goes offline in the middle of the burst, with its cursor kept.
    await waitFor("a2 a first part", () => groupSeqs(r2, "big").length >= 20);
    await a2.stop();
    await burst;
    for (let i = 0; i < 5; i++) await send(app, "dan", "big", `late-${i}`);

    const all = await timeline(app, "ann", "big");
    await waitFor("a1 all", () => groupSeqs(r1, "big").length >= all.length);
    expect(sentAtBreak).toBeLessThan(60);
    expect(r1.states.some((s) => s.state === "reconnecting")).toBe(true);
    expect(r1.messages.filter(inGroup("big")).map((m) => m.id)).toEqual(all.map((m) => m.id));

    // a2 comes back: its sync lists the group, and it reads the timeline from its cursor.
    const before = groupSeqs(r2, "big");
    const back = app.session(ann.a2!, { cursorStore: store });
    const rBack = start(back);
    await back.whenOnline();
    await waitFor("a2 the rest", () => before.length + groupSeqs(rBack, "big").length >= all.length);
    await sleep(200);
    expect([...before, ...groupSeqs(rBack, "big")]).toEqual(all.map((m) => m.groupSeq));

    // A device new to the group that starts at its latest gets only what comes next.
    const a3 = app.session(ann.a3!, { newGroupStart: "latest", newDeviceStart: "latest" });
    const r3 = start(a3);
    await a3.whenOnline();
    await send(app, "eve", "big", "after-a3");
    await waitFor("a3", () => groupSeqs(r3, "big").length === 1);
    await sleep(200);
    expect(r3.messages.filter(inGroup("big")).map((m) => textOf(m.body))).toEqual(["after-a3"]);
  });

  test("a small group's messages come through the inbox with the members' seqs", async () => {
    const app = await newApp("small");
    const ann = await app.user("ann", ["a1"]);
    await app.user("bob", []);
    await app.user("carl", []);
    const group = await app.clients.groups.createGroup({ groupId: "small", name: "small", ownerId: "ann", memberIds: ["bob", "carl"] });
    expect(group.large).toBe(false);
    const a1 = app.session(ann.a1!);
    const rec = start(a1);
    await a1.whenOnline();
    await send(app, "bob", "small", "hello");
    const mine = await a1.sendGroupText("small", "hi all");
    expect(mine.seq).toBeGreaterThan(0n);
    expect(mine.groupSeq).toBe(0n);
    await send(app, "carl", "small", "hey");
    await waitFor("three group texts", () => rec.messages.filter((m) => m.receiverId === "small" && m.body?.content.case === "text").length === 3);
    await sleep(100);
    const texts = rec.messages.filter((m) => m.receiverId === "small" && m.body?.content.case === "text");
    expect(texts.map((m) => textOf(m.body))).toEqual(["hello", "hi all", "hey"]);
    expect(texts.every((m) => m.seq > 0n && m.groupSeq === 0n)).toBe(true);
    expect(rec.seqs).toEqual(rec.seqs.map((_, i) => BigInt(i + 1)));
  });
});

describe("announcements", () => {
  test("a message to every user arrives once on every device, live or synced later, as the app's timeline", async () => {
    const app = await newApp("announcements");
    const ann = await app.user("ann", ["phone"]);
    const bob = await app.user("bob", ["phone"]);
    const annPhone = app.session(ann.phone!);
    const annRec = start(annPhone);
    await annPhone.whenOnline();

    const announce = (id: string, text: string) =>
      app.clients.business.broadcast({ userIds: [], clientMsgId: id, body: textBody(text) });
    await announce("a1", "maintenance at 2am");
    await waitFor("ann gets it live", () => annRec.messages.length === 1);
    await announce("a1", "maintenance at 2am");
    await announce("a2", "back up");
    await waitFor("the second", () => annRec.messages.length === 2);

    // Bob was never online: his first session reads both from the timeline.
    const bobPhone = app.session(bob.phone!);
    const bobRec = start(bobPhone);
    await bobPhone.whenOnline();
    await waitFor("bob reads them", () => bobRec.messages.length === 2);
    for (const rec of [annRec, bobRec]) {
      expect(rec.messages.map((m) => [m.receiverId, m.groupSeq, textOf(m.body)])).toEqual([
        ["~announcements", 1n, "maintenance at 2am"],
        ["~announcements", 2n, "back up"],
      ]);
    }
    await sleep(200);
    expect(annRec.messages).toHaveLength(2);
  });
});
