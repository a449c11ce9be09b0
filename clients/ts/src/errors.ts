/**
 * gRPC status codes, as carried by `Response.code` on the WebSocket and by gRPC-Web
 * replies. The numbers are the same as `Code` of `@connectrpc/connect`.
 */
export const StatusCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type StatusCode = (typeof StatusCode)[keyof typeof StatusCode];

const NAMES = new Map<number, string>(Object.entries(StatusCode).map(([name, code]) => [code, name]));

/** The name of a status code (`"INVALID_ARGUMENT"`), or `"CODE_<n>"` for an unknown one. */
export function statusName(code: number): string {
  return NAMES.get(code) ?? `CODE_${code}`;
}

/**
 * A call over the session that failed: the server answered with a code other than 0,
 * or the session could not carry the call (`UNAVAILABLE` when not connected or the
 * connection dropped, `DEADLINE_EXCEEDED` when no answer came in time, `CANCELLED`
 * when the session was stopped).
 */
export class GimError extends Error {
  /** A gRPC status code (see {@link StatusCode}). */
  readonly code: number;
  /** For `RESOURCE_EXHAUSTED`: how long the server asks to wait ("retry in N ms"). */
  readonly retryAfterMs: number | undefined;
  /** The server's message without the code prefix. */
  readonly rawMessage: string;

  constructor(code: number, message: string) {
    super(`[${statusName(code)}] ${message}`);
    this.name = "GimError";
    this.code = code;
    this.rawMessage = message;
    const wait = /retry in (\d+) ms/.exec(message);
    this.retryAfterMs = wait?.[1] !== undefined ? Number(wait[1]) : undefined;
  }

  /** The code's name, e.g. `"INVALID_ARGUMENT"`. */
  get codeName(): string {
    return statusName(this.code);
  }
}

export function isGimError(error: unknown): error is GimError {
  return error instanceof GimError;
}
