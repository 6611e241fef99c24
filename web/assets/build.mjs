// Bundles src/app.js (htmx and the page islands) into ../static/dist with esbuild.
import { build } from "esbuild";

await build({
  entryPoints: ["src/app.js", "src/console.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["chrome110", "firefox110", "safari16"],
  outdir: "../static/dist",
  logLevel: "warning",
});
