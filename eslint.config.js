// ESLint for the repo's TypeScript and JavaScript: typescript-eslint's
// type-aware recommended and strict rule sets, over the TypeScript the root
// tsconfig.json covers (src, test, bench, scripts, the TS SDK). Generated
// code is not linted; JavaScript files get the rules that need no types.
import eslint from "@eslint/js";
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

export default defineConfig(
  {
    ignores: ["**/gen/**", "**/dist/**", "**/node_modules/**", ".tmp/**", "bench/profiles/**", "third_party/**"],
  },
  eslint.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: {
      reportUnusedDisableDirectives: "error",
    },
    rules: {
      // With noUncheckedIndexedAccess, `xs[i]!` after a length or bounds check is the codebase's way to say "in range".
      "@typescript-eslint/no-non-null-assertion": "off",
      // Numbers (counts, ports, limits, numeric enums) in messages are intended; strings that may be undefined are not.
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      // One-line callbacks such as `(err) => (err ? reject(err) : resolve())` and `() => void x()` are the idiom for callbacks.
      "@typescript-eslint/no-confusing-void-expression": ["error", { ignoreArrowShorthand: true }],
      // A leading underscore marks a binding that is there on purpose unused: a callback's parameter, a field destructured away.
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" },
      ],
      // A caught error (unknown) passed on as a rejection is passed on as it came, as a rethrow would.
      "@typescript-eslint/prefer-promise-reject-errors": ["error", { allowThrowingUnknown: true }],
      // A `let` that callbacks read before its one assignment (two objects that know each other) cannot be a const.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
    },
  },
  {
    files: ["src/store/memory/store.ts"],
    rules: {
      // The Store contract is asynchronous; the memory store answers at once, and `async` makes its throws rejections, as the etcd store's are.
      "@typescript-eslint/require-await": "off",
    },
  },
  {
    files: ["**/*.js", "**/*.mjs", "**/*.cjs"],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: { process: "readonly", console: "readonly", URL: "readonly" },
    },
  },
);
