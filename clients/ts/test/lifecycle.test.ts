// Close codes, kicks, tokens, dead sockets and stop().
import { afterEach, describe, expect, test } from "vitest";

import { GimError, KickReason, StatusCode, textBody, type Kicked } from "../src/index.js";
import { BrowserLikeWebSocket, FreezingProxy, gim, newApp, Recorder, sleep, socketOf, sockets, waitFor, start, stopStarted } from "./helpers.js";

afterEach(stopStarted);

function stoppedWith(recorder: Recorder) {
  return recorder.states.find((s) => s.state === "stopped");
}

describe("lifecycle", () => {
  test("Business.KickDevice: a kicked event, stopped with 4003, no reconnection", async () => {
    const app = await newApp("kick");
    const ann = await app.user("ann", ["phone"]);
    const session = app.session(ann.phone!);
    const rec = start(session);
    const kicks: Kicked[] = [];
    session.on("kicked", (k) => {
      kicks.push(k);
    });
    await session.whenOnline();
    const opened = sockets.length;
    await app.clients.business.kickDevice({ userId: "ann", deviceId: "phone", reason: "policy" });
    await waitFor("stopped", () => session.state === "stopped");
    expect(kicks).toHaveLength(1);
    expect(kicks[0]).toMatchObject({ reason: KickReason.BUSINESS, message: "policy" });
    expect(stoppedWith(rec)).toMatchObject({ state: "stopped", code: 4003 });
    await sleep(300);
    expect(sockets.length).toBe(opened);
    expect(session.state).toBe("stopped");
    await expect(session.sendText("bob", "hi")).rejects.toMatchObject({ code: StatusCode.UNAVAILABLE });
  });

  test("a second session of the device replaces the first: 4002 there, the new one stays", async () => {
    const app = await newApp("replace");
    const ann = await app.user("ann", ["phone"]);
    const first = app.session(ann.phone!);
    const firstRec = start(first);
    const kicks: Kicked[] = [];
    first.on("kicked", (k) => {
      kicks.push(k);
    });
    await first.whenOnline();
    const second = app.session(await app.token("ann", "phone"));
    start(second);
    await second.whenOnline();
    await waitFor("the first to stop", () => first.state === "stopped");
    expect(kicks[0]?.reason).toBe(KickReason.REPLACED);
    expect(stoppedWith(firstRec)?.code).toBe(4002);
    await sleep(300);
    expect(second.state).toBe("online");
  });

  test("an invalid token: close 4001 after its Auth frame (HTTP 401 in the query), and the session stops", async () => {
    const app = await newApp("bad-token");
    const ann = await app.user("ann", ["phone"]);
    const forged = ann.phone!.slice(0, -4) + (ann.phone!.endsWith("AAAA") ? "BBBB" : "AAAA");
    const rec = start(app.session(forged));
    await waitFor("stopped", () => rec.session.state === "stopped");
    expect(stoppedWith(rec)).toMatchObject({ code: 4001 });
    expect(socketOf(forged).tokenInFrame).toBe(true);

    // In the query, the same token is refused before the upgrade.
    const queried = start(app.session(forged, { auth: "query" }));
    await waitFor("stopped", () => queried.session.state === "stopped");
    expect(stoppedWith(queried)).toMatchObject({ code: 4001, reason: expect.stringContaining("401") });

    // A WebSocket that hides the HTTP status, as browsers do: the refused handshake is a
    // plain 1006, so the next attempt authenticates with a frame and gets 4001.
    const browserLike = start(app.session(forged, { auth: "query", webSocket: BrowserLikeWebSocket }));
    await waitFor("stopped", () => browserLike.session.state === "stopped");
    expect(browserLike.states.find((s) => s.state === "reconnecting")).toMatchObject({ code: 1006 });
    expect(stoppedWith(browserLike)).toMatchObject({ code: 4001 });
  });

  test("a stopped session started again continues from its cursor", async () => {
    const app = await newApp("restart");
    const ann = await app.user("ann", ["phone"]);
    await app.user("bob", []);
    const send = (text: string) => app.clients.business.sendMessage({ senderUserId: "bob", receiverUserId: "ann", clientMsgId: text, body: textBody(text) });
    await send("one");
    const session = app.session(ann.phone!);
    const rec = start(session);
    await session.whenOnline();
    await waitFor("one", () => rec.messages.length === 1);
    await session.stop();
    await expect(session.whenOnline()).rejects.toBeInstanceOf(GimError);
    await send("two");
    session.start();
    await session.whenOnline();
    await waitFor("two", () => rec.messages.length === 2);
    await sleep(100);
    expect(rec.seqs).toEqual([1n, 2n]);
  });

  test("a revoked token: a token function gets one more try, then the session stops with 4001", async () => {
    const app = await newApp("revoked");
    const ann = await app.user("ann", ["phone"]);
    await app.clients.business.revokeTokens({ userId: "ann", deviceId: "phone" });
    let asked = 0;
    const rec = start(
      app.session(async () => {
        asked++;
        return ann.phone!; // Revoked: well-formed, refused after the upgrade.
      }),
    );
    await waitFor("stopped", () => rec.session.state === "stopped");
    expect(asked).toBe(2);
    expect(stoppedWith(rec)?.code).toBe(4001);

    // A function that has a fresh token the second time goes online.
    const fresh = await app.token("ann", "phone");
    let calls = 0;
    const ok = start(app.session(async () => (++calls === 1 ? ann.phone! : fresh)));
    await ok.session.whenOnline();
    expect(calls).toBe(2);
  });

  test("a token that expires mid-session closes it with 4001; a token function's next token carries on", async () => {
    const app = await newApp("expiry");
    await app.user("ann", ["phone"]);
    await app.user("bob", []);
    let issued = 0;
    const rec = start(
      app.session(async () => {
        issued++;
        return (await app.clients.business.issueToken({ userId: "ann", deviceId: "phone", ttlSeconds: issued === 1 ? 1 : 3600 })).token;
      }),
    );
    await rec.session.whenOnline();
    await waitFor("the expiry", () => rec.states.some((s) => s.state === "reconnecting"), 5_000);
    expect(rec.states.find((s) => s.state === "reconnecting")).toMatchObject({ code: 4001, reason: expect.stringContaining("expired") });
    await rec.session.whenOnline();
    expect(issued).toBe(2);
    await app.clients.business.sendMessage({ senderUserId: "bob", receiverUserId: "ann", clientMsgId: "after", body: textBody("after") });
    await waitFor("the message", () => rec.messages.length === 1);
  });

  test("tokens revoked mid-session: a kicked event (REVOKED) and stopped with 4003", async () => {
    const app = await newApp("revoke-live");
    const ann = await app.user("ann", ["phone"]);
    const rec = start(app.session(ann.phone!));
    const kicks: Kicked[] = [];
    rec.session.on("kicked", (k) => {
      kicks.push(k);
    });
    await rec.session.whenOnline();
    await app.clients.business.revokeTokens({ userId: "ann", deviceId: "phone" });
    await waitFor("stopped", () => rec.session.state === "stopped");
    expect(stoppedWith(rec)).toMatchObject({ code: 4003 });
    expect(kicks.map((k) => k.reason)).toEqual([KickReason.REVOKED]);
  });

  test("a connection that goes silent is taken for dead after 2x the heartbeat, and the session comes back", async () => {
    const app = await newApp("silent");
    const ann = await app.user("ann", ["phone"]);
    await app.user("bob", []);
    const proxy = await new FreezingProxy(Number(new URL(gim().wsUrl).port)).listen();
    try {
      const session = app.session(ann.phone!, { url: `ws://127.0.0.1:${proxy.port}/ws`, heartbeatMs: 150 });
      const rec = start(session);
      await session.whenOnline();
      expect(proxy.freezeAll()).toBe(1);
      await app.clients.business.sendMessage({ senderUserId: "bob", receiverUserId: "ann", clientMsgId: "while-frozen", body: textBody("x") });
      await waitFor("a reconnection", () => rec.states.some((s) => s.state === "reconnecting"), 3_000);
      const dead = rec.states.find((s) => s.state === "reconnecting");
      expect(dead?.reason).toMatch(/no frame from the server/);
      await waitFor("online again", () => session.state === "online" && proxy.count >= 2);
      await waitFor("the message", () => rec.messages.length === 1);
      expect(rec.seqs).toEqual([1n]);
    } finally {
      await proxy.close();
    }
  });

  test("stop(): pending calls reject with CANCELLED, the socket closes with 1000 and nothing reconnects", async () => {
    const app = await newApp("stop");
    const ann = await app.user("ann", ["phone"]);
    await app.user("bob", []);
    const session = app.session(ann.phone!);
    const rec = start(session);
    await session.whenOnline();
    const socket = socketOf(ann.phone!);
    const closed = new Promise<void>((done) => socket.once("close", () => done()));
    const pending = session.sendText("bob", "never answered");
    await session.stop();
    await expect(pending).rejects.toBeInstanceOf(GimError);
    await expect(pending).rejects.toMatchObject({ code: StatusCode.CANCELLED });
    // The session sent a close frame with 1000. (The server drops the TCP connection
    // without answering it, so the socket itself reports 1006.)
    expect(socket.closedWith).toBe(1000);
    await closed;
    expect(rec.states.at(-1)).toMatchObject({ state: "stopped", code: 1000 });
    const count = sockets.length;
    await sleep(200);
    expect(sockets.length).toBe(count);
  });

  test("the token travels in the first frame, never in the URL, unless the query is asked for", async () => {
    const app = await newApp("frame");
    const ann = await app.user("ann", ["phone", "kiosk"]);
    const session = app.session(ann.phone!);
    start(session);
    await session.whenOnline();
    const socket = socketOf(ann.phone!);
    expect(socket.tokenInFrame).toBe(true);
    expect(socket.url).toBe(gim().wsUrl);
    expect(session.identity).toEqual({ appId: String(app.appId), userId: "ann", deviceId: "phone" });

    const queried = app.session(ann.kiosk!, { auth: "query" });
    start(queried);
    await queried.whenOnline();
    expect(socketOf(ann.kiosk!).tokenInFrame).toBe(false);
    expect(socketOf(ann.kiosk!).url).toContain(`token=${ann.kiosk!}`);
  });
});
