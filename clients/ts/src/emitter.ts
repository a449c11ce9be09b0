/**
 * A small typed event emitter that runs anywhere (no Node.js `EventEmitter`).
 * `Events` maps each event name to the type of its argument.
 */
export type Listener<T> = (value: T) => void | Promise<void>;

export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Calls `listener` for every `name` event; returns a function that removes it. */
  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(name, listener);
  }

  /** Calls `listener` for the next `name` event only. */
  once<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(name, (value) => {
      off();
      return listener(value);
    });
    return off;
  }

  off<K extends keyof Events>(name: K, listener: Listener<Events[K]>): void {
    this.listeners.get(name)?.delete(listener as Listener<never>);
  }

  /** The number of listeners of `name`. */
  listenerCount(name: keyof Events): number {
    return this.listeners.get(name)?.size ?? 0;
  }

  /**
   * Calls the listeners of `name` one after the other. A listener that throws (or whose
   * promise rejects) is reported to `onError`, and the others still run. Returns a
   * promise only when a listener returned one, so that plain listeners stay synchronous.
   */
  protected dispatch<K extends keyof Events>(
    name: K,
    value: Events[K],
    onError: (error: unknown) => void,
  ): Promise<void> | undefined {
    const set = this.listeners.get(name);
    if (!set || set.size === 0) return undefined;
    const list = [...set] as Listener<Events[K]>[];
    for (let i = 0; i < list.length; i++) {
      let result: void | Promise<void>;
      try {
        result = list[i]!(value);
      } catch (error) {
        onError(error);
        continue;
      }
      if (result && typeof (result as Promise<void>).then === "function") {
        return this.finish(list, i, result as Promise<void>, value, onError);
      }
    }
    return undefined;
  }

  private async finish<T>(
    list: Listener<T>[],
    index: number,
    pending: Promise<void>,
    value: T,
    onError: (error: unknown) => void,
  ): Promise<void> {
    try {
      await pending;
    } catch (error) {
      onError(error);
    }
    for (let i = index + 1; i < list.length; i++) {
      try {
        await list[i]!(value);
      } catch (error) {
        onError(error);
      }
    }
  }
}
