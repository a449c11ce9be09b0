// The messages this browser has received, kept in IndexedDB so that a reload shows the
// history at once and the session only syncs what came since (its cursor is kept by the
// SDK's IndexedDbCursorStore, saved after each message is stored here).

import { ConversationType, MessageStatus, textOf, type Message } from "@gim/sdk";

/** One message as the app shows it. */
export interface Line {
  key: string;
  owner: string;
  id: string;
  /** `d:<peer>`, `g:<group>` or `s:` (notifications). */
  conversation: string;
  from: string;
  /** Notices (`text` is then the event's name): who caused it, and whom it is about. */
  actor: string;
  target: string;
  text: string;
  system: boolean;
  sentAtMs: number;
  seq: string;
}

export function conversationOf(message: Message, me: string): string {
  if (message.conversationType === ConversationType.GROUP) return `g:${message.receiverId}`;
  if (message.conversationType === ConversationType.DIRECT) {
    return `d:${message.senderUserId === me ? message.receiverId : message.senderUserId}`;
  }
  return "s:";
}

/** What a recalled message shows in place of its text. */
export function recalledText(by: string): string {
  return `${by || "the app"} recalled this message`;
}

function describe(message: Message): string {
  if (message.status === MessageStatus.RECALLED) return recalledText(message.recalledBy);
  const content = message.body?.content;
  if (content?.case === "system") return content.value.event;
  return textOf(message.body) ?? `[${content?.case ?? "empty"}]`;
}

export function lineOf(message: Message, me: string): Line {
  return {
    key: `${me}|${message.id}`,
    owner: me,
    id: String(message.id),
    conversation: conversationOf(message, me),
    from: message.senderUserId,
    actor: message.body?.content.case === "system" ? message.body.content.value.actorUserId : "",
    target: message.body?.content.case === "system" ? (message.body.content.value.targetUserIds[0] ?? "") : "",
    text: describe(message),
    system: message.body?.content.case === "system" || message.senderUserId === "",
    sentAtMs: Number(message.sentAtMs),
    seq: String(message.seq || message.groupSeq),
  };
}

const STORE = "lines";

export class History {
  private constructor(private readonly db: IDBDatabase) {}

  static open(): Promise<History> {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open("gim-web", 1);
      request.onupgradeneeded = () => {
        const store = request.result.createObjectStore(STORE, { keyPath: "key" });
        store.createIndex("owner", "owner");
      };
      request.onsuccess = () => resolve(new History(request.result));
      request.onerror = () => reject(request.error);
    });
  }

  /** Every line of a user, oldest first. */
  all(owner: string): Promise<Line[]> {
    return new Promise((resolve, reject) => {
      const request = this.db.transaction(STORE).objectStore(STORE).index("owner").getAll(owner);
      request.onsuccess = () => resolve((request.result as Line[]).sort((a, b) => a.sentAtMs - b.sentAtMs));
      request.onerror = () => reject(request.error);
    });
  }

  remove(key: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(STORE, "readwrite");
      tx.objectStore(STORE).delete(key);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }

  /** Resolves once the line is committed: the SDK saves its cursor only after that. */
  put(line: Line): Promise<void> {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(STORE, "readwrite");
      tx.objectStore(STORE).put(line);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }
}
