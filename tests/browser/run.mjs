// Runs one browser scenario in Debian's headless chromium, for the system
// tests (tests/system/test_browser_*.py):
//
//   node tests/browser/run.mjs SCENARIO.mjs '{"json": "arguments"}'
//
// SCENARIO.mjs exports `default async function (context, args)`; what it
// returns is printed as one JSON line {"ok": true, "result": ...}, and an
// exception as {"ok": false, "error": "..."} with exit status 1.  The
// browser is never downloaded: playwright-core drives /usr/bin/chromium
// (or $T2I_CHROMIUM) with a fresh empty profile, and nothing it does
// reaches past this machine.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const FLAGS = [
	'--no-sandbox',			// root in CI; the pages are the tests' own
	'--disable-gpu',
	'--disable-quic',
	'--no-first-run',
	'--disable-background-networking',
	'--disable-component-update',
	'--disable-sync',
];

const [scenario, argText] = process.argv.slice(2);
const args = JSON.parse(argText || '{}');
const limit = args.timeout_ms || 90000;
const profile = mkdtempSync(join(tmpdir(), 't2i-chromium-'));
let context;
let out = { ok: false, error: 'did not finish' };

// A hang becomes a failure, never a stuck test run.
const guard = setTimeout(() => {
	process.stdout.write(JSON.stringify({ ok: false, error: `timed out after ${limit} ms` }) + '\n');
	process.exit(1);
}, limit);

try {
	// launchPersistentContext: the profile directory is ours and empty.
	context = await chromium.launchPersistentContext(profile, {
		executablePath: process.env.T2I_CHROMIUM || '/usr/bin/chromium',
		headless: true,
		args: FLAGS,
	});
	const mod = await import(pathToFileURL(resolve(scenario)).href);
	out = { ok: true, result: await mod.default(context, args) };
} catch (e) {
	out = { ok: false, error: String(e && e.stack ? e.stack : e) };
} finally {
	if (context)
		await context.close().catch(() => {});
	rmSync(profile, { recursive: true, force: true });
	clearTimeout(guard);
}
process.stdout.write(JSON.stringify(out) + '\n');
process.exitCode = out.ok ? 0 : 1;
