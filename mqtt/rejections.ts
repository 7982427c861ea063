/** Counting of rejected frames by reason: the `frame.rejected` event. */
import type { SrupDecodeErrorCode } from "../srup/mod.ts";

/** Why a received frame was dropped: a decode error code or a check that failed after decoding. */
export type RejectReason =
  | SrupDecodeErrorCode
  /** The topic does not name a device in canonical form. */
  | "bad_topic"
  /** No public key is known for the sending device. */
  | "unknown_device"
  | "bad_signature"
  /** [SRUP-10.1] A KEY_ROTATE whose new key's proof does not verify. */
  | "bad_key_proof"
  /** [SRUP-5] A version 2 sequence id not above the last one accepted from that sender. */
  | "replay"
  /** [SRUP-5] An INITIATE whose token was seen before. */
  | "token_reused"
  /** An INITIATE addressed to another device. */
  | "wrong_target"
  /** A message type this receiver never accepts (a RESPONSE sent to a device, for example). */
  | "unexpected_type"
  /**
   * At a device, an ACTIVATE whose token is neither staged nor active; at the server, a verified
   * RESPONSE whose token no running rollout issued to that device (it is ignored).
   */
  | "unknown_token"
  /** [SRUP-11] A DEVICE_KEY whose new key did not sign its proof. */
  | "bad_key_proof"
  /** [SRUP-11.4] A DEVICE_KEY naming the device's current key or one it used before. */
  | "key_reused"
  /** [SRUP-12.3] A key set that does not follow the trusted one (not signed by it, a gap). */
  | "key_set_refused";

/** Counts of rejected frames by reason; one instance may be shared by many receivers. */
export class RejectionCounter {
  readonly #counts = new Map<RejectReason, number>();

  /** Counts one rejection. */
  add(reason: RejectReason): void {
    this.#counts.set(reason, (this.#counts.get(reason) ?? 0) + 1);
  }

  /** Rejections for `reason` so far. */
  get(reason: RejectReason): number {
    return this.#counts.get(reason) ?? 0;
  }

  /** All rejections so far. */
  get total(): number {
    let sum = 0;
    for (const count of this.#counts.values()) sum += count;
    return sum;
  }

  /** The counts as a plain object, for JSON and metrics. */
  toJSON(): Partial<Record<RejectReason, number>> {
    return Object.fromEntries(this.#counts);
  }
}
