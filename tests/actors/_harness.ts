/** A simulated-time harness for engine tests: scripted devices, recorded sends and events. */
import {
  createRolloutEngine,
  type RolloutAction,
  type RolloutEngine,
  type RolloutEngineOptions,
  type RolloutEvent,
  type RolloutSnapshot,
} from "../../actors/mod.ts";
import { parsePolicy, type Policy } from "../../policies/mod.ts";
import { seededTokens, SimClock, stream } from "../../sim/mod.ts";
import { toHex } from "../../srup/mod.ts";

/** One INITIATE or ACTIVATE the engine sent. */
export interface Send {
  kind: "initiate" | "activate";
  device: string;
  index: number;
  token: string;
  attempt: number;
  at: number;
  /** Position among everything recorded (sends and events), to check ordering. */
  seq: number;
}

/** How a scripted device answers a send: a status after a delay, or silence (null). */
export type Answer = (send: Send) => { status: number; after?: number } | null;

/** Options of {@linkcode harness}. */
export interface HarnessOptions {
  /** Policy YAML; `name: test` is added when missing. */
  policy: string;
  devices: number;
  /** Automatic answers; without it, tests answer with `respond()`. */
  answer?: Answer;
  seed?: number;
  snapshot?: RolloutSnapshot;
  clock?: SimClock;
  /** Indexes of devices that already run the artifact. */
  skip?: number[];
  /** How many of the devices, at the end, joined after creation (a dynamic rollout restored). */
  joined?: number;
  /** `rollback`: the `initiate` sends are ROLLBACKs; default `update`. */
  action?: RolloutAction;
  /** Each device's maintenance window group (policies with `windows.by`). */
  windowGroups?: number[];
}

/** Policy of YAML text, for tests. */
export function policyOf(yaml: string): Policy {
  return parsePolicy(yaml.includes("name:") ? yaml : `name: test\n${yaml}`).policy;
}

/** Device id of `index`. */
export function deviceId(index: number): string {
  return `00000000-0000-4000-8000-${index.toString(16).padStart(12, "0")}`;
}

/** Answers every INITIATE with 0x00 and every ACTIVATE with 0x10 after one second. */
export const HAPPY: Answer = (send) => ({ status: send.kind === "initiate" ? 0x00 : 0x10 });

/** A running engine with its clock, recorded sends and events. */
export class Harness {
  readonly clock: SimClock;
  readonly ids: string[];
  readonly sends: Send[] = [];
  readonly events: (RolloutEvent & { seq: number })[] = [];
  readonly policy: Policy;
  engine: RolloutEngine;
  #seq = 0;
  #answer: Answer | undefined;
  #tokens = new Map<string, Uint8Array>();
  #skip: string[];
  #joined = 0;
  #action: RolloutAction | undefined;
  #windowGroups: number[] | undefined;

  constructor(options: HarnessOptions) {
    this.clock = options.clock ?? new SimClock();
    this.ids = Array.from({ length: options.devices }, (_, i) => deviceId(i));
    this.#skip = (options.skip ?? []).map((index) => this.ids[index]!);
    this.policy = policyOf(options.policy);
    this.#answer = options.answer;
    this.#action = options.action;
    this.#windowGroups = options.windowGroups;
    this.engine = this.#create(options);
  }

  #create(options: HarnessOptions): RolloutEngine {
    const seed = options.seed ?? 1;
    const engineOptions: RolloutEngineOptions = {
      id: "r1",
      policy: this.policy,
      devices: this.ids,
      clock: this.clock,
      random: stream(seed, "jitter"),
      token: seededTokens(stream(seed, "tokens")),
      snapshot: options.snapshot,
      skip: this.#skip,
      joined: options.joined,
      action: this.#action,
      windowGroups: this.#windowGroups,
      ports: {
        initiate: (device, token, attempt) => this.#sent("initiate", device, token, attempt),
        activate: (device, token) => this.#sent("activate", device, token, 0),
        event: (event) => this.events.push({ ...event, seq: this.#seq++ }),
      },
    };
    return createRolloutEngine(engineOptions);
  }

  #sent(kind: Send["kind"], device: string, token: Uint8Array, attempt: number): void {
    const send: Send = {
      kind,
      device,
      index: this.ids.indexOf(device),
      token: toHex(token),
      attempt,
      at: this.clock.now(),
      seq: this.#seq++,
    };
    this.sends.push(send);
    this.#tokens.set(device, token.slice());
    const answer = this.#answer?.(send);
    if (answer) {
      // Answers go to whichever engine is current, as responses reach a restarted process.
      this.clock.setTimeout(
        () => this.engine.response(device, token, answer.status),
        answer.after ?? 1_000,
      );
    }
  }

  /** Replaces the engine with one restored from `snapshot` (JSON round-tripped), on the same clock. */
  restore(snapshot: RolloutSnapshot, seed = 2): void {
    this.engine.stop();
    this.engine = this.#create({
      policy: "",
      devices: this.ids.length,
      snapshot: JSON.parse(JSON.stringify(snapshot)),
      seed,
      joined: this.#joined,
    });
  }

  /** Joins the next device id to the running engine (dynamic targets); its index. */
  join(options: { skipped?: boolean; windowGroup?: number } = {}): number {
    const id = deviceId(this.ids.length);
    // Listed first: the engine may send to it before join() returns.
    this.ids.push(id);
    try {
      const index = this.engine.join(id, options);
      this.#joined++;
      this.#windowGroups?.push(options.windowGroup ?? 0);
      return index;
    } catch (error) {
      this.ids.pop();
      throw error;
    }
  }

  /** Answers `device` (an index) with `status` for its latest token. */
  respond(index: number, status: number) {
    const id = this.ids[index]!;
    return this.engine.response(id, this.#tokens.get(id) ?? new Uint8Array(16), status);
  }

  /** The latest token sent to device `index`. */
  token(index: number): Uint8Array | undefined {
    return this.#tokens.get(this.ids[index]!);
  }

  /** Starts the engine and runs the clock until nothing is left (or `until`). */
  run(until?: number): this {
    if (this.engine.state === "created") this.engine.start();
    this.clock.run({ until });
    return this;
  }

  eventsOf<T extends RolloutEvent["type"]>(type: T): (RolloutEvent & { type: T; seq: number })[] {
    return this.events.filter((event): event is RolloutEvent & { type: T; seq: number } =>
      event.type === type
    );
  }

  sendsOf(kind: Send["kind"], index?: number): Send[] {
    return this.sends.filter((s) => s.kind === kind && (index === undefined || s.index === index));
  }
}

/** A harness; see {@linkcode HarnessOptions}. */
export function harness(options: HarnessOptions): Harness {
  return new Harness(options);
}
