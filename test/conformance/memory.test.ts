import { MemoryStore } from "../../src/store/memory.js";
import { liveConformance } from "./live-suite.js";
import { registryConformance } from "./registry-suite.js";

registryConformance("memory", (limits) => new MemoryStore(limits));
liveConformance("memory", (limits) => new MemoryStore(limits));
