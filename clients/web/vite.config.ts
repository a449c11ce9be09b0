import { defineConfig } from "vite";

// `npm run dev` serves the app with hot reload and sends what the page asks of its own
// origin (/config.json, /ws) to a gim serve on this machine (GIM_CONNECT, default
// localhost:7080). `npm run build` writes dist/, which gim embeds: no source maps, so
// that the binary stays small.
const connect = process.env.GIM_CONNECT ?? "localhost:7080";

export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1024 },
  server: {
    proxy: {
      "/config.json": `http://${connect}`,
      "/ws": { target: `ws://${connect}`, ws: true },
    },
  },
});
