/** An orchestrator started in this process for a live simulation, on ephemeral ports. */
import { readConfig } from "../orchestrator/config.ts";
import { scaledClock } from "../io/clock.ts";
import type { LocalTargetOptions, SimTarget } from "../sim/live_api.ts";
import { fromBase64, toBase64 } from "../srup/mod.ts";
import { startService } from "./service.ts";

/** Starts a node for `runLive()` with a fresh admin token; its `close()` stops it. */
export async function startSimTarget(options: LocalTargetOptions): Promise<SimTarget> {
  const token = toBase64(crypto.getRandomValues(new Uint8Array(24)));
  const env = options.env;
  const config = readConfig({
    ...env,
    FLOTILLA_DATA_DIR: env.FLOTILLA_DATA_DIR || options.dataDir,
    FLOTILLA_ADMIN_TOKEN: token,
    PORT: "0",
    FLOTILLA_MQTT_PORT: "0",
  });
  const service = await startService(config, {
    log: () => {},
    clock: options.speed && options.speed > 1 ? scaledClock(options.speed) : undefined,
  });
  return {
    apiUrl: service.apiUrl,
    token,
    mqttUrl: service.mqttUrl,
    serverId: service.serverId,
    serverKey: fromBase64(service.publicKey),
    close: () => service.close(),
  };
}
