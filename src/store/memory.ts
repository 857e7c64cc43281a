/**
 * The memory store under the path test/sdk/retry.test.ts imports it by;
 * the store is memory/store.ts. Remove once that import names it.
 */
export { MemoryStore, type MemoryStoreOptions } from "./memory/store.js";
