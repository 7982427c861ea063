/** Stable reasons a frame is rejected; also the `reason` of a `frame.rejected` event. */
export type SrupDecodeErrorCode =
  | "truncated"
  | "trailing_bytes"
  | "frame_too_large"
  | "unknown_version"
  | "unknown_type"
  | "unknown_status"
  | "empty_field"
  | "field_too_large"
  | "invalid_utf8";

/** Thrown by `decodeMessage()` for any frame that is not a well-formed SRUP message. */
export class SrupDecodeError extends Error {
  /** Stable, machine-readable reason. */
  readonly code: SrupDecodeErrorCode;
  /** Byte offset in the frame where the problem was found. */
  readonly offset: number;

  constructor(code: SrupDecodeErrorCode, offset: number, message: string) {
    super(`Cannot decode frame: ${message}`);
    this.name = "SrupDecodeError";
    this.code = code;
    this.offset = offset;
  }
}
