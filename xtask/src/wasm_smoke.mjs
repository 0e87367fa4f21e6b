// Drives the web viewer in headless Chromium (playwright-core, the system's
// browser; no download) and prints one JSON line of what it saw:
//   node wasm_smoke.mjs URL SCREENSHOT.png TIMEOUT_MS webgl2|webgpu
// `webgl2` runs WebGL2 on ANGLE over SwiftShader (no WebGPU adapter there);
// `webgpu` enables WebGPU (a SwiftShader adapter), presents through ANGLE on
// SwiftShader's Vulkan, and leaves out the flags that would keep
// `requestAdapter()` pending forever (`--disable-gpu`, ANGLE on SwiftShader GL).
import { chromium } from "playwright-core";

const [url, screenshot, timeoutArg, mode] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg || 180000);
const common = [
  "--no-sandbox",
  "--no-first-run",
  "--disable-quic",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  ignoreDefaultArgs: ["--disable-gpu"],
  args:
    mode === "webgpu"
      ? // WebGPU on SwiftShader's Vulkan, and ANGLE on the same Vulkan so
        // the compositor can take the canvas's frames (on ANGLE's GL the
        // swap chain's shared image cannot be made and the device is lost).
        [
          ...common,
          "--enable-unsafe-webgpu",
          "--enable-features=Vulkan",
          "--use-vulkan=swiftshader",
          "--use-angle=vulkan",
        ]
      : // WebGL2 on the CPU (no GPU here): ANGLE over SwiftShader.
        [...common, "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
});
const result = { consoleErrors: [], consoleWarnings: [], pageErrors: [], summary: null, error: null, timedOut: false };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on("console", (m) => {
    if (m.type() === "error") result.consoleErrors.push(m.text());
    // The rest, kept for diagnosis (WebGPU validation messages are warnings).
    if (m.type() !== "error" && result.consoleWarnings.length < 200) {
      result.consoleWarnings.push(`${m.type()}: ${m.text()}`);
    }
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
      const label = document.getElementById("bundle");
      return {
        webcamRequests: window.__AUTOGAZE_WEBCAM_REQUESTS__,
        canvas: c ? { width: c.width, height: c.height } : null,
        label: label ? label.textContent : null,
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
