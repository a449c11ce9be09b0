import type { CursorKey } from "./cursor.js";

/**
 * Reads app, user and device from a gim device token (`v1.<claims>.<signature>`, the
 * claims base64url JSON) without checking it; `undefined` for a token of another
 * shape. The session uses this only to name its cursor: the server checks the token.
 */
export function identityFromToken(token: string): CursorKey | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== "v1" || !parts[1]) return undefined;
  let json: string;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    json = new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
  // The app id is a u64: read its digits rather than a JSON number, which may round.
  const app = /"a"\s*:\s*(\d+)/.exec(json)?.[1];
  let claims: { u?: unknown; d?: unknown };
  try {
    claims = JSON.parse(json) as { u?: unknown; d?: unknown };
  } catch {
    return undefined;
  }
  if (app === undefined || typeof claims.u !== "string" || typeof claims.d !== "string") return undefined;
  return { appId: app, userId: claims.u, deviceId: claims.d };
}
