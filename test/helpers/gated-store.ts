import type { NewSession, Session } from "../../src/core/model.js";
import { MemoryStore } from "../../src/store/memory/store.js";

/** A memory store whose Register can be held inside the store, to have a call surely in flight. */
export class GatedStore extends MemoryStore {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  private entered: (() => void) | undefined;

  /** Holds the next Register; resolves once it is inside the store. */
  hold(): Promise<void> {
    this.gate = new Promise((resolve) => (this.open = resolve));
    return new Promise((resolve) => (this.entered = resolve));
  }

  release(): void {
    this.open?.();
  }

  override async register(table: string, s: NewSession, requestId?: string): Promise<Session> {
    this.entered?.();
    await this.gate;
    return super.register(table, s, requestId);
  }
}
