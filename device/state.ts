/** What a device agent remembers across restarts, and its on-disk JSON form. */

/** An artifact held in a slot. */
export interface ArtifactRecord {
  /** Slot number: 0, 1 or 2. */
  slot: number;
  /** Hex of the token of the INITIATE that delivered it. */
  token: string;
  /** Hex of its SHA-256. */
  digest: string;
  size: number;
  /** [SRUP-7.4] The security version its release manifest gave; absent (0) without one. */
  securityVersion?: number;
}

/** The agent's durable state. */
export interface AgentState {
  /** [SRUP-5] Highest version 2 sequence id accepted, per server public key (hex). */
  sequences: Map<string, bigint>;
  /** [SRUP-5] Hex tokens of recent INITIATEs, oldest first, bounded. */
  tokens: string[];
  /** The active artifact. */
  current?: ArtifactRecord;
  /** The artifact before it: the recovery path, never overwritten by a download. */
  previous?: ArtifactRecord;
  /** Downloaded and verified, awaiting ACTIVATE. */
  staged?: ArtifactRecord;
  /** [SRUP-10] Hex of the server key trusted now; absent: the key it was provisioned with. */
  serverKey?: string;
  /** [SRUP-10] Hex of the server key `serverKey` replaced: it confirms a retried KEY_ROTATE. */
  oldServerKey?: string;
  /**
   * [SRUP-10.2] While the old key still signs frames as well: until this device-clock time (ms),
   * or null until the first frame under the new key; absent: the old key signs nothing more.
   */
  oldKeyUntil?: number | null;
  /** [SRUP-12.3] Release keys learned from key set documents; absent: the provisioned ones. */
  releaseKeySet?: { version: number; keys: string[] };
}

/** What `device status` shows. */
export interface DeviceStatus {
  id: string;
  /** Hex SHA-256 of the active artifact. */
  current: string | null;
  /** Hex SHA-256 of the artifact before it. */
  previous: string | null;
  /** Hex token of a verified download awaiting ACTIVATE. */
  staged: string | null;
}

/** The status of device `id` in `state`. */
export function deviceStatus(id: string, state: AgentState): DeviceStatus {
  return {
    id,
    current: state.current?.digest ?? null,
    previous: state.previous?.digest ?? null,
    staged: state.staged?.token ?? null,
  };
}

/** Three slots: current, previous and one to download into, so neither kept version is touched. */
export const SLOT_COUNT = 3;

/** A state with nothing installed. */
export function emptyState(): AgentState {
  return { sequences: new Map(), tokens: [] };
}

/** The slot a download goes to: the one that is neither current nor previous. */
export function freeSlot(state: AgentState): number {
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    if (slot !== state.current?.slot && slot !== state.previous?.slot) return slot;
  }
  throw new RangeError("Cannot find a free slot: every slot is in use");
}

/** The JSON text of `state`. */
export function stateToJson(state: AgentState): string {
  return JSON.stringify({
    format: 1,
    sequences: Object.fromEntries([...state.sequences].map(([k, v]) => [k, v.toString()])),
    tokens: state.tokens,
    current: state.current ?? null,
    previous: state.previous ?? null,
    staged: state.staged ?? null,
    ...(state.serverKey === undefined ? {} : {
      serverKey: state.serverKey,
      oldServerKey: state.oldServerKey ?? null,
      // Absent once the overlap is over; null: until the first frame under the new key.
      ...(state.oldKeyUntil === undefined ? {} : { oldKeyUntil: state.oldKeyUntil }),
    }),
    ...(state.releaseKeySet ? { releaseKeySet: state.releaseKeySet } : {}),
  });
}

/** Parses the JSON text of a state, checking every field. */
export function stateFromJson(text: string): AgentState {
  const json = JSON.parse(text);
  if (json?.format !== 1) throw new TypeError("Invalid device state: unknown format");
  const sequences = new Map<string, bigint>();
  for (const [key, value] of Object.entries(json.sequences ?? {})) {
    if (typeof value !== "string" || !/^\d{1,20}$/.test(value)) {
      throw new TypeError(`Invalid device state: sequence of "${key}" is "${value}"`);
    }
    sequences.set(key, BigInt(value));
  }
  if (!Array.isArray(json.tokens) || !json.tokens.every(isHex)) {
    throw new TypeError("Invalid device state: tokens must be hex strings");
  }
  const state: AgentState = { sequences, tokens: json.tokens };
  for (const name of ["current", "previous", "staged"] as const) {
    const value = record(json[name], name);
    if (value) state[name] = value;
  }
  if (json.serverKey !== undefined) Object.assign(state, serverKeys(json));
  const set = json.releaseKeySet;
  if (set !== undefined) {
    const valid = Number.isInteger(set?.version) && set.version >= 2 && Array.isArray(set.keys) &&
      set.keys.length > 0 && set.keys.every((key: unknown) => isHex(key) && key.length === 64);
    if (!valid) throw new TypeError('Invalid device state: "releaseKeySet" is malformed');
    state.releaseKeySet = { version: set.version, keys: set.keys };
  }
  return state;
}

/** [SRUP-10] The server key fields of a saved state, checked. */
function serverKeys(json: Record<string, unknown>): Partial<AgentState> {
  const { serverKey, oldServerKey, oldKeyUntil } = json;
  const key = (value: unknown) => isHex(value) && value.length === 64;
  if (!key(serverKey) || (oldServerKey !== null && !key(oldServerKey))) {
    throw new TypeError("Invalid device state: server keys must be 32-byte hex");
  }
  if (oldKeyUntil !== undefined && oldKeyUntil !== null && !Number.isSafeInteger(oldKeyUntil)) {
    throw new TypeError(`Invalid device state: oldKeyUntil is "${oldKeyUntil}"`);
  }
  const out: Partial<AgentState> = { serverKey: serverKey as string };
  if (oldServerKey !== null) out.oldServerKey = oldServerKey as string;
  if (oldKeyUntil !== undefined) out.oldKeyUntil = oldKeyUntil as number | null;
  return out;
}

function record(value: unknown, name: string): ArtifactRecord | undefined {
  if (value === null || value === undefined) return undefined;
  const r = value as ArtifactRecord;
  const valid = Number.isInteger(r.slot) && r.slot >= 0 && r.slot < SLOT_COUNT &&
    isHex(r.token) && isHex(r.digest) && Number.isSafeInteger(r.size) && r.size >= 0;
  const sv = r.securityVersion;
  if (!valid || (sv !== undefined && !(Number.isInteger(sv) && sv >= 0 && sv <= 0xffff_ffff))) {
    throw new TypeError(`Invalid device state: "${name}" is malformed`);
  }
  const out: ArtifactRecord = { slot: r.slot, token: r.token, digest: r.digest, size: r.size };
  if (sv !== undefined) out.securityVersion = sv;
  return out;
}

function isHex(value: unknown): value is string {
  return typeof value === "string" && /^([0-9a-f]{2})+$/.test(value);
}
