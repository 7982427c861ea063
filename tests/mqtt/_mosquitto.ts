/** A private Mosquitto for tests that restart the broker: own config, own port, own persistence. */
import { createServer } from "node:net";
import { join } from "node:path";

const MOSQUITTO = "/usr/sbin/mosquitto";

/** Why Mosquitto tests cannot run here, or undefined when they can. */
export const MOSQUITTO_MISSING: string | undefined = (() => {
  try {
    Deno.statSync(MOSQUITTO);
    return undefined;
  } catch {
    return `${MOSQUITTO} is not installed`;
  }
})();

/** A running private Mosquitto. */
export interface PrivateMosquitto {
  url: string;
  port: number;
  /** Stops it (SIGTERM, so it writes its persistence file) and starts it again on the same port. */
  restart(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

/** Starts Mosquitto on a free loopback port with `persistence true` in a temp directory. */
export async function startMosquitto(): Promise<PrivateMosquitto> {
  const dir = await Deno.makeTempDir({ prefix: "flotilla-mosquitto-" });
  // Mosquitto started as root drops to its own user, which must be able to write here.
  await Deno.chmod(dir, 0o777);
  const port = await freePort();
  const config = join(dir, "mosquitto.conf");
  await Deno.writeTextFile(
    config,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "persistence true",
      `persistence_location ${dir}/`,
      `log_dest file ${join(dir, "mosquitto.log")}`,
      "",
    ].join("\n"),
  );
  let child = await spawn(config, port);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    async restart() {
      await stop(child);
      child = await spawn(config, port);
    },
    async close() {
      await stop(child);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function spawn(config: string, port: number): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(MOSQUITTO, {
    args: ["-c", config],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const probe = await Deno.connect({ hostname: "127.0.0.1", port });
      probe.close();
      return child;
    } catch (error) {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        await child.status;
        throw new Error(`Mosquitto did not listen on port ${port}`, { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  await child.status;
}

/** A port free right now on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
