// @tanstack/virtual-core's ESM build reads process.env.NODE_ENV, which a bundler would
// replace; without one, the page defines it (production: no debug logging).
globalThis.process = globalThis.process || { env: { NODE_ENV: "production" } };
