// Prettier, the one formatter, for TypeScript, JavaScript, JSON and YAML
// (Markdown and generated files: .prettierignore). Its defaults already
// match the code (double quotes, semicolons, trailing commas, parenthesized
// arrow parameters); only the width is the code's own: lines run to about
// 140 columns, which keeps the one-time reformat smallest.
/** @type {import("prettier").Config} */
export default {
  printWidth: 140,
};
