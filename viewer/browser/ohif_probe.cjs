#!/usr/bin/env node
/*
 * Drive OHIF in Debian's headless Chromium (playwright-core, no browser download) and record evidence.
 *
 * Usage: node ohif_probe.cjs PLAN.json
 *
 * PLAN = {
 *   baseUrl, executablePath, driverDir (folder whose node_modules holds playwright-core), outDir,
 *   viewport: {width, height}, settleMs,
 *   scenarios: [{ name, studyUid, initialSeries?, steps: [step, ...] }]
 * }
 * step = { action: "capture" | "load" | "click" | "answer", label, modality?, description?, answer?, cy?,
 *          waitFor? }
 *
 * For every scenario a fresh page opens /viewer?StudyInstanceUIDs=<uid> (with initialSeriesInstanceUID when
 * `initialSeries` is set: OHIF then opens that series first), waits for the study browser and the first
 * image, dismisses the onboarding tour, and runs its steps, capturing after each one:
 *   capture: nothing more;
 *   load:    double-click the series thumbnail of that modality whose description contains the text and,
 *            when `answer` is set, click that button of the prompt OHIF may show (SEG: "Yes" opens the
 *            segmentation; SR: OHIF draws the SR at once and asks whether to start tracking its measurements,
 *            "No" keeps the read-only display, "Yes" sometimes removed it again);
 *   click:   click the element whose data-cy is `cy` (e.g. a side-panel button or a visibility toggle);
 *   answer:  click the `answer` button of a prompt, if one appears within 10 s;
 *   waitFor: a CSS selector to wait for (up to 60 s) before capturing, else settleMs is waited;
 *   before capturing, the pointer is parked in the bottom-left corner so that no popover covers the viewport.
 * A capture screenshots the active viewport's canvas box (<scenario>-<label>.png) and the page
 * (<scenario>-<label>-page.png), and records the canvas box, the SVG texts drawn over the viewport
 * (measurement labels), the segmentation panel's rows and the side panels' texts.
 * Evidence goes to OUT/result.json: per scenario the thumbnails (modality, description, has image),
 * the captures, console errors and warnings, page errors, failed or >= 400 requests, and any error.
 * Assertions are made by the Python tests.
 */
'use strict';

const fs = require('fs');
const path = require('path');

const plan = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { chromium } = require(require.resolve('playwright-core', { paths: [plan.driverDir] }));

// Flags from the machine notes: no sandbox as root, no background traffic into the closed network,
// WebGL through SwiftShader so cornerstone renders without a GPU.
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--enable-unsafe-swiftshader', '--use-angle=swiftshader',
  '--disable-dev-shm-usage',
];

function log(message) {
  process.stderr.write(`[ohif-probe ${new Date().toISOString()}] ${message}\n`);
}

async function dismissTour(page) {
  const skip = page.getByText('Skip all', { exact: true });
  if (await skip.count()) {
    await skip.first().click();
    log('dismissed the onboarding tour');
  }
}

// The first image is on screen once the viewport's bottom-left overlay shows its window ("W: 256 L: 128").
// Loading an SR before that races OHIF: the SR viewport then shows no region at all.
async function waitForFirstImage(page) {
  await page.waitForFunction(() => {
    const overlay = document.querySelector('[data-cy="viewport-overlay-bottom-left"]');
    return Boolean(overlay && /W:\s*-?\d/.test(overlay.innerText || ''));
  }, null, { timeout: 90000 });
}

async function capture(page, label, outDir) {
  const canvas = page.locator('[data-cy="viewport-pane"] canvas.cornerstone-canvas').first();
  await canvas.waitFor({ state: 'visible', timeout: 60000 });
  const box = await canvas.boundingBox();
  const file = path.join(outDir, `${label}.png`);
  await page.screenshot({ path: file, clip: box });
  await page.screenshot({ path: path.join(outDir, `${label}-page.png`) });
  const texts = selector => page.$$eval(selector, nodes => nodes.map(n => (n.textContent || '').trim()).filter(Boolean));
  return {
    label, file, box,
    svgTexts: await texts('[data-cy="viewport-pane"] svg text'),
    segmentRows: await texts('[data-cy="data-row-title"]'),
    segmentations: await texts('[data-cy="segmentation-select-value"]'),
    panels: await page.$$eval('[data-cy$="-panel"]',
      nodes => nodes.map(n => ({ cy: n.getAttribute('data-cy'), text: (n.innerText || '').trim() }))),
  };
}

async function answerPrompt(page, answer) {
  if (!answer) return;
  const button = page.getByRole('button', { name: answer, exact: true });
  try {
    await button.first().waitFor({ state: 'visible', timeout: 10000 });
    await button.first().click();
    log(`answered ${answer} to the prompt`);
  } catch (error) {
    log(`no prompt within 10 s (${error.name})`);
  }
}

async function load(page, step) {
  const thumbs = page.locator(
    '[data-cy="study-browser-thumbnail"], [data-cy="study-browser-thumbnail-no-image"]');
  const count = await thumbs.count();
  for (let i = 0; i < count; i += 1) {
    const thumb = thumbs.nth(i);
    const modality = (await thumb.locator('[data-cy="series-modality-label"]').innerText()).trim();
    const description = (await thumb.locator('[data-cy="series-description-label"]').innerText()).trim();
    if (modality === step.modality && description.includes(step.description)) {
      await thumb.dblclick();
      log(`double-clicked ${modality} "${description}"`);
      await answerPrompt(page, step.answer);
      return;
    }
  }
  throw new Error(`no ${step.modality} thumbnail whose description contains "${step.description}"`);
}

async function runScenario(browser, scenario) {
  const context = await browser.newContext({ viewport: plan.viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const evidence = { name: scenario.name, consoleErrors: [], consoleWarnings: [], pageErrors: [],
                     failedRequests: [], captures: [], thumbnails: [], error: null };
  page.on('console', message => {
    if (message.type() === 'error') evidence.consoleErrors.push(message.text().slice(0, 2000));
    if (message.type() === 'warning') evidence.consoleWarnings.push(message.text().slice(0, 500));
  });
  page.on('pageerror', error => evidence.pageErrors.push(String(error.stack || error).slice(0, 2000)));
  page.on('requestfailed', request => evidence.failedRequests.push(
    `${request.method()} ${request.url()} ${request.failure() ? request.failure().errorText : ''}`));
  page.on('response', response => {
    if (response.status() >= 400) evidence.failedRequests.push(`${response.status()} ${response.url()}`);
  });
  try {
    const initial = scenario.initialSeries ? `&initialSeriesInstanceUID=${scenario.initialSeries}` : '';
    await page.goto(`${plan.baseUrl}/viewer?StudyInstanceUIDs=${scenario.studyUid}${initial}`);
    await page.waitForSelector('[data-cy="study-browser-thumbnail"], [data-cy="study-browser-thumbnail-no-image"]',
      { timeout: 90000 });
    await waitForFirstImage(page);
    await page.waitForTimeout(plan.settleMs);
    await dismissTour(page);
    evidence.thumbnails = await page.$$eval(
      '[data-cy="study-browser-thumbnail"], [data-cy="study-browser-thumbnail-no-image"]',
      nodes => nodes.map(n => ({
        hasImage: n.getAttribute('data-cy') === 'study-browser-thumbnail',
        modality: (n.querySelector('[data-cy="series-modality-label"]') || {}).innerText || '',
        description: (n.querySelector('[data-cy="series-description-label"]') || {}).innerText || '',
      })));
    for (const step of scenario.steps) {
      if (step.action === 'load') {
        await load(page, step);
      } else if (step.action === 'answer') {
        await answerPrompt(page, step.answer);
      } else if (step.action === 'click') {
        await page.locator(`[data-cy="${step.cy}"]`).first().click();
        log(`clicked ${step.cy}`);
      } else if (step.action !== 'capture') {
        throw new Error(`unknown step action ${step.action}`);
      }
      if (step.waitFor) {
        await page.locator(step.waitFor).first().waitFor({ state: 'visible', timeout: 60000 });
        await page.waitForTimeout(1500);  // let the viewport repaint after the awaited element appears
      } else {
        await page.waitForTimeout(step.action === 'capture' ? 500 : plan.settleMs);
      }
      await dismissTour(page);
      // Park the pointer on an empty corner: hovering a panel row or button opens popovers over the viewport.
      await page.mouse.move(4, plan.viewport.height - 4);
      await page.waitForTimeout(400);
      evidence.captures.push(await capture(page, `${scenario.name}-${step.label}`, plan.outDir));
      log(`${scenario.name}: captured ${step.label}`);
    }
  } catch (error) {
    evidence.error = String(error.stack || error);
    await page.screenshot({ path: path.join(plan.outDir, `${scenario.name}-error.png`) }).catch(() => {});
    log(`${scenario.name}: ${error}`);
  }
  await context.close();
  return evidence;
}

(async () => {
  fs.mkdirSync(plan.outDir, { recursive: true });
  // launch() gives Chromium a new empty temporary profile each time (and deletes it on close).
  const browser = await chromium.launch({ executablePath: plan.executablePath, headless: true,
    args: CHROMIUM_ARGS });
  const results = [];
  try {
    for (const scenario of plan.scenarios) {
      results.push(await runScenario(browser, scenario));
    }
  } finally {
    await browser.close();
  }
  fs.writeFileSync(path.join(plan.outDir, 'result.json'), JSON.stringify({ scenarios: results }, null, 2));
  log('done');
})().catch(error => {
  log(`fatal: ${error.stack || error}`);
  process.exit(2);
});
