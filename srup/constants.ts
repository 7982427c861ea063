/** Wire constants of the SRUP frame, as specified in docs/protocol.md. */

/** [SRUP-2.1] Byte 0: the frame version. */
export const VERSION_1 = 0x01;
/** [SRUP-2.1] Version 2 adds an 8-byte sequence id after the type byte. */
export const VERSION_2 = 0x02;
/** [SRUP-2.1] Version 3: version 2's header; an INITIATE adds a release manifest and a not-after time. */
export const VERSION_3 = 0x03;

/** [SRUP-2.2] Byte 1: the message type. */
export const TYPE_INITIATE = 0x01;
export const TYPE_RESPONSE = 0x02;
export const TYPE_ACTIVATE = 0x03;
/** [SRUP-9] Version 2 only: activate the previous version. */
export const TYPE_ROLLBACK = 0x04;
/** [SRUP-10] Version 2 only: trust a new server key, proven by its own signature. */
export const TYPE_KEY_ROTATE = 0x05;
/** [SRUP-11] Device to server, version 2 only: replace the device's key. */
export const TYPE_DEVICE_KEY = 0x06;
/** [SRUP-12] Server to device, version 2 only: a release key set signed by the release keys. */
export const TYPE_RELEASE_KEYS = 0x07;

/** [SRUP-2.5] Hard limits checked before anything is allocated. */
export const MAX_FRAME_BYTES = 4096;
export const MAX_SIGNATURE_BYTES = 512;
export const MAX_TARGET_BYTES = 64;
export const MAX_TOKEN_BYTES = 64;
export const MAX_URL_BYTES = 2048;
export const MAX_DIGEST_BYTES = 64;
/** [SRUP-2.5] [SRUP-7.1] A signed release manifest; the largest valid one is 786 bytes. */
export const MAX_MANIFEST_BYTES = 1024;
/** [SRUP-12.1] A release key set document; the largest valid one is 1799 bytes. */
export const MAX_KEY_SET_BYTES = 2048;

/** [SRUP-2.3] Size of a field's length prefix (u16, big-endian). */
export const FIELD_LENGTH_BYTES = 2;
/** [SRUP-2.5] [SRUP-10] [SRUP-11.1] A KEY_ROTATE's or DEVICE_KEY's new public key; an Ed25519 key is 32. */
export const MAX_KEY_BYTES = 64;

/** [SRUP-2.1] Size of the version 2 sequence id (u64, big-endian). */
export const SEQUENCE_BYTES = 8;
/** [SRUP-2.4] Size of a version 3 INITIATE's not-after time (u64 Unix milliseconds). */
export const NOT_AFTER_BYTES = 8;
/** [SRUP-10] Size of a KEY_ROTATE's overlap (u64 milliseconds). */
export const OVERLAP_BYTES = 8;
/** Largest sequence id a version 2 frame can carry. */
export const MAX_SEQUENCE = 0xffff_ffff_ffff_ffffn;

/** Length of a transaction token made by {@linkcode newToken}. */
export const TOKEN_BYTES = 16;
