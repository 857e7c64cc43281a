import { MemoryStore } from "../../src/store/memory.js";
import { registryConformance } from "./registry-suite.js";

registryConformance("memory", (limits) => new MemoryStore(limits));
