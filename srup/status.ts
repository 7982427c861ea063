/** [SRUP-3] RESPONSE status bytes. */

/** Update received, digest verified. */
export const UPDATE_SUCCESS = 0x00;
/** HTTP error status (as in the SRUP reference implementation). */
export const UPDATE_FAIL_HTTP_ERROR = 0xfc;
/** The file server did not respond. */
export const UPDATE_FAIL_SERVER = 0xfd;
/** The file could not be retrieved. */
export const UPDATE_FAIL_FILE = 0xfe;
/** Digest mismatch: the file is not what the server signed. */
export const UPDATE_FAIL_DIGEST = 0xff;
/** [SRUP-7.3] Refused: no release manifest signed by a trusted release key, or it does not match. */
export const UPDATE_REFUSED_UNSIGNED = 0xfb;
/** [SRUP-7.4] Refused: the release's security version is lower than the running one's. */
export const UPDATE_REFUSED_ROLLBACK = 0xfa;
/** [SRUP-8] Refused: the INITIATE's not-after time has passed on a trustworthy clock. */
export const UPDATE_REFUSED_EXPIRED = 0xf9;
/** [SRUP-7.3] Refused: the manifest's hardware list does not name this device's hardware. */
export const UPDATE_REFUSED_HARDWARE = 0xf8;
/** Activation confirmed (the protocol's 2017 revision). */
export const ACTIVATE_SUCCESS = 0x10;
/** Activation failed (the protocol's 2017 revision). */
export const ACTIVATE_FAIL = 0x1f;

/** [SRUP-9] Rollback refused: the device holds no previous version with the ROLLBACK's digest. */
export const ROLLBACK_UNAVAILABLE = 0x1e;

/** Names of the known status bytes, keyed by byte. */
export const STATUS_NAMES: ReadonlyMap<number, string> = new Map([
  [UPDATE_SUCCESS, "UPDATE_SUCCESS"],
  [UPDATE_FAIL_HTTP_ERROR, "UPDATE_FAIL_HTTP_ERROR"],
  [UPDATE_FAIL_SERVER, "UPDATE_FAIL_SERVER"],
  [UPDATE_FAIL_FILE, "UPDATE_FAIL_FILE"],
  [UPDATE_FAIL_DIGEST, "UPDATE_FAIL_DIGEST"],
  [UPDATE_REFUSED_UNSIGNED, "UPDATE_REFUSED_UNSIGNED"],
  [UPDATE_REFUSED_ROLLBACK, "UPDATE_REFUSED_ROLLBACK"],
  [UPDATE_REFUSED_EXPIRED, "UPDATE_REFUSED_EXPIRED"],
  [UPDATE_REFUSED_HARDWARE, "UPDATE_REFUSED_HARDWARE"],
  [ACTIVATE_SUCCESS, "ACTIVATE_SUCCESS"],
  [ACTIVATE_FAIL, "ACTIVATE_FAIL"],
  [ROLLBACK_UNAVAILABLE, "ROLLBACK_UNAVAILABLE"],
]);

/** What each known status byte means, in the words an operator reads. */
export const STATUS_TEXT: ReadonlyMap<number, string> = new Map([
  [UPDATE_SUCCESS, "success"],
  [UPDATE_FAIL_HTTP_ERROR, "HTTP error"],
  [UPDATE_FAIL_SERVER, "server did not respond"],
  [UPDATE_FAIL_FILE, "file not retrieved"],
  [UPDATE_FAIL_DIGEST, "digest mismatch"],
  [UPDATE_REFUSED_UNSIGNED, "refused: not signed by a release key"],
  [UPDATE_REFUSED_ROLLBACK, "refused: security version downgrade"],
  [UPDATE_REFUSED_EXPIRED, "refused: INITIATE expired"],
  [UPDATE_REFUSED_HARDWARE, "refused: not for this hardware"],
  [ACTIVATE_SUCCESS, "activated"],
  [ACTIVATE_FAIL, "activation failed"],
  [ROLLBACK_UNAVAILABLE, "no previous version to roll back to"],
]);

/** Whether `status` is one of the status bytes in [SRUP-3]. */
export function isKnownStatus(status: number): boolean {
  return STATUS_NAMES.has(status);
}

/** The name of a status byte, or `0xNN` for an unknown one. */
export function statusName(status: number): string {
  return STATUS_NAMES.get(status) ?? `0x${status.toString(16).padStart(2, "0").toUpperCase()}`;
}
