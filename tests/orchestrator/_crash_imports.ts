/** Imports the crash test shares with the rest of the suite. */
export {
  ACTIVATE_SUCCESS,
  decodeMessage,
  fromBase64,
  toHex,
  UPDATE_SUCCESS,
} from "../../srup/mod.ts";
export { RejectionCounter } from "../../mqtt/mod.ts";
