/** Rollout engine throughput in simulated time: `deno task bench` (the 1M run is engine_1m.ts). */
import { createActor } from "xstate";
import { deviceMachine } from "../actors/mod.ts";
import { parsePolicy } from "../policies/mod.ts";
import { parseFaults, runVirtual } from "../sim/mod.ts";

const canary = parsePolicy(
  await Deno.readTextFile(new URL("../policies/canary.yaml", import.meta.url)),
).policy;
const twoPhase = parsePolicy(
  await Deno.readTextFile(new URL("../policies/two-phase.yaml", import.meta.url)),
).policy;
const transient = parseFaults("fd=0.02");

Deno.bench("10k devices, canary.yaml, 2% transient", { group: "rollout", baseline: true }, () => {
  runVirtual({ policy: canary, devices: 10_000, seed: 1, faults: transient });
});
Deno.bench("10k devices, two-phase.yaml, 2% transient", { group: "rollout" }, () => {
  runVirtual({ policy: twoPhase, devices: 10_000, seed: 1, faults: transient });
});

const logic = deviceMachine.provide({
  actions: { sendInitiate: () => {}, sendActivate: () => {}, report: () => {} },
  guards: { activateNow: () => true },
});
const retry = { attempts: 3, on: ["fc", "fd", "fe", "timeout"] as const };
const token = new Uint8Array(16);
Deno.bench("device actor: create, INITIATE, 0x00, 0x10, stop", { group: "actor" }, () => {
  const actor = createActor(logic, { input: { id: "d", retry } }).start();
  actor.send({ type: "device.initiate", token });
  actor.send({ type: "device.response", status: 0x00 });
  actor.send({ type: "device.response", status: 0x10 });
  actor.stop();
});
