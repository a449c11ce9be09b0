// One gim server for the whole run; each test file creates its own app in it.
import type { TestProject } from "vitest/node";

import { startGim, type GimServer } from "./gim-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    gim: { logicUrl: string; wsUrl: string; adminToken: string };
  }
}

let server: GimServer | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  server = await startGim({
    // Groups of more than 3 members are large: they use a timeline with group seqs.
    GIM_GROUPS__LARGE_THRESHOLD: "3",
    // Presence events after 100 ms instead of 3 s.
    GIM_SOCIAL__PRESENCE_DEBOUNCE_MS: "100",
  });
  project.provide("gim", { logicUrl: server.logicUrl, wsUrl: server.wsUrl, adminToken: server.adminToken });
  return async () => {
    await server?.stop();
  };
}
