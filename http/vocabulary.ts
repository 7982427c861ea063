/** The words a client renders with: the state vocabulary of actors/ and the SRUP status bytes. */
import { VOCABULARY } from "../actors/mod.ts";
import { STATUS_NAMES, STATUS_TEXT } from "../srup/mod.ts";

/** Served as GET /v1/states and /ui/vocabulary.json, so no client keeps a copy. */
export const CLIENT_VOCABULARY = {
  ...VOCABULARY,
  statuses: [...STATUS_NAMES].map(([code, name]) => ({
    code,
    name,
    text: STATUS_TEXT.get(code) ?? name,
  })),
};
