/** Bundles src/ into dist/ (scripts/build.mjs); for callers in TypeScript. */
export declare function bundle(): Promise<void>;
/** Bundles the live page (src/web) into dist/page/. */
export declare function bundlePage(): Promise<void>;
