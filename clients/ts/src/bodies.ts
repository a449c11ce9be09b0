import { create } from "@bufbuild/protobuf";

import { MessageBodySchema, MessageType, type MessageBody } from "./gen/gim/common/v1/common_pb.js";

export interface TextOptions {
  /** Users mentioned in the text. */
  mentionUserIds?: string[];
  /** The whole conversation is mentioned (owners and admins of a group only). */
  mentionAll?: boolean;
}

/** A text message body. */
export function textBody(text: string, options: TextOptions = {}): MessageBody {
  return create(MessageBodySchema, {
    content: {
      case: "text",
      value: { text, mentionUserIds: options.mentionUserIds ?? [], mentionAll: options.mentionAll ?? false },
    },
  });
}

/** An application-defined body: `kind` names it for the client, `data` is yours. */
export function customBody(kind: string, data: Uint8Array = new Uint8Array()): MessageBody {
  return create(MessageBodySchema, { content: { case: "custom", value: { kind, data } } });
}

/** The text of a text body, or `undefined`. */
export function textOf(body: MessageBody | undefined): string | undefined {
  return body?.content.case === "text" ? body.content.value.text : undefined;
}

/** The message type that follows from a body (as the server derives it). */
export function messageTypeOf(body: MessageBody | undefined): MessageType {
  switch (body?.content.case) {
    case "text":
      return MessageType.TEXT;
    case "image":
      return MessageType.IMAGE;
    case "audio":
      return MessageType.AUDIO;
    case "video":
      return MessageType.VIDEO;
    case "file":
      return MessageType.FILE;
    case "sticker":
      return MessageType.STICKER;
    case "location":
      return MessageType.LOCATION;
    case "custom":
      return MessageType.CUSTOM;
    case "system":
      return MessageType.SYSTEM;
    case "revision":
      return MessageType.REVISION;
    default:
      return MessageType.UNSPECIFIED;
  }
}

/** A client message id: unique enough to make a send idempotent when retried with it. */
export function newClientMsgId(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string; getRandomValues?: <T extends Uint8Array>(a: T) => T } }).crypto;
  if (crypto?.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  if (crypto?.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
