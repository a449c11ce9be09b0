// Typed events (presence, custom, read) and calls that the server refuses.
import { ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, test } from "vitest";

import {
  Code,
  ConversationType,
  createClients,
  DeviceType,
  GimError,
  StatusCode,
  textBody,
  type CustomEvent,
  type PresenceEvent,
  type ReadEvent,
} from "../src/index.js";
import { gim, newApp, start, stopStarted, waitFor } from "./helpers.js";

afterEach(stopStarted);

describe("events", () => {
  test("presence, custom and read events arrive typed", async () => {
    const app = await newApp("events");
    const ann = await app.user("ann", ["phone", "laptop"]);
    const bob = await app.user("bob", ["phone"]);
    await app.clients.friends.makeFriends({ pairs: [{ userId: "ann", friendId: "bob" }] });

    const annPhone = app.session(ann.phone!);
    const annLaptop = app.session(ann.laptop!);
    const presence: PresenceEvent[] = [];
    const custom: CustomEvent[] = [];
    const reads: ReadEvent[] = [];
    const laptopReads: ReadEvent[] = [];
    annPhone.on("presence", (e) => {
      presence.push(e);
    });
    annPhone.on("event", (e) => {
      custom.push(e);
    });
    annLaptop.on("read", (e) => {
      laptopReads.push(e);
    });
    const annRec = start(annPhone);
    start(annLaptop);
    await Promise.all([annPhone.whenOnline(), annLaptop.whenOnline()]);

    // Bob comes online: ann's devices hear of it (after the server's debounce).
    const bobPhone = app.session(bob.phone!);
    bobPhone.on("read", (e) => {
      reads.push(e);
    });
    const bobRec = start(bobPhone);
    await bobPhone.whenOnline();
    await waitFor("bob online", () => presence.some((p) => p.userId === "bob" && p.online));
    expect(presence.find((p) => p.online)?.deviceTypes).toEqual([DeviceType.DESKTOP]);

    // A custom event from the business.
    await app.clients.business.pushEvent({ userIds: ["ann"], kind: "order.shipped", data: new TextEncoder().encode('{"order":7}') });
    await waitFor("the custom event", () => custom.length === 1);
    expect(custom[0]!.kind).toBe("order.shipped");
    expect(new TextDecoder().decode(custom[0]!.data)).toBe('{"order":7}');

    // Ann reads bob's message: bob gets a read receipt, ann's laptop the moved cursor.
    await bobPhone.sendText("ann", "are you there?");
    await waitFor("ann gets it", () => annRec.messages.length === 1);
    const message = annRec.messages[0]!;
    const cursor = await annPhone.markRead(ConversationType.DIRECT, "bob", message.seq);
    expect(cursor.seq).toBe(message.seq);
    await waitFor("bob's receipt", () => reads.length === 1);
    expect(reads[0]).toMatchObject({ readerUserId: "ann", conversationType: ConversationType.DIRECT, conversationId: "ann", messageId: message.id });
    await waitFor("the laptop's cursor", () => laptopReads.length === 1);
    expect(laptopReads[0]).toMatchObject({ readerUserId: "ann", conversationId: "bob", seq: message.seq });

    // Bob goes offline.
    await bobPhone.stop();
    await waitFor("bob offline", () => presence.some((p) => p.userId === "bob" && !p.online));
    expect(bobRec.errors).toEqual([]);
  });

  test("calls the server refuses reject with a GimError and its code; the session stays up", async () => {
    const app = await newApp("errors");
    const ann = await app.user("ann", ["phone"]);
    await app.user("bob", []);
    const session = app.session(ann.phone!);
    const rec = start(session);
    await session.whenOnline();

    const nobody = session.sendText("nobody", "hello?");
    await expect(nobody).rejects.toBeInstanceOf(GimError);
    await expect(nobody).rejects.toMatchObject({ code: StatusCode.NOT_FOUND });

    const empty = session.send("bob", textBody(""), "");
    await expect(empty).rejects.toMatchObject({ code: StatusCode.INVALID_ARGUMENT, codeName: "INVALID_ARGUMENT" });

    await expect(session.sendGroupText("no-such-group", "hi")).rejects.toMatchObject({ code: StatusCode.NOT_FOUND });
    await expect(session.markRead(ConversationType.DIRECT, "bob", 999n)).rejects.toBeInstanceOf(GimError);

    expect(session.state).toBe("online");
    expect(await session.heartbeat()).toBeGreaterThan(0n);
    expect(rec.messages).toEqual([]);

    // The gRPC-Web clients throw ConnectErrors with the same codes.
    const noSecret = createClients({ baseUrl: gim().logicUrl, appId: app.appId, appSecret: "wrong" });
    const refused = noSecret.business.getUser({ userId: "ann" });
    await expect(refused).rejects.toBeInstanceOf(ConnectError);
    await expect(refused).rejects.toMatchObject({ code: Code.Unauthenticated });
    const device = createClients({ baseUrl: gim().logicUrl, token: ann.phone! });
    expect((await device.device.getMe({})).user?.userId).toBe("ann");
    await expect(device.groups.getGroup({ groupId: "none" })).rejects.toMatchObject({ code: Code.NotFound });
  });
});
