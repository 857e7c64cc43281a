import { MemoryStore } from "../../src/store/memory/store.js";
import { liveConformance } from "./live-suite.js";
import { registryConformance } from "./registry/index.js";
import { rulesConformance } from "./rules-suite.js";

registryConformance("memory", (limits) => new MemoryStore(limits));
liveConformance("memory", (limits) => new MemoryStore(limits));
rulesConformance("memory", (limits) => new MemoryStore(limits), {
  kind: "clock",
  makeStore: (limits, now) => new MemoryStore(limits, { now }),
});
