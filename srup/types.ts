/** SRUP message objects: plain objects, a union on `type`. */

/** Fields every message has. */
export interface MessageBase {
  /** 1: the seed's layout; 2: adds a sequence id for replay protection; 3: signed releases. */
  version: 1 | 2 | 3;
  /** Strictly increasing per sender; present in versions 2 and 3. */
  sequence?: bigint;
  /** Ed25519 signature over the frame without this field; empty before signing. */
  signature: Uint8Array;
  /** Transaction token that ties INITIATE, RESPONSE and ACTIVATE together. */
  token: Uint8Array;
}

/** Server to device: fetch `url` and check it against `digest`. */
export interface InitiateMessage extends MessageBase {
  type: "initiate";
  /** The device id: 16 bytes for a UUID. */
  target: Uint8Array;
  url: string;
  /** SHA-256 of the file, 32 bytes. */
  digest: Uint8Array;
  /** [SRUP-7] Version 3 only: the signed release manifest, as `release sign` wrote it. */
  manifest?: Uint8Array;
  /** [SRUP-8] Version 3 only: Unix milliseconds after which the device must not act on it. */
  notAfter?: bigint;
}

/** Device to server: the outcome of an INITIATE, an ACTIVATE, a ROLLBACK or a KEY_ROTATE. */
export interface ResponseMessage extends MessageBase {
  type: "response";
  status: number;
}

/** Server to device: switch to the file received under `token`. */
export interface ActivateMessage extends MessageBase {
  type: "activate";
}

/** [SRUP-9] Server to device, version 2 only: activate the previous version, whose SHA-256 is `digest`. */
export interface RollbackMessage extends MessageBase {
  type: "rollback";
  /** The device id: 16 bytes for a UUID. */
  target: Uint8Array;
  /** SHA-256 of the version to go back to, 32 bytes: what the server recorded as previous. */
  digest: Uint8Array;
}

/** [SRUP-11] Device to server, version 2 only: from now on, trust `key` instead of the signer. */
export interface DeviceKeyMessage extends MessageBase {
  type: "device_key";
  /** The new raw Ed25519 public key, 32 bytes. */
  key: Uint8Array;
  /** [SRUP-11.2] The new key's signature: proof that the device holds it. */
  proof: Uint8Array;
}

/** [SRUP-12] Server to device, version 2 only: one release key set document ([SRUP-12.1]). */
export interface ReleaseKeysMessage extends MessageBase {
  type: "release_keys";
  /** The device id: 16 bytes for a UUID. */
  target: Uint8Array;
  /** The key set document, as `srup release rotate` wrote it. */
  keySet: Uint8Array;
}

/**
 * [SRUP-10] Server to device, version 2 only: trust `key` as the server's key from now on. Signed
 * by the key the device trusts now; `proof` is the new key's own signature ([SRUP-10.1]).
 */
export interface KeyRotateMessage extends MessageBase {
  type: "key_rotate";
  /** The device id: 16 bytes for a UUID. */
  target: Uint8Array;
  /** The server's new raw Ed25519 public key, 32 bytes. */
  key: Uint8Array;
  /** The new key's signature over its proof input ([SRUP-10.1]), 64 bytes. */
  proof: Uint8Array;
  /** Milliseconds the device keeps accepting the old key as well; 0 switches at once. */
  overlap: bigint;
}

/** Any SRUP message. */
export type SrupMessage =
  | InitiateMessage
  | ResponseMessage
  | ActivateMessage
  | RollbackMessage
  | KeyRotateMessage
  | DeviceKeyMessage
  | ReleaseKeysMessage;

/** The `type` of a SRUP message. */
export type MessageType = SrupMessage["type"];
