// Drives the web viewer in headless Chromium (playwright-core, the system's
// browser; no download) and prints one JSON line of what it saw:
//   node wasm_smoke.mjs URL SCREENSHOT.png TIMEOUT_MS
import { chromium } from "playwright-core";

const [url, screenshot, timeoutArg] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg || 180000);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--no-first-run",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // WebGL2 on the CPU (no GPU here): ANGLE over SwiftShader.
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
  ],
});
const result = { consoleErrors: [], pageErrors: [], summary: null, error: null, timedOut: false };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on("console", (m) => {
    if (m.type() === "error") result.consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => result.pageErrors.push(String(e)));
  // Any webcam request is counted and refused: the static source must not ask.
  await page.addInitScript(() => {
    window.__AUTOGAZE_WEBCAM_REQUESTS__ = 0;
    const devices = navigator.mediaDevices;
    if (devices) {
      const refuse = () => {
        window.__AUTOGAZE_WEBCAM_REQUESTS__ += 1;
        return Promise.reject(new DOMException("refused by the smoke test", "NotAllowedError"));
      };
      devices.getUserMedia = refuse;
      devices.getDisplayMedia = refuse;
    }
  });
  const started = Date.now();
  await page.goto(url, { waitUntil: "load" });
  for (;;) {
    const state = await page.evaluate(() => ({
      summary: window.__AUTOGAZE_SUMMARY__ ?? null,
      error: window.__AUTOGAZE_ERROR__ ?? null,
    }));
    Object.assign(result, state);
    if (state.summary || state.error) break;
    if (Date.now() - started > timeoutMs) {
      result.timedOut = true;
      break;
    }
    await page.waitForTimeout(250);
  }
  result.seconds = (Date.now() - started) / 1000;
  Object.assign(
    result,
    await page.evaluate(() => {
      const c = document.getElementById("autogaze");
      return {
        webcamRequests: window.__AUTOGAZE_WEBCAM_REQUESTS__,
        canvas: c ? { width: c.width, height: c.height } : null,
      };
    }),
  );
  await page.locator("#autogaze").screenshot({ path: screenshot });
} catch (e) {
  result.error = result.error || `driver: ${e}`;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
