/** The process-wide logger lives in contracts/logger.ts (the recorder uses it too); the server imports it from here. */
export { createLogger, type Logger } from "../contracts/logger.js";
