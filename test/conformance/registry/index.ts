/**
 * The registry contract, as a client sees it: every test goes through a real
 * daemon over gRPC (the SDK, or the generated stubs for requests the SDK will
 * not send), never through a store's internals, so that any Store
 * implementation runs this suite unchanged.
 *
 * One daemon serves the whole suite; each test works in a table of its own.
 * `makeStore` must return an isolated store (for a shared backend such as
 * etcd: a key prefix of its own), because a few tests start a dedicated daemon
 * with a second store (deleting `default`, a small table limit).
 */
import { concurrencyTests } from "./concurrency.js";
import { errorDetailsTests } from "./error-details.js";
import { registryFixture, type MakeStore } from "./fixture.js";
import { lookupListTests } from "./lookup-list.js";
import { registerTests } from "./register.js";
import { removeUpdateTests } from "./remove-update.js";
import { requestIdTests } from "./request-ids.js";
import { tableTests } from "./tables.js";
import { tablesWatchTests } from "./tables-watch.js";

export function registryConformance(storeName: string, makeStore: MakeStore): void {
  describe(`registry contract (${storeName} store)`, () => {
    const fx = registryFixture(storeName, makeStore);
    tableTests(fx);
    registerTests(fx);
    requestIdTests(fx);
    lookupListTests(fx);
    removeUpdateTests(fx);
    concurrencyTests(fx);
    errorDetailsTests(fx);
    tablesWatchTests(fx);
  });
}
