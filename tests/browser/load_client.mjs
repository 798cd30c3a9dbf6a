// Extra viewers for a measurement: the bench's load client (bench/load, `--watch`) joins N real
// WebRTC viewers to a running daemon and keeps them watching until stopped.
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { waitFor } from "./fieldcast.mjs";

const root = join(new URL(".", import.meta.url).pathname, "../..");

/** Builds the load client if needed (release profile) and returns its path. */
export function loadClientBinary() {
  if (process.env.FIELDCAST_LOAD_BIN) return process.env.FIELDCAST_LOAD_BIN;
  const build = spawnSync("cargo", ["build", "--release", "-p", "fieldcast-load", "--message-format=json"], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (build.status !== 0) throw new Error(`building the load client failed (cargo exited ${build.status})`);
  for (const line of build.stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    const message = JSON.parse(line);
    if (message.reason === "compiler-artifact" && message.target?.name === "fieldcast-load" && message.executable) {
      return message.executable;
    }
  }
  throw new Error("cargo built the load client but did not name its executable");
}

/**
 * Joins `viewers` load-client viewers to the daemon at `base` and waits until all receive
 * video. `reports` collects the client's periodic JSON reports; `stop()` makes them leave and
 * returns the client's final totals.
 */
export async function startLoadViewers(base, viewers, { binary = loadClientBinary(), joinTimeoutS = 30 } = {}) {
  const child = spawn(binary, ["--watch", base, "--viewers", String(viewers), "--window", "0", "--join-timeout", String(joinTimeoutS)], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const reports = [];
  let watching = null;
  let done = null;
  let exited = null;
  let stderr = "";
  let pending = "";
  child.stdout.on("data", (chunk) => {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop();
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      const event = JSON.parse(line);
      if (event.event === "watching") watching = event;
      else if (event.event === "report") reports.push(event);
      else if (event.event === "done") done = event;
    }
  });
  child.stderr.on("data", (d) => (stderr += d));
  // Settles only if the client dies before everyone watches; race() keeps it handled later on.
  const diedEarly = new Promise((_, reject) =>
    child.on("exit", (code) => {
      exited = code;
      reject(new Error(`the load client exited (${code}) before its viewers had video: ${stderr.trim()}`));
    }),
  );
  await Promise.race([
    waitFor(`${viewers} load-client viewers receiving video`, (joinTimeoutS + 10) * 1000, () => watching),
    diedEarly,
  ]).catch((error) => {
    child.kill("SIGKILL");
    throw error;
  });
  return {
    pid: child.pid,
    reports,
    stop: async () => {
      if (exited === null) child.kill("SIGTERM");
      await waitFor("the load client leaving", 15000, () => exited !== null).catch(() => child.kill("SIGKILL"));
      if (!done) throw new Error(`the load client gave no final report (exit ${exited}): ${stderr.trim()}`);
      return done;
    },
  };
}
