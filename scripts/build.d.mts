/** Bundles src/ into dist/ (scripts/build.mjs); for callers in TypeScript. */
export declare function bundle(): Promise<void>;
