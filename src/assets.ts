/**
 * Files the daemon reads at run time, found relative to the package root.
 * This module sits one folder below the root both as a source (src/) and
 * once bundled (dist/), so one relative URL serves a clone and an install;
 * the package's "files" ship what it names.
 */

/** The descriptor set that `npm run generate` writes (served by reflection). */
export const DESCRIPTOR_SET_URL = new URL("../src/gen/descriptors.binpb", import.meta.url);

/** The live page's files, which scripts/build.mjs bundles from src/web (served at / of the HTTP listener). */
export const PAGE_DIR_URL = new URL("../dist/page/", import.meta.url);
