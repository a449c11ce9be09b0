// Live rooms through the SDK: joining, sending and receiving (each message once, the
// sender's own included), the business's put-in and close, and the session keeping its
// rooms across a broken connection without repeating what it had.
import { afterEach, describe, expect, test } from "vitest";

import { RoomEventKind, textOf, type RoomEvent, type RoomMessage, type Session } from "../src/index.js";
import { newApp, socketOf, start, stopStarted, waitFor } from "./helpers.js";

afterEach(stopStarted);

function record(session: Session): { messages: RoomMessage[]; events: RoomEvent[] } {
  const got = { messages: [] as RoomMessage[], events: [] as RoomEvent[] };
  session.on("roomMessage", (message) => {
    got.messages.push(message);
  });
  session.on("roomEvent", (event) => {
    got.events.push(event);
  });
  return got;
}

const texts = (messages: RoomMessage[]) => messages.map((m) => `${m.seq}:${textOf(m.body)}`);

describe("live rooms", () => {
  test("members get every message once, and a session keeps its rooms across a reconnection", async () => {
    const app = await newApp("rooms");
    const ann = await app.user("ann", ["phone"]);
    const bob = await app.user("bob", ["phone"]);
    const annPhone = app.session(ann.phone!);
    const bobPhone = app.session(bob.phone!);
    const annGot = record(annPhone);
    const bobGot = record(bobPhone);
    start(annPhone);
    const bobRec = start(bobPhone);
    await Promise.all([annPhone.whenOnline(), bobPhone.whenOnline()]);

    await app.clients.business.pushRoom({ roomId: "show", body: { content: { case: "text", value: { text: "before" } } } });
    const joined = await annPhone.joinRoom("show", { replay: true });
    expect(joined.replayed).toBe(1);
    expect(joined.lastSeq).toBe(1n);
    await bobPhone.joinRoom("show");
    expect(bobPhone.joinedRooms).toEqual(["show"]);

    const sent = await annPhone.sendRoomText("show", "hi all");
    expect(sent.seq).toBe(2n);
    await waitFor("bob gets it", () => bobGot.messages.length === 1);
    expect(bobGot.messages[0]!.senderUserId).toBe("ann");
    await waitFor("ann's own too", () => annGot.messages.length === 2);
    expect(texts(annGot.messages)).toEqual(["1:before", "2:hi all"]);

    // Bob's connection breaks; he is back in the room without asking, and the replay
    // brings what he missed without repeating what he had.
    socketOf(bob.phone!).terminate();
    await waitFor("bob reconnecting", () => bobRec.states.some((s) => s.state === "reconnecting"));
    await app.clients.business.pushRoom({ roomId: "show", body: { content: { case: "text", value: { text: "while away" } } } });
    await waitFor("bob back", () => bobRec.states.filter((s) => s.state === "online").length === 2);
    await waitFor("bob catches up", () => bobGot.messages.length === 2);
    await annPhone.sendRoomText("show", "welcome back");
    await waitFor("bob gets the next", () => bobGot.messages.length === 3);
    expect(texts(bobGot.messages)).toEqual(["2:hi all", "3:while away", "4:welcome back"]);

    await bobPhone.leaveRoom("show");
    expect(bobPhone.joinedRooms).toEqual([]);
    await app.clients.business.closeRoom({ roomId: "show", reason: "the end" });
    await waitFor("ann hears the close", () => annGot.events.some((e) => e.kind === RoomEventKind.CLOSED));
    expect(annGot.events.at(-1)!.reason).toBe("the end");
    expect(annPhone.joinedRooms).toEqual([]);
    expect(bobGot.messages).toHaveLength(3);
  });

  test("the business puts a session in a private room, which a reconnection leaves", async () => {
    const app = await newApp("private-rooms");
    const ann = await app.user("ann", ["phone"]);
    const annPhone = app.session(ann.phone!);
    const got = record(annPhone);
    const rec = start(annPhone);
    await annPhone.whenOnline();
    await expect(annPhone.joinRoom("private:vip")).rejects.toMatchObject({ code: 7 });

    await app.clients.business.joinRoom({ roomId: "private:vip", userId: "ann" });
    await waitFor("joined", () => got.events.some((e) => e.kind === RoomEventKind.JOINED));
    expect(annPhone.joinedRooms).toEqual(["private:vip"]);
    await app.clients.business.pushRoom({ roomId: "private:vip", body: { content: { case: "text", value: { text: "vip only" } } } });
    await waitFor("the message", () => got.messages.length === 1);

    socketOf(ann.phone!).terminate();
    await waitFor("back online", () => rec.states.filter((s) => s.state === "online").length === 2);
    await waitFor("left on reconnecting", () => got.events.some((e) => e.kind === RoomEventKind.LEFT));
    expect(annPhone.joinedRooms).toEqual([]);
  });
});
