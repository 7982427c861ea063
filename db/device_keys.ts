/** [SRUP-11] Device key rotations: the guarded key change, its audit record, the retired keys. */
import { and, asc, eq, sql } from "drizzle-orm";
import type { Db } from "./open.ts";
import { guard } from "./errors.ts";
import { appendEvents, type Event } from "./events.ts";
import { deviceKeyRotations, devices } from "./schema.ts";

/** A device_key_rotations row. */
export type KeyRotation = typeof deviceKeyRotations.$inferSelect;

/** A key change to record: base64 keys, their fingerprints, the DEVICE_KEY's sequence id. */
export interface NewKeyRotation {
  deviceId: string;
  oldKey: string;
  newKey: string;
  oldFingerprint: string;
  newFingerprint: string;
  sequence: bigint;
  at: Date;
}

/**
 * Replaces a device's key, if it is still `oldKey`, with its rotation record, a
 * `device.key_rotated` event and the sequence id, in one transaction; the event written. Null when
 * the key was not `oldKey` any more (someone moved first): nothing is written.
 */
export async function rotateDeviceKey(db: Db, rotation: NewKeyRotation): Promise<Event | null> {
  return await guard(
    db.transaction(async (tx) => {
      const changed = await tx.update(devices).set({
        publicKey: rotation.newKey,
        lastSequence:
          sql`greatest(${devices.lastSequence}, ${rotation.sequence.toString()}::numeric)`,
      }).where(and(eq(devices.id, rotation.deviceId), eq(devices.publicKey, rotation.oldKey)))
        .returning({ id: devices.id });
      if (changed.length === 0) return null;
      await tx.insert(deviceKeyRotations).values(rotation);
      const event = {
        rolloutId: null,
        deviceId: rotation.deviceId,
        type: "device.key_rotated",
        actor: null,
        at: rotation.at,
        data: {
          oldFingerprint: rotation.oldFingerprint,
          newFingerprint: rotation.newFingerprint,
          sequence: rotation.sequence.toString(),
        },
      };
      const [id] = await appendEvents(tx, [event]);
      return { ...event, id: id! };
    }),
    "Cannot rotate device key",
  );
}

/** A device's key rotations, oldest first. */
export async function listKeyRotations(db: Db, deviceId: string): Promise<KeyRotation[]> {
  return await guard(
    db.select().from(deviceKeyRotations).where(eq(deviceKeyRotations.deviceId, deviceId))
      .orderBy(asc(deviceKeyRotations.id)),
    "Cannot list key rotations",
  );
}

/** Whether `key` (base64) is one the device used before its current one. */
export async function isRetiredKey(db: Db, deviceId: string, key: string): Promise<boolean> {
  const [row] = await guard(
    db.select({ id: deviceKeyRotations.id }).from(deviceKeyRotations)
      .where(and(eq(deviceKeyRotations.deviceId, deviceId), eq(deviceKeyRotations.oldKey, key)))
      .limit(1),
    "Cannot read key rotations",
  );
  return row !== undefined;
}

/** The key (base64) the device used just before it adopted `key`, if it adopted it by rotation. */
export async function keyBefore(
  db: Db,
  deviceId: string,
  key: string,
): Promise<string | undefined> {
  const [row] = await guard(
    db.select({ oldKey: deviceKeyRotations.oldKey }).from(deviceKeyRotations)
      .where(and(eq(deviceKeyRotations.deviceId, deviceId), eq(deviceKeyRotations.newKey, key))),
    "Cannot read key rotations",
  );
  return row?.oldKey;
}
