import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";

import { Account } from "./gen/gim/logic/v1/account_pb.js";
import { AppAdmin } from "./gen/gim/logic/v1/app_admin_pb.js";
import { Business } from "./gen/gim/logic/v1/business_pb.js";
import { Conversations } from "./gen/gim/logic/v1/conversations_pb.js";
import { Device } from "./gen/gim/logic/v1/device_pb.js";
import { Groups } from "./gen/gim/logic/v1/groups_pb.js";
import { Messages } from "./gen/gim/logic/v1/messages_pb.js";
import { Friends, Moments } from "./gen/gim/logic/v1/social_pb.js";

/** A credential: a fixed string, or a function asked before every call (e.g. to refresh a token). */
export type Credential = string | (() => string | Promise<string>);

export interface ClientsOptions {
  /** The logic node's gRPC-Web base URL, e.g. `http://localhost:7070`. */
  baseUrl: string;
  /** A device token: used by Device, and by Groups, Friends and Moments when set. */
  token?: Credential;
  /** The app id: Business (with `appSecret`), Account, and Groups/Friends/Moments without a token. */
  appId?: string | bigint;
  /** The app secret, for business backends only (never ship it in an app). */
  appSecret?: Credential;
  /** With app credentials: the user Groups, Friends and Moments act as (`x-gim-acting-user`). */
  actingUser?: string;
  /** The operator's admin token, for AppAdmin. */
  adminToken?: Credential;
  /** Default timeout of every call, in milliseconds. */
  timeoutMs?: number;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof globalThis.fetch;
  /** Interceptors run on every call, after the credential headers are set. */
  interceptors?: Interceptor[];
}

/** Typed clients of every gim service a device, a business backend or an operator calls. */
export interface GimClients {
  device: Client<typeof Device>;
  account: Client<typeof Account>;
  groups: Client<typeof Groups>;
  friends: Client<typeof Friends>;
  moments: Client<typeof Moments>;
  conversations: Client<typeof Conversations>;
  /** Recall, edit, delete for me, reactions, forwards (docs/api.md, Messages). */
  messages: Client<typeof Messages>;
  business: Client<typeof Business>;
  appAdmin: Client<typeof AppAdmin>;
  /** A copy of these clients acting as another user (app credentials only). */
  actingAs(userId: string): GimClients;
}

type Header = [name: string, value: Credential | undefined];

async function resolve(credential: Credential): Promise<string> {
  return typeof credential === "function" ? await credential() : credential;
}

function headers(list: Header[]): Interceptor {
  return (next) => async (request) => {
    for (const [name, value] of list) {
      if (value !== undefined) request.header.set(name, await resolve(value));
    }
    return next(request);
  };
}

function bearer(credential: Credential | undefined): Credential | undefined {
  if (credential === undefined) return undefined;
  return async () => `Bearer ${await resolve(credential)}`;
}

/**
 * Creates gRPC-Web clients (Node.js 20+ with its global fetch, and browsers) with the
 * metadata each service needs, as docs/api.md's Authentication table says:
 *
 * - `device`: `authorization: Bearer <token>`
 * - `account`: `x-gim-app-id`
 * - `groups`, `friends`, `moments`, `conversations`, `messages`: the token when set, else `x-gim-app-id` and
 *   `x-gim-app-secret` (and `x-gim-acting-user` when `actingUser` is set)
 * - `business`: `x-gim-app-id`, `x-gim-app-secret`
 * - `appAdmin`: `authorization: Bearer <adminToken>`
 *
 * A credential that is not set is simply not sent: the server answers such a call with
 * `UNAUTHENTICATED`. Errors are `ConnectError`s of `@connectrpc/connect` (`code` is the
 * gRPC status code).
 */
export function createClients(options: ClientsOptions): GimClients {
  const appId = options.appId === undefined ? undefined : String(options.appId);
  const transportFor = (list: Header[]): Transport =>
    createGrpcWebTransport({
      baseUrl: options.baseUrl,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.timeoutMs !== undefined ? { defaultTimeoutMs: options.timeoutMs } : {}),
      interceptors: [headers(list), ...(options.interceptors ?? [])],
    });
  const client = <S extends DescService>(service: S, list: Header[]): Client<S> =>
    createClient(service, transportFor(list));

  const app: Header[] = [
    ["x-gim-app-id", appId],
    ["x-gim-app-secret", options.appSecret],
  ];
  const social: Header[] =
    options.token !== undefined
      ? [["authorization", bearer(options.token)]]
      : [...app, ["x-gim-acting-user", options.actingUser]];

  return {
    device: client(Device, [["authorization", bearer(options.token)]]),
    account: client(Account, [["x-gim-app-id", appId]]),
    groups: client(Groups, social),
    friends: client(Friends, social),
    moments: client(Moments, social),
    conversations: client(Conversations, social),
    messages: client(Messages, social),
    business: client(Business, app),
    appAdmin: client(AppAdmin, [["authorization", bearer(options.adminToken)]]),
    actingAs: (userId: string) => createClients({ ...options, token: undefined, actingUser: userId }),
  };
}
