/** [SRUP-12.3] The release keys a device trusts: provisioned, or learned through key sets. */
import {
  advanceKeySet,
  fromHex,
  type KeySetRefusal,
  PROVISIONED_KEY_SET_VERSION,
  toHex,
} from "../srup/mod.ts";
import type { AgentState } from "./state.ts";

/** The release keys that verify a manifest now: the learned set's, else the provisioned ones. */
export function trustedReleaseKeys(
  state: AgentState,
  provisioned: readonly Uint8Array[],
): readonly Uint8Array[] {
  return state.releaseKeySet ? state.releaseKeySet.keys.map((key) => fromHex(key)) : provisioned;
}

/** The outcome of {@linkcode applyKeySet}: the set to keep, or why the document is not used. */
export type KeySetOutcome =
  | { ok: true; set: { version: number; keys: string[] } }
  | { ok: false; reason: KeySetRefusal | "no_release_keys" };

/** The set a key set document moves the device's trusted release keys to, or why not. */
export async function applyKeySet(
  state: AgentState,
  provisioned: readonly Uint8Array[],
  document: Uint8Array,
): Promise<KeySetOutcome> {
  // A device provisioned without release keys trusts nothing a key set could follow from.
  if (!state.releaseKeySet && provisioned.length === 0) {
    return { ok: false, reason: "no_release_keys" };
  }
  const trusted = {
    version: state.releaseKeySet?.version ?? PROVISIONED_KEY_SET_VERSION,
    keys: [...trustedReleaseKeys(state, provisioned)],
  };
  const step = await advanceKeySet(trusted, document);
  if (!step.ok) return step;
  return { ok: true, set: { version: step.set.version, keys: step.set.keys.map(toHex) } };
}
