import { MemoryBackend } from "../../src/backend/memory.js";
import { backendSuite } from "./suite.js";

backendSuite({ name: "memory", open: async () => new MemoryBackend() });
