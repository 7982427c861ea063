/** [SRUP-11] The server's side of a device key rotation: verify, refuse, record, acknowledge. */
import { type Db, type Event, isRetiredKey, keyBefore, rotateDeviceKey } from "../db/mod.ts";
import type { DeviceKeyVerdict } from "../mqtt/mod.ts";
import {
  type DeviceKeyMessage,
  equalBytes,
  keyFingerprint,
  toBase64,
  verifyDeviceKey,
} from "../srup/mod.ts";
import type { StoredSequenceTracker } from "./sequence_tracker.ts";

/** What {@linkcode DeviceKeys} needs. */
export interface DeviceKeysOptions {
  db: Db;
  tracker: StoredSequenceTracker;
  /** The device's key as the server link verifies with it (cached). */
  current(deviceId: string): Promise<Uint8Array | undefined>;
  /** Told of a new key once it is durable, so the next RESPONSE is verified with it. */
  adopted(deviceId: string, key: string): void;
  /** Told of the committed `device.key_rotated` event, e.g. to stream it. */
  announce?: (event: Event) => void;
  log?: (line: string) => void;
}

/**
 * Decides each DEVICE_KEY ([SRUP-11.4]). The server link takes one device's frames one at a time,
 * so no RESPONSE of that device is verified between the check and the key's change.
 */
export class DeviceKeys {
  readonly #options: DeviceKeysOptions;

  constructor(options: DeviceKeysOptions) {
    this.#options = options;
  }

  /** The verdict on one DEVICE_KEY; a rotation is committed before it is acknowledged. */
  async handle(deviceId: string, message: DeviceKeyMessage): Promise<DeviceKeyVerdict> {
    const { db, tracker } = this.#options;
    const current = await this.#options.current(deviceId);
    if (!current) return refuse("unknown_device");
    const sequence = message.sequence!;
    const fault = await verifyDeviceKey(message, current);
    if (fault === "bad_signature") return await this.#resent(deviceId, message, current);
    // [SRUP-5.1] Both signatures verified before anything else is read or moved.
    if (fault) return refuse(fault);
    const newKey = toBase64(message.key);
    if (equalBytes(message.key, current) || await isRetiredKey(db, deviceId, newKey)) {
      return refuse("key_reused", { fingerprint: keyFingerprint(message.key) });
    }
    const last = await tracker.last(deviceId);
    if (last !== null && sequence <= last) return refuse("replay", { sequence });
    const rotation = {
      deviceId,
      oldKey: toBase64(current),
      newKey,
      oldFingerprint: keyFingerprint(current),
      newFingerprint: keyFingerprint(message.key),
      sequence,
      at: new Date(),
    };
    const event = await rotateDeviceKey(db, rotation);
    if (!event) return refuse("bad_signature", { stale: true });
    // The stored floor moved in the same transaction; this moves the one checked in memory.
    await tracker.advance(deviceId, sequence);
    this.#options.adopted(deviceId, newKey);
    this.#options.announce?.(event);
    this.#options.log?.(
      `device ${deviceId}: key rotated from ${rotation.oldFingerprint.slice(0, 16)} to ${
        rotation.newFingerprint.slice(0, 16)
      } (sequence ${sequence})`,
    );
    return { acknowledge: true };
  }

  /**
   * [SRUP-11.3] A DEVICE_KEY signed by the key the current one replaced, naming the current one:
   * the device did not hear the acknowledgment. Acknowledged again; nothing changes, and no
   * counter moves (a leaked old key can make the server repeat itself, not lock anyone out).
   */
  async #resent(
    deviceId: string,
    message: DeviceKeyMessage,
    current: Uint8Array,
  ): Promise<DeviceKeyVerdict> {
    if (!equalBytes(message.key, current)) return refuse("bad_signature");
    const before = await keyBefore(this.#options.db, deviceId, toBase64(current));
    if (before === undefined) return refuse("bad_signature");
    if (await verifyDeviceKey(message, Uint8Array.fromBase64(before)) !== null) {
      return refuse("bad_signature");
    }
    const last = await this.#options.tracker.last(deviceId);
    if (last !== null && message.sequence! <= last) {
      return refuse("replay", { sequence: message.sequence });
    }
    return { acknowledge: true };
  }
}

function refuse(
  reason: Exclude<DeviceKeyVerdict, { acknowledge: true }>["reason"],
  fields?: Record<string, unknown>,
): DeviceKeyVerdict {
  return { acknowledge: false, reason, fields };
}
