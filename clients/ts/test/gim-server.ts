// Starts a real `gim serve` for the tests: a temporary data dir, free ports, and a
// readiness check; stop() ends it and removes the data dir.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface GimServer {
  /** gRPC-Web base URL of the logic node. */
  logicUrl: string;
  /** WebSocket URL of the connect node (`/ws`). */
  wsUrl: string;
  adminToken: string;
  stop(): Promise<void>;
}

/** The server binary: $GIM_BIN, or the debug build at the repository root. */
export function gimBinary(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  return process.env.GIM_BIN ? resolve(process.env.GIM_BIN) : resolve(here, "../../../target/debug/gim");
}

/** Ports are handed out below the kernel's ephemeral range (32768 and up), from a random start. */
const PORTS = { low: 10_000, span: 22_000 };
let nextPort = Math.floor(Math.random() * PORTS.span);

/**
 * A port nothing listens on, for a gim process a test starts. Below the ephemeral range
 * no outgoing connection and no listen(0) can take it before the child binds it.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = PORTS.low + (nextPort++ % PORTS.span);
    if (await canListen(port)) return port;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolveFree(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolveFree(true)));
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolveOpen) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolveOpen(true);
    });
    socket.once("error", () => resolveOpen(false));
  });
}

export async function startGim(env: Record<string, string> = {}): Promise<GimServer> {
  const binary = gimBinary();
  if (!existsSync(binary)) {
    throw new Error(`no gim binary at ${binary}: build it (cargo build) or set GIM_BIN`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "gim-sdk-test-"));
  const [logicPort, connectPort] = [await freePort(), await freePort()];
  const adminToken = "secret-admin-token";
  const log: string[] = [];
  const child: ChildProcess = spawn(binary, ["serve"], {
    env: {
      PATH: process.env.PATH ?? "",
      RUST_LOG: process.env.RUST_LOG ?? "warn",
      GIM_DATA_DIR: dataDir,
      GIM_LOGIC__LISTEN: `127.0.0.1:${logicPort}`,
      GIM_CONNECT__LISTEN: `127.0.0.1:${connectPort}`,
      GIM_ADMIN__TOKEN: adminToken,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const keep = (chunk: Buffer) => {
    log.push(chunk.toString());
    if (log.length > 200) log.shift();
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  const stop = async () => {
    if (!exited) {
      const gone = new Promise<void>((done) => child.once("exit", () => done()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  while (!((await portOpen(logicPort)) && (await portOpen(connectPort)))) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`gim serve did not start:\n${log.join("")}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    logicUrl: `http://127.0.0.1:${logicPort}`,
    wsUrl: `ws://127.0.0.1:${connectPort}/ws`,
    adminToken,
    stop,
  };
}
