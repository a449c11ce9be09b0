// @gim/sdk: typed gRPC-Web clients of gim's services, and a WebSocket Session that
// delivers a device's messages exactly once, in order.

export { createClients, type ClientsOptions, type Credential, type GimClients } from "./clients.js";
export {
  Session,
  type SessionEvents,
  type SessionOptions,
  type SessionState,
  type StartPoint,
  type StateChange,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./session.js";
export {
  IndexedDbCursorStore,
  MemoryCursorStore,
  cursorKeyString,
  emptyCursor,
  type Cursor,
  type CursorKey,
  type CursorStore,
  type IndexedDbCursorStoreOptions,
} from "./cursor.js";
export { GimError, StatusCode, isGimError, statusName } from "./errors.js";
export { Emitter, type Listener } from "./emitter.js";
export { customBody, messageTypeOf, newClientMsgId, textBody, textOf, type TextOptions } from "./bodies.js";
export { identityFromToken } from "./identity.js";

// The contract's types (protobuf-es v2): messages as `type`s with a `...Schema` each
// (use `create(XSchema, {...})` of @bufbuild/protobuf), enums, and the service
// descriptors (`DeviceService` is `gim.logic.v1.Device`; `Device` is the common message).
export * from "./gen/gim/common/v1/common_pb.js";
export type { Device } from "./gen/gim/common/v1/common_pb.js";
export * from "./gen/gim/client/v1/client_pb.js";
export * from "./gen/gim/logic/v1/messages_pb.js";
export * from "./gen/gim/logic/v1/device_pb.js";
export { Device as DeviceService } from "./gen/gim/logic/v1/device_pb.js";
export * from "./gen/gim/logic/v1/account_pb.js";
export * from "./gen/gim/logic/v1/app_admin_pb.js";
export * from "./gen/gim/logic/v1/business_pb.js";
export * from "./gen/gim/logic/v1/groups_pb.js";
export * from "./gen/gim/logic/v1/social_pb.js";
export * from "./gen/gim/logic/v1/conversations_pb.js";
export * from "./gen/gim/logic/v1/rooms_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";
export { create, fromBinary, toBinary } from "@bufbuild/protobuf";
