// The conversation list through the SDK's gRPC-Web client: what a device opens on.
import { expect, test } from "vitest";

import { ConversationType, createClients, textBody } from "../src/index.js";
import { gim, newApp } from "./helpers.js";

test("a device lists its conversations with counts, marks one read and syncs what changed", async () => {
  const app = await newApp("conversations");
  const bob = await app.user("bob", ["phone"]);
  await app.user("ann", []);
  for (const [i, text] of ["one", "two"].entries()) {
    await app.clients.business.sendMessage({ senderUserId: "ann", receiverUserId: "bob", clientMsgId: `m${i}`, body: textBody(text) });
  }
  const device = createClients({ baseUrl: gim().logicUrl, token: bob.phone! });
  const first = await device.conversations.listConversations({});
  expect(first.conversations).toHaveLength(1);
  const ann = first.conversations[0]!;
  expect([ann.conversationType, ann.conversationId, ann.unreadCount]).toEqual([ConversationType.DIRECT, "ann", 2n]);
  expect(ann.peer?.userId).toBe("ann");
  expect(first.totalUnread).toBe(2n);

  await device.device.markRead({ conversationType: ConversationType.DIRECT, conversationId: "ann", seq: ann.lastMessage!.seq });
  const changes = await device.conversations.syncConversations({ afterVersion: first.version });
  expect(changes.conversations.map((c) => [c.conversationId, c.unreadCount])).toEqual([["ann", 0n]]);
  expect(changes.totalUnread).toBe(0n);
});
