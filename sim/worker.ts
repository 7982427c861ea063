/**
 * A Deno worker running part of a live simulation's fleet. Messages in: `start` (FleetOptions),
 * `collect`, `stop`. Messages out: `ready`, `results` (FleetResults), `stopped`, `error`.
 */
import { type Fleet, type FleetOptions, startFleet } from "./fleet.ts";

/** A message the main thread sends a fleet worker. */
export type WorkerRequest =
  | { type: "start"; options: FleetOptions }
  | { type: "collect" }
  | { type: "stop" };

const scope = self as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  close(): void;
};
let fleet: Fleet | undefined;

scope.onmessage = async (event) => {
  const request = event.data;
  try {
    switch (request.type) {
      case "start":
        fleet = await startFleet(request.options);
        scope.postMessage({ type: "ready" });
        break;
      case "collect":
        scope.postMessage({ type: "results", results: fleet?.results() });
        break;
      case "stop":
        await fleet?.close();
        scope.postMessage({ type: "stopped" });
        scope.close();
        break;
    }
  } catch (error) {
    scope.postMessage({ type: "error", message: (error as Error).message ?? String(error) });
  }
};
