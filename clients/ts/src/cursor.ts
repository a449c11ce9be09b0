/**
 * Where a device stands: the last inbox seq it delivered to the app, and the last
 * group seq of each large group. A {@link Session} loads it when it starts and saves it
 * after every message it delivers.
 */
export interface Cursor {
  /** The highest inbox seq delivered (0: nothing yet). */
  seq: bigint;
  /** Large groups: group id to the highest group seq delivered. */
  groups: Record<string, bigint>;
}

/** Whose cursor: one per app, user and device. */
export interface CursorKey {
  appId: string;
  userId: string;
  deviceId: string;
}

/** Keeps cursors. Both calls may be asynchronous; `save` replaces the stored cursor. */
export interface CursorStore {
  load(key: CursorKey): Promise<Cursor | undefined>;
  save(key: CursorKey, cursor: Cursor): Promise<void>;
}

export function emptyCursor(): Cursor {
  return { seq: 0n, groups: {} };
}

export function cloneCursor(cursor: Cursor): Cursor {
  return { seq: cursor.seq, groups: { ...cursor.groups } };
}

/** A string naming a cursor key, for stores that need one. */
export function cursorKeyString(key: CursorKey): string {
  return JSON.stringify([key.appId, key.userId, key.deviceId]);
}

/** Keeps cursors in memory: a session that restarts within the same page or process resumes where it was. */
export class MemoryCursorStore implements CursorStore {
  private readonly cursors = new Map<string, Cursor>();

  async load(key: CursorKey): Promise<Cursor | undefined> {
    const cursor = this.cursors.get(cursorKeyString(key));
    return cursor && cloneCursor(cursor);
  }

  async save(key: CursorKey, cursor: Cursor): Promise<void> {
    this.cursors.set(cursorKeyString(key), cloneCursor(cursor));
  }
}

/** What IndexedDbCursorStore writes: decimal strings, readable by any version. */
interface StoredCursor {
  key: string;
  seq: string;
  groups: Record<string, string>;
}

export interface IndexedDbCursorStoreOptions {
  /** The database name (default `"gim"`). */
  databaseName?: string;
  /** The IDBFactory to use (default `globalThis.indexedDB`). */
  indexedDB?: IDBFactory;
}

/**
 * Keeps cursors in the browser's IndexedDB (the raw API, no dependency), so that a page
 * that reloads resumes where it was. Saves are single `put`s that complete when their
 * transaction commits.
 */
export class IndexedDbCursorStore implements CursorStore {
  private readonly databaseName: string;
  private readonly storeName: string;
  private readonly factory: IDBFactory;
  private database: Promise<IDBDatabase> | undefined;

  constructor(options: IndexedDbCursorStoreOptions = {}) {
    this.databaseName = options.databaseName ?? "gim";
    this.storeName = "cursors";
    const factory = options.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
    if (!factory) throw new Error("IndexedDbCursorStore: indexedDB is not available here");
    this.factory = factory;
  }

  async load(key: CursorKey): Promise<Cursor | undefined> {
    const db = await this.open();
    const stored = await new Promise<StoredCursor | undefined>((resolve, reject) => {
      const request = db.transaction(this.storeName, "readonly").objectStore(this.storeName).get(cursorKeyString(key));
      request.onsuccess = () => resolve(request.result as StoredCursor | undefined);
      request.onerror = () => reject(request.error ?? new Error("IndexedDB read failed"));
    });
    if (!stored) return undefined;
    const groups: Record<string, bigint> = {};
    for (const [group, seq] of Object.entries(stored.groups ?? {})) groups[group] = BigInt(seq);
    return { seq: BigInt(stored.seq), groups };
  }

  async save(key: CursorKey, cursor: Cursor): Promise<void> {
    const db = await this.open();
    const groups: Record<string, string> = {};
    for (const [group, seq] of Object.entries(cursor.groups)) groups[group] = seq.toString();
    const stored: StoredCursor = { key: cursorKeyString(key), seq: cursor.seq.toString(), groups };
    await new Promise<void>((resolve, reject) => {
      const tx = db.transaction(this.storeName, "readwrite");
      tx.objectStore(this.storeName).put(stored);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error("IndexedDB write failed"));
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB write aborted"));
    });
  }

  /** Closes the database; a later call opens it again. */
  async close(): Promise<void> {
    const db = this.database;
    this.database = undefined;
    if (db) (await db).close();
  }

  private open(): Promise<IDBDatabase> {
    if (!this.database) {
      this.database = new Promise<IDBDatabase>((resolve, reject) => {
        const request = this.factory.open(this.databaseName, 1);
        request.onupgradeneeded = () => {
          const db = request.result;
          if (!db.objectStoreNames.contains(this.storeName)) db.createObjectStore(this.storeName, { keyPath: "key" });
        };
        request.onsuccess = () => {
          const db = request.result;
          // Another tab upgrading the database: let it, and open again next time.
          db.onversionchange = () => {
            db.close();
            this.database = undefined;
          };
          resolve(db);
        };
        // (`blocked`: another tab holds an older version open; success follows once it closes.)
        request.onerror = () => reject(request.error ?? new Error("IndexedDB open failed"));
      });
      this.database.catch(() => {
        this.database = undefined;
      });
    }
    return this.database;
  }
}
