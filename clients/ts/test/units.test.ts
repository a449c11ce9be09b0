// Parts that need no server: cursor stores, token identity, errors, the emitter.
import { IDBFactory } from "fake-indexeddb";
import { describe, expect, test } from "vitest";

import { Emitter, GimError, identityFromToken, IndexedDbCursorStore, MemoryCursorStore, StatusCode, type CursorStore } from "../src/index.js";

const key = { appId: "18446744073709551615", userId: "ann", deviceId: "phone" };

async function roundTrip(store: CursorStore) {
  expect(await store.load(key)).toBeUndefined();
  await store.save(key, { seq: 42n, groups: { big: 7n, "with space": 18446744073709551615n } });
  const loaded = await store.load(key);
  expect(loaded).toEqual({ seq: 42n, groups: { big: 7n, "with space": 18446744073709551615n } });
  // What a caller does with a loaded cursor does not change the stored one.
  loaded!.seq = 1n;
  expect((await store.load(key))?.seq).toBe(42n);
  expect(await store.load({ ...key, deviceId: "tablet" })).toBeUndefined();
}

describe("cursor stores", () => {
  test("memory", async () => {
    await roundTrip(new MemoryCursorStore());
  });

  test("IndexedDB (raw API), and a second store on the same database sees the cursor", async () => {
    const indexedDB = new IDBFactory();
    const store = new IndexedDbCursorStore({ indexedDB, databaseName: "gim-test" });
    await roundTrip(store);
    await store.close();
    const again = new IndexedDbCursorStore({ indexedDB, databaseName: "gim-test" });
    expect((await again.load(key))?.groups.big).toBe(7n);
    await again.close();
  });
});

describe("identityFromToken", () => {
  const encode = (claims: string) => Buffer.from(claims).toString("base64url");

  test("reads app, user and device of a v1 token, keeping a u64 app id exact", () => {
    const token = `v1.${encode('{"a":18446744073709551615,"u":"ann","d":"phone","e":1,"ug":0,"dg":0}')}.sig`;
    expect(identityFromToken(token)).toEqual(key);
  });

  test("anything else is undefined", () => {
    expect(identityFromToken("nonsense")).toBeUndefined();
    expect(identityFromToken(`v2.${encode('{"a":1,"u":"ann","d":"x"}')}.sig`)).toBeUndefined();
    expect(identityFromToken(`v1.${encode("{not json")}.sig`)).toBeUndefined();
    expect(identityFromToken(`v1.${encode('{"a":1,"u":"ann"}')}.sig`)).toBeUndefined();
  });
});

describe("GimError", () => {
  test("code, name and the wait a RESOURCE_EXHAUSTED asks for", () => {
    const error = new GimError(8, "too many calls from this device; retry in 125 ms");
    expect(error.code).toBe(StatusCode.RESOURCE_EXHAUSTED);
    expect(error.codeName).toBe("RESOURCE_EXHAUSTED");
    expect(error.retryAfterMs).toBe(125);
    expect(error.rawMessage).toBe("too many calls from this device; retry in 125 ms");
    expect(error.message).toBe("[RESOURCE_EXHAUSTED] too many calls from this device; retry in 125 ms");
    expect(new GimError(99, "x").codeName).toBe("CODE_99");
  });
});

describe("Emitter", () => {
  class Events extends Emitter<{ n: number }> {
    fire(n: number, errors: unknown[]) {
      return this.dispatch("n", n, (e) => errors.push(e));
    }
  }

  test("listeners run in order; async ones are awaited; a throwing one does not stop the others", async () => {
    const events = new Events();
    const seen: string[] = [];
    const errors: unknown[] = [];
    events.on("n", (n) => {
      seen.push(`a${n}`);
    });
    events.on("n", async (n) => {
      await new Promise((r) => setTimeout(r, 10));
      seen.push(`b${n}`);
      throw new Error("b failed");
    });
    const off = events.on("n", (n) => {
      seen.push(`c${n}`);
    });
    events.once("n", (n) => {
      seen.push(`once${n}`);
    });
    const pending = events.fire(1, errors);
    expect(pending).toBeInstanceOf(Promise);
    await pending;
    off();
    await events.fire(2, errors);
    expect(seen).toEqual(["a1", "b1", "c1", "once1", "a2", "b2"]);
    expect(errors).toHaveLength(2);
    expect(events.listenerCount("n")).toBe(2);
  });

  test("plain listeners are called synchronously", () => {
    const events = new Events();
    let called = false;
    events.on("n", () => {
      called = true;
    });
    expect(events.fire(1, [])).toBeUndefined();
    expect(called).toBe(true);
  });
});
