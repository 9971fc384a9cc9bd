import { z } from "zod";

/**
 * The page's Content-Security-Policy has no 'unsafe-eval' (docs/security.md). zod 4 compiles fast object parsers
 * with `new Function` after probing whether eval is allowed; under the CSP that probe is a reported violation.
 * Jitless parsing never probes. Imported first by the entry point, before any schema parses.
 */
z.config({ jitless: true });
