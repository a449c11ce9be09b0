// What a user does to a message after sending it, through the SDK: recall and edit come
// to every device as revisions in seq order; reactions and typing come as events.
import { afterEach, describe, expect, test } from "vitest";

import {
  ConversationType,
  createClients,
  MessageStatus,
  MessageType,
  RevisionKind,
  type ReactionEvent,
  type TypingEvent,
} from "../src/index.js";
import { gim, newApp, start, stopStarted, waitFor } from "./helpers.js";

afterEach(stopStarted);

describe("message actions", () => {
  test("recall and edit reach the other devices as revisions; reactions and typing as events", async () => {
    const app = await newApp("actions");
    const ann = await app.user("ann", ["phone"]);
    const bob = await app.user("bob", ["phone"]);
    const annPhone = app.session(ann.phone!);
    const bobPhone = app.session(bob.phone!);
    const reactions: ReactionEvent[] = [];
    const typing: TypingEvent[] = [];
    bobPhone.on("reaction", (e) => {
      reactions.push(e);
    });
    bobPhone.on("typing", (e) => {
      typing.push(e);
    });
    const annRec = start(annPhone);
    const bobRec = start(bobPhone);
    await Promise.all([annPhone.whenOnline(), bobPhone.whenOnline()]);

    const first = await annPhone.sendText("bob", "see you at 8");
    const second = await annPhone.sendText("bob", "or 9");
    await waitFor("bob gets both", () => bobRec.messages.length === 2);

    const annClients = createClients({ baseUrl: gim().logicUrl, token: ann.phone! });
    const edited = await annClients.messages.editMessage({ messageId: first.messageId, text: { text: "see you at 8:30" } });
    expect(edited.editedAtMs).toBeGreaterThan(0n);
    const recalled = await annClients.messages.recallMessage({ messageId: second.messageId });
    expect(recalled.status).toBe(MessageStatus.RECALLED);
    expect(recalled.recalledBy).toBe("ann");

    await waitFor("bob gets the revisions", () => bobRec.messages.length === 4);
    const revisions = bobRec.messages.slice(2).map((m) => {
      expect(m.type).toBe(MessageType.REVISION);
      const body = m.body?.content;
      if (body?.case !== "revision") throw new Error(`not a revision: ${body?.case}`);
      return [body.value.kind, body.value.messageIds, body.value.text?.text ?? ""];
    });
    expect(revisions).toEqual([
      [RevisionKind.EDIT, [first.messageId], "see you at 8:30"],
      [RevisionKind.RECALL, [second.messageId], ""],
    ]);
    const seqs = bobRec.messages.map((m) => m.seq);
    expect(seqs).toEqual([seqs[0]!, seqs[0]! + 1n, seqs[0]! + 2n, seqs[0]! + 3n]);

    const counts = await annClients.messages.addReaction({ messageId: first.messageId, emoji: "👍" });
    expect(counts.reactions.map((r) => [r.emoji, r.count, r.mine])).toEqual([["👍", 1n, true]]);
    await waitFor("bob hears of the reaction", () => reactions.length === 1);
    expect(reactions[0]).toMatchObject({ userId: "ann", emoji: "👍", added: true, messageId: first.messageId });

    await annPhone.typing(ConversationType.DIRECT, "bob");
    await waitFor("bob sees ann typing", () => typing.length === 1);
    expect(typing[0]).toMatchObject({ userId: "ann", conversationType: ConversationType.DIRECT, conversationId: "ann" });
    expect(annRec.errors).toEqual([]);
    expect(bobRec.errors).toEqual([]);
  });
});
