/**
 * A Store wrapper that can hold writes at the store's door until a given
 * number of them have arrived, then let them all in at once: so that a race
 * between calls really happens inside the store, with any Store, instead of
 * depending on how the calls happen to reach it. Unarmed, it only forwards.
 */
import type { Store } from "../../src/core/store.js";

type HeldMethod = "register" | "update";

export class Barrier {
  private armed: { methods: ReadonlySet<HeldMethod>; count: number; waiting: (() => void)[] } | undefined;

  /**
   * Holds the next `count` calls of `methods` until all of them have
   * arrived. Every one of them must reach the store: a call refused before
   * it (by validation, say) would keep the others waiting.
   */
  arm(count: number, methods: readonly HeldMethod[]): void {
    if (this.armed !== undefined) throw new Error("the barrier is armed already");
    this.armed = { methods: new Set(methods), count, waiting: [] };
  }

  async pass(method: HeldMethod): Promise<void> {
    const armed = this.armed;
    if (armed === undefined || !armed.methods.has(method)) return;
    await new Promise<void>((resolve) => {
      armed.waiting.push(resolve);
      if (armed.waiting.length === armed.count) {
        this.armed = undefined;
        // In arrival order, in one turn: their store calls start back to back.
        for (const open of armed.waiting) open();
      }
    });
  }
}

/** `store` with its register and update behind `barrier`; every other member is the store's own. */
export function behindBarrier(store: Store, barrier: Barrier): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === "register" || property === "update") {
        const method = property;
        return async (...args: unknown[]) => {
          await barrier.pass(method);
          return (target[method] as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
