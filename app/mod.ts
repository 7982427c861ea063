/**
 * @module
 * The composition root: builds a running node from its parts (storage, broker, server link,
 * orchestrator, HTTP API). Only cli/ imports it; the parts never import it.
 */
export { type Service, type StartOptions, startService } from "./service.ts";
export { startSimTarget } from "./sim_target.ts";
